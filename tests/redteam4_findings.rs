//! Findings of the fourth red-team pass (cursors as portals, settings named
//! by bind parameters), each a live repro that returned masked values in
//! clear or ran a function pgward never judged before its fix.

mod common;

use common::raw::{bind, close, describe, execute, parse, query, rows, sync, Msg, Raw};
use common::*;

const ROLES: &str = r#"
[roles.reader]
operations = ["select"]
read = ["public.*", "!public.api_keys"]

[masks]
"public.customers.email" = "email"
"public.customers.ssn" = "redact"
"#;

fn session() -> (Gateway, Raw) {
    let gw = Gateway::with_roles("reader", ROLES);
    let r = gw.raw("shop");
    (gw, r)
}

/// The first customer's e-mail and SSN as the server holds them.
fn secrets() -> [String; 2] {
    let row = cluster().sql(
        "shop",
        "SELECT email || '|' || ssn FROM customers ORDER BY id LIMIT 1",
    );
    let (email, ssn) = row.split_once('|').unwrap();
    [email.to_string(), ssn.to_string()]
}

fn assert_no_secret(reply: &[Msg]) {
    let (cells, _) = rows(reply);
    for s in secrets() {
        assert!(!cells.contains(&s), "{s} came back in clear: {cells:?}");
    }
}

// F1: the server files statements and portals under their first 63 bytes;
// pgward used the whole name, so `a...aX`, `a...aY` and `a...aZ` were three
// names to pgward and one to the server.

#[test]
fn f1_statement_names_past_63_bytes_are_one_name() {
    let (_gw, mut r) = session();
    let long = |end: &str| format!("{}{end}", "a".repeat(63));
    r.extended(&[parse(&long("X"), "SELECT 1"), sync()]);
    r.extended(&[close(b'S', &long("Z")), sync()]);
    r.extended(&[
        parse(
            &long("Y"),
            "SELECT id, email, ssn FROM customers ORDER BY id",
        ),
        sync(),
    ]);
    let reply = r.extended(&[bind("", &long("X")), execute("", 3), sync()]);
    assert_no_secret(&reply);
    let (cells, err) = rows(&reply);
    assert_eq!(err, None);
    assert!(cells.contains(&"[redacted]".to_string()), "{cells:?}");
}

#[test]
fn f1_portal_names_past_63_bytes_are_one_name() {
    let (_gw, mut r) = session();
    let long = |end: &str| format!("{}{end}", "p".repeat(63));
    r.query("BEGIN");
    r.extended(&[parse("s", "SELECT 1"), bind(&long("X"), "s"), sync()]);
    r.extended(&[close(b'P', &long("Z")), sync()]);
    let (_, err) = rows(&r.query(&format!(
        "DECLARE {} CURSOR FOR SELECT id, email, ssn FROM customers ORDER BY id",
        "p".repeat(63)
    )));
    assert_eq!(err, None);
    let reply = r.extended(&[execute(&long("X"), 3), sync()]);
    assert_no_secret(&reply);
    r.query("ROLLBACK");
}

// F2: `(value).f` is the call `f(value)` when the value is not composite; the
// walker read it as a field and no function check ran.

#[test]
fn f2_field_selections_are_judged_as_the_calls_they_are() {
    let (_gw, mut r) = session();
    for sql in [
        "SELECT ('stripe'::text).get_api_key",
        "SELECT (service::text).get_api_key FROM (VALUES ('stripe'), ('aws')) v(service)",
        "SELECT ('data_directory'::text).current_setting",
        "SELECT ('/etc/passwd'::text).pg_read_file",
        "SELECT (16384::oid).lo_get",
        "SELECT ('SELECT 1'::text).run_sql",
    ] {
        let (cells, err) = rows(&r.query(sql));
        let err = err.unwrap_or_else(|| panic!("allowed: {sql} -> {cells:?}"));
        assert!(err.starts_with("pgward:"), "{sql}: {err}");
    }
    // A composite's field is still a field.
    let (cells, err) = rows(&r.query("SELECT (o).status FROM orders o ORDER BY id LIMIT 1"));
    assert_eq!(err, None);
    assert_eq!(cells.len(), 1);
}

// F3: after an extended-protocol error the server ignores a simple Query
// until Sync; pgward expected its ReadyForQuery, and every later reply was
// matched one entry behind (a failed Parse recorded as done).

#[test]
fn f3_a_query_the_server_skips_owes_no_reply() {
    let (_gw, mut r) = session();
    r.send(
        &[
            parse("", "SELECT 1/0"),
            bind("", ""),
            execute("", 0),
            query("SELECT 42"),
            sync(),
        ]
        .concat(),
    );
    let first = r.replies();
    assert!(first.iter().any(|m| m.tag == b'E'), "{first:?}");
    r.extended(&[
        parse("s", "SELECT id, email, ssn FROM customers ORDER BY id"),
        sync(),
    ]);
    let refused = r.extended(&[parse("s", "SELECT 1 AS one"), sync()]);
    assert!(rows(&refused).1.is_some(), "42P05 from the server");
    r.extended(&[sync()]);
    let reply = r.extended(&[bind("", "s"), execute("", 3), sync()]);
    assert_no_secret(&reply);
    // The session is in step: a plain query answers as itself.
    let (cells, _) = rows(&r.query("SELECT 7"));
    assert_eq!(cells, ["7"]);
    let reply = r.extended(&[describe(b'S', "s"), sync()]);
    assert_eq!(rows(&reply).1, None);
}
