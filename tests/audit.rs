//! The audit log against a real PostgreSQL: the records a session leaves,
//! the extended protocol's records, secrets and masked values kept out,
//! kill -9 under a writing pgbench load, and a disk that stops taking
//! writes and recovers.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::audit::*;
use common::raw::rows;
use common::*;
use serde_json::Value;

const READER: &str = r#"[roles.reader]
operations = ["select"]
read = ["public.*"]
catalog = true

[masks]
"public.customers.email" = "email"
"#;

/// A gateway whose agent is a reader, auditing into `dir` with `audit`
/// extra keys.
fn audited(dir: &Path, audit: &str) -> Gateway {
    Gateway::start(audited_options(dir, audit))
}

/// A reader gateway's options, auditing into `dir` with `audit` extra keys.
fn audited_options(dir: &Path, audit: &str) -> GatewayOptions {
    GatewayOptions {
        role: "reader",
        roles: READER.into(),
        extra_config: format!("[audit]\ndir = \"{}\"\n{audit}\n", dir.display()),
        ..Default::default()
    }
}

fn kinds(rs: &[Value]) -> Vec<String> {
    rs.iter()
        .map(|r| match r["verdict"].as_str() {
            Some(v) => format!("{}:{v}", r["kind"].as_str().unwrap()),
            None => r["kind"].as_str().unwrap().to_string(),
        })
        .collect()
}

