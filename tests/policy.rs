//! The statement policy through pgward against the real server: refused
//! statements change nothing and leave the session usable, allowed ones give
//! the same result as direct, in the simple and the extended protocol.

mod common;

use common::raw::frame;
use common::*;

fn gateway(role: &'static str) -> Gateway {
    Gateway::with_roles(role, include_str!("../examples/policy.toml"))
}

#[test]
fn reader_gets_results_and_refusals_through_psql() {
    let gw = gateway("reader");
    let sql = "SELECT id, full_name FROM customers ORDER BY id";
    let out = psql(&gw.dsn("shop"), &["-c", sql], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), cluster().sql("shop", sql));

    let script = "SELECT * FROM api_keys;\nSELECT 'still usable';\n";
    let out = psql(
        &gw.dsn("shop"),
        &["-v", "ON_ERROR_STOP=0", "-v", "VERBOSITY=verbose"],
        script,
    );
    let err = stderr(&out);
    assert!(err.contains("42501"), "{err}");
    assert!(
        err.contains("pgward: role reader may not read public.api_keys"),
        "{err}"
    );
    assert!(err.contains("DETAIL:  rule: read"), "{err}");
    assert!(
        err.contains("HINT:  readable: reader: public.*, !public.api_keys"),
        "{err}"
    );
    assert_eq!(stdout(&out), "still usable");
}

#[test]
fn a_refused_statement_in_a_message_stops_the_whole_message() {
    let gw = gateway("reader");
    let before = cluster().sql(
        "shop",
        "SELECT count(*) FROM pg_namespace WHERE nspname = 'public'",
    );
    let out = psql(
        &gw.dsn("shop"),
        &["-c", "SELECT 1; COMMIT; DROP SCHEMA public CASCADE"],
        "",
    );
    assert!(!out.status.success());
    // (Refused as DDL, or as CASCADE, which no role may run.)
    assert!(
        stderr(&out).contains("pgward: role reader may not run DDL")
            || stderr(&out).contains("CASCADE"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        cluster().sql(
            "shop",
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'public'"
        ),
        before
    );
    // (Other tests add and remove their own marked orders meanwhile.)
    let count = "SELECT count(*) FROM orders WHERE status NOT LIKE 'policy-tx-%'";
    let orders = cluster().sql("shop", count);
    let out = psql(&gw.dsn("shop"), &["-c", "SELECT 1; DELETE FROM orders"], "");
    assert!(!out.status.success());
    assert_eq!(cluster().sql("shop", count), orders);
}

#[test]
fn a_refusal_aborts_the_transaction_around_it() {
    let gw = gateway("writer");
    let marker = format!("policy-tx-{}", std::process::id());
    let script = format!(
        "BEGIN;\nINSERT INTO orders (customer_id, status, total_cents, created_at) VALUES (1, '{marker}', 1, now());\nUPDATE customers SET email = 'x';\nCOMMIT;\nSELECT 'after';\n"
    );
    let out = psql(&gw.dsn("shop"), &["-v", "ON_ERROR_STOP=0"], &script);
    let err = stderr(&out);
    assert!(
        err.contains("pgward: role writer may not write public.customers"),
        "{err}"
    );
    assert_eq!(stdout(&out).lines().last(), Some("after"));
    assert_eq!(
        cluster().sql(
            "shop",
            &format!("SELECT count(*) FROM orders WHERE status = '{marker}'")
        ),
        "0",
        "the insert before the refusal must not commit"
    );
    // Without the refusal the same transaction commits.
    let ok = format!(
        "BEGIN;\nINSERT INTO orders (customer_id, status, total_cents, created_at) VALUES (1, '{marker}', 1, now());\nCOMMIT;\n"
    );
    let out = psql(&gw.dsn("shop"), &[], &ok);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        cluster().sql(
            "shop",
            &format!("WITH d AS (DELETE FROM orders WHERE status = '{marker}' RETURNING 1) SELECT count(*) FROM d")
        ),
        "1"
    );
}

#[tokio::test]
async fn extended_protocol_refuses_at_parse_and_never_binds_refused_statements() {
    let gw = gateway("reader");
    let client = gw.connect("shop").await;
    let err = client
        .prepare("SELECT key_value FROM api_keys WHERE id = $1")
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
        "{err:?}"
    );
    let db = err.as_db_error().expect("a server error");
    assert_eq!(
        db.message(),
        "pgward: role reader may not read public.api_keys"
    );
    assert!(db.detail().unwrap_or_default().starts_with("rule: read"));
    // The session goes on, and allowed statements match direct results.
    let stmt = client
        .prepare("SELECT full_name FROM customers WHERE id = $1")
        .await
        .unwrap();
    let name: String = client.query_one(&stmt, &[&1i32]).await.unwrap().get(0);
    assert_eq!(
        name,
        cluster().sql("shop", "SELECT full_name FROM customers WHERE id = 1")
    );
    let err = client
        .execute("DELETE FROM orders WHERE id = $1", &[&1i32])
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
    );
    assert_eq!(
        client
            .query_one("SELECT 5::int", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        5
    );
}

