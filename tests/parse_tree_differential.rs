//! Differential property test: for generated statements (seeds covering the
//! grammar, and mutations of them), every relation and function that
//! PostgreSQL's own parse tree contains must be one pgward's classification
//! checked, unless pgward refused to classify the text at all. The oracle is
//! independent of the classifier: it walks the parse tree as generic JSON.

use std::collections::BTreeSet;

use pgward::sql::{classify, Classification};
use serde_json::Value;

const SEEDS: &[&str] = &[
    "SELECT abalance FROM pgbench_accounts WHERE aid = 42",
    "SELECT * FROM customers c JOIN orders o ON o.customer_id = c.id",
    "SELECT c.email FROM customers AS c(a, b, c)",
    "SELECT ssn FROM customers JOIN employees USING (ssn)",
    "SELECT * FROM customers NATURAL JOIN orders",
    "SELECT * FROM customers FULL JOIN orders USING (id)",
    "SELECT (c.*)::text FROM customers c",
    "SELECT ARRAY[c.*] FROM customers c",
    "SELECT to_jsonb(c) FROM customers c",
    "SELECT * FROM LATERAL generate_series(1, 3) g, LATERAL upper(g::text) u",
    "SELECT * FROM ROWS FROM (generate_series(1, 2), unnest(ARRAY[1])) AS r",
    "SELECT * FROM customers, LATERAL (SELECT * FROM orders WHERE customer_id = customers.id) o",
    "SELECT U&\"\\0073sn\" FROM customers",
    "TABLE customers",
    "SELECT * FROM (TABLE api_keys) t",
    "WITH x AS (TABLE api_keys) SELECT * FROM x",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT * FROM r",
    "WITH api_keys AS (SELECT * FROM api_keys) SELECT * FROM api_keys",
    "WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d",
    "INSERT INTO orders (id, status) SELECT id, 'x' FROM customers ON CONFLICT (id) DO UPDATE SET status = excluded.status RETURNING *",
    "UPDATE orders o SET status = c.email FROM customers c WHERE c.id = o.customer_id RETURNING o.*",
    "DELETE FROM orders USING customers WHERE orders.customer_id = customers.id",
    "MERGE INTO orders o USING customers c ON o.customer_id = c.id WHEN MATCHED THEN UPDATE SET status = c.ssn WHEN NOT MATCHED THEN INSERT (id) VALUES (c.id)",
    "COPY customers TO STDOUT",
    "COPY (SELECT * FROM api_keys) TO STDOUT WITH (FORMAT csv, FORCE_QUOTE *)",
    "COPY orders (id, status) FROM STDIN WITH (FORMAT csv) WHERE id > 1",
    "SELECT set_config('search_path', 'internal', false)",
    "SELECT current_setting(setting_name => 'app.secret')",
    "SELECT nextval('public.orders_id_seq')",
    "SELECT 'api_keys'::regclass::oid",
    "SELECT count(*) FILTER (WHERE ssn > '1') OVER (PARTITION BY city ORDER BY email) FROM customers",
    "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY salary) FROM employees",
    "SELECT xmlelement(name x, email) FROM customers",
    "SELECT * FROM XMLTABLE('/a' PASSING xmlparse(document '<a/>') COLUMNS x text PATH 'b') t",
    "SELECT * FROM JSON_TABLE('[1]'::jsonb, '$[*]' COLUMNS (v int PATH '$')) jt",
    "SELECT json_object('a' VALUE email) FROM customers",
    "SELECT JSON_QUERY(to_jsonb(c), '$.ssn') FROM customers c",
    "SELECT CASE WHEN ssn LIKE '1%' THEN 1 ELSE 0 END FROM customers",
    "SELECT id FROM customers WHERE id IN (SELECT customer_id FROM orders) AND EXISTS (SELECT 1 FROM api_keys)",
    "SELECT id FROM customers ORDER BY 2",
    "SELECT ssn AS x FROM customers ORDER BY x",
    "SELECT DISTINCT ON (ssn) id FROM customers",
    "SELECT id FROM customers GROUP BY ROLLUP (city, ssn)",
    "SELECT * FROM customers TABLESAMPLE bernoulli (10) REPEATABLE (1)",
    "SELECT * FROM customers FOR UPDATE OF customers SKIP LOCKED",
    "SELECT 1 OPERATOR(pg_catalog.+) 2",
    "SELECT a.b.c FROM a",
    "SELECT (c).email FROM customers c",
    "SELECT id FROM customers c WHERE c.email IS DISTINCT FROM 'x' AND c.id BETWEEN 1 AND 3",
    "SELECT coalesce(email, phone), greatest(id, 2), nullif(ssn, '') FROM customers",
    "SELECT id FROM customers UNION SELECT id FROM employees ORDER BY id LIMIT 3",
    "VALUES (1, 'a'), (2, (SELECT email FROM customers LIMIT 1))",
    "SELECT * INTO newt FROM orders",
    "CREATE TABLE t2 AS SELECT * FROM api_keys",
    "CREATE TABLE t3 (id int DEFAULT nextval('s'), x text CHECK (length(x) < 5), y int REFERENCES customers (id))",
    "CREATE TABLE t4 (LIKE customers INCLUDING ALL) INHERITS (orders)",
    "CREATE VIEW v AS SELECT ssn FROM customers",
    "CREATE INDEX ON customers (lower(email)) WHERE ssn IS NOT NULL",
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "CREATE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT count(*) FROM api_keys; END",
    "CREATE TRIGGER tr BEFORE INSERT ON orders FOR EACH ROW WHEN (NEW.id > 0) EXECUTE FUNCTION trig()",
    "CREATE RULE r AS ON INSERT TO orders DO ALSO INSERT INTO audit SELECT * FROM api_keys",
    "CREATE POLICY p ON customers USING (ssn = current_user)",
    "ALTER TABLE customers ADD COLUMN z int DEFAULT f(), ALTER COLUMN email SET DEFAULT g()",
    "ALTER TABLE orders RENAME TO api_keys",
    "DROP TABLE IF EXISTS a, internal.b CASCADE",
    "DROP FUNCTION public.f(int), g",
    "TRUNCATE orders, customers RESTART IDENTITY",
    "VACUUM (ANALYZE) customers (email), orders",
    "LOCK TABLE customers IN SHARE MODE",
    "EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM api_keys",
    "DECLARE c CURSOR FOR SELECT * FROM customers",
    "PREPARE p (int) AS SELECT * FROM orders WHERE id = $1",
    "CALL public.refresh_things(1)",
    "DO $$ BEGIN PERFORM 1; END $$",
    "SET search_path = internal, \"Public\"",
    "SET LOCAL statement_timeout = '5s'",
    "RESET ALL",
    "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE",
    "SHOW search_path",
    "SELECT 1; COMMIT; DROP SCHEMA public CASCADE",
    "GRANT SELECT ON api_keys TO PUBLIC",
    "COMMENT ON COLUMN customers.ssn IS 'x'",
    "CREATE SCHEMA s CREATE TABLE t (id int) CREATE VIEW w AS SELECT * FROM api_keys",
    "SELECT * FROM customers WHERE id = ANY (SELECT id FROM employees)",
    "SELECT id FROM customers c WHERE (c.ssn, c.email) = ('1', '2')",
    "SELECT sum(salary) OVER w FROM employees WINDOW w AS (PARTITION BY dept ORDER BY hired)",
    "SELECT id FROM (customers c JOIN orders o USING (id)) AS j WHERE j.id > 1",
    "SELECT j.id FROM customers JOIN orders USING (id) AS j",
    "INSERT INTO orders DEFAULT VALUES RETURNING old.*, new.*",
];

