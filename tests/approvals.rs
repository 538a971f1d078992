//! Approvals end to end against a real PostgreSQL: a statement held inside
//! a live session until a reviewer approves or denies it (or it expires,
//! or the client cancels it), retry mode's one-time grants, self-approval,
//! a restart with requests pending, the webhook, other sessions while one
//! waits, `/metrics` read by a Prometheus text parser, bearer tokens, the
//! session list and terminate.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use common::audit::*;
use common::*;
use pgward::admin::client::call;
use serde_json::Value;

const READ_TOKEN: &str = "read-only-token-0123456789";
const DBA_TOKEN: &str = "reviewer-dba-token-0123456789";
const AGENT_TOKEN: &str = "reviewer-agent-token-0123456789";

/// The writer role with approval rules; `approval` adds keys (mode, ...).
fn writer(approval: &str) -> String {
    format!(
        r#"[roles.writer]
operations = ["select", "insert", "update", "delete", "ddl", "truncate", "transaction", "set", "show", "cursor"]
read = ["public.*"]
write = ["public.*"]
catalog = true

[roles.writer.approval]
require = ["truncate", "delete_without_where", "unbounded_select:public.customers", "write:public.payments"]
{approval}
"#
    )
}

/// The admin API of a gateway under test.
#[derive(Clone)]
struct Admin {
    url: String,
}

struct Approvals {
    gw: Gateway,
    admin: Admin,
}

/// A gateway whose agent is a writer with approval rules, with the admin
/// API on a free port; `extra` adds config (the webhook, `[audit]`).
fn gateway(approval: &str, extra: &str) -> Approvals {
    let admin_port = free_port();
    let admin = format!("127.0.0.1:{admin_port}");
    let state = tempfile::tempdir().unwrap().keep();
    let extra_config = format!(
        r#"[admin]
listen = "{admin}"
token_env = "T_READ"
state_dir = "{}"
{extra}

[[admin.reviewers]]
name = "dba"
token_env = "T_DBA"

[[admin.reviewers]]
name = "agent"
token_env = "T_AGENT"
"#,
        state.display()
    );
    let gw = Gateway::start(GatewayOptions {
        role: "writer",
        roles: writer(approval),
        workers: 1,
        extra_config,
        env: vec![
            ("T_READ".into(), READ_TOKEN.into()),
            ("T_DBA".into(), DBA_TOKEN.into()),
            ("T_AGENT".into(), AGENT_TOKEN.into()),
        ],
        ..Default::default()
    });
    let admin = Admin {
        url: format!("http://{admin}"),
    };
    admin.wait_up();
    Approvals { gw, admin }
}

impl Approvals {
    fn restart(&mut self) {
        self.gw.restart();
        self.admin.wait_up();
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, Value) {
        self.admin.call(method, path, token, body)
    }

    fn wait_pending(&self, sql: &str) -> Value {
        self.admin.wait_pending(sql)
    }

    fn decide(&self, id: &str, verb: &str, token: &str, reason: Option<&str>) -> (u16, Value) {
        self.admin.decide(id, verb, token, reason)
    }
}

