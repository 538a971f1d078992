//! Server-side cursors through pgward: a DECLAREd cursor is a portal that
//! clients Describe and Execute by name (psycopg's named cursors,
//! SQLAlchemy's stream_results), in the same pipeline as its DECLARE too;
//! its query is judged at DECLARE, its rows are masked however they are
//! fetched, and it is forgotten when the server drops it.

mod common;

use common::raw::{bind, describe, execute, parse, rows, sync, tags, Msg, Raw};
use common::*;

const ROLES: &str = r#"
[roles.reader]
operations = ["select"]
read = ["public.*", "!public.api_keys"]

[roles.scanner]
operations = ["select"]
read = ["public.*", "!public.api_keys"]
scan_entities = ["email"]

[masks]
"public.customers.email" = "email"
"public.customers.ssn" = "redact"
"#;

fn gateway(role: &'static str) -> Gateway {
    Gateway::with_roles(role, ROLES)
}

fn login(gw: &Gateway) -> Raw {
    gw.raw("shop")
}

fn ok(reply: &[Msg]) -> &[Msg] {
    let (_, err) = rows(reply);
    assert!(err.is_none(), "{err:?}");
    reply
}

fn refused(reply: &[Msg], code: &str) {
    let e = reply.iter().find(|m| m.tag == b'E').expect("an error");
    assert_eq!(e.code().as_deref(), Some(code), "{:?}", e.field(b'M'));
}

/// The first customers' (email, ssn) as the server holds them.
fn direct_customers(n: usize) -> Vec<String> {
    let text = cluster().sql(
        "shop",
        &format!("SELECT email || '|' || ssn FROM customers ORDER BY id LIMIT {n}"),
    );
    text.lines().map(str::to_string).collect()
}

#[test]
fn a_declared_cursor_is_described_and_executed_by_name_with_masked_rows() {
    let gw = gateway("reader");
    let mut r = login(&gw);
    let secrets = direct_customers(3);
    ok(&r.query("BEGIN"));
    ok(&r.query("DECLARE \"Named\" CURSOR FOR SELECT id, email, ssn FROM customers ORDER BY id"));
    // psycopg's named cursor: Describe the portal, then Execute it.
    let reply = r.extended(&[describe(b'P', "Named"), execute("Named", 2), sync()]);
    assert_eq!(tags(ok(&reply)), "TDDsZ");
    let (cells, _) = rows(&reply);
    assert_eq!(cells.len(), 6);
    for (i, secret) in secrets.iter().take(2).enumerate() {
        let (email, ssn) = secret.split_once('|').unwrap();
        assert_ne!(cells[i * 3 + 1], email, "the email is masked");
        assert!(cells[i * 3 + 1].contains("***@"), "{cells:?}");
        assert_ne!(cells[i * 3 + 2], ssn);
        assert_eq!(cells[i * 3 + 2], "[redacted]");
    }
    // Without a Describe of its own: pgward describes it, unseen.
    let reply = r.extended(&[execute("Named", 1), sync()]);
    assert_eq!(tags(ok(&reply)), "DsZ");
    let (cells, _) = rows(&reply);
    assert_eq!(cells[2], "[redacted]", "{cells:?}");
    // FETCH in SQL, simple and extended, is masked alike.
    let (cells, _) = rows(ok(&r.query("FETCH 1 FROM \"Named\"")));
    assert_eq!(cells[2], "[redacted]", "{cells:?}");
    let reply = r.extended(&[
        parse("", "FETCH 1 FROM \"Named\""),
        bind("", ""),
        execute("", 0),
        sync(),
    ]);
    let (cells, _) = rows(ok(&reply));
    assert_eq!(cells[2], "[redacted]", "{cells:?}");
    // The unquoted name folds to lower case, as the server folds it.
    refused(&r.extended(&[execute("named", 1), sync()]), "42501");
    ok(&r.query("ROLLBACK"));
}

#[test]
fn a_cursor_declared_in_the_same_pipeline_is_usable_at_once() {
    let gw = gateway("reader");
    let mut r = login(&gw);
    // SQLAlchemy-style: DECLARE by the extended protocol, then Describe and
    // Execute the cursor before any Sync.
    let reply = r.extended(&[
        parse("", "BEGIN"),
        bind("", ""),
        execute("", 0),
        parse(
            "",
            "DECLARE c CURSOR FOR SELECT email FROM customers ORDER BY id",
        ),
        bind("", ""),
        execute("", 0),
        describe(b'P', "c"),
        execute("c", 0),
        sync(),
    ]);
    let (cells, _) = rows(ok(&reply));
    assert!(!cells.is_empty());
    assert!(cells.iter().all(|e| e.contains("***@")), "{cells:?}");
    ok(&r.query("COMMIT"));
    // The transaction ended: so did the cursor.
    refused(&r.extended(&[execute("c", 0), sync()]), "42501");
}

#[test]
fn with_hold_cursors_outlive_their_transaction_until_closed() {
    let gw = gateway("reader");
    let mut r = login(&gw);
    ok(&r.query("DECLARE h CURSOR WITH HOLD FOR SELECT ssn FROM customers ORDER BY id"));
    let reply = r.extended(&[describe(b'P', "h"), execute("h", 1), sync()]);
    let (cells, _) = rows(ok(&reply));
    assert_eq!(cells, ["[redacted]"]);
    ok(&r.query("CLOSE h"));
    refused(&r.extended(&[execute("h", 1), sync()]), "42501");
    // CLOSE ALL forgets every cursor.
    ok(&r
        .query("DECLARE a CURSOR WITH HOLD FOR SELECT 1; DECLARE b CURSOR WITH HOLD FOR SELECT 2"));
    ok(&r.extended(&[execute("a", 0), execute("b", 0), sync()]));
    ok(&r.query("CLOSE ALL"));
    refused(&r.extended(&[execute("b", 0), sync()]), "42501");
}

#[test]
fn a_refused_declare_leaves_no_portal_to_execute() {
    let gw = gateway("reader");
    let mut r = login(&gw);
    ok(&r.query("BEGIN"));
    // A derived use of a masked column, and a denied table.
    refused(
        &r.query("DECLARE d CURSOR FOR SELECT lower(email) FROM customers"),
        "42501",
    );
    ok(&r.query("ROLLBACK; BEGIN"));
    refused(
        &r.query("DECLARE k CURSOR FOR SELECT * FROM api_keys"),
        "42501",
    );
    ok(&r.query("ROLLBACK; BEGIN"));
    for name in ["d", "k"] {
        refused(&r.extended(&[describe(b'P', name), sync()]), "42501");
        // The refusal aborted the transaction: the next one fails as the
        // server fails anything there, and the client still hears of it.
        refused(&r.extended(&[execute(name, 0), sync()]), "25P02");
        ok(&r.query("ROLLBACK; BEGIN"));
    }
    ok(&r.query("ROLLBACK"));
}

#[test]
fn scanned_results_are_described_even_when_the_client_does_not() {
    // The scanner role masks personal data inside any text column: its
    // extended-protocol results need a description, asked for or not.
    let gw = gateway("scanner");
    let mut r = login(&gw);
    let reply = r.extended(&[
        parse("", "SELECT 'mail jane@example.com' AS note"),
        bind("", ""),
        execute("", 0),
        sync(),
    ]);
    assert_eq!(tags(ok(&reply)), "12DCZ");
    let (cells, _) = rows(&reply);
    assert_eq!(cells, ["mail j***@example.com"]);
}
