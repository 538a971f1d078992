//! Column masking in the result stream, against the real server: values are
//! masked by column identity (aliases and * do not dodge it), in text and
//! binary results, in the simple and extended protocols (also without the
//! client's Describe), and derived uses are refused.

mod common;

use common::*;

const MASKED_ROLES: &str = r#"
[roles.reader]
operations = ["select"]
read = ["public.*", "!public.api_keys"]
catalog = true

[roles.support]
operations = ["select"]
read = ["public.*"]
unmask = ["public.customers.phone"]

[roles.scanner]
operations = ["select"]
read = ["public.*"]
scan_entities = ["email", "card", "ssn"]

[roles.exporter]
operations = ["select", "copy_out"]
read = ["public.*"]

[roles.editor]
operations = ["select", "update"]
read = ["public.*"]
write = ["public.customers"]

[masks]
"public.customers.email" = "email"
"public.customers.phone" = { strategy = "partial", keep_last = 4 }
"public.customers.ssn" = "redact"
"public.customers.date_of_birth" = "null"
"public.payments.card_number" = "hash"

[masking]
hash_key = "test-only-key"
"#;

fn gateway(role: &'static str) -> Gateway {
    Gateway::with_roles(role, MASKED_ROLES)
}

#[test]
fn masks_leave_the_catalog_readable() {
    assert_catalog_reads_match_direct(&gateway("reader"));
}

#[test]
fn psql_sees_masked_values_whatever_the_spelling() {
    let gw = gateway("reader");
    let out = psql(
        &gw.dsn("shop"),
        &[
            "-c",
            "SELECT id, email, phone, ssn, date_of_birth, city FROM customers WHERE id = 1",
        ],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "1|a***@example.com|+*-***-***-0143|[redacted]||Springfield"
    );
    for sql in [
        "SELECT ssn AS x FROM customers WHERE id = 1",
        "SELECT c.ssn FROM customers c WHERE c.id = 1",
        "SELECT \"ssn\" FROM public.customers WHERE id = 1",
    ] {
        let out = psql(&gw.dsn("shop"), &["-c", sql], "");
        assert_eq!(stdout(&out), "[redacted]", "{sql}: {}", stderr(&out));
    }
    let out = psql(
        &gw.dsn("shop"),
        &["-c", "SELECT * FROM customers ORDER BY id"],
        "",
    );
    let text = stdout(&out);
    assert!(
        !text.contains("901-23-4567") && !text.contains("alice.anders@"),
        "{text}"
    );
    assert_eq!(
        text.lines().count(),
        cluster()
            .sql("shop", "SELECT count(*) FROM customers")
            .parse::<usize>()
            .unwrap()
    );
    // The hash is stable, so equal values still group together.
    let a = psql(
        &gw.dsn("shop"),
        &["-c", "SELECT card_number FROM payments WHERE id = 1"],
        "",
    );
    let b = psql(
        &gw.dsn("shop"),
        &["-c", "SELECT card_number FROM payments WHERE id = 1"],
        "",
    );
    assert_eq!(stdout(&a), stdout(&b));
    assert_eq!(stdout(&a).len(), 32);
    assert!(!stdout(&a).contains("4111"));
}

