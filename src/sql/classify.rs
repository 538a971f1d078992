//! The classifier: parses SQL with PostgreSQL's own parser (libpg_query,
//! through `pg_query`), in the session's string mode, and walks the whole
//! tree to say what it does. The walk is exhaustive (`nodes`), and a census
//! of the tree (`census`) checks afterwards that every relation, function,
//! column reference and operator in it was accounted for. Anything it cannot
//! analyse fully is an error, and the policy denies errors: pgward fails
//! closed.

use std::collections::{BTreeSet, HashMap};

use pg_query::ParserOptions;
use thiserror::Error;

use super::census::{census, Kind};
use super::classification::{Classification, Name};
use super::fingerprint::Strings;
use super::walker::{Use, Walker};

/// Why a statement could not be classified.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ClassifyError {
    /// PostgreSQL's parser rejects the text (a syntax error).
    #[error("cannot parse the statement: {0}")]
    Parse(String),
    /// The statement parses but pgward does not analyse its kind.
    #[error("{0} is not analysed by pgward")]
    Unsupported(String),
}

/// An `Unsupported` error.
pub fn unsupported(what: &str) -> ClassifyError {
    ClassifyError::Unsupported(what.to_string())
}

/// Classifies all the statements in `sql`, with standard_conforming_strings on.
pub fn classify(sql: &str) -> Result<Classification, ClassifyError> {
    classify_with(sql, Strings::Standard)
}

/// Classifies all the statements in `sql` as the server will parse them
/// with the session's standard_conforming_strings.
pub fn classify_with(sql: &str, strings: Strings) -> Result<Classification, ClassifyError> {
    let options = match strings {
        Strings::Standard => ParserOptions::DEFAULT,
        Strings::Escaped => ParserOptions::DISABLE_STANDARD_CONFORMING_STRINGS,
    };
    let parsed =
        pg_query::parse(sql, options).map_err(|e| ClassifyError::Parse(parse_message(e)))?;
    let tree = &parsed.protobuf;
    let mut c = Classification {
        statements: tree.stmts.len(),
        ..Classification::default()
    };
    let mut walker = Walker::new(&mut c);
    for raw in &tree.stmts {
        if let Some(stmt) = raw.stmt.as_deref().and_then(|n| n.node.as_ref()) {
            walker.statement(stmt, true, Use::Direct)?;
        }
    }
    let seen = std::mem::take(&mut walker.seen);
    let parameters = std::mem::take(&mut walker.parameters);
    c.check_setting_parameters(&parameters);
    // Relations read other than through a SELECT's FROM list (COPY, say).
    for r in c.reads.clone() {
        if !c.row_bounds.contains_key(&r) {
            c.bound_rows(r, None);
        }
    }
    if c.forbidden.is_empty() {
        if let Some((kind, at)) = unaccounted(&census(tree), &seen) {
            return Err(ClassifyError::Unsupported(format!(
                "the {} at position {} (pgward's walk did not reach it)",
                kind.describe(),
                at + 1
            )));
        }
    }
    Ok(c)
}

fn parse_message(e: pg_query::Error) -> String {
    match e {
        pg_query::Error::Parse(m) => m,
        other => other.to_string(),
    }
}

/// The first node the census found more often than the walker saw it.
fn unaccounted(found: &[(Kind, i32)], seen: &[(Kind, i32)]) -> Option<(Kind, i32)> {
    let mut counts: HashMap<(Kind, i32), usize> = HashMap::with_capacity(seen.len());
    for s in seen {
        *counts.entry(*s).or_default() += 1;
    }
    for f in found {
        match counts.get_mut(f) {
            Some(n) if *n > 0 => *n -= 1,
            _ => return Some(*f),
        }
    }
    None
}

