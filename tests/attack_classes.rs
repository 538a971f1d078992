//! Every class of bypass from the soundness issue, through pgward against the
//! real server, in every protocol path tokio-postgres drives: the simple
//! protocol (text results), an unnamed extended-protocol statement
//! (`query_typed`, binary results) and a named prepared statement (binary).
//! Refusals must be pgward's (SQLSTATE 42501, a `pgward:` message); masked
//! columns must arrive masked.

mod common;

use common::*;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, SimpleQueryMessage};

fn config() -> String {
    format!(
        "{}\n[masks]\n\"public.customers.email\" = \"email\"\n\"public.customers.ssn\" = \"redact\"\n\"public.payments.card_number\" = \"hash\"\n\n[masking]\nhash_key = \"test-only-key\"\n",
        include_str!("../examples/policy.toml")
    )
}

fn gateway(role: &'static str) -> Gateway {
    Gateway::start(GatewayOptions {
        role,
        roles: config(),
        ..Default::default()
    })
}

#[derive(Debug, Clone, Copy)]
enum Path {
    Simple,
    Unnamed,
    Named,
}

const PATHS: [Path; 3] = [Path::Simple, Path::Unnamed, Path::Named];

/// Runs `sql` on `path`; the error, if any.
async fn run(
    client: &Client,
    path: Path,
    sql: &str,
) -> Result<Vec<Vec<Option<String>>>, tokio_postgres::Error> {
    match path {
        Path::Simple => {
            let msgs = client.simple_query(sql).await?;
            Ok(msgs
                .iter()
                .filter_map(|m| match m {
                    SimpleQueryMessage::Row(r) => {
                        Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                    }
                    _ => None,
                })
                .collect())
        }
        Path::Unnamed => rows(client.query_typed(sql, &[]).await?),
        Path::Named => {
            let stmt = client.prepare(sql).await?;
            rows(client.query(&stmt, &[]).await?)
        }
    }
}

/// Text-like columns as strings (masked values are text), others as `?`.
fn rows(rows: Vec<tokio_postgres::Row>) -> Result<Vec<Vec<Option<String>>>, tokio_postgres::Error> {
    Ok(rows
        .iter()
        .map(|r| {
            (0..r.len())
                .map(|i| match r.try_get::<_, Option<String>>(i) {
                    Ok(v) => v,
                    Err(_) => Some("?".into()),
                })
                .collect()
        })
        .collect())
}

async fn assert_refused(client: &Client, cases: &[&str]) {
    for path in PATHS {
        for sql in cases {
            let err = match run(client, path, sql).await {
                Ok(rows) => panic!("{path:?}: allowed: {sql}: {rows:?}"),
                Err(e) => e,
            };
            let db = err
                .as_db_error()
                .unwrap_or_else(|| panic!("{path:?}: {sql}: {err}"));
            assert_eq!(
                db.code(),
                &SqlState::INSUFFICIENT_PRIVILEGE,
                "{path:?}: {sql}: {}",
                db.message()
            );
            assert!(
                db.message().starts_with("pgward:"),
                "{path:?}: {sql}: {}",
                db.message()
            );
            // A clean error: none of the server's PL/pgSQL context.
            assert_eq!(db.where_(), None, "{path:?}: {sql}");
            assert_eq!(db.file(), None, "{path:?}: {sql}");
        }
    }
}

#[tokio::test]
async fn parser_differences_are_refused_in_every_path() {
    let gw = gateway("reader");
    let client = gw.connect("shop").await;
    assert_refused(
        &client,
        &[
            "SELECT * FROM U&\"\\0061pi_keys\"",
            "SELECT * FROM U&\"!0061pi_keys\" UESCAPE '!'",
            "SELECT * FROM (TABLE api_keys) k",
            "WITH k AS (TABLE api_keys) SELECT * FROM k",
            "SELECT e.salary FROM employees e",
            "SELECT U&\"\\0073alary\" FROM employees",
            "SET NAMES 'SJIS'",
            "SELECT set_config('client_encoding', 'BIG5', false)",
        ],
    )
    .await;
}