#[test]
fn bind_of_a_refused_or_unknown_statement_is_refused() {
    let gw = gateway("reader");
    let mut r = gw.raw("shop");
    // Parse of a refused statement, then Bind and Execute of it, then Sync.
    let mut msgs = frame(b'P', b"s1\0SELECT * FROM api_keys\0\0\0");
    msgs.extend(frame(b'B', b"\0s1\0\0\0\0\0\0\0"));
    msgs.extend(frame(b'E', b"\0\0\0\0\0"));
    msgs.extend(frame(b'S', b""));
    r.send(&msgs);
    let e = r.recv_until(b'E');
    assert_eq!(e.code().as_deref(), Some("42501"));
    let z = r.recv().unwrap();
    assert_eq!(
        z.tag, b'Z',
        "nothing else may come before ReadyForQuery: {z:?}"
    );
    // Bind of the refused name in a later batch is refused too.
    let mut msgs = frame(b'B', b"\0s1\0\0\0\0\0\0\0");
    msgs.extend(frame(b'E', b"\0\0\0\0\0"));
    msgs.extend(frame(b'S', b""));
    r.send(&msgs);
    let e = r.recv_until(b'E');
    assert_eq!(e.code().as_deref(), Some("42501"));
    assert!(e
        .field(b'M')
        .unwrap()
        .contains("\"s1\" was refused or does not exist"));
    assert_eq!(r.recv().unwrap().tag, b'Z');
    // The client's unnamed statement survives refusals of named ones.
    let mut msgs = frame(b'P', b"\0SELECT 'kept'\0\0\0");
    msgs.extend(frame(b'S', b""));
    msgs.extend(frame(b'P', b"s2\0SELECT * FROM api_keys\0\0\0"));
    msgs.extend(frame(b'S', b""));
    msgs.extend(frame(b'B', b"\0\0\0\0\0\0\0\0"));
    msgs.extend(frame(b'E', b"\0\0\0\0\0"));
    msgs.extend(frame(b'S', b""));
    r.send(&msgs);
    let replies: Vec<_> = std::iter::from_fn(|| r.recv()).take(8).collect();
    let tags: Vec<u8> = replies.iter().map(|m| m.tag).collect();
    assert_eq!(tags, b"1ZEZ2DCZ");
    assert!(replies[5].body.ends_with(b"kept"));
    // An allowed pipeline still works afterwards.
    let mut msgs = frame(b'P', b"\0SELECT 'ok'\0\0\0");
    msgs.extend(frame(b'B', b"\0\0\0\0\0\0\0\0"));
    msgs.extend(frame(b'E', b"\0\0\0\0\0"));
    msgs.extend(frame(b'S', b""));
    r.send(&msgs);
    let tags: Vec<u8> = std::iter::from_fn(|| r.recv())
        .take_while(|m| m.tag != b'Z')
        .map(|m| m.tag)
        .collect();
    assert_eq!(tags, b"12DC");
}

#[test]
fn fast_path_function_calls_are_refused() {
    let gw = gateway("reader");
    let mut r = gw.raw("shop");
    // FunctionCall of OID 764 (lo_import) with one text argument.
    let mut body = 764u32.to_be_bytes().to_vec();
    body.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 11]);
    body.extend_from_slice(b"/etc/passwd");
    body.extend_from_slice(&[0, 0]);
    r.send(&frame(b'F', &body));
    let e = r.recv_until(b'E');
    assert_eq!(e.code().as_deref(), Some("42501"));
    assert_eq!(r.recv().unwrap().tag, b'Z');
}