/// Relations, functions and CTE names found anywhere in PostgreSQL's tree.
#[derive(Default, Debug)]
struct Found {
    relations: BTreeSet<String>,
    functions: BTreeSet<String>,
    ctes: BTreeSet<String>,
    /// Relations named where they are not relations (FOR UPDATE OF, SET CONSTRAINTS).
    references: BTreeSet<String>,
}

fn qualified(schema: &str, name: &str) -> String {
    if schema.is_empty() {
        name.to_string()
    } else {
        format!("{schema}.{name}")
    }
}

fn strings(list: &Value) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n.pointer("/node/String/sval").and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}

fn walk(v: &Value, found: &mut Found, parent: &str) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                match k.as_str() {
                    "RangeVar" => {
                        let schema = child["schemaname"].as_str().unwrap_or("");
                        let rel = child["relname"].as_str().unwrap_or("");
                        let name = qualified(schema, rel);
                        if parent == "locked_rels" || parent == "constraints" {
                            found.references.insert(name);
                        } else {
                            found.relations.insert(name);
                        }
                    }
                    "FuncCall" => {
                        found
                            .functions
                            .insert(strings(&child["funcname"]).join("."));
                    }
                    "CommonTableExpr" => {
                        if let Some(n) = child["ctename"].as_str() {
                            found.ctes.insert(n.to_string());
                        }
                    }
                    _ => {}
                }
                walk(child, found, k);
            }
        }
        Value::Array(items) => {
            for i in items {
                walk(i, found, parent);
            }
        }
        _ => {}
    }
}

