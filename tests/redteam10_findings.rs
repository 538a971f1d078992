//! Findings of the tenth red-team pass, the audit log's second: results
//! filed under the wrong statement (a stale portal record, names past 63
//! bytes, a Bind that failed), a forged stream, the directory lock, a
//! deleted live segment. (Finding B, a log line that cannot be written, is
//! in redteam9_findings.rs beside its test gateway.)

mod common;

use std::path::Path;

use common::audit::*;
use common::raw::{bind, execute, parse, sync};
use common::*;
use serde_json::Value;

const ROLES: &str = r#"
[roles.reader]
operations = ["select", "transaction", "cursor"]
read = ["public.*"]
"#;

fn audited(dir: &Path) -> Gateway {
    Gateway::start(GatewayOptions {
        role: "reader",
        roles: ROLES.into(),
        workers: 1,
        extra_config: format!("[audit]\ndir = \"{}\"\n", dir.display()),
        ..Default::default()
    })
}

/// The result records of statement `n` of the session.
fn results_of<'a>(rs: &'a [Value], n: &Value) -> Vec<&'a Value> {
    rs.iter()
        .filter(|r| r["kind"] == "result" && r["n"] == *n)
        .collect()
}

fn statement<'a>(rs: &'a [Value], sql: &str) -> &'a Value {
    rs.iter()
        .find(|r| r["kind"] == "statement" && r["sql"] == sql)
        .unwrap_or_else(|| panic!("no record of {sql}: {rs:#?}"))
}

#[test]
fn a1_a_cursor_declared_under_an_old_portal_name_is_recorded_as_itself() {
    let dir = tempfile::tempdir().unwrap();
    let gw = audited(dir.path());
    let mut r = gw.raw("shop");
    r.extended(&[
        parse("s1", "SELECT 1 AS one"),
        bind("p", "s1"),
        execute("p", 0),
        sync(),
    ]);
    r.query("BEGIN");
    r.query("DECLARE p CURSOR FOR SELECT id FROM products ORDER BY id /* a1 */");
    let reply = r.extended(&[execute("p", 3), sync()]);
    assert_eq!(common::raw::rows(&reply).0.len(), 3);
    r.query("COMMIT");
    drop(r);
    let rs = session_records(dir.path(), |rs| {
        rs.iter()
            .any(|r| r["sql"].as_str().is_some_and(|s| s.contains("/* a1 */")))
    });
    let one = statement(&rs, "SELECT 1 AS one");
    assert_eq!(results_of(&rs, &one["n"]).len(), 1, "{rs:#?}");
    let e = rs
        .iter()
        .find(|r| r["message"] == "execute")
        .expect("the cursor's Execute has its own record");
    assert!(e["sql"].as_str().unwrap().starts_with("DECLARE p CURSOR"));
    assert_eq!(results_of(&rs, &e["n"])[0]["rows"], 3);
}

#[test]
fn a2_portal_names_are_cut_at_63_bytes_as_the_server_cuts_them() {
    let dir = tempfile::tempdir().unwrap();
    let gw = audited(dir.path());
    let mut r = gw.raw("shop");
    let (x, y) = (
        format!("{}X", "q".repeat(63)),
        format!("{}Y", "q".repeat(63)),
    );
    r.query("BEGIN");
    r.extended(&[
        parse("a", "SELECT 1 AS one"),
        bind(&x, "a"),
        common::raw::close(b'P', &x),
        sync(),
    ]);
    r.extended(&[
        parse("b", "SELECT id FROM products ORDER BY id"),
        bind(&y, "b"),
        sync(),
    ]);
    let reply = r.extended(&[execute(&x, 0), sync()]);
    let rows = common::raw::rows(&reply).0.len();
    assert!(rows > 1);
    r.query("COMMIT");
    drop(r);
    let rs = session_records(dir.path(), |rs| {
        rs.iter().any(|r| r["sql"] == "SELECT 1 AS one")
    });
    let one = statement(&rs, "SELECT 1 AS one");
    assert!(results_of(&rs, &one["n"]).is_empty(), "{rs:#?}");
    let products = statement(&rs, "SELECT id FROM products ORDER BY id");
    assert_eq!(results_of(&rs, &products["n"])[0]["rows"], rows as u64);
}

#[test]
fn a3_a_failed_bind_has_an_error_result_and_the_execute_reports_under_the_portal_that_ran() {
    let dir = tempfile::tempdir().unwrap();
    let gw = audited(dir.path());
    let mut r = gw.raw("shop");
    r.query("BEGIN");
    r.extended(&[
        parse("s", "SELECT id FROM products ORDER BY id"),
        bind("p", "s"),
        sync(),
    ]);
    r.query("SAVEPOINT s");
    let reply = r.extended(&[parse("h", "SELECT 1 AS harmless"), bind("p", "h"), sync()]);
    assert_eq!(
        reply
            .iter()
            .find(|m| m.tag == b'E')
            .and_then(|m| m.code())
            .as_deref(),
        Some("42P03")
    );
    r.query("ROLLBACK TO s");
    let reply = r.extended(&[execute("p", 2), sync()]);
    assert_eq!(common::raw::rows(&reply).0.len(), 2);
    r.query("COMMIT");
    drop(r);
    let rs = session_records(dir.path(), |rs| {
        rs.iter().any(|r| r["sql"] == "SELECT 1 AS harmless")
    });
    let harmless = statement(&rs, "SELECT 1 AS harmless");
    let failed = results_of(&rs, &harmless["n"]);
    assert_eq!(failed.len(), 1, "{rs:#?}");
    assert_eq!(
        (
            failed[0]["outcome"].as_str(),
            failed[0]["sqlstate"].as_str()
        ),
        (Some("error"), Some("42P03"))
    );
    let products = statement(&rs, "SELECT id FROM products ORDER BY id");
    let ran = results_of(&rs, &products["n"]);
    assert_eq!(ran.len(), 1, "{rs:#?}");
    assert_eq!(ran[0]["rows"], 2);
}
