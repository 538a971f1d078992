//! Findings of the fifth red-team pass (idle refusals, reloads, field
//! selections), each a live repro of a desynchronised session before its fix:
//! a COPY the server ended on its own, a refusal answered while the server's
//! transaction was still open, and a database whose encoding is not UTF8.

mod common;

use common::raw::{bind, execute, frame, parse, query, rows, sync, tags, Msg, Raw};
use common::*;

const ROLES: &str = r#"
[roles.loader]
operations = ["select", "insert", "copy_in"]
read = ["public.*", "!public.api_keys"]
write = ["public.support_tickets"]

[masks]
"public.customers.email" = "email"
"public.customers.ssn" = "redact"
"#;

fn session() -> (Gateway, Raw) {
    let gw = Gateway::with_roles("loader", ROLES);
    let r = gw.raw("shop");
    (gw, r)
}

fn copy_data(row: &str) -> Vec<u8> {
    frame(b'd', row.as_bytes())
}

fn copy_done() -> Vec<u8> {
    frame(b'c', &[])
}

fn flush() -> Vec<u8> {
    frame(b'H', &[])
}

/// Reads until the message with `tag`, returning all read.
fn until(r: &mut Raw, tag: u8) -> Vec<Msg> {
    let mut out = Vec::new();
    loop {
        let m = r
            .recv()
            .unwrap_or_else(|| panic!("closed before {}", tag as char));
        let done = m.tag == tag;
        out.push(m);
        if done {
            return out;
        }
    }
}

fn assert_masked(reply: &[Msg]) {
    let (cells, err) = rows(reply);
    assert_eq!(err, None, "{reply:?}");
    assert!(cells.iter().any(|c| c == "[redacted]"), "{cells:?}");
    assert!(!cells
        .iter()
        .any(|c| c.ends_with("@example.com") && !c.contains("***")));
}

const COPY: &str = "COPY support_tickets (customer_id, subject, body) FROM STDIN";

// F1: the server ends COPY FROM STDIN itself when a row fails; pgward waited
// for the client's CopyDone and counted every later Sync as ignored, so the
// replies after it were matched to the wrong messages.

#[test]
fn f1_a_copy_the_server_ends_with_an_error_ends_for_pgward_too() {
    let (_gw, mut r) = session();
    r.send(&query(COPY));
    until(&mut r, b'G');
    r.send(&copy_data("notanint\tx\ty\n"));
    let reply = until(&mut r, b'Z');
    assert_eq!(reply[0].code().as_deref(), Some("22P02"), "{reply:?}");
    // The client never ends its data; the server takes Syncs again.
    r.extended(&[
        parse("s", "SELECT id, email, ssn FROM customers ORDER BY id"),
        sync(),
    ]);
    r.send(&[sync(), parse("s", "SELECT 1 AS one"), sync()].concat());
    let replies = [until(&mut r, b'Z'), until(&mut r, b'Z')].concat();
    assert_eq!(tags(&replies), "ZEZ", "{replies:?}");
    let reply = r.extended(&[bind("", "s"), execute("", 3), sync()]);
    assert_masked(&reply);
}

#[test]
fn f1_a_failed_copy_with_syncs_sent_during_it_ends_the_session() {
    let (_gw, mut r) = session();
    r.extended(&[
        parse("s", "SELECT id, email, ssn FROM customers ORDER BY id"),
        sync(),
    ]);
    r.send(&[parse("", COPY), bind("", ""), execute("", 0), flush()].concat());
    until(&mut r, b'G');
    // A Sync during the copy, after a bad row: the server may read it in
    // COPY (ignored) or after the error (answered); pgward cannot tell.
    r.send(
        &[
            copy_data("notanint\tx\ty\n"),
            sync(),
            copy_done(),
            sync(),
            parse("s", "SELECT 1 AS one"),
            sync(),
        ]
        .concat(),
    );
    let mut fatal = None;
    while let Some(m) = r.recv() {
        assert_ne!(m.tag, b'D', "rows after a lost track: {m:?}");
        if m.tag == b'E' && m.field(b'V').as_deref() == Some("FATAL") {
            fatal = Some(m);
        }
    }
    let fatal = fatal.expect("the session ends with FATAL");
    assert_eq!(fatal.code().as_deref(), Some("08P01"));
}

// F2: after an extended COPY whose Sync the server ignored, the server's
// transaction is still open; pgward answered a refusal alone, so the
// refusal did not abort it and COMMIT committed the copied row.

#[test]
fn f2_a_refusal_after_an_ignored_sync_still_aborts_the_transaction() {
    let (gw, mut r) = session();
    let mark = format!("redteam5-f2-{}", std::process::id());
    r.send(
        &[
            parse("", "BEGIN"),
            bind("", ""),
            execute("", 0),
            parse("", COPY),
            bind("", ""),
            execute("", 0),
            sync(),
        ]
        .concat(),
    );
    until(&mut r, b'G');
    r.send(
        &[
            copy_data(&format!("1\t{mark}\tbody\n")),
            copy_done(),
            flush(),
        ]
        .concat(),
    );
    until(&mut r, b'C');
    let reply = r.query("SELECT key_value FROM api_keys");
    assert_eq!(reply[0].code().as_deref(), Some("42501"), "{reply:?}");
    let status = reply.last().unwrap();
    assert_eq!(status.body, b"E", "the block is aborted: {reply:?}");
    r.query("COMMIT");
    let mut other = gw.raw("shop");
    let (cells, _) = rows(&other.query(&format!(
        "SELECT count(*) FROM support_tickets WHERE subject = '{mark}'"
    )));
    cluster().sql(
        "shop",
        &format!("DELETE FROM support_tickets WHERE subject = '{mark}'"),
    );
    assert_eq!(cells, ["0"], "the refused block was committed");
}

// F3: a database in another encoding than UTF8 converts names to it and
// cuts them at 63 of its bytes; pgward cut the client's UTF-8 bytes.

#[test]
fn f3_a_database_not_in_utf8_is_refused_at_start_and_at_login() {
    let db = format!("pgward_latin1_{}", std::process::id());
    cluster().sql("postgres", &format!("DROP DATABASE IF EXISTS {db}"));
    // Configured before it exists: serve starts (the database may come).
    let gw = Gateway::start(GatewayOptions {
        extra_config: cluster().database_section("latin1db", &db),
        ..Default::default()
    });
    cluster().sql(
        "postgres",
        &format!(
            "CREATE DATABASE {db} ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
        ),
    );
    let e = Raw::login_with(
        gw.port,
        "agent",
        AGENT_PASSWORD,
        &[("database", "latin1db")],
    )
    .err()
    .expect("refused");
    assert_eq!(e.code().as_deref(), Some("0A000"), "{:?}", e.field(b'M'));
    assert!(e.field(b'M').unwrap().contains("LATIN1"));
    // Once it exists, serve refuses to start, naming the encoding.
    let config = gw.config_text();
    drop(gw);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pgward.toml");
    std::fs::write(&path, config).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgward"))
        .args(["serve", "--config"])
        .arg(&path)
        .env("PGWARD_TEST_SVC_PASSWORD", &cluster().svc_password)
        .output()
        .unwrap();
    cluster().sql("postgres", &format!("DROP DATABASE IF EXISTS {db}"));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("LATIN1"), "{}", stderr(&out));
}