#[test]
fn a_psql_session_leaves_exactly_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let gw = audited(dir.path(), "");
    let out = psql(
        &gw.dsn("shop"),
        &["-v", "ON_ERROR_STOP=0"],
        "SELECT id, email FROM customers ORDER BY id LIMIT 2;\nDELETE FROM customers;\nSELECT count(*) FROM products;\n",
    );
    assert!(
        stderr(&out).contains("may not run DELETE"),
        "{}",
        stderr(&out)
    );
    let rs = session_records(dir.path(), |rs| {
        rs.iter().any(|r| r["sql"] == "DELETE FROM customers;")
    });
    assert_eq!(
        kinds(&rs),
        [
            "connect",
            "statement:allowed",
            "result",
            "statement:denied",
            "statement:allowed",
            "result",
            "disconnect"
        ],
        "{rs:#?}"
    );
    let connect = &rs[0];
    assert_eq!(connect["user"], "agent");
    assert_eq!(connect["roles"], serde_json::json!(["reader"]));
    assert_eq!(connect["database"], "shop");
    assert_eq!(connect["auth"], "SCRAM-SHA-256");
    assert!(connect["client"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    let policy = connect["policy"].as_str().unwrap();
    assert_eq!(policy.len(), 16);

    let masked = &rs[1];
    assert_eq!(masked["message"], "query");
    assert_eq!(
        masked["sql"],
        "SELECT id, email FROM customers ORDER BY id LIMIT 2;"
    );
    assert_eq!(masked["n"], 1);
    assert_eq!(masked["policy"], policy);
    assert_eq!(masked["fingerprint"].as_str().unwrap().len(), 16);
    let result = &rs[2];
    assert_eq!(
        (result["n"].clone(), result["outcome"].clone()),
        (1.into(), "ok".into())
    );
    assert_eq!(result["tags"], serde_json::json!(["SELECT 2"]));
    assert_eq!(result["rows"], 2);
    assert_eq!(
        result["masked"],
        serde_json::json!(["public.customers.email"])
    );
    assert_eq!(result["masked_cells"], 2);
    assert!(result["duration_us"].as_u64().is_some());

    let denied = &rs[3];
    assert_eq!(denied["rule"], "operations");
    assert_eq!(denied["sqlstate"], "42501");
    assert!(denied["reason"].as_str().unwrap().contains("DELETE"));
    assert_eq!(denied["n"], 2);

    assert_eq!(rs[5]["tags"], serde_json::json!(["SELECT 1"]));
    assert!(rs[5].get("masked").is_none());
    let end = &rs[6];
    assert_eq!(end["statements"], 3);
    assert_eq!(end["reason"], "client terminated");

    // The same statement with another literal has the same fingerprint.
    let again = psql(
        &gw.dsn("shop"),
        &[],
        "SELECT id, email FROM customers ORDER BY id LIMIT 7;",
    );
    assert!(again.status.success());
    let rs2 = session_records(dir.path(), |rs| {
        rs.iter()
            .any(|r| r["sql"].as_str().is_some_and(|s| s.ends_with("LIMIT 7;")))
    });
    assert_eq!(rs2[1]["fingerprint"], masked["fingerprint"]);

    // Masked values never reach the log.
    let email = cluster().sql("shop", "SELECT email FROM customers ORDER BY id LIMIT 1");
    assert!(email.contains('@'));
    assert!(!all_text(dir.path()).contains(&email));
}

#[test]
fn extended_protocol_statements_are_recorded_at_bind_with_their_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let gw = audited(dir.path(), "record_params = true");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = gw.connect("shop").await;
        let st = c
            .prepare("SELECT name FROM products WHERE id = $1 AND name <> $2")
            .await
            .unwrap();
        c.query(&st, &[&1i32, &"zz"]).await.unwrap();
        c.query(&st, &[&2i32, &"yy"]).await.unwrap();
        let e = c
            .query("SELECT * FROM nowhere_at_all", &[])
            .await
            .unwrap_err();
        assert_eq!(e.code().unwrap().code(), "42P01");
        let d = c
            .execute("UPDATE products SET name = 'x'", &[])
            .await
            .unwrap_err();
        assert_eq!(d.code().unwrap().code(), "42501");
    });
    let rs = session_records(dir.path(), |rs| rs.iter().any(|r| r["message"] == "bind"));
    // Planning at Bind may run functions: each Bind is the statement's
    // record, and its Execute reports under it.
    let binds: Vec<&Value> = rs
        .iter()
        .filter(|r| r["message"] == "bind" && r["params"].as_array().is_some_and(|p| p.len() == 2))
        .collect();
    assert_eq!(binds.len(), 2, "{rs:#?}");
    assert!(rs.iter().all(|r| r["message"] != "execute"), "{rs:#?}");
    // tokio-postgres sends binary parameters: hex.
    for (e, params) in binds
        .iter()
        .zip([["\\x00000001", "\\x7a7a"], ["\\x00000002", "\\x7979"]])
    {
        assert_eq!(
            e["sql"],
            "SELECT name FROM products WHERE id = $1 AND name <> $2"
        );
        assert_eq!(e["verdict"], "allowed");
        assert_eq!(e["params"], serde_json::json!(params));
    }
    let n = binds[0]["n"].clone();
    let result = rs
        .iter()
        .find(|r| r["kind"] == "result" && r["n"] == n)
        .unwrap();
    assert_eq!(result["outcome"], "ok");
    assert_eq!(result["rows"], 1);
    // A Parse the server rejects: the statement never ran, so no Execute;
    // the refused UPDATE is recorded at its Parse.
    let refused = rs.iter().find(|r| r["verdict"] == "denied").unwrap();
    assert_eq!(refused["message"], "parse");
    assert_eq!(refused["sql"], "UPDATE products SET name = 'x'");
    assert_eq!(refused["rule"], "operations");
}

#[test]
fn passwords_in_statements_are_not_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let gw = audited(dir.path(), "");
    let out = psql(
        &gw.dsn("shop"),
        &[
            "-X",
            "-c",
            "ALTER ROLE agent PASSWORD 'hunter2-secret' -- hunter3",
        ],
        "",
    );
    assert!(!out.status.success());
    let rs = session_records(dir.path(), |rs| rs.iter().any(|r| r["verdict"] == "denied"));
    let denied = rs.iter().find(|r| r["verdict"] == "denied").unwrap();
    assert_eq!(denied["sql"], "ALTER ROLE agent PASSWORD '***'");
    let text = all_text(dir.path());
    assert!(!text.contains("hunter2") && !text.contains("hunter3"));
}