#[tokio::test]
async fn everything_the_walk_must_reach_is_refused_in_every_path() {
    let gw = gateway("reader");
    let client = gw.connect("shop").await;
    assert_refused(
        &client,
        &[
            // Functions in FROM, LATERAL, ROWS FROM, named arguments.
            "SELECT * FROM orders, LATERAL pg_read_file('/etc/hostname') f",
            "SELECT * FROM ROWS FROM (generate_series(1, 2), pg_ls_dir('.')) r",
            "SELECT * FROM current_setting('app.secret') s",
            "SELECT set_config(setting_name => 'role', new_value => 'postgres', is_local => false)",
            // Whole rows as expressions, attribute notation.
            "SELECT (e.*)::text FROM employees e",
            "SELECT ARRAY[e.*] FROM employees e",
            "SELECT e.to_jsonb FROM employees e",
            "SELECT c.row_to_json FROM customers c",
            // Renamed columns, USING and NATURAL joins.
            "SELECT x.h FROM employees AS x(a, b, c, d, e, f, g, h)",
            "SELECT full_name FROM employees JOIN orders USING (salary)",
            "SELECT count(*) FROM employees NATURAL JOIN customers",
            // Masked columns other than as plain output columns.
            "SELECT ssn FROM customers FULL JOIN payments USING (ssn)",
            "SELECT ssn AS x FROM customers ORDER BY x",
            "SELECT id, ssn FROM customers ORDER BY 2",
            "SELECT upper(email) FROM customer_directory",
            "SELECT (c).email FROM customers c",
        ],
    )
    .await;
}

#[tokio::test]
async fn code_that_runs_later_is_refused_in_every_path() {
    let gw = gateway("migrator");
    let client = gw.connect("shop").await;
    assert_refused(
        &client,
        &[
            "CREATE FUNCTION public.pw_f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
            "CREATE TRIGGER pw_t BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION public.customer_order_count()",
            "CREATE RULE pw_r AS ON INSERT TO orders DO INSTEAD NOTHING",
            "DO $$ BEGIN END $$",
            "CREATE TABLE public.pw_t2 (x text DEFAULT pg_read_file('/etc/hostname'))",
        ],
    )
    .await;
}

#[tokio::test]
async fn masked_columns_arrive_masked_in_every_path() {
    let gw = gateway("reader");
    let client = gw.connect("shop").await;
    for path in PATHS {
        for (sql, column) in [
            ("SELECT ssn FROM customers WHERE id = 1", 0),
            ("SELECT c.ssn AS renamed FROM customers c WHERE c.id = 1", 0),
            ("SELECT U&\"\\0073sn\" FROM customers WHERE id = 1", 0),
            ("SELECT id, email FROM customer_directory WHERE id = 1", 1),
            ("SELECT customers.id, email FROM customers JOIN orders ON orders.customer_id = customers.id WHERE customers.id = 1 LIMIT 1", 1),
        ] {
            let rows = run(&client, path, sql)
                .await
                .unwrap_or_else(|e| panic!("{path:?}: {sql}: {e:?}"));
            let value = rows[0][column].clone().unwrap_or_default();
            assert!(
                value == "[redacted]" || value.contains("***@"),
                "{path:?}: {sql}: {value}"
            );
        }
    }
}

#[tokio::test]
async fn a_syntax_error_is_a_syntax_error_in_every_path() {
    let gw = gateway("reader");
    let client = gw.connect("shop").await;
    for path in PATHS {
        for sql in ["SELEC 1", "SELECT 1abc", "SELECT 'open"] {
            let err = run(&client, path, sql).await.expect_err(sql);
            let db = err
                .as_db_error()
                .unwrap_or_else(|| panic!("{path:?}: {sql}: {err}"));
            assert_eq!(
                db.code(),
                &SqlState::SYNTAX_ERROR,
                "{path:?}: {sql}: {}",
                db.message()
            );
            assert!(
                db.message().starts_with("pgward: syntax error"),
                "{path:?}: {sql}: {}",
                db.message()
            );
        }
        // The session goes on.
        assert!(run(&client, path, "SELECT 1").await.is_ok());
    }
}
