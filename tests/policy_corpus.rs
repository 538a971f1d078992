//! The statement policy over a corpus of agent SQL and escape attempts, under
//! the roles of examples/policy.toml. Pure: classification and decision only.

use pgward::policy::decide::decide;
use pgward::policy::{Policy, SessionView};
use pgward::sql::classify;

#[path = "support/shop_catalog.rs"]
mod shop_catalog;

fn policy() -> Policy {
    Policy::from_toml(include_str!("../examples/policy.toml")).unwrap()
}

/// "allow", "deny", or "error" (unparsable: denied by the gateway too).
fn verdict(policy: &Policy, role: &str, sql: &str) -> &'static str {
    let search_path = vec!["$user".to_string(), "public".to_string()];
    static CATALOG: std::sync::OnceLock<pgward::policy::catalog::Catalog> =
        std::sync::OnceLock::new();
    let catalog = CATALOG.get_or_init(shop_catalog::shop_catalog);
    let view = SessionView {
        catalog: Some(catalog),
        masks: None,
        database: "shop",
        upstream_database: "shop",
        search_path: &search_path,
    };
    match classify(sql) {
        Err(_) => "error",
        Ok(c) => {
            let roles = policy.roles_of(&[role.to_string()]);
            if decide(&roles, &c, &view).is_allowed() {
                "allow"
            } else {
                "deny"
            }
        }
    }
}