#[test]
fn a_failed_login_is_recorded_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let gw = audited(dir.path(), "");
    let out = psql(
        &gw.dsn("shop").replace(AGENT_PASSWORD, "wrong-password"),
        &["-X", "-c", "SELECT 1"],
        "",
    );
    assert!(!out.status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let failed: Vec<Value> = records(dir.path())
            .into_iter()
            .filter(|r| r["kind"] == "login_failed")
            .collect();
        if let Some(f) = failed.first() {
            assert_eq!(f["user"], "agent");
            assert_eq!(f["database"], "shop");
            assert_eq!(f["reason"], "wrong password");
            assert!(!all_text(dir.path()).contains("wrong-password"));
            break;
        }
        assert!(Instant::now() < deadline, "no login_failed record");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Creates (once) a database for pgbench that no other test uses.
fn audit_bench_database() -> String {
    let c = cluster();
    let superuser = format!(
        "host={} port={} user={} password={} dbname=postgres sslmode=disable",
        c.host, c.port, c.super_user, c.super_password
    );
    let exists = Command::new("psql")
        .args([
            "-X",
            "-At",
            &superuser,
            "-c",
            "SELECT 1 FROM pg_database WHERE datname = 'audit_bench'",
        ])
        .output()
        .unwrap();
    if String::from_utf8_lossy(&exists.stdout).trim() != "1" {
        let made = Command::new("psql")
            .args([
                "-X",
                &superuser,
                "-c",
                &format!("CREATE DATABASE audit_bench OWNER {}", c.svc_user),
            ])
            .output()
            .unwrap();
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
    }
    c.database_section("audit_bench", "audit_bench")
}

fn full_access_audited(dir: &Path) -> Gateway {
    Gateway::start(GatewayOptions {
        extra_config: format!(
            "{}[audit]\ndir = \"{}\"\n",
            audit_bench_database(),
            dir.display()
        ),
        ..Default::default()
    })
}

fn pgbench(gw: &Gateway, args: &[&str]) -> std::process::Command {
    let mut c = Command::new("pgbench");
    c.args(["-h", "127.0.0.1", "-p", &gw.port.to_string(), "-U", "agent"])
        .args(args)
        .arg("audit_bench")
        .env("PGPASSWORD", AGENT_PASSWORD)
        .env("PGSSLMODE", "disable");
    c
}

#[test]
fn kill_9_under_a_writing_load_loses_no_committed_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = full_access_audited(dir.path());
    let init = pgbench(&gw, &["-i", "-s", "1", "-q"]).output().unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let mut load = pgbench(&gw, &["-c", "4", "-j", "2", "-T", "20"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill once transactions are committing.
    let deadline = Instant::now() + Duration::from_secs(20);
    while cluster().sql("audit_bench", "SELECT count(*) FROM pgbench_history") == "0" {
        assert!(Instant::now() < deadline, "pgbench committed nothing");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(700));
    gw.child.kill().unwrap();
    gw.child.wait().unwrap();
    let _ = load.wait();
    let committed: usize = cluster()
        .sql("audit_bench", "SELECT count(*) FROM pgbench_history")
        .parse()
        .unwrap();
    assert!(committed > 0);
    let inserts = records(dir.path())
        .iter()
        .filter(|r| {
            r["kind"] == "statement"
                && r["verdict"] == "allowed"
                && r["sql"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("INSERT INTO pgbench_history"))
        })
        .count();
    assert!(
        inserts >= committed,
        "{committed} transactions committed, {inserts} of their INSERTs recorded"
    );

    // A restart continues every stream's chain; verify finds it intact.
    let gw2 = full_access_audited(dir.path());
    let out = psql(&gw2.dsn("shop"), &["-X", "-c", "SELECT 1"], "");
    assert!(out.status.success());
    gw2.terminate();
    let (code, text) = verify(dir.path());
    assert_eq!(code, 0, "{text}");
}

#[test]
fn a_disk_that_refuses_writes_refuses_statements_until_it_takes_them_again() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(GatewayOptions {
        workers: 1,
        file_size_limit: Some(64 * 1024),
        ..audited_options(dir.path(), "")
    });
    let mut raw = gw.raw("shop");
    // Fill the segment up to the limit.
    let mut refused = None;
    'fill: for _ in 0..2000 {
        raw.send(&raw::query(
            "SELECT 'a fairly long statement to fill the audit segment quickly'",
        ));
        // Until ReadyForQuery, or the end of the session.
        while let Some(m) = raw.recv() {
            if m.tag == b'E' {
                refused = m.code();
                break 'fill;
            }
            if m.tag == b'Z' {
                continue 'fill;
            }
        }
        break;
    }
    assert_eq!(refused.as_deref(), Some("58030"), "{}", gw.log_text());
    // The session that met the failure was ended; a new one is refused
    // statement by statement but stays.
    let mut other = gw.raw("shop");
    let reply = other.query("SELECT 1");
    let e = reply.iter().find(|m| m.tag == b'E').expect("refused");
    assert_eq!(e.code().as_deref(), Some("58030"));
    assert!(reply.last().is_some_and(|m| m.tag == b'Z'));
    // The disk takes writes again: the next statement runs.
    // SAFETY: prlimit on our own child process.
    let l = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    let rc = unsafe {
        libc::prlimit(
            gw.child.id() as libc::pid_t,
            libc::RLIMIT_FSIZE,
            &l,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0);
    let reply = other.query("SELECT 42");
    assert_eq!(rows(&reply).0, ["42"], "{}", gw.log_text());
    let rs = records(dir.path());
    let recovered = rs
        .iter()
        .find(|r| r["kind"] == "recovered")
        .unwrap_or_else(|| {
            panic!(
                "no recovered record: {:?}",
                rs.iter().rev().take(6).collect::<Vec<_>>()
            )
        });
    assert!(recovered["lost"].as_u64().unwrap() >= 1);
    assert!(recovered["reason"].as_str().unwrap().contains("writing"));
    // No result for a statement whose record was never written (it never ran).
    for r in rs.iter().filter(|r| r["kind"] == "result") {
        assert!(
            rs.iter().any(|s| s["kind"] == "statement"
                && s["session"] == r["session"]
                && s["n"] == r["n"]),
            "a result without its statement: {r}"
        );
    }
    // The batches cut back left the chain whole.
    drop(other);
    drop(gw);
    let (code, text) = verify(dir.path());
    assert_eq!(code, 0, "{text}");
}

/// A copy of `from` with stream 0's segment's lines changed by `edit`.
fn tampered(from: &Path, edit: impl Fn(&mut Vec<String>)) -> (tempfile::TempDir, PathBuf) {
    let to = tempfile::tempdir().unwrap();
    let mut segment = None;
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "jsonl") {
            let name = p.file_name().unwrap().to_owned();
            let target = to.path().join(&name);
            std::fs::copy(&p, &target).unwrap();
            if name.to_string_lossy().starts_with("w0-") {
                segment = Some(target);
            }
        }
    }
    let segment = segment.expect("a segment of stream 0");
    let mut lines: Vec<String> = std::fs::read_to_string(&segment)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    edit(&mut lines);
    std::fs::write(&segment, lines.join("\n") + "\n").unwrap();
    (to, segment)
}

