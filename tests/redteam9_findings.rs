//! Findings of the ninth red-team pass, against the audit log: a Bind runs
//! planning (functions) before any Execute; code can reopen a portal under
//! its name; secrets in refusal messages, connection strings and SET values;
//! texts in LATIN1 sessions; a long prepared text written again for every
//! short Bind.

mod common;

use std::path::Path;

use common::audit::*;
use common::raw::{bind, execute, frame, parse, sync, tags};
use common::*;
use serde_json::Value;

const ROLES: &str = r#"
[roles.coder]
operations = ["select", "code", "transaction", "set", "cursor"]
read = ["public.*"]
functions = ["public.*"]
"#;

fn audited(dir: &Path) -> Gateway {
    Gateway::start(GatewayOptions {
        role: "coder",
        roles: ROLES.into(),
        workers: 1,
        extra_config: format!("[audit]\ndir = \"{}\"\n", dir.display()),
        ..Default::default()
    })
}

/// The records of the session that sent `marker` somewhere in its SQL.
fn session_with(dir: &Path, marker: &str) -> Vec<Value> {
    session_records(dir, |rs| {
        rs.iter()
            .any(|r| r["sql"].as_str().is_some_and(|s| s.contains(marker)))
    })
}

/// A Bind of the unnamed statement with one text parameter.
fn bind_text(value: &str) -> Vec<u8> {
    let mut body = vec![0, 0, 0, 0, 0, 1];
    body.extend((value.len() as i32).to_be_bytes());
    body.extend(value.as_bytes());
    body.extend([0, 0]);
    frame(b'B', &body)
}

#[test]
fn f1_a_bind_without_execute_is_recorded_before_the_server_plans_it() {
    let dir = tempfile::tempdir().unwrap();
    let gw = audited(dir.path());
    let mut r = gw.raw("shop");
    let reply = r.extended(&[
        parse("", "SELECT id FROM products WHERE id < $1::int /* f1 */"),
        bind_text("5"),
        sync(),
    ]);
    assert_eq!(tags(&reply), "12Z");
    drop(r);
    let rs = session_with(dir.path(), "/* f1 */");
    let b = rs
        .iter()
        .find(|r| r["message"] == "bind")
        .expect("a bind record");
    assert_eq!(b["verdict"], "allowed");
    assert_eq!(
        b["sql"],
        "SELECT id FROM products WHERE id < $1::int /* f1 */"
    );
    // No Execute ran: no result.
    assert!(!rs.iter().any(|r| r["kind"] == "result" && r["n"] == b["n"]));
}

#[test]
fn f2_a_portal_code_may_have_reopened_is_recorded_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let gw = audited(dir.path());
    let mut r = gw.raw("shop");
    r.query("BEGIN");
    let reply = r.extended(&[
        parse("s", "SELECT 1 AS one /* f2 */"),
        bind("p", "s"),
        sync(),
    ]);
    assert_eq!(tags(&reply), "12Z");
    let reply = r.query(
        "DO $$ DECLARE c refcursor := 'p'; BEGIN CLOSE c; OPEN c FOR SELECT 2 AS two; END $$",
    );
    assert!(reply.iter().all(|m| m.tag != b'E'), "{reply:?}");
    let reply = r.extended(&[execute("p", 0), sync()]);
    assert_eq!(common::raw::rows(&reply).0, ["2"]);
    r.query("COMMIT");
    drop(r);
    let rs = session_with(dir.path(), "/* f2 */");
    let e = rs
        .iter()
        .find(|r| r["message"] == "execute")
        .expect("the Execute gets a record of its own");
    let note = e["reason"].as_str().unwrap();
    assert!(note.contains("may have reopened the portal"), "{note}");
}