impl Admin {
    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, Value) {
        let (status, bytes) = call(
            &format!("{}{path}", self.url),
            method,
            token,
            body.map(str::as_bytes),
            Duration::from_secs(10),
        )
        .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    fn pending(&self) -> Vec<Value> {
        let (status, v) = self.call("GET", "/v1/approvals", Some(READ_TOKEN), None);
        assert_eq!(status, 200, "{v}");
        v["approvals"].as_array().unwrap().clone()
    }

    /// Waits for a pending request whose SQL contains `sql`.
    fn wait_pending(&self, sql: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(r) = self
                .pending()
                .into_iter()
                .find(|r| r["state"] == "pending" && r["sql"].as_str().unwrap().contains(sql))
            {
                return r;
            }
            assert!(Instant::now() < deadline, "no pending request for {sql}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the admin API answers (it starts after the workers).
    fn wait_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while call(
            &format!("{}/healthz", self.url),
            "GET",
            None,
            None,
            Duration::from_secs(1),
        )
        .is_err()
        {
            assert!(Instant::now() < deadline, "the admin API did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn decide(&self, id: &str, verb: &str, token: &str, reason: Option<&str>) -> (u16, Value) {
        let body = serde_json::json!({ "reason": reason }).to_string();
        self.call(
            "POST",
            &format!("/v1/approvals/{id}/{verb}"),
            Some(token),
            Some(&body),
        )
    }

    fn cli(&self, args: &[&str], token: &str) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_pgward"))
            .args(args)
            .env("PGWARD_ADMIN_URL", &self.url)
            .env("PGWARD_ADMIN_TOKEN", token)
            .output()
            .unwrap()
    }
}

/// A scratch table of `rows` rows, made directly.
fn table(name: &str, rows: u32) {
    cluster().sql(
        "shop",
        &format!("DROP TABLE IF EXISTS {name}; CREATE TABLE {name} AS SELECT g AS id FROM generate_series(1, {rows}) g;"),
    );
}

#[test]
fn a_held_statement_runs_once_approved_through_the_cli() {
    let a = gateway("mode = \"hold\"\nhold_timeout = \"30s\"", "");
    table("appr_hold_ok", 5);
    let dsn = a.gw.dsn("shop");
    let client = std::thread::spawn(move || {
        psql(
            &dsn,
            &["-v", "ON_ERROR_STOP=1"],
            "TRUNCATE appr_hold_ok;\nSELECT 'after';\n",
        )
    });
    let r = a.wait_pending("TRUNCATE appr_hold_ok");
    assert_eq!(r["reasons"], serde_json::json!(["truncate"]));
    assert_eq!(
        (r["user"].as_str(), r["database"].as_str()),
        (Some("agent"), Some("shop"))
    );
    let id = r["id"].as_str().unwrap();
    // The session shows as held, with its statement.
    let (_, s) = a.call("GET", "/v1/sessions", Some(READ_TOKEN), None);
    let held: Vec<&Value> = s["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["state"] == "held")
        .collect();
    assert_eq!(held.len(), 1, "{s}");
    assert!(held[0]["statement"]
        .as_str()
        .unwrap()
        .contains("TRUNCATE appr_hold_ok"));
    // A read token cannot decide.
    let out = a.admin.cli(&["approvals", "approve", id], READ_TOKEN);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        cluster().sql("shop", "SELECT count(*) FROM appr_hold_ok"),
        "5"
    );
    let out = a.admin.cli(
        &["approvals", "approve", id, "--reason", "cleanup"],
        DBA_TOKEN,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("approved"), "{}", stdout(&out));
    let out = client.join().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("held for approval (request {id})")),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("after"));
    assert_eq!(
        cluster().sql("shop", "SELECT count(*) FROM appr_hold_ok"),
        "0"
    );
    // The approval is used: the same statement needs a new one.
    let (_, r) = a.call(
        "GET",
        &format!("/v1/approvals/{id}"),
        Some(READ_TOKEN),
        None,
    );
    assert_eq!(r["state"], "used");
}