fn check(role: &str, cases: &[(&str, &str)]) {
    let p = policy();
    let mut failures = Vec::new();
    for (sql, expected) in cases {
        let got = verdict(&p, role, sql);
        let ok = got == *expected;
        if !ok {
            failures.push(format!("{role}: expected {expected}, got {got}: {sql}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

const PSQL_DT: &str = "SELECT n.nspname as \"Schema\", c.relname as \"Name\", CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' END as \"Type\", pg_catalog.pg_get_userbyid(c.relowner) as \"Owner\" FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam WHERE c.relkind IN ('r','p','') AND n.nspname <> 'pg_catalog' AND n.nspname !~ '^pg_toast' AND n.nspname <> 'information_schema' AND pg_catalog.pg_table_is_visible(c.oid) ORDER BY 1,2;";
const PSQL_D_TABLE: &str = "SELECT c.oid, n.nspname, c.relname FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relname OPERATOR(pg_catalog.~) '^(customers)$' COLLATE pg_catalog.default AND pg_catalog.pg_table_is_visible(c.oid) ORDER BY 2, 3;";
const PSQL_D_COLUMNS: &str = "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid, true) FROM pg_catalog.pg_attrdef d WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum AND a.atthasdef), a.attnotnull, (SELECT c.collname FROM pg_catalog.pg_collation c, pg_catalog.pg_type t WHERE c.oid = a.attcollation AND t.oid = a.atttypid AND a.attcollation <> t.typcollation) AS attcollation, a.attidentity, a.attgenerated FROM pg_catalog.pg_attribute a WHERE a.attrelid = '16390' AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum;";

#[test]
fn reader_reads_what_it_is_granted() {
    check(
        "reader",
        &[
            ("SELECT id, email FROM customers", "allow"),
            ("select id from public.orders where total > 100 order by id limit 5", "allow"),
            ("SELECT o.id, c.full_name FROM orders o JOIN customers c ON c.id = o.customer_id", "allow"),
            ("SELECT status, count(*), sum(total) FROM orders GROUP BY status HAVING count(*) > 1", "allow"),
            ("SELECT id, rank() OVER (PARTITION BY customer_id ORDER BY total DESC) FROM orders", "allow"),
            ("WITH big AS (SELECT * FROM orders WHERE total > 10) SELECT count(*) FROM big", "allow"),
            ("SELECT * FROM customer_directory", "allow"),
            ("SELECT public.customer_order_count(1)", "allow"),
            ("SELECT customer_order_count(1)", "allow"),
            ("SELECT lower(email), upper(name), length(name) FROM customers", "allow"),
            ("SELECT date_trunc('month', created_at), count(*) FROM orders GROUP BY 1", "allow"),
            ("SELECT 1", "allow"),
            ("SELECT now(), current_database(), version()", "allow"),
            ("SELECT * FROM generate_series(1, 10)", "allow"),
            ("SELECT jsonb_build_object('id', id) FROM products", "allow"),
            ("SELECT id FROM orders UNION ALL SELECT id FROM order_items", "allow"),
            ("SELECT id FROM customers WHERE EXISTS (SELECT 1 FROM orders WHERE orders.customer_id = customers.id)", "allow"),
            ("SELECT id, name, department FROM employees", "allow"),
            (PSQL_DT, "allow"),
            (PSQL_D_TABLE, "allow"),
            (PSQL_D_COLUMNS, "allow"),
            ("SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'public'", "allow"),
            ("SELECT relname FROM pg_class WHERE relkind = 'r'", "allow"),
            ("SET statement_timeout = '5s'", "allow"),
            ("SET application_name TO 'agent'", "allow"),
            ("SHOW search_path", "allow"),
            ("SELECT current_setting('TimeZone')", "allow"),
            ("SELECT set_config('statement_timeout', '5s', false)", "allow"),
            ("", "allow"),
        ],
    );
}

#[test]
fn reader_is_refused_the_rest() {
    check(
        "reader",
        &[
            ("SELECT * FROM api_keys", "deny"),
            ("SELECT * FROM public.api_keys", "deny"),
            // The parser's own view: Unicode escapes, TABLE inside queries,
            // functions in FROM and LATERAL, whole rows in expressions.
            ("SELECT * FROM U&\"\\0061pi_keys\"", "deny"),
            ("SELECT * FROM (TABLE api_keys) k", "deny"),
            ("WITH k AS (TABLE api_keys) SELECT * FROM k", "deny"),
            ("SELECT * FROM orders, LATERAL pg_read_file('/etc/passwd') f", "deny"),
            ("SELECT * FROM ROWS FROM (generate_series(1, 2), pg_ls_dir('.')) r", "deny"),
            ("SELECT * FROM current_setting('app.secret') s", "deny"),
            ("SELECT (e.*)::text FROM employees e", "deny"),
            ("SELECT ARRAY[e.*] FROM employees e", "deny"),
            ("SELECT x.c FROM employees AS x(a, b, c, d, e, f)", "deny"),
            ("SELECT full_name FROM employees JOIN orders USING (salary)", "deny"),
            ("SELECT full_name FROM employees NATURAL JOIN orders", "deny"),
            ("SELECT 1 OPERATOR(public.===) 2", "deny"),
            ("SELECT rolname, rolconfig FROM pg_roles", "deny"),
            ("SELECT rolname FROM pg_roles", "allow"),
            // Syntax newer than the server: PostgreSQL 15 reads SQL/JSON
            // constructors as calls of functions of that name, and
            // SYSTEM_USER as a column (or a whole row named system_user).
            ("SELECT json_scalar(1)", "deny"),
            ("SELECT JSON_VALUE('{}'::jsonb, '$.a')", "deny"),
            ("SELECT system_user", "deny"),
            ("SELECT id FROM orders TABLESAMPLE system (10)", "allow"),
            ("SELECT 'a' IS NORMALIZED, COLLATION FOR ('a')", "allow"),
            // Attribute notation: `t.f` with no column f is f(t), or a cast
            // of the whole row (`e.text`), checked against the catalog.
            ("SELECT e.text FROM employees e", "deny"),
            ("SELECT e.to_jsonb FROM employees e", "deny"),
            ("SELECT e.full_name FROM employees e", "allow"),
            ("SELECT * FROM key_inventory", "deny"),
            ("SELECT service FROM public.key_inventory k", "deny"),
            ("SELECT set_config(setting_name => 'role', new_value => 'postgres', is_local => false)", "deny"),
            ("SELECT current_setting(setting_name => 'app.secret')", "deny"),
            ("SET client_encoding = 'SJIS'", "deny"),
            ("SET NAMES 'BIG5'", "deny"),
            ("SELECT set_config('client_encoding', 'GBK', false)", "deny"),
            ("SELECT * FROM \"api_keys\"", "deny"),
            ("SELECT * FROM PUBLIC.API_KEYS", "deny"),
            ("SELECT * FROM shop.public.api_keys", "deny"),
            ("SELECT * FROM otherdb.public.orders", "deny"),
            ("SELECT (SELECT key_value FROM api_keys LIMIT 1)", "deny"),
            ("SELECT * FROM orders WHERE id IN (SELECT id FROM api_keys)", "deny"),
            ("WITH k AS (SELECT * FROM api_keys) SELECT * FROM k", "deny"),
            ("WITH api_keys AS (SELECT * FROM api_keys) SELECT * FROM api_keys", "deny"),
            ("SELECT * FROM orders, (WITH api_keys AS (SELECT 1) SELECT * FROM api_keys) s, api_keys", "deny"),
            ("SELECT id FROM orders UNION SELECT id FROM api_keys", "deny"),
            ("SELECT * FROM internal.customers", "deny"),
            ("SELECT * FROM internal.audit_log", "deny"),
            ("SELECT salary FROM employees", "deny"),
            ("SELECT * FROM employees", "deny"),
            ("SELECT name FROM employees WHERE salary > 100000", "deny"),
            ("SELECT name FROM employees ORDER BY salary DESC", "deny"),
            ("SELECT e FROM employees e", "deny"),
            ("SELECT row_to_json(e) FROM employees e", "deny"),
            ("SELECT avg(salary) FROM employees", "deny"),
            ("DELETE FROM orders", "deny"),
            ("UPDATE customers SET email = 'x'", "deny"),
            ("INSERT INTO orders (id) VALUES (1)", "deny"),
            ("SELECT 1; COMMIT; DROP SCHEMA public CASCADE", "deny"),
            ("SELECT 1; DELETE FROM orders", "deny"),
            ("DROP TABLE orders", "deny"),
            ("TRUNCATE orders", "deny"),
            ("CREATE TABLE x (id int)", "deny"),
            ("ALTER TABLE orders ADD COLUMN x int", "deny"),
            ("GRANT ALL ON orders TO public", "deny"),
            ("WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d", "deny"),
            ("SELECT * INTO copy_of_orders FROM orders", "deny"),
            ("CREATE TABLE x AS SELECT * FROM orders", "deny"),
            ("COPY orders TO STDOUT", "deny"),
            ("COPY orders TO '/tmp/x'", "deny"),
            ("COPY (SELECT 1) TO PROGRAM 'id'", "deny"),
            ("COPY orders FROM STDIN", "deny"),
            ("SET ROLE postgres", "deny"),
            ("SET SESSION AUTHORIZATION postgres", "deny"),
            ("RESET ROLE", "deny"),
            ("SELECT set_config('role', 'postgres', false)", "deny"),
            ("SELECT set_config('session_authorization', 'postgres', false)", "deny"),
            ("SELECT set_config(current_user, 'x', false)", "deny"),
            ("SET work_mem = '1GB'; SET log_statement = 'none'", "deny"),
            ("SET log_statement = 'none'", "deny"),
            ("ALTER SYSTEM SET log_statement = 'none'", "deny"),
            ("LOAD 'auto_explain'", "deny"),
            ("DO $$ BEGIN PERFORM 1; END $$", "deny"),
            ("CALL some_procedure()", "deny"),
            ("EXECUTE stmt1", "deny"),
            ("SELECT pg_read_file('/etc/passwd')", "deny"),
            ("SELECT pg_catalog.pg_read_file('/etc/passwd')", "deny"),
            ("SELECT pg_ls_dir('.')", "deny"),
            ("SELECT lo_import('/etc/passwd')", "deny"),
            ("SELECT lo_export(1, '/tmp/x')", "deny"),
            ("SELECT dblink('host=x', 'SELECT 1')", "deny"),
            ("SELECT dblink_exec('host=x', 'DROP TABLE t')", "deny"),
            ("SELECT pg_terminate_backend(1)", "deny"),
            ("SELECT pg_cancel_backend(1)", "deny"),
            ("SELECT pg_reload_conf()", "deny"),
            ("SELECT query_to_xml('SELECT * FROM api_keys', true, true, '')", "deny"),
            ("SELECT table_to_xml('api_keys', true, true, '')", "deny"),
            ("SELECT ts_stat('SELECT key_value::tsvector FROM api_keys')", "deny"),
            ("SELECT public.get_api_key('stripe')", "deny"),
            ("SELECT get_api_key('stripe')", "deny"),
            ("SELECT public.run_sql('DROP TABLE orders')", "deny"),
            ("SELECT * FROM find_customers('Berlin')", "deny"),
            ("SELECT * FROM pg_authid", "deny"),
            ("SELECT * FROM pg_catalog.pg_shadow", "deny"),
            ("SELECT * FROM pg_stats WHERE tablename = 'employees'", "deny"),
            ("SELECT * FROM pg_statistic", "deny"),
            ("SELECT query FROM pg_stat_activity", "deny"),
            ("SELECT * FROM pg_stat_statements", "deny"),
            ("SELECT * FROM pg_settings", "deny"),
            ("SELECT * FROM pg_largeobject", "deny"),
            ("SELECT * FROM pg_db_role_setting", "deny"),
            ("SELECT prosrc FROM pg_proc WHERE proname = 'get_api_key'", "deny"),
            ("SELECT * FROM pg_proc", "deny"),
            ("SELECT pg_get_functiondef('public.get_api_key'::regproc)", "deny"),
            ("SELECT routine_definition FROM information_schema.routines", "deny"),
            ("SHOW app.secret", "deny"),
            ("SELECT current_setting('app.secret')", "deny"),
            ("SHOW ALL", "deny"),
            ("SHOW data_directory", "deny"),
            ("SELECT 'api_keys'::regclass", "deny"),
            ("SELECT nextval('api_keys_id_seq')", "deny"),
            ("SELECT * FROM orders FOR UPDATE", "deny"),
            ("LOCK TABLE orders", "deny"),
            ("VACUUM orders", "deny"),
            ("LISTEN x", "deny"),
            ("NOTIFY x", "deny"),
            ("SELECT pg_notify('x', 'y')", "deny"),
            ("PREPARE p AS SELECT * FROM api_keys", "deny"),
            ("DECLARE c CURSOR FOR SELECT * FROM api_keys", "deny"),
            ("EXPLAIN SELECT * FROM api_keys", "deny"),
            ("EXPLAIN ANALYZE DELETE FROM orders", "deny"),
            ("SET search_path = internal; SELECT * FROM customers", "deny"),
            ("SELECT FROM WHERE garbage", "error"),
            ("SELECT * FROM orders; SELECT * FROM api_keys", "deny"),
            ("BEGIN", "allow"),
        ],
    );
}

#[test]
fn writer_writes_its_tables_only() {
    check(
        "writer",
        &[
            ("INSERT INTO orders (customer_id, total) VALUES (1, 10)", "allow"),
            ("INSERT INTO order_items (order_id, product_id, quantity) SELECT 1, id, 1 FROM products", "allow"),
            ("UPDATE orders SET status = 'shipped' WHERE id = 3", "allow"),
            ("DELETE FROM order_items WHERE order_id = 3", "allow"),
            ("UPDATE orders o SET total_cents = o.total_cents + 1 FROM customers c WHERE c.id = o.customer_id", "allow"),
            ("INSERT INTO orders (id, total) VALUES (1, 2) ON CONFLICT (id) DO NOTHING", "allow"),
            ("BEGIN", "allow"),
            ("BEGIN; UPDATE orders SET total = 0 WHERE id = 1; COMMIT", "allow"),
            ("SAVEPOINT a", "allow"),
            ("ROLLBACK TO SAVEPOINT a", "allow"),
            ("COMMIT", "allow"),
            ("ROLLBACK", "allow"),
            ("WITH n AS (INSERT INTO orders (total) VALUES (1) RETURNING id) SELECT id FROM n", "allow"),
            ("SELECT * FROM api_keys", "allow"),
            ("UPDATE customers SET email = 'x'", "deny"),
            ("DELETE FROM payments", "deny"),
            ("INSERT INTO customers (name) VALUES ('x')", "deny"),
            ("WITH d AS (DELETE FROM customers RETURNING *) SELECT * FROM d", "deny"),
            ("INSERT INTO orders SELECT * FROM internal.customers", "deny"),
            ("UPDATE orders SET total = 1; DELETE FROM customers", "deny"),
            ("INSERT INTO orders (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET total = 0", "allow"),
            ("INSERT INTO customers (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET name = 'x'", "deny"),
            ("TRUNCATE orders", "deny"),
            ("DROP TABLE orders", "deny"),
            ("COPY orders FROM STDIN", "deny"),
            ("MERGE INTO orders o USING customers c ON o.customer_id = c.id WHEN MATCHED THEN DELETE", "deny"),
        ],
    );
}

#[test]
fn migrator_changes_the_schema() {
    check(
        "migrator",
        &[
            ("CREATE TABLE public.widgets (id int primary key)", "allow"),
            ("ALTER TABLE orders ADD COLUMN note text", "allow"),
            ("CREATE INDEX ON orders (customer_id)", "allow"),
            ("DROP TABLE public.widgets", "allow"),
            ("SET lock_timeout = '1s'", "allow"),
            // Superusers' settings, whatever `set` grants (the privilege
            // oracle found these: the server refused them to the login).
            ("SET log_statement = 'none'", "deny"),
            ("SET session_replication_role = replica", "deny"),
            (
                "SELECT set_config('log_min_messages', 'panic', false)",
                "deny",
            ),
            ("SET lc_messages = 'C'", "deny"),
            ("CREATE TABLE internal.x (id int)", "deny"),
            ("DROP SCHEMA internal CASCADE", "deny"),
            // Code that runs later needs `code`, which the migrator lacks.
            (
                "CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
                "deny",
            ),
            (
                "CREATE TRIGGER t BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION public.f()",
                "deny",
            ),
            (
                "CREATE RULE r AS ON INSERT TO orders DO INSTEAD NOTHING",
                "deny",
            ),
            (
                "CREATE OPERATOR public.=== (LEFTARG = int, RIGHTARG = int, FUNCTION = int4eq)",
                "deny",
            ),
            (
                "CREATE AGGREGATE public.agg (int) (SFUNC = int4pl, STYPE = int)",
                "deny",
            ),
            ("DO $$ BEGIN END $$", "deny"),
            (
                "ALTER FUNCTION public.customer_order_count(int) SECURITY DEFINER",
                "deny",
            ),
            // Defaults and checks are expressions: their functions are checked.
            (
                "CREATE TABLE public.w2 (x text DEFAULT pg_read_file('/etc/passwd'))",
                "deny",
            ),
            (
                "ALTER TABLE orders ALTER COLUMN status SET DEFAULT public.nope()",
                "deny",
            ),
            (
                "CREATE TABLE public.w3 AS SELECT * FROM internal.secrets",
                "deny",
            ),
            ("CREATE ROLE x SUPERUSER", "deny"),
            ("CREATE EXTENSION dblink", "deny"),
            ("INSERT INTO orders (id) VALUES (1)", "deny"),
        ],
    );
}

#[test]
fn denials_name_the_refusal_and_the_rule() {
    let p = policy();
    let path = vec!["public".to_string()];
    let view = SessionView {
        masks: None,
        catalog: None,
        database: "shop",
        upstream_database: "shop",
        search_path: &path,
    };
    let c = classify("UPDATE customers SET email = 'x'").unwrap();
    let roles = p.roles_of(&["writer".to_string()]);
    let pgward::policy::Decision::Deny(d) = decide(&roles, &c, &view) else {
        panic!("allowed")
    };
    assert_eq!(
        d.message,
        "pgward: role writer may not write public.customers"
    );
    assert!(d.detail.starts_with("rule: write"), "{}", d.detail);
    assert!(d.hint.contains("public.orders"), "{}", d.hint);

    let c = classify("SELECT id FROM orders").unwrap();
    let roles = p.roles_of(&["reader".to_string()]);
    assert_eq!(
        decide(&roles, &c, &view),
        pgward::policy::Decision::Allow {
            max_rows: Some(10000)
        }
    );

    // Two-phase commit is a feature pgward does not offer: 0A000, which
    // drivers report as not supported.
    for sql in [
        "PREPARE TRANSACTION 'x'",
        "COMMIT PREPARED 'x'",
        "ROLLBACK PREPARED 'x'",
    ] {
        let c = classify(sql).unwrap();
        let pgward::policy::Decision::Deny(d) = decide(&roles, &c, &view) else {
            panic!("allowed: {sql}")
        };
        assert_eq!(d.code, "0A000", "{sql}");
        assert!(d.message.contains("not supported"), "{}", d.message);
    }
}

#[test]
fn more_agent_sql_under_the_reader() {
    check(
        "reader",
        &[
            ("SELECT count(*) FROM orders WHERE created_at > now() - interval '7 days'", "allow"),
            ("SELECT p.name, sum(oi.quantity) FROM products p JOIN order_items oi ON oi.product_id = p.id GROUP BY p.name ORDER BY 2 DESC LIMIT 10", "allow"),
            ("SELECT DISTINCT city FROM customers", "allow"),
            ("SELECT * FROM products WHERE tags @> ARRAY['x']", "allow"),
            ("SELECT attributes->>'color' FROM products", "allow"),
            ("SELECT id FROM orders WHERE status IN ('shipped', 'pending')", "allow"),
            ("SELECT CASE WHEN total_cents > 1000 THEN 'big' ELSE 'small' END FROM orders", "allow"),
            ("SELECT coalesce(shipping_city, 'none') FROM orders", "allow"),
            ("SELECT extract(year FROM created_at) FROM orders", "allow"),
            ("SELECT to_char(created_at, 'YYYY-MM') FROM orders", "allow"),
            ("VALUES (1), (2)", "allow"),
            ("SELECT * FROM (SELECT id FROM orders) s", "allow"),
            ("SELECT id FROM orders o WHERE NOT EXISTS (SELECT 1 FROM order_items i WHERE i.order_id = o.id)", "allow"),
            ("SELECT * FROM order_summary", "allow"),
            ("SELECT string_agg(full_name, ', ') FROM customers", "allow"),
            ("SELECT json_agg(o) FROM orders o", "allow"),
            ("SELECT id FROM orders INTERSECT SELECT order_id FROM order_items", "allow"),
            ("SELECT id FROM orders EXCEPT SELECT order_id FROM order_items", "allow"),
            ("WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 5) SELECT * FROM t", "allow"),
            ("SELECT lag(total_cents) OVER (ORDER BY created_at) FROM orders", "allow"),
            ("SELECT * FROM customers ORDER BY id LIMIT 10 OFFSET 5", "allow"),
            ("SELECT id FROM customers WHERE email ILIKE '%@example.com'", "allow"),
            ("SELECT id FROM customers WHERE full_name ~ '^A'", "allow"),
            ("SELECT count(*) FILTER (WHERE status = 'x') FROM orders", "allow"),
            ("SELECT pg_typeof(1)", "allow"),
            ("SELECT current_user", "allow"),
            ("SELECT has_table_privilege('orders', 'SELECT')", "allow"),
            ("SELECT n.nspname FROM pg_namespace n", "allow"),
            ("SELECT * FROM information_schema.tables", "allow"),
            ("SELECT conname FROM pg_constraint", "allow"),
            ("SELECT indexname FROM pg_indexes WHERE tablename = 'orders'", "allow"),
            ("SELECT * FROM pg_tables WHERE schemaname = 'public'", "allow"),
            ("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'orders'::regclass", "allow"),
            ("SHOW TIME ZONE", "allow"),
            ("SET TIME ZONE 'UTC'", "allow"),
            ("SET client_min_messages = warning", "allow"),
            ("RESET statement_timeout", "allow"),
            ("SET LOCAL statement_timeout = 1000", "allow"),
            ("SELECT 1 AS x -- comment", "allow"),
            ("/* leading */ SELECT 1", "allow"),
            ("EXPLAIN SELECT * FROM orders", "allow"),
            ("EXPLAIN (ANALYZE) SELECT * FROM orders", "allow"),
            ("SELECT k.* FROM api_keys k", "deny"),
            ("SELECT (SELECT count(*) FROM api_keys)", "deny"),
            ("SELECT * FROM orders WHERE customer_id = (SELECT id FROM internal.customers LIMIT 1)", "deny"),
            ("SELECT * FROM customers c LEFT JOIN LATERAL (SELECT * FROM api_keys) k ON true", "deny"),
            ("SELECT * FROM \"public\".\"api_keys\"", "deny"),
            ("SELECT id FROM orders UNION (SELECT id FROM api_keys)", "deny"),
            ("SELECT jsonb_agg(k) FROM api_keys k", "deny"),
            ("SELECT array_agg(salary) FROM employees", "deny"),
            ("SELECT full_name FROM employees GROUP BY salary, full_name", "deny"),
            ("SELECT e.full_name FROM employees e JOIN employees f ON e.salary = f.salary", "deny"),
            ("SELECT to_jsonb(e.*) FROM employees e", "deny"),
            ("SELECT max(salary) FROM public.employees", "deny"),
            ("SELECT e.full_name FROM employees e ORDER BY e.salary", "deny"),
            ("SELECT full_name, (SELECT max(salary) FROM employees) FROM customers", "deny"),
            ("SELECT * FROM customers, employees", "deny"),
            ("SELECT e.full_name, e.department FROM employees e", "allow"),
            ("SELECT customers.* FROM customers, employees WHERE customers.id = employees.id", "allow"),
            ("SELECT c.full_name FROM customers c WHERE c.id IN (SELECT e.id FROM employees e)", "allow"),
            ("INSERT INTO api_keys VALUES (1)", "deny"),
            ("UPDATE orders SET status = 'x' WHERE id = 1", "deny"),
            ("DELETE FROM customers WHERE id = 1", "deny"),
            ("CREATE VIEW v AS SELECT * FROM orders", "deny"),
            ("CREATE INDEX ON orders (id)", "deny"),
            ("DROP VIEW customer_directory", "deny"),
            ("ALTER TABLE customers RENAME TO c2", "deny"),
            ("COMMENT ON TABLE orders IS 'x'", "deny"),
            ("REVOKE ALL ON orders FROM public", "deny"),
            ("CREATE FUNCTION f() RETURNS int AS 'select 1' LANGUAGE sql", "deny"),
            ("CREATE TEMP TABLE t (id int)", "deny"),
            ("TRUNCATE TABLE order_items", "deny"),
            ("LOCK orders IN ACCESS EXCLUSIVE MODE", "deny"),
            ("SELECT * FROM orders FOR SHARE", "deny"),
            ("ANALYZE orders", "deny"),
            ("VACUUM FULL", "deny"),
            ("DISCARD ALL", "deny"),
            ("UNLISTEN *", "deny"),
            ("DEALLOCATE ALL", "deny"),
            // A cursor returns what its DECLARE was allowed to read.
            ("FETCH 10 FROM c", "allow"),
            ("SELECT pg_sleep(1); DROP TABLE orders", "deny"),
            ("SELECT lo_open(1, 1)", "deny"),
            ("SELECT pg_ls_logdir()", "deny"),
            ("SELECT pg_stat_file('postgresql.conf')", "deny"),
            ("SELECT pg_read_binary_file('x')", "deny"),
            ("SELECT dblink_connect('x')", "deny"),
            ("SELECT pg_catalog.lo_unlink(1)", "deny"),
            ("SELECT * FROM pg_stat_get_activity(NULL)", "deny"),
            ("SELECT pg_stat_reset()", "deny"),
            ("SELECT pg_advisory_lock(1)", "deny"),
            ("SELECT cursor_to_xml('c', 1, true, true, '')", "deny"),
            ("SELECT schema_to_xml('public', true, true, '')", "deny"),
            ("SELECT database_to_xml(true, true, '')", "deny"),
            ("SELECT query_to_xml_and_xmlschema('select 1', true, true, '')", "deny"),
            ("SELECT some_unknown_function()", "deny"),
            ("SELECT internal.f()", "deny"),
            ("SHOW hba_file", "deny"),
            ("SHOW config_file", "deny"),
            ("SELECT current_setting('my.custom')", "deny"),
            ("SELECT current_setting(name) FROM pg_settings", "deny"),
            ("SET session_replication_role = replica", "deny"),
            ("RESET ALL", "deny"),
            ("BEGIN; SELECT 1; COMMIT", "allow"),
            ("START TRANSACTION READ ONLY", "allow"),
            ("PREPARE q AS SELECT 1", "deny"),
        ],
    );
}

#[test]
fn more_writer_and_migrator_cases() {
    check(
        "writer",
        &[
            ("INSERT INTO order_items (order_id, product_id, quantity) VALUES (1, 1, 1) RETURNING *", "allow"),
            ("UPDATE order_items SET quantity = 2 WHERE order_id = 1 RETURNING quantity", "allow"),
            ("DELETE FROM orders WHERE id = 1 RETURNING id", "allow"),
            ("INSERT INTO orders SELECT * FROM orders", "allow"),
            ("UPDATE orders SET customer_id = (SELECT id FROM customers LIMIT 1)", "allow"),
            ("WITH u AS (UPDATE orders SET status = 'x' RETURNING id) SELECT count(*) FROM u", "allow"),
            ("SET search_path = public", "allow"),
            ("SAVEPOINT s1; RELEASE SAVEPOINT s1", "allow"),
            ("INSERT INTO payments (order_id) VALUES (1)", "deny"),
            ("UPDATE orders SET status = 'x' FROM internal.customers ic", "deny"),
            ("COPY orders TO STDOUT", "deny"),
            ("SELECT * INTO orders_backup FROM orders", "deny"),
            ("SELECT nextval('orders_id_seq')", "deny"),
            ("WITH u AS (UPDATE orders SET status = 'x' RETURNING customer_id) DELETE FROM customers WHERE id IN (SELECT customer_id FROM u)", "deny"),
            ("LOCK TABLE orders", "deny"),
            ("TRUNCATE order_items", "deny"),
        ],
    );
    check(
        "migrator",
        &[
            ("CREATE VIEW public.v AS SELECT * FROM orders", "allow"),
            (
                "ALTER TABLE public.orders RENAME COLUMN status TO state",
                "allow",
            ),
            ("DROP INDEX public.idx", "allow"),
            ("SELECT * FROM api_keys", "allow"),
            ("CREATE SCHEMA x", "deny"),
            ("CREATE ROLE x", "deny"),
            ("ALTER ROLE x SUPERUSER", "deny"),
            ("DROP DATABASE shop", "deny"),
            ("DROP ROLE x", "deny"),
            ("CREATE EXTENSION x", "deny"),
        ],
    );
}

#[test]
fn function_patterns_grant_all_but_the_dangerous() {
    let p = Policy::from_toml(
        "[roles.dev]\noperations = [\"select\"]\nread = [\"public.*\"]\nfunctions = [\"public.*\", \"pg_catalog.*\", \"pg_advisory_lock\"]\n",
    )
    .unwrap();
    for (sql, expected) in [
        ("SELECT public.get_api_key('x')", "allow"),
        ("SELECT find_customers('x')", "allow"),
        ("SELECT pg_catalog.xpath('/a', '<a/>')", "deny"),
        ("SELECT pg_advisory_lock(1)", "allow"),
        ("SELECT pg_read_file('/etc/passwd')", "deny"),
        ("SELECT lo_import('/etc/passwd')", "deny"),
        ("SELECT internal.f()", "deny"),
    ] {
        assert_eq!(verdict(&p, "dev", sql), expected, "{sql}");
    }
}

#[test]
fn field_selections_that_are_function_calls_are_judged_as_calls() {
    // `(value).f` is `f(value)` when the value is not composite.
    check(
        "reader",
        &[
            ("SELECT ('stripe'::text).get_api_key", "deny"),
            (
                "SELECT (service::text).get_api_key FROM (VALUES ('stripe')) v(service)",
                "deny",
            ),
            ("SELECT ('SELECT 1'::text).run_sql", "deny"),
            ("SELECT ('/etc/passwd'::text).pg_read_file", "deny"),
            (
                "SELECT ('app.pii_encryption_key'::text).current_setting",
                "deny",
            ),
            ("SELECT ('public.orders_id_seq'::regclass).nextval", "deny"),
            ("SELECT ((('x'::text)).get_api_key).length", "deny"),
            // Fields of composite values that no function is named after.
            ("SELECT (row(1, 2)).f1", "allow"),
            ("SELECT (o).status FROM orders o", "allow"),
        ],
    );
}

#[test]
fn extensions_are_created_only_by_name() {
    let p = Policy::from_toml(
        r#"
[roles.builder]
operations = ["select", "ddl"]
extensions = ["hstore", "vector"]

[roles.ddl_only]
operations = ["select", "ddl"]
"#,
    )
    .unwrap();
    let path = vec!["public".to_string()];
    let view = SessionView {
        masks: None,
        catalog: None,
        database: "shop",
        upstream_database: "shop",
        search_path: &path,
    };
    let verdict = |role: &str, sql: &str| {
        let c = classify(sql).unwrap();
        decide(&p.roles_of(&[role.to_string()]), &c, &view).is_allowed()
    };
    assert!(verdict("builder", "CREATE EXTENSION hstore"));
    assert!(verdict(
        "builder",
        "CREATE EXTENSION IF NOT EXISTS vector VERSION '0.7'"
    ));
    assert!(!verdict("builder", "CREATE EXTENSION plpython3u"));
    assert!(!verdict(
        "builder",
        "CREATE EXTENSION hstore SCHEMA internal"
    ));
    assert!(!verdict("builder", "CREATE EXTENSION hstore CASCADE"));
    assert!(!verdict("builder", "ALTER EXTENSION hstore UPDATE"));
    assert!(!verdict("builder", "DROP EXTENSION hstore"));
    assert!(!verdict("ddl_only", "CREATE EXTENSION hstore"));
    assert!(Policy::from_toml("[roles.x]\nextensions = [\"*\"]\n").is_err());
}

#[test]
fn types_named_like_the_built_ins_casts_are_read_through_are_refused() {
    // A domain `text` of varchar(11) on the path before pg_catalog would cut
    // `'search_path.x'::text` to `search_path` (red team 8).
    check(
        "migrator",
        &[
            ("CREATE DOMAIN public.text AS varchar(11)", "deny"),
            ("CREATE DOMAIN text AS varchar(11)", "deny"),
            ("CREATE TYPE public.regclass AS ENUM ('a')", "deny"),
            ("CREATE TYPE public.name AS (a int)", "deny"),
            ("ALTER DOMAIN public.d RENAME TO text", "deny"),
            ("ALTER TYPE public.t RENAME TO regclass", "deny"),
            ("CREATE DOMAIN public.short_text AS varchar(11)", "allow"),
            ("CREATE TYPE public.region AS ENUM ('eu', 'us')", "allow"),
            ("CREATE TYPE public.regtype AS ENUM ('a')", "deny"),
        ],
    );
}