#[test]
fn f3_f4_secrets_stay_out_of_reasons_connection_strings_and_set_values() {
    let dir = tempfile::tempdir().unwrap();
    let gw = audited(dir.path());
    let mut r = gw.raw("shop");
    for sql in [
        "ALTER ROLE bob PASSWORD 'x' 'hunter2-a'",
        "SELECT dblink_connect('postgresql://postgres:hunter2-b@127.0.0.1/shop')",
        "SET app.secret_token = hunter2c",
        "SELECT 1 /* f3 */",
    ] {
        r.query(sql);
    }
    drop(r);
    let rs = session_with(dir.path(), "/* f3 */");
    assert!(rs.len() >= 6, "{rs:#?}");
    let text = all_text(dir.path());
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn f5_latin1_texts_are_recorded_as_the_server_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let gw = audited(dir.path());
    let mut r = gw.raw("shop");
    r.query("SET client_encoding = 'LATIN1'");
    let mut q = b"SELECT 'caf\xe9' AS f5".to_vec();
    q.push(0);
    r.send(&frame(b'Q', &q));
    r.replies();
    drop(r);
    let rs = session_with(dir.path(), "AS f5");
    assert!(
        rs.iter().any(|r| r["sql"] == "SELECT 'caf\u{e9}' AS f5"),
        "{rs:#?}"
    );
}

#[test]
fn f7_a_long_prepared_text_is_written_in_full_once_per_session() {
    let dir = tempfile::tempdir().unwrap();
    let gw = audited(dir.path());
    let mut r = gw.raw("shop");
    let long = format!("SELECT 1 /* f7 {} */", "x".repeat(20_000));
    let mut messages = vec![parse("big", &long)];
    for _ in 0..5 {
        messages.push(bind("", "big"));
        messages.push(execute("", 0));
    }
    messages.push(sync());
    let reply = r.extended(&messages);
    assert!(reply.iter().all(|m| m.tag != b'E'));
    drop(r);
    let rs = session_records(dir.path(), |rs| rs.iter().any(|r| r["message"] == "bind"));
    let binds: Vec<&Value> = rs.iter().filter(|r| r["message"] == "bind").collect();
    assert_eq!(binds.len(), 5);
    assert_eq!(binds[0]["sql"], long.as_str());
    for b in &binds[1..] {
        assert!(b["sql"].as_str().unwrap().len() < 300);
        assert_eq!(b["sql_in"], binds[0]["n"]);
        assert_eq!(b["sql_sha256"].as_str().unwrap().len(), 64);
    }
    let bytes: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(bytes < 40_000, "{bytes} bytes written");
}

#[test]
fn f9_an_execute_of_a_declared_cursor_names_the_declare() {
    let dir = tempfile::tempdir().unwrap();
    let gw = audited(dir.path());
    let mut r = gw.raw("shop");
    r.query("BEGIN");
    // A portal `c` bound first, then closed and declared again in SQL: the
    // Execute runs the cursor, not the Bind.
    r.extended(&[parse("s", "SELECT 1 AS one"), bind("c", "s"), sync()]);
    r.query("CLOSE c");
    r.query("DECLARE c CURSOR FOR SELECT id FROM products ORDER BY id /* f9 */");
    let reply = r.extended(&[execute("c", 2), sync()]);
    assert_eq!(common::raw::rows(&reply).0.len(), 2);
    r.query("COMMIT");
    drop(r);
    let rs = session_with(dir.path(), "/* f9 */");
    let e = rs
        .iter()
        .find(|r| r["message"] == "execute")
        .expect("the Execute gets a record of its own");
    assert_eq!(
        e["sql"],
        "DECLARE c CURSOR FOR SELECT id FROM products ORDER BY id /* f9 */"
    );
}

/// Red team 10, finding B: a log line that cannot be written (standard
/// error on a full disk) made tracing panic and a worker thread die with its
/// sessions. Lines that cannot be written are dropped now.
#[test]
fn r10_b_a_log_that_cannot_be_written_does_not_stop_a_worker() {
    let gw = Gateway::start(GatewayOptions {
        role: "coder",
        roles: ROLES.into(),
        workers: 2,
        // The debug log passes this within a few sessions.
        file_size_limit: Some(8192),
        ..Default::default()
    });
    for i in 0..40 {
        let mut r = gw.raw("shop");
        let (cells, err) = common::raw::rows(&r.query(&format!("SELECT {i} AS n")));
        assert_eq!((cells, err), (vec![i.to_string()], None));
    }
    assert!(std::fs::metadata(&gw.log).unwrap().len() <= 8192);
}