#[test]
fn derived_uses_of_masked_columns_are_refused() {
    let gw = gateway("reader");
    for sql in [
        "SELECT upper(ssn) FROM customers",
        "SELECT id FROM customers WHERE ssn LIKE '9%'",
        "SELECT row_to_json(c) FROM customers c",
        "SELECT ssn FROM customers UNION SELECT 'x'",
    ] {
        let out = psql(&gw.dsn("shop"), &["-c", sql], "");
        assert!(!out.status.success(), "{sql} must be refused");
        assert!(
            stderr(&out).contains("masked column public.customers."),
            "{sql}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn support_sees_the_unmasked_column_only() {
    let gw = gateway("support");
    let out = psql(
        &gw.dsn("shop"),
        &["-c", "SELECT phone, ssn FROM customers WHERE id = 1"],
        "",
    );
    assert_eq!(
        stdout(&out),
        "+1-202-555-0143|[redacted]",
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn prepared_statements_and_binary_results_are_masked() {
    let gw = gateway("reader");
    let client = gw.connect("shop").await;
    // tokio-postgres prepares, then binds and executes without describing the
    // portal, and asks for binary results.
    let stmt = client
        .prepare("SELECT email, ssn, date_of_birth, city FROM customers WHERE id = $1")
        .await
        .unwrap();
    for _ in 0..3 {
        let row = client.query_one(&stmt, &[&2i32]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), "b***@example.org");
        assert_eq!(row.get::<_, String>(1), "[redacted]");
        assert_eq!(row.get::<_, Option<chrono_free::Date>>(2), None);
        assert_eq!(row.get::<_, String>(3), "Riverton");
    }
    let err = client
        .query("SELECT lower(email) FROM customers", &[])
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
    );
}

#[tokio::test]
async fn views_over_masked_columns_obey_the_table_rules() {
    let gw = gateway("reader");
    let client = gw.connect("shop").await;
    // Prepared and executed without a Describe of the portal: pgward must
    // know the view shows masked columns to ask for the description itself.
    let stmt = client
        .prepare("SELECT email, phone, city FROM customer_directory WHERE id = $1")
        .await
        .unwrap();
    let row = client.query_one(&stmt, &[&1i32]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "a***@example.com");
    assert_eq!(row.get::<_, String>(1), "+*-***-***-0143");
    assert_eq!(row.get::<_, String>(2), "Springfield");
    // Any other use of a view column that shows a masked column is refused,
    // exactly as for the table's own column.
    let exporter = gateway("exporter");
    let exporter = exporter.connect("shop").await;
    for sql in [
        "COPY (SELECT email FROM customer_directory) TO STDOUT",
        "COPY (SELECT * FROM customer_directory) TO STDOUT",
        "SELECT upper(email) FROM customer_directory",
        "SELECT id FROM customer_directory WHERE email LIKE 'a%'",
        "SELECT d FROM customer_directory d",
        "SELECT email FROM customer_directory UNION SELECT 'x'",
        "SELECT id FROM customer_directory ORDER BY email",
    ] {
        let err = exporter.simple_query(sql).await.unwrap_err();
        let db = err.as_db_error().expect("a server error");
        assert_eq!(
            db.code(),
            &tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE,
            "{sql}"
        );
        assert!(
            db.message().contains("masked column"),
            "{sql}: {}",
            db.message()
        );
    }
    // The rest of the view stays usable.
    let gw = gateway("exporter");
    let out = psql(
        &gw.dsn("shop"),
        &[
            "-c",
            "COPY (SELECT id, city FROM customer_directory WHERE id = 1) TO STDOUT",
        ],
        "",
    );
    assert_eq!(stdout(&out), "1\tSpringfield", "{}", stderr(&out));
}

/// A date column read as raw bytes, so the test needs no date crate.
mod chrono_free {
    pub struct Date;

    impl<'a> tokio_postgres::types::FromSql<'a> for Date {
        fn from_sql(
            _: &tokio_postgres::types::Type,
            _: &'a [u8],
        ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
            Ok(Date)
        }

        fn accepts(ty: &tokio_postgres::types::Type) -> bool {
            *ty == tokio_postgres::types::Type::DATE
        }
    }

    impl PartialEq for Date {
        fn eq(&self, _: &Self) -> bool {
            true
        }
    }

    impl std::fmt::Debug for Date {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Date")
        }
    }
}

#[test]
fn views_show_masked_columns_masked() {
    let gw = gateway("reader");
    let out = psql(
        &gw.dsn("shop"),
        &[
            "-c",
            "SELECT id, full_name, email, phone, city FROM customer_directory WHERE id = 1",
        ],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "1|Alice Anders|a***@example.com|+*-***-***-0143|Springfield"
    );
    let out = psql(
        &gw.dsn("shop"),
        &["-c", "SELECT * FROM customer_export WHERE id = 1"],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("[redacted]") && !stdout(&out).contains("901-23-4567"),
        "{}",
        stdout(&out)
    );
    // A view that computes from a masked column cannot be masked in place.
    let view = format!("ssn_prefix_{}", std::process::id());
    cluster().sql(
        "shop",
        &format!("CREATE VIEW public.{view} AS SELECT left(ssn, 3) AS p FROM public.customers"),
    );
    let fresh = gateway("reader");
    let out = psql(
        &fresh.dsn("shop"),
        &["-c", &format!("SELECT p FROM {view}")],
        "",
    );
    cluster().sql("shop", &format!("DROP VIEW public.{view}"));
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("masked column public.customers.ssn"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn errors_do_not_quote_masked_values() {
    let gw = gateway("editor");
    let out = psql(
        &gw.dsn("shop"),
        &["-c", "UPDATE customers SET full_name = NULL WHERE id = 1"],
        "",
    );
    let err = stderr(&out);
    assert!(err.contains("violates not-null constraint"), "{err}");
    assert!(err.contains("pgward: detail removed"), "{err}");
    assert!(
        !err.contains("901-23-4567") && !err.contains("alice.anders@"),
        "{err}"
    );
    // Directly, PostgreSQL does quote the row.
    let direct = std::process::Command::new("psql")
        .args([
            "-X",
            &cluster().direct_dsn("shop"),
            "-c",
            "UPDATE customers SET full_name = NULL WHERE id = 1",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&direct.stderr).contains("901-23-4567"));
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn a_million_masked_rows_stream_in_bounded_memory() {
    let table = format!("bigmask_{}", std::process::id());
    cluster().sql(
        "shop",
        &format!(
            "DROP TABLE IF EXISTS public.{table}; CREATE TABLE public.{table} AS \
             SELECT g AS id, 'user' || g || '@example.com' AS email, '900-00-' || lpad((g % 10000)::text, 4, '0') AS ssn, \
             repeat('x', 40) AS filler FROM generate_series(1, 1000000) g"
        ),
    );
    let roles = format!(
        "{MASKED_ROLES}\"public.{table}.email\" = \"email\"\n\"public.{table}.ssn\" = \"redact\"\n"
    )
    .replace("[masking]\nhash_key = \"test-only-key\"\n", "")
        + "[masking]\nhash_key = \"test-only-key\"\n";
    let gw = Gateway::start(GatewayOptions {
        role: "reader",
        roles,
        ..Default::default()
    });
    let client = gw.connect("shop").await;
    let before = peak_rss_kib(gw.child.id());
    let stream = client
        .query_raw(
            &format!("SELECT * FROM {table}") as &str,
            std::iter::empty::<i32>(),
        )
        .await
        .unwrap();
    futures_util::pin_mut!(stream);
    let mut rows = 0u64;
    let mut first_email = None;
    while let Some(row) = futures_util::StreamExt::next(&mut stream).await {
        let row = row.unwrap();
        if rows == 0 {
            first_email = Some(row.get::<_, String>(1));
            assert_eq!(row.get::<_, String>(2), "[redacted]");
        }
        rows += 1;
    }
    cluster().sql("shop", &format!("DROP TABLE public.{table}"));
    assert_eq!(rows, 1_000_000);
    assert!(first_email.unwrap().contains("***@example.com"));
    let after = peak_rss_kib(gw.child.id());
    // About 80 MB of rows went through; pgward's peak grows by a few buffers at most.
    assert!(
        after - before < 32 * 1024,
        "peak RSS grew from {before} KiB to {after} KiB"
    );
}

#[test]
fn scan_entities_masks_personal_data_inside_text() {
    let gw = gateway("scanner");
    let out = psql(
        &gw.dsn("shop"),
        &["-c", "SELECT 'write to jane@example.com, card 4111 1111 1111 1111, ssn 901-23-4567' AS note, 42 AS n"],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "write to j***@example.com, card **** **** **** 1111, ssn ***-**-4567|42"
    );
    // Masked columns keep their own strategy.
    let out = psql(
        &gw.dsn("shop"),
        &["-c", "SELECT ssn FROM customers WHERE id = 1"],
        "",
    );
    assert_eq!(stdout(&out), "[redacted]");
}

#[test]
fn joins_are_masked_and_copy_of_masked_tables_refused() {
    let gw = gateway("reader");
    let out = psql(
        &gw.dsn("shop"),
        &["-c", "SELECT c.email, p.card_number, o.status FROM customers c JOIN orders o ON o.customer_id = c.id JOIN payments p ON p.order_id = o.id ORDER BY p.id LIMIT 1"],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let cells: Vec<String> = stdout(&out).split('|').map(str::to_string).collect();
    assert!(cells[0].contains("***@"), "{cells:?}");
    assert_eq!(cells[1].len(), 32, "{cells:?}");
    for sql in [
        "\\copy customers to stdout",
        "\\copy (SELECT ssn FROM customers) to stdout",
    ] {
        let out = psql(&gw.dsn("shop"), &["-c", sql], "");
        assert!(!out.status.success(), "{sql}");
        assert!(
            stderr(&out).contains("42501") || stderr(&out).contains("pgward:"),
            "{sql}: {}",
            stderr(&out)
        );
    }
}

#[tokio::test]
async fn tables_newer_than_the_catalog_snapshot_never_leak() {
    let table = format!("late_{}", std::process::id());
    let roles = MASKED_ROLES.replace(
        "[masking]",
        &format!("\"public.{table}.secret\" = \"email\"\n\n[masking]"),
    );
    let gw = Gateway::start(GatewayOptions {
        role: "reader",
        roles,
        ..Default::default()
    });
    let client = gw.connect("shop").await;
    client.simple_query("SELECT 1").await.unwrap(); // the snapshot is read now
    cluster().sql(
        "shop",
        &format!("DROP TABLE IF EXISTS public.{table}; CREATE TABLE public.{table} AS SELECT 'jane@example.com'::text AS secret, 'plain'::text AS other"),
    );
    let first = client
        .simple_query(&format!("SELECT secret, other FROM {table}"))
        .await
        .unwrap();
    let second = client
        .simple_query(&format!("SELECT secret, other FROM {table}"))
        .await
        .unwrap();
    cluster().sql("shop", &format!("DROP TABLE public.{table}"));
    let row = |msgs: &[tokio_postgres::SimpleQueryMessage]| {
        msgs.iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => {
                    Some((r.get(0).unwrap().to_string(), r.get(1).unwrap().to_string()))
                }
                _ => None,
            })
            .unwrap()
    };
    // First sight: the table is unknown, so everything in it is redacted.
    assert_eq!(
        row(&first),
        ("[redacted]".to_string(), "[redacted]".to_string())
    );
    // Then the catalog is read again and the mask applies precisely.
    assert_eq!(
        row(&second),
        ("j***@example.com".to_string(), "plain".to_string())
    );
}

#[test]
fn messages_raised_inside_functions_are_scrubbed() {
    let f = format!("leak_{}", std::process::id());
    cluster().sql(
        "shop",
        &format!(
            "CREATE OR REPLACE FUNCTION public.{f}(i int) RETURNS int LANGUAGE plpgsql AS $b$ \
             BEGIN RAISE NOTICE 'ssn is %', (SELECT ssn FROM public.customers WHERE id = i); \
             IF i > 1 THEN RAISE EXCEPTION 'bad ssn %', (SELECT ssn FROM public.customers WHERE id = i); END IF; \
             RETURN 1; END $b$"
        ),
    );
    let roles = MASKED_ROLES.replace(
        "[roles.support]",
        &format!("functions = [\"public.{f}\"]\n\n[roles.support]"),
    );
    let gw = Gateway::start(GatewayOptions {
        role: "reader",
        roles,
        ..Default::default()
    });
    let out = psql(
        &gw.dsn("shop"),
        &["-c", &format!("SELECT public.{f}(1)")],
        "",
    );
    let notice = stderr(&out);
    let out2 = psql(
        &gw.dsn("shop"),
        &["-c", &format!("SELECT public.{f}(2)")],
        "",
    );
    let error = stderr(&out2);
    cluster().sql("shop", &format!("DROP FUNCTION public.{f}(int)"));
    assert!(out.status.success(), "{notice}");
    assert!(
        notice.contains("a message raised inside a function was removed"),
        "{notice}"
    );
    assert!(!notice.contains("901-23-4567"), "{notice}");
    assert!(
        error.contains("P0001") || error.contains("a message raised inside a function was removed"),
        "{error}"
    );
    assert!(!error.contains("912-34-5678"), "{error}");
    // pgward's own refusals keep their text.
    let out = psql(
        &gw.dsn("shop"),
        &["-c", "SELECT upper(ssn) FROM customers"],
        "",
    );
    assert!(
        stderr(&out).contains("pgward: role reader may not use the masked column"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn data_errors_never_quote_masked_values() {
    // Predicates on ssn are allowed here, so a failing cast in one could
    // carry the value out in the error's text.
    let gw = Gateway::start(GatewayOptions {
        role: "reader",
        roles: r#"
[roles.reader]
operations = ["select"]
read = ["public.*"]

[masks]
"public.customers.ssn" = { strategy = "redact", allow_predicates = true }
"#
        .to_string(),
        ..Default::default()
    });
    for sql in [
        "SELECT id FROM customers WHERE ssn::int = 1",
        "SELECT id FROM customers WHERE ssn::date IS NULL",
        "SELECT id FROM customers WHERE ssn::numeric > 0",
    ] {
        let out = psql(&gw.dsn("shop"), &["-c", sql], "");
        assert!(!out.status.success(), "{sql}: {}", stdout(&out));
        let err = stderr(&out);
        assert!(err.contains("[value withheld]"), "{sql}: {err}");
        assert!(
            !err.contains("901-23-4567") && !err.contains("-45-"),
            "{sql}: {err}"
        );
    }
}

#[test]
fn partitions_and_inheriting_tables_obey_their_parents_rules() {
    // A child of customers holds customers' rows: read directly by its own
    // name, its ssn is still masked, and the parent's other rules apply.
    let child = format!("customers_child_{}", std::process::id());
    cluster().sql(
        "shop",
        &format!(
            "DROP TABLE IF EXISTS public.{child}; \
             CREATE TABLE public.{child} () INHERITS (public.customers); \
             INSERT INTO public.{child} (id, full_name, email, phone, ssn, city, country) \
             VALUES (9001, 'Child Row', 'child@example.com', '+1-555-000-9001', '999-88-7777', 'X', 'US')"
        ),
    );
    let gw = gateway("reader");
    let direct = psql(
        &gw.dsn("shop"),
        &["-c", &format!("SELECT ssn, email FROM {child}")],
        "",
    );
    let derived = psql(
        &gw.dsn("shop"),
        &["-c", &format!("SELECT upper(ssn) FROM {child}")],
        "",
    );
    cluster().sql("shop", &format!("DROP TABLE public.{child}"));
    assert!(direct.status.success(), "{}", stderr(&direct));
    assert_eq!(stdout(&direct), "[redacted]|c***@example.com");
    assert!(!derived.status.success(), "{}", stdout(&derived));
    assert!(
        stderr(&derived).contains("masked column"),
        "{}",
        stderr(&derived)
    );
}

#[test]
fn check_option_violations_do_not_quote_the_row() {
    let view = format!("berlin_{}", std::process::id());
    cluster().sql(
        "shop",
        &format!(
            "CREATE VIEW public.{view} AS SELECT * FROM public.customers WHERE city = 'Springfield' WITH CHECK OPTION"
        ),
    );
    let roles = MASKED_ROLES.replace(
        "write = [\"public.customers\"]",
        &format!("write = [\"public.customers\", \"public.{view}\"]"),
    );
    let gw = Gateway::start(GatewayOptions {
        role: "editor",
        roles,
        ..Default::default()
    });
    let sql = format!("UPDATE {view} SET city = 'Elsewhere' WHERE id = 1");
    let out = psql(&gw.dsn("shop"), &["-c", &sql], "");
    cluster().sql("shop", &format!("DROP VIEW public.{view}"));
    let err = stderr(&out);
    assert!(err.contains("violates check option"), "{err}");
    assert!(
        !err.contains("901-23-4567") && !err.contains("alice.anders@"),
        "{err}"
    );
}