#[test]
fn startup_options_cannot_change_identity() {
    let gw = gateway("reader");
    let out = psql(
        &format!("{} options='-c role=postgres'", gw.dsn("shop")),
        &["-c", "SELECT 1"],
        "",
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("startup option role is never allowed"),
        "{}",
        stderr(&out)
    );
    let out = psql(
        &format!("{} options='-c log_statement=none'", gw.dsn("shop")),
        &["-c", "SELECT 1"],
        "",
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("log_statement is never allowed"),
        "{}",
        stderr(&out)
    );
    let out = psql(
        &format!("{} options='-c temp_buffers=16MB'", gw.dsn("shop")),
        &["-c", "SELECT 1"],
        "",
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("needs the set operation"),
        "{}",
        stderr(&out)
    );
    let out = psql(
        &format!("{} options='-c statement_timeout=5s'", gw.dsn("shop")),
        &["-c", "SHOW statement_timeout"],
        "",
    );
    assert_eq!(stdout(&out), "5s", "{}", stderr(&out));
}

#[test]
fn search_path_changes_are_followed() {
    let gw = gateway("reader");
    // After SET search_path, unqualified names may resolve to internal too, so
    // the reader (no grant on internal.*) is refused.
    let script = "SELECT count(*) > 0 FROM customers;\nSET search_path = internal, public;\nSELECT count(*) FROM customers;\n";
    let out = psql(&gw.dsn("shop"), &["-v", "ON_ERROR_STOP=0"], script);
    assert_eq!(stdout(&out).lines().next(), Some("t"));
    assert!(
        stderr(&out).contains("may not read internal.customers"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn results_over_max_rows_end_with_an_error() {
    let gw = gateway("reader");
    let client = gw.connect("shop").await;
    // Exactly the cap passes.
    let rows = client
        .query("SELECT g FROM generate_series(1, 10000) g", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 10000);
    // One more is an error, not a silent truncation, in both protocols.
    let err = client
        .query("SELECT g FROM generate_series(1, 10001) g", &[])
        .await
        .unwrap_err();
    let db = err.as_db_error().expect("a server-style error");
    assert_eq!(db.code().code(), "54000");
    assert!(
        db.message()
            .starts_with("pgward: the result exceeds the role's max_rows of 10000"),
        "{}",
        db.message()
    );
    let err = client
        .simple_query("SELECT g FROM generate_series(1, 50000) g")
        .await
        .unwrap_err();
    assert_eq!(err.as_db_error().map(|d| d.code().code()), Some("54000"));
    // The session stays usable.
    assert_eq!(
        client
            .query_one("SELECT 3::int", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        3
    );
    let out = psql(
        &gw.dsn("shop"),
        &["-c", "SELECT g FROM generate_series(1, 20000) g"],
        "",
    );
    assert!(
        stderr(&out).contains("max_rows of 10000"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn views_are_checked_through_to_their_tables() {
    let gw = gateway("reader");
    let out = psql(
        &gw.dsn("shop"),
        &["-c", "SELECT count(*) FROM customer_directory"],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        cluster().sql("shop", "SELECT count(*) FROM customer_directory")
    );
    let out = psql(&gw.dsn("shop"), &["-c", "SELECT * FROM key_inventory"], "");
    assert!(!out.status.success());
    assert!(
        stderr(&out)
            .contains("may not read public.api_keys (through the view public.key_inventory)"),
        "{}",
        stderr(&out)
    );
    // A view over a denied column exposes nothing either.
    let view = format!("pay_{}", std::process::id());
    cluster().sql(
        "shop",
        &format!("CREATE VIEW public.{view} AS SELECT full_name, salary FROM public.employees"),
    );
    let fresh = gateway("reader");
    let out = psql(
        &fresh.dsn("shop"),
        &["-c", &format!("SELECT full_name FROM {view}")],
        "",
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("public.employees.salary"),
        "{}",
        stderr(&out)
    );
    cluster().sql("shop", &format!("DROP VIEW public.{view}"));
}

#[test]
fn psql_meta_commands_work_for_a_catalog_reader() {
    let gw = gateway("reader");
    assert_catalog_reads_match_direct(&gw);
}

#[test]
fn the_upstream_logins_own_search_path_is_followed() {
    // A login whose default search_path (ALTER ROLE ... SET) puts internal
    // first: unqualified names resolve there, and pgward must know it.
    let _quiet = catalog_lock();
    let c = cluster();
    let login = format!("sp_login_{}", std::process::id());
    c.sql(
        "shop",
        &format!(
            "CREATE ROLE {login} LOGIN PASSWORD 'sp-secret'; \
             GRANT USAGE ON SCHEMA internal TO {login}; \
             GRANT SELECT ON ALL TABLES IN SCHEMA internal, public TO {login}; \
             ALTER ROLE {login} SET search_path = internal, public"
        ),
    );
    let gw = Gateway::start(GatewayOptions {
        role: "reader",
        roles: include_str!("../examples/policy.toml").to_string(),
        extra_config: format!(
            "[databases.sp]\ndbname = \"shop\"\nhost = \"{}\"\nport = {}\nuser = \"{login}\"\npassword = \"sp-secret\"\nsslmode = \"disable\"\n",
            c.host, c.port
        ),
        ..Default::default()
    });
    let leaked = psql(&gw.dsn("sp"), &["-c", "SELECT count(*) FROM customers"], "");
    let allowed = psql(&gw.dsn("sp"), &["-c", "SELECT count(*) FROM orders"], "");
    c.sql("shop", &format!("DROP OWNED BY {login}; DROP ROLE {login}"));
    assert!(!leaked.status.success(), "{}", stdout(&leaked));
    assert!(
        stderr(&leaked).contains("internal.customers"),
        "{}",
        stderr(&leaked)
    );
    assert!(allowed.status.success(), "{}", stderr(&allowed));
}

#[test]
fn check_connect_reports_what_defeats_least_privilege() {
    let c = cluster();
    let dir = tempfile::tempdir().unwrap();
    let write = |extra: &str, password: &str| {
        let path = dir.path().join("pgward.toml");
        std::fs::write(
            &path,
            format!(
                "[server]\nlisten = [\"127.0.0.1:{}\"]\n\n[databases.shop]\nhost = \"{}\"\nport = {}\nuser = \"{}\"\npassword = \"{password}\"\nsslmode = \"disable\"\n\n{}\n{extra}",
                free_port(),
                c.host,
                c.port,
                c.svc_user,
                include_str!("../examples/policy.toml")
            ),
        )
        .unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_pgward"))
            .args(["check", "--connect", "--config"])
            .arg(&path)
            .output()
            .unwrap()
    };
    // The test cluster's service login is a superuser and owns the tables.
    let out = write(
        "[masks]\n\"public.customers.email\" = \"email\"\n",
        &c.svc_password,
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.contains("is a superuser"), "{text}");
    // A misspelled mask leaks its column: an error.
    let out = write(
        "[masks]\n\"public.customers.emial\" = \"email\"\n",
        &c.svc_password,
    );
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("public.customers.emial"),
        "{}",
        stdout(&out)
    );
    // A wrong password: an error naming the login, never the password.
    let out = write("", "not-the-password");
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stdout(&out).contains("cannot log in"), "{}", stdout(&out));
    assert!(!stdout(&out).contains("not-the-password"));
}

#[test]
fn check_connect_names_grants_beyond_the_policy() {
    // A non-superuser service login that can read api_keys, though the only
    // role using it may not.
    let _quiet = catalog_lock();
    let c = cluster();
    let login = format!("cc_svc_{}", std::process::id());
    c.sql(
        "shop",
        &format!(
            "CREATE ROLE {login} LOGIN PASSWORD 'cc-pw'; GRANT USAGE ON SCHEMA public TO {login}; \
             GRANT SELECT ON public.customers, public.api_keys TO {login}"
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pgward.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = [\"127.0.0.1:{}\"]\n\n[databases.shop]\nhost = \"{}\"\nport = {}\nuser = \"{login}\"\npassword = \"cc-pw\"\nsslmode = \"disable\"\n\n[roles.reader]\noperations = [\"select\"]\nread = [\"public.*\", \"!public.api_keys\"]\n",
            free_port(),
            c.host,
            c.port
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgward"))
        .args(["check", "--connect", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    c.sql("shop", &format!("DROP OWNED BY {login}; DROP ROLE {login}"));
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.contains("holds grants beyond"), "{text}");
    assert!(text.contains("api_keys"), "{text}");
    assert!(!text.contains("superuser"), "{text}");
}

#[test]
fn serve_refuses_to_start_with_a_mask_naming_no_column() {
    let c = cluster();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pgward.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = [\"127.0.0.1:{}\"]\n\n[databases.shop]\nhost = \"{}\"\nport = {}\nuser = \"{}\"\npassword = \"{}\"\nsslmode = \"disable\"\n\n[masks]\n\"public.customers.emial\" = \"email\"\n",
            free_port(),
            c.host,
            c.port,
            c.svc_user,
            c.svc_password
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgward"))
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("public.customers.emial"),
        "{}",
        stderr(&out)
    );
}

/// A name no other test uses, so the server log can be searched for it.
fn probe_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("probe_{}_{nanos}", std::process::id())
}

fn server_log() -> String {
    let path = cluster().socket_dir.join("server.log");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn refusals_outside_a_transaction_never_reach_the_server_log() {
    use common::raw::{bind, execute, parse, rows, sync, tags};
    let gw = gateway("reader");
    let mut r = gw.raw("shop");
    // Idle, nothing in flight: pgward answers the refusal itself.
    let idle = probe_name();
    let reply = r.query(&format!("SELECT * FROM internal.{idle}"));
    assert_eq!(tags(&reply), "EZ");
    let e = &reply[0];
    assert_eq!(e.code().as_deref(), Some("42501"));
    assert!(e.field(b'M').unwrap().contains(&idle));
    assert!(e.field(b'D').unwrap().starts_with("rule:"), "{e:?}");
    assert_eq!(reply[1].body, b"I");
    let reply = r.extended(&[
        parse("", &format!("SELECT * FROM internal.{idle}_x")),
        bind("", ""),
        execute("", 0),
        sync(),
    ]);
    assert_eq!(tags(&reply), "EZ");
    // With a Flush instead of a Sync the error comes at once.
    r.send(
        &[
            parse("", &format!("SELECT * FROM internal.{idle}_y")),
            frame(b'H', &[]),
        ]
        .concat(),
    );
    assert_eq!(r.recv().unwrap().tag, b'E');
    assert_eq!(tags(&r.extended(&[sync()])), "Z");
    // In a transaction block the server raises it, so that the block is
    // aborted as by any failed statement.
    let in_block = probe_name();
    r.query("BEGIN");
    let (_, err) = rows(&r.query(&format!("SELECT * FROM internal.{in_block}")));
    assert!(err.unwrap().contains(&in_block));
    let reply = r.query("SELECT 1");
    assert_eq!(reply[0].code().as_deref(), Some("25P02"), "{reply:?}");
    r.query("ROLLBACK");
    // Behind an open extended batch too (its work must roll back).
    let batch = probe_name();
    let reply = r.extended(&[
        parse("", "SELECT 1"),
        bind("", ""),
        execute("", 0),
        parse("", &format!("SELECT * FROM internal.{batch}")),
        sync(),
    ]);
    assert_eq!(tags(&reply), "12DCEZ");
    // The session goes on.
    let (cells, _) = rows(&r.query("SELECT 'on'"));
    assert_eq!(cells, ["on"]);
    let log = server_log();
    assert!(
        !log.contains(&idle),
        "a refusal pgward answered reached the server log"
    );
    assert!(
        log.contains(&in_block),
        "the server raised the refusal in the block"
    );
}

#[test]
fn with_the_refusal_function_refusals_in_a_block_stay_out_of_the_server_log() {
    let db = format!("pgward_refuse_{}", std::process::id());
    cluster().sql("postgres", &format!("DROP DATABASE IF EXISTS {db}"));
    cluster().sql("postgres", &format!("CREATE DATABASE {db}"));
    cluster().sql(
        &db,
        "CREATE TABLE open_t (a int); CREATE TABLE secret_t (a int)",
    );
    let install = std::fs::read_to_string(repo_path("examples/refusal-function.sql")).unwrap();
    cluster().sql(&db, &install);
    let gw = Gateway::start(GatewayOptions {
        role: "narrow",
        roles: "[roles.narrow]\noperations = [\"select\"]\nread = [\"public.open_t\"]\n".into(),
        extra_config: cluster().database_section("refdb", &db),
        ..Default::default()
    });
    let mut r = gw.raw("refdb");
    let probe = probe_name();
    r.query("BEGIN");
    let reply = r.query(&format!(
        "SELECT * FROM secret_t /* {probe} */, internal_{probe}"
    ));
    let e = &reply[0];
    assert_eq!(e.code().as_deref(), Some("42501"), "{reply:?}");
    assert!(e.field(b'M').unwrap().contains(&probe), "{e:?}");
    assert_eq!(e.field(b'W'), None, "no server context: {e:?}");
    assert_eq!(reply.last().unwrap().body, b"E", "the block is aborted");
    assert_eq!(r.query("SELECT 1")[0].code().as_deref(), Some("25P02"));
    r.query("ROLLBACK");
    // The same by the extended protocol.
    r.query("BEGIN");
    let reply = r.extended(&[
        common::raw::parse("", &format!("SELECT * FROM ext_{probe}")),
        common::raw::sync(),
    ]);
    assert_eq!(reply[0].code().as_deref(), Some("42501"), "{reply:?}");
    assert_eq!(reply.last().unwrap().body, b"E");
    r.query("ROLLBACK");
    let (cells, _) = common::raw::rows(&r.query("SELECT count(*) FROM open_t"));
    assert_eq!(cells, ["0"]);
    drop(r);
    drop(gw);
    assert!(
        !server_log().contains(&probe),
        "the refusal reached the server log"
    );
    cluster().sql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    );
}