#[tokio::test]
async fn a_denied_or_expired_hold_fails_and_the_session_goes_on() {
    let a = gateway("mode = \"hold\"\nhold_timeout = \"2s\"", "");
    table("appr_hold_no", 3);
    let client = a.gw.connect("shop").await;
    let held = tokio::spawn(async move {
        let e = client
            .batch_execute("DELETE FROM appr_hold_no")
            .await
            .unwrap_err();
        (client, e)
    });
    let r = tokio::task::spawn_blocking({
        let admin = a.admin.clone();
        move || admin.wait_pending("DELETE FROM appr_hold_no")
    })
    .await
    .unwrap();
    let id = r["id"].as_str().unwrap().to_string();
    assert_eq!(r["reasons"], serde_json::json!(["delete_without_where"]));
    // A denial needs a reason.
    assert_eq!(a.decide(&id, "deny", DBA_TOKEN, None).0, 400);
    assert_eq!(
        a.decide(&id, "deny", DBA_TOKEN, Some("not on Fridays")).0,
        200
    );
    let (client, e) = held.await.unwrap();
    let db = e.as_db_error().unwrap();
    assert_eq!(db.code().code(), "42501");
    assert!(
        db.message().contains("dba denied it: not on Fridays"),
        "{}",
        db.message()
    );
    assert_eq!(
        cluster().sql("shop", "SELECT count(*) FROM appr_hold_no"),
        "3"
    );
    // The session goes on, and a second hold with nobody deciding expires.
    assert_eq!(
        client
            .query_one("SELECT 7", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        7
    );
    let started = Instant::now();
    let e = client
        .batch_execute("DELETE FROM appr_hold_no")
        .await
        .unwrap_err();
    assert!(started.elapsed() >= Duration::from_secs(2));
    let db = e.as_db_error().unwrap();
    assert_eq!(db.code().code(), "42501");
    assert!(
        db.message().contains("no reviewer decided within 2 s"),
        "{}",
        db.message()
    );
    assert_eq!(
        client
            .query_one("SELECT 8", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        8
    );
    // A decision after the end is refused.
    let (_, all) = a.call("GET", "/v1/approvals?state=all", Some(READ_TOKEN), None);
    let expired = all["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["state"] == "expired")
        .unwrap()
        .clone();
    assert_eq!(
        a.decide(expired["id"].as_str().unwrap(), "approve", DBA_TOKEN, None)
            .0,
        409
    );
}

#[tokio::test]
async fn a_cancel_withdraws_a_held_statement() {
    let a = gateway("mode = \"hold\"\nhold_timeout = \"30s\"", "");
    table("appr_hold_cancel", 2);
    let client = a.gw.connect("shop").await;
    let cancel = client.cancel_token();
    let held = tokio::spawn(async move {
        let e = client
            .batch_execute("TRUNCATE appr_hold_cancel")
            .await
            .unwrap_err();
        (client, e)
    });
    let admin = a.admin.clone();
    let r = tokio::task::spawn_blocking(move || admin.wait_pending("TRUNCATE appr_hold_cancel"))
        .await
        .unwrap();
    cancel.cancel_query(tokio_postgres::NoTls).await.unwrap();
    let (client, e) = held.await.unwrap();
    assert_eq!(e.as_db_error().unwrap().code().code(), "57014");
    let (_, r) = a.call(
        "GET",
        &format!("/v1/approvals/{}", r["id"].as_str().unwrap()),
        Some(READ_TOKEN),
        None,
    );
    assert_eq!(r["state"], "withdrawn", "{r}");
    assert_eq!(
        client
            .query_one("SELECT 1", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        1
    );
    assert_eq!(
        cluster().sql("shop", "SELECT count(*) FROM appr_hold_cancel"),
        "2"
    );
}

#[tokio::test]
async fn retry_mode_runs_the_identical_statement_once_after_approval() {
    let a = gateway("mode = \"retry\"\ngrant_ttl = \"10m\"", "");
    table("appr_retry", 4);
    let client = a.gw.connect("shop").await;
    let sql = "DELETE FROM appr_retry WHERE true";
    let e = client.batch_execute(sql).await.unwrap_err();
    let db = e.as_db_error().unwrap();
    assert_eq!(db.code().code(), "PW001");
    let id = db
        .message()
        .strip_prefix("pgward: approval required (request ")
        .unwrap()
        .trim_end_matches(')')
        .to_string();
    // Asking again names the same request.
    let again = client.batch_execute(sql).await.unwrap_err();
    assert!(again.as_db_error().unwrap().message().contains(&id));
    // The requester's own reviewer token is refused.
    let (status, v) = a.decide(&id, "approve", AGENT_TOKEN, None);
    assert_eq!(status, 403, "{v}");
    assert_eq!(a.decide(&id, "approve", DBA_TOKEN, None).0, 200);
    // Other text is not granted; the identical text runs once.
    let other = client
        .batch_execute("DELETE FROM appr_retry WHERE 1 = 1")
        .await
        .unwrap_err();
    assert_eq!(other.as_db_error().unwrap().code().code(), "PW001");
    client.batch_execute(sql).await.unwrap();
    assert_eq!(
        cluster().sql("shop", "SELECT count(*) FROM appr_retry"),
        "0"
    );
    let third = client.batch_execute(sql).await.unwrap_err();
    assert_eq!(third.as_db_error().unwrap().code().code(), "PW001");
    assert!(!third.as_db_error().unwrap().message().contains(&id));
}

#[tokio::test]
async fn retry_grants_bind_the_parameters_too() {
    let a = gateway("mode = \"retry\"", "");
    let client = a.gw.connect("shop").await;
    let sql = "SELECT id FROM customers WHERE id > $1";
    let e = client.query(sql, &[&0i32]).await.unwrap_err();
    let db = e.as_db_error().unwrap();
    assert_eq!(db.code().code(), "PW001", "{}", db.message());
    let r = a.wait_pending(sql);
    let id = r["id"].as_str().unwrap();
    assert_eq!(
        r["params"],
        serde_json::json!(["\\x00000000"]),
        "binary int4 parameter as hex"
    );
    assert_eq!(a.decide(id, "approve", DBA_TOKEN, None).0, 200);
    // Another value is another statement.
    let e = client.query(sql, &[&1i32]).await.unwrap_err();
    assert_eq!(e.as_db_error().unwrap().code().code(), "PW001");
    let rows = client.query(sql, &[&0i32]).await.unwrap();
    assert!(!rows.is_empty());
    // Through a view of customers, too.
    let e = client
        .query("SELECT * FROM customer_directory", &[])
        .await
        .unwrap_err();
    assert_eq!(e.as_db_error().unwrap().code().code(), "PW001");
    client
        .query("SELECT * FROM customer_directory LIMIT 3", &[])
        .await
        .unwrap();
}

#[test]
fn requests_survive_a_restart_and_held_ones_are_abandoned() {
    let mut a = gateway("mode = \"retry\"", "");
    table("appr_restart", 2);
    let out = psql(&a.gw.dsn("shop"), &[], "TRUNCATE appr_restart;");
    assert!(
        stderr(&out).contains("approval required"),
        "{}",
        stderr(&out)
    );
    let r = a.wait_pending("TRUNCATE appr_restart");
    let id = r["id"].as_str().unwrap().to_string();
    a.restart();
    let (_, after) = a.call(
        "GET",
        &format!("/v1/approvals/{id}"),
        Some(READ_TOKEN),
        None,
    );
    assert_eq!(after["state"], "pending", "{after}");
    assert_eq!(a.decide(&id, "approve", DBA_TOKEN, None).0, 200);
    a.restart();
    let out = psql(
        &a.gw.dsn("shop"),
        &["-v", "ON_ERROR_STOP=1"],
        "TRUNCATE appr_restart;",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        cluster().sql("shop", "SELECT count(*) FROM appr_restart"),
        "0"
    );
}

#[test]
fn a_held_statement_whose_gateway_restarted_fails_cleanly() {
    let mut a = gateway("mode = \"hold\"\nhold_timeout = \"60s\"", "");
    table("appr_restart_hold", 2);
    let dsn = a.gw.dsn("shop");
    let client = std::thread::spawn(move || psql(&dsn, &[], "TRUNCATE appr_restart_hold;"));
    let r = a.wait_pending("TRUNCATE appr_restart_hold");
    a.restart();
    let out = client.join().unwrap();
    assert!(
        !out.status.success() || stderr(&out).contains("server closed the connection"),
        "{}",
        stderr(&out)
    );
    let (_, after) = a.call(
        "GET",
        &format!("/v1/approvals/{}", r["id"].as_str().unwrap()),
        Some(READ_TOKEN),
        None,
    );
    assert_eq!(after["state"], "abandoned", "{after}");
    assert_eq!(
        a.decide(r["id"].as_str().unwrap(), "approve", DBA_TOKEN, None)
            .0,
        409
    );
    assert_eq!(
        cluster().sql("shop", "SELECT count(*) FROM appr_restart_hold"),
        "2"
    );
}

#[test]
fn the_webhook_is_told_of_each_new_request() {
    let hook = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", hook.local_addr().unwrap());
    let a = gateway("mode = \"retry\"", &format!("webhook = \"{url}\""));
    let received = std::thread::spawn(move || receive_http(&hook));
    let out = psql(
        &a.gw.dsn("shop"),
        &["-v", "VERBOSITY=verbose"],
        "SELECT * FROM customers;",
    );
    assert!(stderr(&out).contains("PW001"), "{}", stderr(&out));
    let text = received.join().unwrap();
    assert!(text.starts_with("POST /hook HTTP/1.1"), "{text}");
    let body: Value = serde_json::from_str(&text[text.find("\r\n\r\n").unwrap() + 4..]).unwrap();
    let id = body["request"]["id"].as_str().unwrap();
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .contains(&format!("pgward approvals approve {id}")),
        "{body}"
    );
    assert_eq!(body["request"]["sql"], "SELECT * FROM customers;");
}

#[tokio::test]
async fn other_sessions_on_the_same_worker_run_on_while_one_waits() {
    let a = gateway("mode = \"hold\"\nhold_timeout = \"5s\"", "");
    table("appr_busy", 1);
    let held = a.gw.connect("shop").await;
    let waiting = tokio::spawn(async move { held.batch_execute("TRUNCATE appr_busy").await });
    let admin = a.admin.clone();
    tokio::task::spawn_blocking(move || admin.wait_pending("TRUNCATE appr_busy"))
        .await
        .unwrap();
    // One worker: this session shares it with the held one.
    let other = a.gw.connect("shop").await;
    let mut slowest = Duration::ZERO;
    for i in 0..50 {
        let t = Instant::now();
        let v: i32 = other
            .query_one("SELECT $1::int", &[&i])
            .await
            .unwrap()
            .get(0);
        assert_eq!(v, i);
        slowest = slowest.max(t.elapsed());
    }
    assert!(
        !waiting.is_finished(),
        "the held statement is still waiting"
    );
    // Not a benchmark: only that nobody waits behind the hold (5 s).
    assert!(slowest < Duration::from_secs(1), "slowest {slowest:?}");
    eprintln!("slowest of 50 queries beside a held session: {slowest:?}");
    let _ = waiting.await;
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_count_what_happened() {
    let a = gateway("mode = \"retry\"", "");
    let client = a.gw.connect("shop").await;
    client
        .query("SELECT id FROM products LIMIT 2", &[])
        .await
        .unwrap();
    // Refused by pgward: a built-in rule, and a function not granted.
    let _ = client.batch_execute("SET ROLE postgres").await.unwrap_err();
    let _ = client
        .query("SELECT pg_read_file('/etc/passwd')", &[])
        .await
        .unwrap_err();
    let _ = client
        .batch_execute("TRUNCATE appr_none")
        .await
        .unwrap_err();
    // Workers fold their counts every second.
    let deadline = Instant::now() + Duration::from_secs(10);
    let samples = loop {
        let (status, bytes) = call(
            &format!("{}/metrics", a.admin.url),
            "GET",
            Some(READ_TOKEN),
            None,
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(status, 200);
        let text = String::from_utf8(bytes).unwrap();
        let samples =
            pgward::admin::prometheus::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let value = |name: &str, label: (&str, &str)| {
            samples
                .iter()
                .find(|s| s.name == name && s.label(label.0) == Some(label.1))
                .map(|s| s.value)
        };
        let denied = value("pgward_statements_total", ("verdict", "denied")).unwrap_or(0.0);
        let requested = value("pgward_approvals_total", ("outcome", "requested")).unwrap_or(0.0);
        if denied >= 2.0 && requested >= 1.0 {
            break samples;
        }
        assert!(Instant::now() < deadline, "{text}\n{}", a.gw.log_text());
        std::thread::sleep(Duration::from_millis(200));
    };
    let get = |name: &str| {
        samples
            .iter()
            .filter(|s| s.name == name)
            .map(|s| s.value)
            .sum::<f64>()
    };
    assert!(get("pgward_statements_total") >= 3.0);
    assert!(get("pgward_sessions_opened_total") >= 1.0);
    assert!(get("pgward_added_seconds_count") >= 3.0);
    assert_eq!(get("pgward_sessions"), 1.0);
    assert!(samples
        .iter()
        .any(|s| s.name == "pgward_denials_total" && s.label("rule").is_some()));
}

#[test]
fn tokens_are_required_and_checked() {
    let a = gateway("mode = \"retry\"", "");
    for (path, token) in [
        ("/v1/approvals", None),
        ("/v1/approvals", Some("wrong-token-0123456789")),
        ("/v1/sessions", Some("")),
        ("/metrics", None),
    ] {
        let (status, bytes) = call(
            &format!("{}{path}", a.admin.url),
            "GET",
            token,
            None,
            Duration::from_secs(5),
        )
        .unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert_eq!(status, 401, "{path} {token:?}: {text}");
        assert!(
            !text.contains("approvals\"") && !text.contains("pgward_"),
            "{text}"
        );
    }
    let (status, _) = a.call("POST", "/v1/sessions/x/terminate", Some(READ_TOKEN), None);
    assert_eq!(status, 403);
    let (status, _) = a.call("GET", "/healthz", None, None);
    assert_eq!(status, 200);
}

#[tokio::test]
async fn sessions_are_listed_and_can_be_terminated() {
    let a = gateway("mode = \"retry\"", "");
    let client = a.gw.connect("shop").await;
    client.query("SELECT 42", &[]).await.unwrap();
    let (_, v) = a.call("GET", "/v1/sessions", Some(READ_TOKEN), None);
    let s = &v["sessions"][0];
    assert_eq!(
        (
            s["user"].as_str(),
            s["database"].as_str(),
            s["state"].as_str()
        ),
        (Some("agent"), Some("shop"), Some("idle"))
    );
    assert_eq!(s["statement"], "SELECT 42");
    let out = a.admin.cli(&["sessions"], READ_TOKEN);
    assert!(stdout(&out).contains("SELECT 42"), "{}", stdout(&out));
    let id = s["id"].as_str().unwrap();
    let out = a.admin.cli(&["sessions", "terminate", id], DBA_TOKEN);
    assert!(out.status.success(), "{}", stderr(&out));
    let e = client.query("SELECT 1", &[]).await.unwrap_err();
    let db = e
        .as_db_error()
        .map(|d| (d.code().code().to_string(), d.message().to_string()));
    assert!(
        db.as_ref().is_some_and(|(c, _)| c == "57P01") || client.is_closed(),
        "{e:?}"
    );
    let (_, v) = a.call("GET", "/v1/sessions", Some(READ_TOKEN), None);
    assert!(v["sessions"].as_array().unwrap().is_empty(), "{v}");
}

#[test]
fn requests_and_decisions_are_in_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let a = gateway(
        "mode = \"hold\"\nhold_timeout = \"30s\"",
        &format!("\n[audit]\ndir = \"{}\"\n", dir.path().display()),
    );
    table("appr_audit", 2);
    let dsn = a.gw.dsn("shop");
    let client = std::thread::spawn(move || psql(&dsn, &[], "TRUNCATE appr_audit;"));
    let r = a.wait_pending("TRUNCATE appr_audit");
    let id = r["id"].as_str().unwrap();
    assert_eq!(a.decide(id, "approve", DBA_TOKEN, Some("ok")).0, 200);
    assert!(client.join().unwrap().status.success());
    let mine = session_records(dir.path(), |rs| rs.iter().any(|r| r["approval"] == id));
    let statement = mine
        .iter()
        .find(|r| r["kind"] == "statement" && r["approval"] == id)
        .unwrap();
    assert_eq!(
        (
            statement["verdict"].as_str(),
            statement["approver"].as_str()
        ),
        (Some("allowed"), Some("dba"))
    );
    let outcomes: Vec<&str> = mine
        .iter()
        .filter(|r| r["kind"] == "approval")
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    // The session's: held, then approved; the admin thread's: approved.
    assert_eq!(outcomes, ["held", "approved", "approved"]);
    // The reviewer's decision, recorded by the admin thread.
    let all = records(dir.path());
    let decision = all
        .iter()
        .find(|r| r["kind"] == "approval" && r["outcome"] == "approved")
        .unwrap();
    assert_eq!(
        (
            decision["approval"].as_str(),
            decision["approver"].as_str(),
            decision["reason"].as_str()
        ),
        (Some(id), Some("dba"), Some("ok"))
    );
    verify(dir.path());
}

#[test]
fn the_admin_listener_binds_to_loopback_by_default() {
    let c = pgward::config::Config::from_toml(
        "[server]\nlisten = [\"127.0.0.1:6432\"]\n[databases.d]\nhost = \"h\"\nuser = \"u\"\n[admin]\n",
        "t.toml",
        Path::new("."),
    )
    .unwrap();
    let admin = c.admin.unwrap();
    assert!(admin.listen.ip().is_loopback(), "{}", admin.listen);
    assert_eq!(admin.listen.port(), 6433);
}

#[tokio::test]
async fn statements_pipelined_behind_a_held_one_wait_and_then_run_in_order() {
    let a = gateway("mode = \"hold\"\nhold_timeout = \"30s\"", "");
    table("appr_pipe", 3);
    let client = std::sync::Arc::new(a.gw.connect("shop").await);
    for approve in [true, false] {
        cluster().sql(
            "shop",
            "INSERT INTO appr_pipe SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM appr_pipe)",
        );
        let (c1, c2) = (client.clone(), client.clone());
        // tokio-postgres pipelines both: the TRUNCATE's Bind is held, the
        // SELECT's messages wait behind it unread.
        let held = tokio::spawn(async move { c1.execute("TRUNCATE appr_pipe", &[]).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let behind = tokio::spawn(async move { c2.query_one("SELECT 7", &[]).await });
        let admin = a.admin.clone();
        let r = tokio::task::spawn_blocking(move || admin.wait_pending("TRUNCATE appr_pipe"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !behind.is_finished(),
            "the statement behind the held one waited"
        );
        let id = r["id"].as_str().unwrap();
        if approve {
            assert_eq!(a.decide(id, "approve", DBA_TOKEN, None).0, 200);
            held.await.unwrap().unwrap();
            assert_eq!(cluster().sql("shop", "SELECT count(*) FROM appr_pipe"), "0");
        } else {
            assert_eq!(a.decide(id, "deny", DBA_TOKEN, Some("no")).0, 200);
            let e = held.await.unwrap().unwrap_err();
            assert_eq!(e.as_db_error().unwrap().code().code(), "42501");
            assert_ne!(cluster().sql("shop", "SELECT count(*) FROM appr_pipe"), "0");
        }
        let v: i32 = behind.await.unwrap().unwrap().get(0);
        assert_eq!(v, 7);
    }
}