#[test]
fn verify_finds_an_edit_a_deletion_and_a_swap_in_a_real_session_log() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(GatewayOptions {
        workers: 1,
        ..audited_options(dir.path(), "")
    });
    let out = psql(
        &gw.dsn("shop"),
        &["-v", "ON_ERROR_STOP=0"],
        "SELECT id, email FROM customers ORDER BY id LIMIT 2;\nDELETE FROM customers;\nSELECT 1;\n",
    );
    assert!(stdout(&out).contains("***"), "{}", stdout(&out));
    session_records(dir.path(), |rs| rs.iter().any(|r| r["verdict"] == "denied"));
    drop(gw);
    let (code, text) = verify(dir.path());
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("intact"), "{text}");

    // Lines are numbered from 1; line 4 is the first statement's record.
    let (copy, file) = tampered(dir.path(), |l| {
        let denied = l
            .iter()
            .position(|x| x.contains(r#""verdict":"denied""#))
            .unwrap();
        l[denied] = l[denied].replace("DELETE FROM customers", "SELECT FROM customers");
    });
    let (code, text) = verify(copy.path());
    assert_eq!(code, 1, "{text}");
    let name = file.file_name().unwrap().to_string_lossy().to_string();
    let denied_line = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .position(|x| x.contains(r#""verdict":"denied""#))
        .unwrap()
        + 1;
    assert!(
        text.contains(&format!("{name} line {denied_line}")),
        "{text}"
    );
    assert!(text.contains("edited"), "{text}");

    let (copy, _) = tampered(dir.path(), |l| {
        l.remove(3);
    });
    let (code, text) = verify(copy.path());
    assert_eq!(code, 1, "{text}");
    assert!(text.contains(&format!("{name} line 4")), "{text}");
    assert!(text.contains("missing records"), "{text}");

    let (copy, _) = tampered(dir.path(), |l| l.swap(3, 4));
    let (code, text) = verify(copy.path());
    assert_eq!(code, 1, "{text}");
    assert!(text.contains(&format!("{name} line 4")), "{text}");
    assert!(text.contains("out of order"), "{text}");
}

#[test]
fn a_reload_changes_the_policy_version_records_carry_and_keeps_the_audit_settings() {
    let dir = tempfile::tempdir().unwrap();
    let gw = audited(dir.path(), "");
    let mut raw = gw.raw("shop");
    raw.query("SELECT 1 AS before_reload");
    // A changed [audit] table waits for a restart; the policy changes now.
    let config = gw
        .config_text()
        .replace("[audit]\n", "[audit]\nrecord_params = true\n")
        + "\n# changed\n";
    assert!(gw.reload(&config));
    assert!(
        gw.log_text()
            .lines()
            .any(|l| l.contains("only when pgward restarts") && l.contains("audit")),
        "{}",
        gw.log_text()
    );
    raw.query("SELECT 1 AS after_reload");
    drop(raw);
    let rs = session_records(dir.path(), |rs| {
        rs.iter().any(|r| r["sql"] == "SELECT 1 AS after_reload")
    });
    let policy = |sql: &str| {
        rs.iter()
            .find(|r| r["sql"] == sql)
            .map(|r| r["policy"].clone())
            .unwrap()
    };
    assert_ne!(
        policy("SELECT 1 AS before_reload"),
        policy("SELECT 1 AS after_reload")
    );
    assert_eq!(rs[0]["policy"], policy("SELECT 1 AS before_reload"));
}

#[test]
fn a_portal_run_in_pieces_reports_each_piece_under_its_bind() {
    let dir = tempfile::tempdir().unwrap();
    let gw = audited(dir.path(), "");
    let mut raw = gw.raw("shop");
    let reply = raw.extended(&[
        raw::parse(
            "",
            "SELECT id FROM products ORDER BY id LIMIT 3 /* pieces */",
        ),
        raw::bind("", ""),
        raw::execute("", 1),
        raw::execute("", 1),
        raw::execute("", 0),
        raw::sync(),
    ]);
    assert_eq!(raw::tags(&reply), "12DsDsDCZ");
    drop(raw);
    let rs = session_records(dir.path(), |rs| {
        rs.iter()
            .any(|r| r["sql"].as_str().is_some_and(|s| s.contains("pieces")))
    });
    let bind = rs.iter().find(|r| r["message"] == "bind").unwrap();
    let outcomes: Vec<&str> = rs
        .iter()
        .filter(|r| r["kind"] == "result" && r["n"] == bind["n"])
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["suspended", "suspended", "ok"]);
    let rows: Vec<u64> = rs
        .iter()
        .filter(|r| r["kind"] == "result" && r["n"] == bind["n"])
        .map(|r| r["rows"].as_u64().unwrap())
        .collect();
    assert_eq!(rows, [1, 1, 1]);
    let session = bind["session"].as_str().unwrap();
    let show = Command::new(env!("CARGO_BIN_EXE_pgward"))
        .args(["audit", "replay", "--session", session, "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(show.status.success(), "{text}");
    assert!(!text.contains("not in the log"), "{text}");
    assert!(text.contains("3 row(s)"), "{text}");
}