fn found_in(sql: &str) -> Option<Found> {
    let tree = pg_query::parse(sql, 0).ok()?.protobuf;
    let json = serde_json::to_value(&tree).ok()?;
    let mut found = Found::default();
    walk(&json, &mut found, "");
    Some(found)
}

/// Every relation and function of the tree, as pgward's classification has it.
fn check(sql: &str, c: &Classification) -> Result<(), String> {
    let Some(found) = found_in(sql) else {
        return Ok(());
    };
    let checked: BTreeSet<String> = c
        .reads
        .iter()
        .chain(&c.writes)
        .map(|n| qualified(n.schema.as_deref().unwrap_or(""), &n.name))
        .collect();
    for r in &found.relations {
        let bare = !r.contains('.');
        if !(checked.contains(r) || bare && found.ctes.contains(r)) {
            return Err(format!("relation {r} not checked"));
        }
    }
    let functions: BTreeSet<String> = c.functions.iter().map(|n| n.to_string()).collect();
    for f in &found.functions {
        if !functions.contains(f) {
            return Err(format!("function {f} not checked"));
        }
    }
    Ok(())
}

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

/// Wraps or combines statements in the places the grammar allows.
fn mutate(rng: &mut Rng, a: &str, b: &str) -> String {
    let query = |s: &str| {
        s.starts_with("SELECT")
            || s.starts_with("VALUES")
            || s.starts_with("TABLE")
            || s.starts_with("WITH")
    };
    let fx = rng.pick(&[
        "f",
        "public.f",
        "pg_catalog.upper",
        "set_config",
        "generate_series",
    ]);
    let rel = rng.pick(&[
        "api_keys",
        "internal.secrets",
        "\"Odd\"",
        "U&\"\\0061pi_keys\"",
    ]);
    match rng.next() % 12 {
        0 if query(a) => format!("SELECT * FROM ({a}) AS s"),
        1 if query(a) => format!("WITH w AS ({a}) SELECT * FROM w"),
        2 if query(a) && query(b) => format!("{a} UNION ALL {b}"),
        3 if query(a) => format!("SELECT x.* FROM LATERAL {fx}(({a})) AS x"),
        4 if query(a) => format!("SELECT {fx}((SELECT 1 FROM {rel})) FROM ({a}) q"),
        5 if query(a) => format!("EXPLAIN {a}"),
        6 if query(a) => format!("COPY ({a}) TO STDOUT"),
        7 if query(a) => format!("CREATE TABLE m AS {a}"),
        8 => format!("{a}; {b}"),
        9 if query(a) => format!("SELECT EXISTS ({a}) FROM {rel} JOIN {rel} r2 USING (id)"),
        10 if query(a) => format!("DECLARE c CURSOR FOR {a}"),
        _ => format!("SELECT * FROM {rel} WHERE id IN (SELECT {fx}(1)) AND {fx}(id) > 0"),
    }
}

#[test]
fn seeds_check_every_relation_and_function() {
    let mut failures = Vec::new();
    for sql in SEEDS {
        match classify(sql) {
            Ok(c) => {
                if let Err(e) = check(sql, &c) {
                    failures.push(format!("{e}: {sql}"));
                }
            }
            Err(e) => failures.push(format!("not classified ({e}): {sql}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn mutations_check_every_relation_and_function() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut failures = Vec::new();
    let mut classified = 0;
    for _ in 0..3000 {
        let a = rng.pick(SEEDS);
        let b = rng.pick(SEEDS);
        let mut sql = mutate(&mut rng, a, b);
        if rng.next().is_multiple_of(3) {
            sql = mutate(&mut rng, &sql, a);
        }
        if let Ok(c) = classify(&sql) {
            classified += 1;
            if let Err(e) = check(&sql, &c) {
                failures.push(format!("{e}: {sql}"));
            }
        }
    }
    assert!(classified > 1500, "only {classified} mutations classified");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