/// The relation names in a set, as text (for tests and messages).
pub fn names(set: &BTreeSet<Name>) -> Vec<String> {
    set.iter().map(Name::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reads(sql: &str) -> Vec<String> {
        names(&classify(sql).unwrap().reads)
    }

    fn writes(sql: &str) -> Vec<String> {
        names(&classify(sql).unwrap().writes)
    }

    fn ops(sql: &str) -> Vec<&'static str> {
        classify(sql)
            .unwrap()
            .operations
            .iter()
            .map(|o| o.name())
            .collect()
    }

    #[test]
    fn reads_through_joins_subqueries_and_set_operations() {
        assert_eq!(
            reads("SELECT abalance FROM pgbench_accounts WHERE aid = 42"),
            ["pgbench_accounts"]
        );
        assert_eq!(
            reads("SELECT * FROM orders o JOIN Customers c ON c.id = o.customer_id WHERE EXISTS (SELECT 1 FROM payments p) UNION SELECT * FROM internal.x"),
            ["customers", "orders", "payments", "internal.x"]
        );
        assert_eq!(
            reads("SELECT (SELECT key FROM \"API_Keys\") FROM generate_series(1, 3)"),
            ["API_Keys"]
        );
        assert_eq!(
            reads("SELECT * FROM shop.public.orders"),
            ["shop.public.orders"]
        );
    }

    #[test]
    fn ctes_shadow_only_where_visible() {
        assert_eq!(
            reads("WITH recent AS (SELECT * FROM orders) SELECT * FROM recent"),
            ["orders"]
        );
        // A non-recursive CTE's body sees the real table of the same name.
        assert_eq!(
            reads("WITH api_keys AS (SELECT * FROM api_keys) SELECT * FROM api_keys"),
            ["api_keys"]
        );
        // A CTE defined inside a subquery does not hide the outer table.
        assert_eq!(
            reads("SELECT * FROM api_keys, (WITH api_keys AS (SELECT 1) SELECT * FROM api_keys) s"),
            ["api_keys"]
        );
        // Later CTEs see earlier ones.
        assert_eq!(
            reads("WITH a AS (SELECT 1), b AS (SELECT * FROM a) SELECT * FROM b"),
            Vec::<String>::new()
        );
        assert_eq!(
            reads("WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a"),
            ["b"]
        );
    }

    fn columns(sql: &str) -> Vec<String> {
        let c = classify(sql).unwrap();
        let mut out: Vec<String> = c
            .columns
            .iter()
            .flat_map(|(t, cols)| cols.iter().map(move |col| format!("{t}.{col}")))
            .collect();
        out.extend(c.unscoped_columns.iter().map(|c| format!("?.{c}")));
        out
    }

    #[test]
    fn columns_are_attributed_to_their_relations() {
        assert_eq!(
            columns("SELECT e.full_name FROM employees e"),
            ["employees.full_name"]
        );
        assert_eq!(
            columns(
                "SELECT c.id, o.total_cents FROM customers c JOIN orders o ON o.customer_id = c.id"
            ),
            ["customers.id", "orders.customer_id", "orders.total_cents"]
        );
        assert_eq!(
            columns("SELECT customers.* FROM customers, employees"),
            ["customers.*"]
        );
        assert_eq!(
            columns("SELECT * FROM customers, employees"),
            ["customers.*", "employees.*"]
        );
        assert_eq!(
            columns("SELECT e FROM employees e"),
            ["employees.*", "employees.e"]
        );
        assert_eq!(
            columns("SELECT to_jsonb(e.*) FROM employees e"),
            ["employees.*"]
        );
        assert_eq!(
            columns("SELECT full_name FROM employees ORDER BY salary"),
            ["employees.full_name", "employees.salary"]
        );
        assert!(classify("SELECT full_name FROM employees ORDER BY salary")
            .unwrap()
            .predicate_columns
            .get(&Name::bare("employees"))
            .is_some_and(|c| c.contains("salary")));
        assert_eq!(
            columns("UPDATE orders SET status = 'x' WHERE total_cents > 5"),
            ["orders.total_cents"]
        );
        assert_eq!(
            columns("INSERT INTO orders (status) VALUES ('x') RETURNING *"),
            ["orders.*"]
        );
        assert_eq!(columns("COPY employees TO STDOUT"), ["employees.*"]);
        assert_eq!(
            columns("SELECT id FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id)"),
            ["customers.id", "orders.customer_id"]
        );
    }

    #[test]
    fn writes_and_operations() {
        assert_eq!(
            writes("INSERT INTO orders (id) SELECT id FROM customers"),
            ["orders"]
        );
        assert_eq!(
            reads("INSERT INTO orders (id) SELECT id FROM customers"),
            ["customers"]
        );
        assert_eq!(
            ops("INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET x = 1"),
            ["insert", "update"]
        );
        assert_eq!(
            writes("UPDATE orders SET status = 'x' FROM customers WHERE true"),
            ["orders"]
        );
        assert_eq!(
            reads("UPDATE orders SET status = 'x' FROM customers WHERE true"),
            ["customers", "orders"]
        );
        assert_eq!(writes("DELETE FROM orders USING customers"), ["orders"]);
        assert_eq!(
            writes("WITH d AS (DELETE FROM customers RETURNING *) SELECT * FROM d"),
            ["customers"]
        );
        assert_eq!(
            ops("WITH d AS (DELETE FROM customers RETURNING *) SELECT * FROM d"),
            ["select", "delete"]
        );
        assert_eq!(
            ops("SELECT 1; COMMIT; DROP SCHEMA public CASCADE"),
            ["select", "ddl", "transaction"]
        );
        assert_eq!(writes("TRUNCATE a, b"), ["a", "b"]);
        assert_eq!(ops("COPY orders TO STDOUT"), ["copy_out"]);
        assert_eq!(writes("COPY orders FROM STDIN"), ["orders"]);
        assert_eq!(
            reads("COPY (SELECT * FROM api_keys) TO STDOUT"),
            ["api_keys"]
        );
        assert_eq!(writes("CREATE TABLE x AS SELECT * FROM orders"), ["x"]);
        assert_eq!(ops("SELECT * INTO newt FROM orders"), ["select", "ddl"]);
        assert_eq!(writes("SELECT * INTO newt FROM orders"), ["newt"]);
        assert_eq!(ops("SELECT * FROM orders FOR UPDATE"), ["select", "lock"]);
        assert_eq!(ops("EXPLAIN ANALYZE DELETE FROM orders"), ["delete"]);
    }

    #[test]
    fn functions_settings_and_forbidden_forms() {
        let c = classify("SELECT lower(email), pg_catalog.count(*), public.customer_order_count(1) FROM customers").unwrap();
        assert_eq!(
            names(&c.functions),
            [
                "count",
                "lower",
                "pg_catalog.count",
                "public.customer_order_count"
            ][1..]
        );
        let c = classify("SELECT set_config('search_path', 'internal', false)").unwrap();
        assert!(c.literal_sensitive);
        assert!(c.settings.contains("search_path"));
        assert!(!classify("SELECT set_config('role', 'postgres', false)")
            .unwrap()
            .forbidden
            .is_empty());
        assert!(!classify("SET ROLE postgres").unwrap().forbidden.is_empty());
        assert!(!classify("SET SESSION AUTHORIZATION postgres")
            .unwrap()
            .forbidden
            .is_empty());
        assert!(!classify("COPY orders TO PROGRAM 'sh'")
            .unwrap()
            .forbidden
            .is_empty());
        assert!(!classify("COPY orders FROM '/etc/passwd'")
            .unwrap()
            .forbidden
            .is_empty());
        assert_eq!(
            reads("SELECT nextval('public.orders_id_seq')"),
            ["public.orders_id_seq"]
        );
        assert_eq!(reads("SELECT 'api_keys'::regclass"), ["api_keys"]);
        assert_eq!(ops("DO $$ BEGIN END $$"), ["code"]);
        let copy = classify("copy pgbench_accounts from stdin with (freeze on)").unwrap();
        assert_eq!(names(&copy.writes), ["pgbench_accounts"]);
        assert!(
            !classify("copy pgbench_accounts from program 'id' with (freeze on)")
                .unwrap()
                .forbidden
                .is_empty()
        );
        assert_eq!(
            ops("copy x from stdin with (freeze on); drop table y"),
            ["copy_in", "ddl"]
        );
        let v = classify("vacuum analyze pgbench_branches").unwrap();
        assert_eq!(names(&v.writes), ["pgbench_branches"]);
        assert_eq!(writes("vacuum analyze x; drop table y"), ["x", "y"]);
        assert!(
            classify("SHOW app.secret")
                .unwrap()
                .settings_read
                .contains("app.secret"),
            "{:?}",
            classify("SHOW app.secret").unwrap().settings_read
        );
        assert!(classify("SHOW TIME ZONE")
            .unwrap()
            .settings_read
            .contains("timezone"));
        assert!(classify("SELECT FROM WHERE").is_err());
    }

    /// Each relation read with its row bound (`-` for none).
    fn bounds(sql: &str) -> Vec<String> {
        classify(sql)
            .unwrap()
            .row_bounds
            .iter()
            .map(|(n, b)| format!("{n}:{}", b.map_or("-".into(), |b| b.to_string())))
            .collect()
    }

    #[test]
    fn reads_are_bounded_only_by_a_constant_limit_over_plain_rows() {
        assert_eq!(bounds("SELECT * FROM customers"), ["customers:-"]);
        assert_eq!(bounds("SELECT * FROM customers LIMIT 5"), ["customers:5"]);
        assert_eq!(
            bounds("SELECT id FROM customers FETCH FIRST 3 ROWS ONLY"),
            ["customers:3"]
        );
        assert_eq!(bounds("SELECT * FROM customers LIMIT ALL"), ["customers:-"]);
        assert_eq!(bounds("SELECT * FROM customers LIMIT $1"), ["customers:-"]);
        // A function in the output may fold every row into one.
        assert_eq!(
            bounds("SELECT string_agg(ssn, ',') FROM customers LIMIT 1"),
            ["customers:-"]
        );
        assert_eq!(
            bounds("SELECT count(*) FROM customers GROUP BY id LIMIT 1"),
            ["customers:-"]
        );
        // The level a FROM subquery feeds bounds it; a subquery in an
        // expression, a CTE or a set operation without a LIMIT does not.
        assert_eq!(
            bounds("SELECT * FROM (SELECT * FROM customers) s LIMIT 2"),
            ["customers:2"]
        );
        assert_eq!(
            bounds("SELECT * FROM (SELECT string_agg(ssn, ',') FROM customers) s LIMIT 2"),
            ["customers:-"]
        );
        assert_eq!(
            bounds("SELECT (SELECT max(id) FROM orders) FROM customers LIMIT 2"),
            ["customers:-", "orders:-"]
        );
        assert_eq!(
            bounds("SELECT 1 FROM orders WHERE customer_id IN (SELECT id FROM customers) LIMIT 2"),
            ["customers:-", "orders:2"]
        );
        assert_eq!(
            bounds("WITH c AS (SELECT * FROM customers) SELECT * FROM c LIMIT 2"),
            ["customers:-"]
        );
        assert_eq!(
            bounds("SELECT * FROM customers UNION ALL SELECT * FROM customers LIMIT 4"),
            ["customers:4"]
        );
        assert_eq!(
            bounds("(SELECT * FROM customers LIMIT 1) UNION ALL SELECT * FROM orders"),
            ["customers:1", "orders:-"]
        );
        assert_eq!(
            bounds("SELECT * FROM (WITH c AS (SELECT * FROM customers) SELECT * FROM c) s LIMIT 2"),
            ["customers:-"]
        );
        // The loosest read of a relation wins; reads outside a SELECT's
        // FROM list are unbounded.
        assert_eq!(
            bounds("SELECT * FROM customers LIMIT 1; SELECT * FROM customers"),
            ["customers:-"]
        );
        assert_eq!(bounds("COPY customers TO STDOUT"), ["customers:-"]);
        // WITH TIES returns every row tied with the last.
        assert_eq!(
            bounds("SELECT * FROM customers ORDER BY 1 FETCH FIRST 1 ROWS WITH TIES"),
            ["customers:-"]
        );
        // A LIMIT in what may run once per row bounds one run only.
        assert_eq!(
            bounds("SELECT (SELECT ssn FROM customers c WHERE c.id = o.id LIMIT 1) FROM orders o LIMIT 5"),
            ["customers:-", "orders:5"]
        );
        assert_eq!(
            bounds("SELECT x.* FROM generate_series(1, 9) g, LATERAL (SELECT * FROM customers OFFSET g LIMIT 1) x LIMIT 5"),
            ["customers:5"]
        );
        assert_eq!(
            bounds("SELECT x.ssn FROM orders o, LATERAL (SELECT ssn FROM customers LIMIT 1) x"),
            ["customers:-", "orders:-"]
        );
        assert_eq!(
            bounds("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r, (SELECT id FROM customers LIMIT 1) c) SELECT * FROM r LIMIT 3"),
            ["customers:-"]
        );
        assert_eq!(
            bounds("DELETE FROM orders USING customers c WHERE c.id = orders.customer_id"),
            ["customers:-", "orders:-"]
        );
    }

    fn unfiltered(sql: &str) -> Vec<String> {
        classify(sql)
            .unwrap()
            .unfiltered
            .iter()
            .map(|(o, n)| format!("{o} {n}"))
            .collect()
    }

    #[test]
    fn deletes_and_updates_are_unfiltered_without_a_where_on_their_target() {
        assert_eq!(unfiltered("DELETE FROM orders"), ["delete orders"]);
        assert_eq!(
            unfiltered("DELETE FROM orders WHERE true"),
            ["delete orders"]
        );
        assert_eq!(
            unfiltered("DELETE FROM orders WHERE 1 = 1"),
            ["delete orders"]
        );
        assert_eq!(
            unfiltered("DELETE FROM orders WHERE EXISTS (SELECT 1 FROM customers)"),
            ["delete orders"]
        );
        assert!(unfiltered("DELETE FROM orders WHERE id = 3").is_empty());
        assert!(unfiltered("DELETE FROM orders o WHERE o.id = 3").is_empty());
        assert!(unfiltered("DELETE FROM orders WHERE CURRENT OF c").is_empty());
        assert_eq!(unfiltered("UPDATE orders SET total = 0"), ["update orders"]);
        assert_eq!(
            unfiltered("UPDATE orders SET total = 0 FROM customers c WHERE c.id = 1"),
            ["update orders"]
        );
        assert!(unfiltered("UPDATE orders SET total = 0 WHERE id = 1").is_empty());
        assert_eq!(
            unfiltered("WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d"),
            ["delete orders"]
        );
        // A column of another table, unqualified, is no filter on the target.
        assert_eq!(
            unfiltered("DELETE FROM orders USING customers c WHERE email = 'x'"),
            ["delete orders"]
        );
        assert!(
            unfiltered("DELETE FROM orders o USING customers c WHERE o.customer_id = c.id")
                .is_empty()
        );
        assert_eq!(
            unfiltered("DELETE FROM orders WHERE EXISTS (SELECT 1 FROM customers WHERE id = 1)"),
            ["delete orders"]
        );
        // MERGE ON true, and an upsert fed by a query.
        assert_eq!(
            unfiltered("MERGE INTO orders t USING (SELECT 1) s ON true WHEN MATCHED THEN DELETE"),
            ["delete orders"]
        );
        assert!(unfiltered("MERGE INTO orders t USING customers s ON t.customer_id = s.id WHEN MATCHED THEN UPDATE SET total = 0").is_empty());
        assert_eq!(
            unfiltered(
                "INSERT INTO orders SELECT * FROM orders ON CONFLICT (id) DO UPDATE SET total = 0"
            ),
            ["update orders"]
        );
        assert!(unfiltered(
            "INSERT INTO orders (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET total = 0"
        )
        .is_empty());
    }
}
