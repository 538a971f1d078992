//! Red team 11: just-in-time approvals (risks, request keys, holds, the
//! admin API and its CLI), against a real PostgreSQL.
//!
//! Each `f*` test is one confirmed finding and asserts the SAFE behaviour,
//! so it fails until the finding is fixed. The `held_*` tests are attacks
//! that pgward withstood when this was written; they guard against
//! regressions.
//!
//! F1-F8 were confirmed against commit 7c74671 (and the release binary
//! built before it); fixes for them landed while this pass ran (cc23dd8
//! for F1-F5, key context for F6-F8 in the working tree), so their tests
//! pass there and stay as regression tests. F8b, F9-F14 fail.
//!
//! The attacker is the agent: it holds the pgward login `agent`, has read
//! the source, and wants a statement that matches one of its role's risks
//! to run without a reviewer having approved that statement.

mod common;

use std::time::{Duration, Instant};

use common::raw::{self, frame, Msg};
use common::*;
use pgward::admin::client::call;
use serde_json::Value;
use tokio_postgres::types::Type;

const READ_TOKEN: &str = "rt11-read-only-token-0123456789";
const DBA_TOKEN: &str = "rt11-reviewer-dba-token-0123456789";

/// A suffix that keeps this process's tables apart from other test
/// binaries' (and out of the catalog comparisons: `name_<digits>`).
fn pid() -> u32 {
    std::process::id()
}

/// The writer role of docs/approvals.md, with `merge` and `set` too, and
/// approval rules; `mode` adds keys (mode, hold_timeout).
fn writer(mode: &str) -> String {
    format!(
        r#"[roles.writer]
operations = ["select", "insert", "update", "delete", "merge", "ddl", "truncate", "transaction", "set", "show", "cursor", "copy_out"]
read = ["public.*"]
write = ["public.*"]
catalog = true

[roles.writer.approval]
require = ["truncate", "delete_without_where", "update_without_where", "unbounded_select:public.customers", "write:public.rt11_pay*"]
{mode}
"#
    )
}

struct Approvals {
    gw: Gateway,
    url: String,
}

/// A gateway whose agent has `roles` (the role named `role`), with the
/// admin API on a free port and one reviewer, `dba`.
fn gateway_with(role: &'static str, roles: String) -> Approvals {
    gateway_admin(role, roles, "")
}

/// The same, with more keys in `[admin]` (`webhook = ...`).
fn gateway_admin(role: &'static str, roles: String, admin_keys: &str) -> Approvals {
    let admin_port = free_port();
    let state = tempfile::tempdir().unwrap().keep();
    let extra_config = format!(
        r#"[admin]
listen = "127.0.0.1:{admin_port}"
token_env = "RT11_READ"
state_dir = "{}"
{admin_keys}

[[admin.reviewers]]
name = "dba"
token_env = "RT11_DBA"
"#,
        state.display()
    );
    let gw = Gateway::start(GatewayOptions {
        role,
        roles,
        workers: 1,
        extra_config,
        env: vec![
            ("RT11_READ".into(), READ_TOKEN.into()),
            ("RT11_DBA".into(), DBA_TOKEN.into()),
        ],
        ..Default::default()
    });
    let a = Approvals {
        gw,
        url: format!("http://127.0.0.1:{admin_port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while call(
        &format!("{}/healthz", a.url),
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
    a
}

fn retry() -> Approvals {
    gateway_with("writer", writer("mode = \"retry\""))
}

fn hold() -> Approvals {
    gateway_with("writer", writer("mode = \"hold\"\nhold_timeout = \"20s\""))
}

impl Approvals {
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

    /// Waits for a pending request whose SQL contains `sql`.
    fn wait_pending(&self, sql: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, v) = self.call("GET", "/v1/approvals", Some(READ_TOKEN), None);
            assert_eq!(status, 200, "{v}");
            if let Some(r) = v["approvals"].as_array().unwrap().iter().find(|r| {
                r["state"] == "pending" && r["sql"].as_str().unwrap_or_default().contains(sql)
            }) {
                return r.clone();
            }
            assert!(Instant::now() < deadline, "no pending request for {sql}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn decide(&self, id: &str, verb: &str, reason: Option<&str>) -> u16 {
        let body = serde_json::json!({ "reason": reason }).to_string();
        self.call(
            "POST",
            &format!("/v1/approvals/{id}/{verb}"),
            Some(DBA_TOKEN),
            Some(&body),
        )
        .0
    }

    fn approve(&self, id: &str) {
        assert_eq!(self.decide(id, "approve", Some("looks fine")), 200);
    }
}

/// Drops the named tables (and what depends on them) when it goes out of
/// scope, a failed assertion included: the cluster is shared.
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let sql = format!("DROP TABLE IF EXISTS {} CASCADE", self.0.join(", "));
        let _ = std::process::Command::new("psql")
            .args(["-X", "-q", &cluster().direct_dsn("shop"), "-c", &sql])
            .output();
    }
}

/// A table `name (id int primary key, note text)` with ids 1..=rows, made
/// directly as the service login; dropped with the value returned.
#[must_use]
fn table(name: &str, rows: u32) -> Cleanup {
    cluster().sql(
        "shop",
        &format!(
            "DROP TABLE IF EXISTS {name} CASCADE; CREATE TABLE {name} (id int PRIMARY KEY, note text); \
             INSERT INTO {name} SELECT g, 'n' || g FROM generate_series(1, {rows}) g;"
        ),
    );
    Cleanup(vec![name.to_string()])
}

fn count(name: &str) -> u32 {
    cluster()
        .sql("shop", &format!("SELECT count(*) FROM {name}"))
        .parse()
        .unwrap()
}

/// The SQLSTATE of a tokio-postgres error.
fn code(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.code().code().to_string())
        .unwrap_or_else(|| format!("{e:?}"))
}

/// Runs `sql` by the simple protocol; the SQLSTATE if refused, else the
/// number of rows it returned.
async fn simple(c: &tokio_postgres::Client, sql: &str) -> Result<usize, String> {
    match c.simple_query(sql).await {
        Ok(msgs) => Ok(msgs
            .iter()
            .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
            .count()),
        Err(e) => Err(code(&e)),
    }
}

/// The request id a PW001 refusal names.
fn request_id(e: &tokio_postgres::Error) -> String {
    let m = e.as_db_error().expect("a database error").message();
    m.strip_prefix("pgward: approval required (request ")
        .unwrap_or_else(|| panic!("not a PW001 refusal: {m}"))
        .trim_end_matches(')')
        .to_string()
}

/// A Bind of the unnamed statement to the unnamed portal, every parameter
/// in `format` (0 text, 1 binary), text results.
fn bind_params(format: i16, values: &[&[u8]]) -> Vec<u8> {
    let mut body = vec![0u8, 0u8];
    body.extend(1i16.to_be_bytes());
    body.extend(format.to_be_bytes());
    body.extend((values.len() as i16).to_be_bytes());
    for v in values {
        body.extend((v.len() as i32).to_be_bytes());
        body.extend_from_slice(v);
    }
    body.extend(0i16.to_be_bytes());
    frame(b'B', &body)
}

fn error_of(reply: &[Msg]) -> Option<(String, String)> {
    reply.iter().find(|m| m.tag == b'E').map(|m| {
        (
            m.code().unwrap_or_default(),
            m.field(b'M').unwrap_or_default(),
        )
    })
}

// ---------------------------------------------------------------------------
// Findings
// ---------------------------------------------------------------------------

/// F1. `FETCH FIRST n ROWS WITH TIES` is read as a bound of n rows, but it
/// returns every row that ties with the n-th. Ordering by a constant
/// expression (`ORDER BY id * 0`) makes every row tie, so
/// `SELECT ... FROM customers ORDER BY id * 0 FETCH FIRST 1 ROWS WITH TIES`
/// returns the whole table while `unbounded_select:public.customers` sees
/// "at most 1 row" and asks nobody.
///
/// At fault: `select_body` in src/sql/queries.rs takes `limit_count` as the
/// bound without looking at `limit_option` (LIMIT_OPTION_WITH_TIES).
#[tokio::test]
async fn f1_fetch_first_with_ties_reads_the_whole_table_without_approval() {
    let a = retry();
    let c = a.gw.connect("shop").await;
    let sql = "SELECT id, email, ssn FROM customers ORDER BY id * 0 FETCH FIRST 1 ROWS WITH TIES";
    let simple_result = simple(&c, sql).await;
    assert_eq!(
        simple_result,
        Err("PW001".to_string()),
        "WITH TIES returned {simple_result:?} rows of customers without approval"
    );
    let extended = c
        .query(sql, &[])
        .await
        .map(|r| r.len())
        .map_err(|e| code(&e));
    assert_eq!(extended, Err("PW001".to_string()), "extended protocol");
}

/// F2. A LIMIT bounds the rows of one run of its SELECT, but a LATERAL
/// subquery or a scalar subquery in the output list runs once per outer
/// row. `SELECT c.* FROM generate_series(1, 100000) g, LATERAL (SELECT *
/// FROM customers WHERE id = g LIMIT 1) c` returns every customer (one per
/// id) while pgward records customers as bounded by 1 row; likewise
/// `SELECT (SELECT email FROM customers WHERE id = g LIMIT 1) FROM
/// generate_series(1, 100000) g`.
///
/// At fault: `select_body` (src/sql/queries.rs) bounds the reads of a level
/// by its own LIMIT even when the level is correlated (LATERAL, a sublink),
/// i.e. run many times. A correlated level's bound is its LIMIT times the
/// rows of every level it depends on: unknown, so `None`.
#[tokio::test]
async fn f2_a_correlated_limit_bounds_one_run_not_the_statement() {
    let a = retry();
    let c = a.gw.connect("shop").await;
    for sql in [
        "SELECT c.id, c.email, c.ssn FROM generate_series(1, 100000) g, \
         LATERAL (SELECT * FROM customers WHERE id = g LIMIT 1) c",
        "SELECT (SELECT email FROM customers WHERE id = g LIMIT 1) FROM generate_series(1, 100000) g",
        "SELECT ARRAY(SELECT c FROM customers c WHERE c.id = g LIMIT 1) FROM generate_series(1, 100000) g",
    ] {
        let r = simple(&c, sql).await;
        assert_eq!(
            r,
            Err("PW001".to_string()),
            "{sql}: ran without approval ({r:?} rows)"
        );
    }
}

/// F3. `delete_without_where` (and `update_without_where`) count a WHERE
/// as a filter when it names a column of the target. An unqualified name
/// inside a subquery about another table is taken for the target's column
/// when both tables have a column of that name, although PostgreSQL binds
/// it to the nearest FROM item (the other table). docs/approvals.md lists
/// "`WHERE EXISTS (...)` about another table" as unfiltered; yet
/// `DELETE FROM t WHERE EXISTS (SELECT 1 FROM other WHERE id > 0)` deletes
/// every row of t with no approval.
///
/// At fault: `filter` in src/sql/queries.rs counts every `column_use` of
/// the target relation during the WHERE walk, and the walker ties an
/// unqualified column to every relation in every enclosing scope. A column
/// counts as a filter only if it resolves to the target's range variable:
/// qualified by its alias or name, or unqualified with no inner FROM item
/// between (and, conservatively, none at all when the inner scope might
/// have the column).
#[tokio::test]
async fn f3_an_unqualified_column_of_another_table_counts_as_a_filter() {
    let a = retry();
    let (t, other) = (
        format!("rt11_orders_{}", pid()),
        format!("rt11_other_{}", pid()),
    );
    let _drop = table(&t, 5);
    let _drop = table(&other, 1);
    let c = a.gw.connect("shop").await;
    let delete = format!("DELETE FROM {t} WHERE EXISTS (SELECT 1 FROM {other} WHERE id > 0)");
    let r = simple(&c, &delete).await;
    let left = count(&t);
    let update =
        format!("UPDATE {t} SET note = 'gone' WHERE EXISTS (SELECT 1 FROM {other} WHERE id > 0)");
    let u = simple(&c, &update).await;
    assert_eq!(
        (r, left),
        (Err("PW001".to_string()), 5),
        "{delete} ran without approval"
    );
    assert_eq!(u, Err("PW001".to_string()), "{update} ran without approval");
}

/// F4. MERGE deletes or updates every matched row, and `ON true` matches
/// every row: `MERGE INTO t USING (SELECT 1) s ON true WHEN MATCHED THEN
/// DELETE` empties t, `... THEN UPDATE SET ...` rewrites all of it. Neither
/// counts for `delete_without_where` / `update_without_where` (a role with
/// `merge`, `delete` and `update`).
///
/// At fault: `merge_in_scope` (src/sql/queries.rs) records the DELETE and
/// UPDATE operations but never `unfiltered`: a MERGE action is unfiltered
/// unless the join condition (and the action's own condition) names a
/// column of the target.
#[tokio::test]
async fn f4_merge_on_true_deletes_every_row_without_approval() {
    let a = retry();
    let t = format!("rt11_morders_{}", pid());
    let _drop = table(&t, 5);
    let c = a.gw.connect("shop").await;
    let update =
        format!("MERGE INTO {t} t USING (SELECT 1 AS k) s ON true WHEN MATCHED THEN UPDATE SET note = 'gone'");
    let u = simple(&c, &update).await;
    let delete =
        format!("MERGE INTO {t} t USING (SELECT 1 AS k) s ON true WHEN MATCHED THEN DELETE");
    let r = simple(&c, &delete).await;
    let left = count(&t);
    assert_eq!(
        (r, left),
        (Err("PW001".to_string()), 5),
        "{delete} ran without approval"
    );
    assert_eq!(u, Err("PW001".to_string()), "{update} ran without approval");
}

/// F5. `INSERT INTO t SELECT * FROM t ON CONFLICT (id) DO UPDATE SET ...`
/// conflicts on every row and so updates all of t; it never counts for
/// `update_without_where` (a role with `insert` and `update`).
///
/// At fault: `insert_body`/`insert_in_scope` (src/sql/queries.rs) add the
/// UPDATE operation for DO UPDATE but never `unfiltered`. An upsert whose
/// rows come from a query (not a VALUES list of constants) and whose DO
/// UPDATE has no WHERE naming the target should count as unfiltered.
#[tokio::test]
async fn f5_an_upsert_from_the_table_itself_updates_every_row_without_approval() {
    let a = retry();
    let t = format!("rt11_uorders_{}", pid());
    let _drop = table(&t, 5);
    let c = a.gw.connect("shop").await;
    let sql = format!(
        "INSERT INTO {t} SELECT * FROM {t} ON CONFLICT (id) DO UPDATE SET note = 'overwritten'"
    );
    let r = simple(&c, &sql).await;
    let overwritten = cluster().sql(
        "shop",
        &format!("SELECT count(*) FROM {t} WHERE note = 'overwritten'"),
    );
    assert_eq!(
        (r, overwritten.as_str()),
        (Err("PW001".to_string()), "0"),
        "{sql} ran without approval"
    );
}

/// F6. An approval is keyed by the text, not by how the server reads it.
/// Under `standard_conforming_strings = on` (the default, and how the
/// reviewer reads it)
///
/// `DELETE FROM t WHERE id = 5 AND note = 'a\' AND note = ' OR true --'`
///
/// deletes at most one row (two string literals). Under `off`, `'a\' AND
/// note = '` is one literal and `OR true` is code: every row goes. The
/// agent asks in a session with the default, the reviewer approves a
/// one-row delete, and the agent sends the identical text again after
/// `SET standard_conforming_strings = off` (same session or another one;
/// the role needs `set`, or the setting in its startup packet): the
/// approval is granted and the table is emptied.
///
/// At fault: `request::key` (src/approval/request.rs) hashes user,
/// database, text and parameters, and `SessionApprover::ask` never passes
/// the string mode the guard judged the text under (`Guard::strings`). Put
/// the mode in the key (and in the request, for the reviewer), or refuse
/// to grant a text with a backslash in another mode.
#[tokio::test]
async fn f6_an_approval_made_under_standard_strings_runs_under_escape_strings() {
    let a = retry();
    let t = format!("rt11_pay_scs_{}", pid());
    let _drop = table(&t, 5);
    let sql = format!("DELETE FROM {t} WHERE id = 5 AND note = 'a\\' AND note = ' OR true --'");
    let asking = a.gw.connect("shop").await;
    let e = asking.batch_execute(&sql).await.unwrap_err();
    assert_eq!(code(&e), "PW001", "{e:?}");
    let id = request_id(&e);
    let r = a.wait_pending(&t);
    assert_eq!(r["id"], id.as_str());
    // The reviewer reads it as the session that asked did: one row at most.
    a.approve(&id);
    let agent = a.gw.connect("shop").await;
    agent
        .batch_execute("SET standard_conforming_strings = off")
        .await
        .unwrap();
    let ran = agent.batch_execute(&sql).await.map_err(|e| code(&e));
    let left = count(&t);
    assert_eq!(
        left, 5,
        "the approved one-row DELETE ran as a DELETE of every row ({ran:?}): the approval covered another reading of the text"
    );
}

/// F7. The key of a Bind holds the parameter values as shown to reviewers
/// (binary ones in hex) but not their types, which the Parse declares. The
/// same four bytes 3f800000 are float4 1.0 or int4 1065353216. The agent
/// prepares `DELETE FROM t WHERE id < $1` with `$1` declared float4 and
/// binds 1.0 (deletes nothing; the reviewer sees `\x3f800000` and
/// approves), then prepares the identical text with `$1` declared int4 and
/// binds 1065353216: the same key, so the approval is granted, and every
/// row goes.
///
/// At fault: `on_bind` in src/proxy/guard.rs asks with the text and
/// `parameters()` only; `request::key` does not hash the parameter type
/// OIDs of the statement (nor its candidates'). Hash the declared types
/// (as the server resolved them: ParameterDescription, or the Parse's
/// OIDs) and show them to the reviewer.
#[tokio::test]
async fn f7_an_approval_for_float4_parameters_runs_with_int4_parameters() {
    let a = retry();
    let t = format!("rt11_pay_typ_{}", pid());
    let _drop = table(&t, 5);
    let sql = format!("DELETE FROM {t} WHERE id < $1");
    let c = a.gw.connect("shop").await;
    let as_float = c.prepare_typed(&sql, &[Type::FLOAT4]).await.unwrap();
    let e = c.execute(&as_float, &[&1.0f32]).await.unwrap_err();
    assert_eq!(code(&e), "PW001", "{e:?}");
    let r = a.wait_pending(&t);
    assert_eq!(r["params"], serde_json::json!(["\\x3f800000"]));
    a.approve(r["id"].as_str().unwrap());
    let as_int = c.prepare_typed(&sql, &[Type::INT4]).await.unwrap();
    let ran = c
        .execute(&as_int, &[&1_065_353_216i32])
        .await
        .map_err(|e| code(&e));
    let left = count(&t);
    assert_eq!(
        left, 5,
        "approved `id < 1.0` (float4) ran as `id < 1065353216` (int4): {ran:?}"
    );
}

/// F8. Parameters are keyed as reviewers see them: a text parameter as its
/// text, a binary one as `\x` and hex. A text parameter whose text is
/// `\x6162` and a binary parameter with the bytes `ab` therefore have one
/// key, although the server receives `\x6162` (6 characters) in one case
/// and `ab` in the other. With `DELETE FROM t WHERE id = 1 OR
/// length($1::text) > 4`, the reviewer approves the binary `ab` (one row)
/// and the agent runs the text `\x6162` (every row). The same holds for
/// text parameters that are not UTF-8 (shown in hex too), and for the
/// client encoding (bytes keyed as UTF-8 that a LATIN1 session's server
/// reads as other characters).
///
/// At fault: `shown_param` output is what `request::key` hashes
/// (src/approval/request.rs, src/proxy/relay.rs `parameters`). Hash the
/// format code and the raw bytes (and the client encoding), and show
/// reviewers text parameters that start with `\x` unambiguously.
#[test]
fn f8_a_binary_parameter_and_a_text_parameter_share_one_approval() {
    let a = retry();
    let t = format!("rt11_pay_fmt_{}", pid());
    let _drop = table(&t, 5);
    let sql = format!("DELETE FROM {t} WHERE id = 1 OR length($1::text) > 4");
    let mut r = a.gw.raw("shop");
    let first = r.extended(&[
        raw::parse("", &sql),
        bind_params(1, &[b"ab"]),
        raw::execute("", 0),
        raw::sync(),
    ]);
    let (code, message) = error_of(&first).expect("a refusal");
    assert_eq!(code, "PW001", "{message}");
    let req = a.wait_pending(&t);
    assert_eq!(req["params"], serde_json::json!(["\\x6162"]));
    a.approve(req["id"].as_str().unwrap());
    let second = r.extended(&[
        raw::parse("", &sql),
        bind_params(0, &[b"\\x6162"]),
        raw::execute("", 0),
        raw::sync(),
    ]);
    let left = count(&t);
    assert_eq!(
        (left, error_of(&second).map(|e| e.0)),
        (5, Some("PW001".to_string())),
        "approved binary 'ab' (one row) ran as text '\\x6162' (every row)"
    );
}

/// F8b. The same collision with both parameters in text format, in a
/// LATIN1 session (which pgward accepts and converts as the server does).
/// A text parameter that is not valid UTF-8 is shown, and keyed, as `\x`
/// and hex: the LATIN1 byte E9 (`é` to the server, one character) and the
/// four ASCII characters `\xe9` have one key. With `DELETE FROM t WHERE
/// id = 1 OR length($1::text) > 3`, the reviewer approves `é` (one row)
/// and the agent runs `\xe9` (every row). Keying the format code alone
/// does not close this; the key needs the raw bytes (or the text as the
/// server converts it) and the client encoding.
#[test]
fn f8b_a_latin1_parameter_and_its_hex_spelling_share_one_approval() {
    let a = retry();
    let t = format!("rt11_pay_l1_{}", pid());
    let _drop = table(&t, 5);
    let sql = format!("DELETE FROM {t} WHERE id = 1 OR length($1::text) > 3");
    let mut r = raw::Raw::login_with(
        a.gw.port,
        "agent",
        AGENT_PASSWORD,
        &[("database", "shop"), ("client_encoding", "LATIN1")],
    )
    .unwrap_or_else(|e| panic!("LATIN1 login: {:?}", e.field(b'M')));
    let first = r.extended(&[
        raw::parse("", &sql),
        bind_params(0, &[b"\xe9"]),
        raw::execute("", 0),
        raw::sync(),
    ]);
    let (code, message) = error_of(&first).expect("a refusal");
    assert_eq!(code, "PW001", "{message}");
    let req = a.wait_pending(&t);
    // Fixed: shown (and keyed) as the server converts it, with its format.
    assert_eq!(req["params"], serde_json::json!(["é"]));
    a.approve(req["id"].as_str().unwrap());
    let second = r.extended(&[
        raw::parse("", &sql),
        bind_params(0, &[b"\\xe9"]),
        raw::execute("", 0),
        raw::sync(),
    ]);
    let left = count(&t);
    assert_eq!(
        (left, error_of(&second).map(|e| e.0)),
        (5, Some("PW001".to_string())),
        "approved LATIN1 'é' (one row) ran as the text '\\xe9' (every row)"
    );
}

/// A role that may write one table only (and run DDL on it).
fn narrow(write: &str) -> String {
    format!(
        r#"[roles.narrow]
operations = ["select", "delete", "truncate", "ddl", "transaction"]
read = ["public.*"]
write = ["{write}"]
"#
    )
}

/// F9. `TRUNCATE parent CASCADE` also truncates every table with a foreign
/// key to `parent`, transitively. pgward judges only the tables named: a
/// role that may write `parent` but not `child` empties `child`, and a
/// `write:public.payments` approval risk is bypassed the same way
/// (`TRUNCATE orders CASCADE` empties payments in the sample database,
/// whose payments reference orders). With the role's own login the server
/// would refuse (TRUNCATE privilege on every table); with the shared service
/// login it runs.
///
/// At fault: `N::TruncateStmt` in src/sql/utility.rs ignores `behavior`
/// (DROP_CASCADE). Refuse CASCADE, or count as written every table that
/// references the named ones (pg_constraint, contype 'f', from the catalog
/// snapshot) for the policy and for approval risks.
#[test]
fn f9_truncate_cascade_empties_tables_the_role_may_not_write() {
    let (parent, child) = (
        format!("rt11_tparent_{}", pid()),
        format!("rt11_tchild_{}", pid()),
    );
    cluster().sql(
        "shop",
        &format!(
            "DROP TABLE IF EXISTS {child}, {parent}; \
             CREATE TABLE {parent} (id int PRIMARY KEY); INSERT INTO {parent} SELECT generate_series(1, 3); \
             CREATE TABLE {child} (id int, parent_id int REFERENCES {parent}); \
             INSERT INTO {child} SELECT g, g FROM generate_series(1, 3) g;"
        ),
    );
    let _drop = Cleanup(vec![child.clone(), parent.clone()]);
    let gw = Gateway::with_roles("narrow", &narrow(&format!("public.{parent}")));
    // The child itself is refused, as it should be.
    let direct = psql(&gw.dsn("shop"), &[], &format!("TRUNCATE {child};"));
    assert!(
        stderr(&direct).contains("may not write"),
        "{}",
        stderr(&direct)
    );
    let out = psql(&gw.dsn("shop"), &[], &format!("TRUNCATE {parent} CASCADE;"));
    assert_eq!(
        count(&child),
        3,
        "TRUNCATE ... CASCADE emptied {child}, which the role may not write: {}",
        stderr(&out)
    );
}

/// F10. DDL with CASCADE drops objects the role may not write:
/// `ALTER TABLE parent DROP COLUMN v CASCADE` drops every view using the
/// column, and `DROP TABLE parent CASCADE` drops the foreign keys of other
/// tables (and views over it). `DROP VIEW` of that view is refused to the
/// same role.
///
/// At fault: src/sql/utility.rs judges DROP and ALTER ... DROP COLUMN by
/// the object named only. Refuse `CASCADE` unless the role may write every
/// dependent object (pg_depend from the catalog snapshot), or refuse it
/// outright.
#[test]
fn f10_drop_cascade_drops_views_and_constraints_the_role_may_not_write() {
    let (parent, child, view) = (
        format!("rt11_dparent_{}", pid()),
        format!("rt11_dchild_{}", pid()),
        format!("rt11_dview_{}", pid()),
    );
    cluster().sql(
        "shop",
        &format!(
            "DROP TABLE IF EXISTS {child}, {parent} CASCADE; \
             CREATE TABLE {parent} (id int PRIMARY KEY, v int); \
             CREATE TABLE {child} (id int, parent_id int REFERENCES {parent}); \
             CREATE VIEW {view} AS SELECT id, v FROM {parent};"
        ),
    );
    let _drop = Cleanup(vec![child.clone(), parent.clone()]);
    let gw = Gateway::with_roles("narrow", &narrow(&format!("public.{parent}")));
    let refused = psql(&gw.dsn("shop"), &[], &format!("DROP VIEW {view};"));
    assert!(
        stderr(&refused).contains("may not write"),
        "{}",
        stderr(&refused)
    );
    let alter = psql(
        &gw.dsn("shop"),
        &[],
        &format!("ALTER TABLE {parent} DROP COLUMN v CASCADE;"),
    );
    let views = cluster().sql(
        "shop",
        &format!("SELECT count(*) FROM pg_views WHERE viewname = '{view}'"),
    );
    let drop = psql(
        &gw.dsn("shop"),
        &[],
        &format!("DROP TABLE {parent} CASCADE;"),
    );
    let fks = cluster().sql(
        "shop",
        &format!("SELECT count(*) FROM pg_constraint WHERE conrelid = '{child}'::regclass AND contype = 'f'"),
    );
    assert_eq!(
        (views.as_str(), fks.as_str()),
        ("1", "1"),
        "CASCADE dropped a view and a foreign key the role may not write: {} / {}",
        stderr(&alter),
        stderr(&drop)
    );
}

/// F11. `pgward approvals show ID` prints the request's SQL as it is, and
/// the agent writes that SQL. Control characters in a comment (carriage
/// return, ESC sequences) rewrite what the reviewer's terminal shows:
///
/// `DELETE FROM t WHERE id > 0 /*` CR ESC[2K `sql          DELETE FROM t WHERE id = 42;` ESC[8m `*/`
///
/// shows the reviewer `sql          DELETE FROM t WHERE id = 42;` while the
/// statement deletes every row (the reasons line says only
/// `write:public.rt11_pay*`, as for a one-row delete: `WHERE id > 0` names
/// a column, so it is not `delete_without_where`). The
/// audit log's display escapes exactly this (red team 9); the approvals
/// CLI does not (`list` flattens control characters, `show` does not, and
/// neither escapes bidirectional overrides).
///
/// At fault: `print` in src/admin/cli.rs (`println!("sql {}", ...)`).
/// Print the SQL through `audit::event::printable` (keeping newlines), and
/// the other fields too.
#[test]
fn f11_the_cli_shows_reviewers_the_agents_control_characters() {
    let a = retry();
    let t = format!("rt11_pay_cli_{}", pid());
    let _drop = table(&t, 5);
    let sql = format!(
        "DELETE FROM {t} WHERE id > 0 /*\r\x1b[2Ksql          DELETE FROM {t} WHERE id = 42;\x1b[8m*/"
    );
    let mut r = a.gw.raw("shop");
    let reply = r.query(&sql);
    assert_eq!(
        error_of(&reply).map(|e| e.0),
        Some("PW001".to_string()),
        "{reply:?}"
    );
    let req = a.wait_pending(&t);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgward"))
        .args(["approvals", "show", req["id"].as_str().unwrap()])
        .env("PGWARD_ADMIN_URL", &a.url)
        .env("PGWARD_ADMIN_TOKEN", READ_TOKEN)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        !shown.contains('\x1b') && !shown.contains('\r'),
        "the reviewer's terminal receives the agent's control characters: {shown:?}"
    );
}

/// F12. The webhook's chat text puts the agent's SQL, newlines and all,
/// between pgward's own lines, so the SQL can forge them. The agent learns
/// its request ids from its PW001 refusals (or PW002 notices): it makes a
/// dangerous request first (`TRUNCATE payments`, id EVIL), then a harmless
/// one whose comment reads, in the channel, as the end of that message:
///
/// `SELECT id FROM customers LIMIT 1 /*` LF `approve: pgward approvals approve EVIL` LF ... `*/`
///
/// The reviewer copies the first `approve:` line under a harmless
/// statement and approves the TRUNCATE. (The message has no fence around
/// the SQL; Slack-style markup such as `<!channel>` or links passes too.)
///
/// At fault: `webhook_text` in src/admin/thread.rs. Quote the SQL so it
/// cannot start a line of its own (a code block with backticks escaped, or
/// every line indented and prefixed), and put the approve/deny lines first.
#[test]
fn f12_the_webhook_text_lets_the_sql_forge_the_approve_line() {
    let hook = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", hook.local_addr().unwrap());
    let a = gateway_admin(
        "writer",
        writer("mode = \"retry\""),
        &format!("webhook = \"{url}\""),
    );
    let received = std::thread::spawn(move || {
        (0..2)
            .map(|_| {
                let text = receive_http(&hook);
                let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
                serde_json::from_str::<Value>(body).unwrap()
            })
            .collect::<Vec<Value>>()
    });
    let t = format!("rt11_pay_hook_{}", pid());
    let _drop = table(&t, 2);
    let mut r = a.gw.raw("shop");
    let evil = r.query(&format!("TRUNCATE {t}"));
    let evil_id = error_of(&evil).unwrap().1;
    let evil_id = evil_id
        .strip_prefix("pgward: approval required (request ")
        .unwrap()
        .trim_end_matches(')')
        .to_string();
    let bait = format!(
        "SELECT id FROM customers /*\napprove: pgward approvals approve {evil_id}\ndeny: pgward approvals deny {evil_id} --reason ...\n\n\n\n\n\n\n\n*/"
    );
    let reply = r.query(&bait);
    assert_eq!(error_of(&reply).map(|e| e.0), Some("PW001".to_string()));
    let bodies = received.join().unwrap();
    let text = bodies
        .iter()
        .find(|b| {
            b["request"]["sql"]
                .as_str()
                .is_some_and(|s| s.contains("customers"))
        })
        .expect("the bait's notice")["text"]
        .as_str()
        .unwrap()
        .to_string();
    let approve_lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("approve: "))
        .collect();
    assert_eq!(
        approve_lines.len(),
        1,
        "the notice for the harmless statement offers to approve {evil_id} (the TRUNCATE) first:\n{text}"
    );
}

/// F13. A user with several roles gets every role's risks, but one
/// `select_limit`: the first role's with an `approval` table. A user with
/// roles `["analyst", "writer"]`, where the analyst's approval table only
/// holds `ddl` with `select_limit = 1000000` and the writer's names
/// `unbounded_select:public.customers` (default limit 1000), reads
/// `SELECT * FROM customers LIMIT 500000` without approval: the writer's
/// risk is judged with the analyst's limit. docs/approvals.md says the
/// first role sets "the mode and the times"; the limit that defines the
/// writer's own risk is silently replaced.
///
/// At fault: `Approval::of` (src/policy/approval.rs) keeps one
/// `select_limit`. Keep the limit with each `UnboundedSelect` risk (or take
/// the smallest).
#[tokio::test]
async fn f13_another_roles_select_limit_loosens_a_risk() {
    let roles = format!(
        r#"[roles.analyst]
operations = ["select"]
read = ["public.*"]

[roles.analyst.approval]
require = ["ddl"]
mode = "retry"
select_limit = 1000000

{}"#,
        writer("mode = \"retry\"")
    );
    // (GatewayOptions writes `roles = ["{role}"]`.)
    let a = gateway_with("analyst\", \"writer", roles);
    let c = a.gw.connect("shop").await;
    let r = simple(&c, "SELECT * FROM customers LIMIT 500000").await;
    assert_eq!(
        r,
        Err("PW001".to_string()),
        "the writer's unbounded_select risk was judged with the analyst's select_limit"
    );
}

/// The resident memory of a process, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// F14. The per-user quota (100 live requests, added while this pass ran)
/// counts requests, not bytes, and a request keeps the whole text: a
/// statement may be as large as `max_message_size` (64 MiB by default), so
/// one user keeps up to 6.4 GB of SQL in the book's memory (and fsyncs as
/// much to approvals.jsonl, twice: made, then expired), and
/// `GET /v1/approvals` (`pgward approvals list`) clones and serializes all
/// of it on the admin thread. Ended requests are not counted at all: in
/// hold mode, send and cancel (or disconnect) in a loop, and 10,000 final
/// requests stay in memory (`KEEP_FINAL`) while the file grows without
/// bound until the next start. Here 40 requests of 4 MB each (a comment)
/// grow pgward by about 160 MB.
///
/// At fault: `Book::ask` (src/approval/book.rs) stores `a.sql` whole and
/// bounds only the count of live requests per user; `KEEP_FINAL` bounds
/// final ones by count; `Store::append` has no size limit. Cap the text a
/// request keeps (refuse statements over a size that need approval, or
/// keep a prefix and a hash for the key), and count bytes per user for
/// live and recently ended requests alike.
#[test]
fn f14_the_request_quota_counts_requests_not_bytes() {
    let a = retry();
    let mut r = a.gw.raw("shop");
    let padding = "x".repeat(4 << 20);
    let ask = |r: &mut raw::Raw, i: usize| {
        let reply = r.query(&format!("TRUNCATE rt11_pay_big /* {i} {padding} */"));
        // Fixed: a text too long to review makes no request (53400).
        assert_eq!(
            error_of(&reply).map(|e| e.0),
            Some("53400".to_string()),
            "request {i}"
        );
    };
    // Warm up the buffers that one big statement needs anyway.
    for i in 0..3 {
        ask(&mut r, i);
    }
    let before = rss(a.gw.child.id());
    for i in 3..43 {
        ask(&mut r, i);
    }
    let grown = rss(a.gw.child.id()).saturating_sub(before);
    assert!(
        grown < 64 << 20,
        "40 approval requests of 4 MB grew pgward by {} MB (the book keeps every text whole)",
        grown >> 20
    );
}

// ---------------------------------------------------------------------------
// Held: attacks pgward withstood
// ---------------------------------------------------------------------------

/// Held: reads the classifier might have missed are bounded or held:
/// UPDATE ... RETURNING of customers, LIMIT ALL / NULL, cursors, COPY
/// (SELECT), CREATE TABLE AS, SELECT INTO, EXPLAIN ANALYZE, a recursive
/// union, a scalar aggregate, a view.
#[tokio::test]
async fn held_reads_outside_a_bounded_select_need_approval() {
    let a = retry();
    let c = a.gw.connect("shop").await;
    c.batch_execute("BEGIN").await.unwrap();
    for sql in [
        "UPDATE customers SET id = id WHERE id = id RETURNING id, email",
        "SELECT * FROM customers LIMIT ALL",
        "SELECT * FROM customers LIMIT NULL",
        "SELECT * FROM customers LIMIT 5000",
        "DECLARE rt11_c CURSOR FOR SELECT * FROM customers",
        "COPY (SELECT * FROM customers) TO STDOUT",
        "CREATE TEMP TABLE rt11_x AS SELECT * FROM customers",
        "SELECT * INTO TEMP rt11_y FROM customers",
        "EXPLAIN ANALYZE SELECT * FROM customers",
        "WITH RECURSIVE r AS (SELECT * FROM customers WHERE id = 1 UNION ALL \
         SELECT c.* FROM customers c, r WHERE c.id = r.id + 1) SELECT * FROM r LIMIT 5",
        "SELECT (SELECT string_agg(email, ',') FROM customers) LIMIT 1",
        "SELECT * FROM customer_directory",
        "SELECT * FROM orders o WHERE EXISTS (SELECT 1 FROM customers c WHERE c.id = o.customer_id)",
    ] {
        c.batch_execute("SAVEPOINT s").await.unwrap();
        let r = simple(&c, sql).await;
        assert_eq!(r, Err("PW001".to_string()), "{sql}");
        c.batch_execute("ROLLBACK TO s").await.unwrap();
    }
    c.batch_execute("ROLLBACK").await.unwrap();
    // Bounded reads run.
    for sql in [
        "SELECT * FROM customers LIMIT 5",
        "(SELECT * FROM customers LIMIT 5) UNION ALL (SELECT * FROM customers LIMIT 5)",
        "SELECT * FROM (SELECT * FROM customers) s LIMIT 5",
    ] {
        assert!(simple(&c, sql).await.is_ok(), "{sql}");
    }
}

/// Held: a DELETE whose WHERE qualifies the other table's column, and
/// writes through a CTE, need approval.
#[tokio::test]
async fn held_qualified_subqueries_and_ctes_count_as_unfiltered() {
    let a = retry();
    let (t, other) = (
        format!("rt11_qorders_{}", pid()),
        format!("rt11_qother_{}", pid()),
    );
    let _drop = table(&t, 3);
    let _drop = table(&other, 1);
    let c = a.gw.connect("shop").await;
    for sql in [
        format!("DELETE FROM {t} WHERE EXISTS (SELECT 1 FROM {other} o WHERE o.id > 0)"),
        format!("WITH d AS (DELETE FROM {t} RETURNING 1) SELECT count(*) FROM d"),
        format!("DELETE FROM {t} x USING {other} o WHERE o.id = 1"),
        format!("UPDATE {t} SET note = 'x' FROM {other} o WHERE o.id = 1"),
    ] {
        assert_eq!(simple(&c, &sql).await, Err("PW001".to_string()), "{sql}");
    }
    assert_eq!(count(&t), 3);
}

/// Held: the message order of a held Bind is PostgreSQL's, with the notice
/// in between: replies to what came before (ParseComplete, asked for by a
/// Flush), the PW002 notice, then the Bind's own replies once approved, or
/// one ErrorResponse and ReadyForQuery once denied (the Execute after it is
/// skipped, as the server skips it).
#[test]
fn held_a_held_bind_keeps_the_message_order() {
    let a = hold();
    let t = format!("rt11_pay_hold_{}", pid());
    let _drop = table(&t, 3);
    for (verdict, expected, left) in [("approve", "1N2CZ", 2), ("deny", "1NEZ", 2)] {
        let mut r = a.gw.raw("shop");
        let sql = format!(
            "DELETE FROM {t} WHERE id = {}",
            if verdict == "approve" { 1 } else { 2 }
        );
        r.send(
            &[
                raw::parse("", &sql),
                raw::bind("", ""),
                raw::execute("", 0),
                raw::sync(),
            ]
            .concat(),
        );
        let first = r.recv().unwrap();
        let notice = r.recv().unwrap();
        assert_eq!(
            (first.tag, notice.tag),
            (b'1', b'N'),
            "{first:?} {notice:?}"
        );
        assert_eq!(notice.code().as_deref(), Some("PW002"));
        let req = a.wait_pending(&sql);
        assert_eq!(
            a.decide(req["id"].as_str().unwrap(), verdict, Some("no")),
            200
        );
        let rest = r.replies();
        let all = format!(
            "{}{}{}",
            first.tag as char,
            notice.tag as char,
            raw::tags(&rest)
        );
        assert_eq!(all, expected, "{verdict}: {rest:?}");
        assert_eq!(count(&t), left, "{verdict}");
        // The session goes on.
        let (rows, err) = raw::rows(&r.query("SELECT 41 + 1"));
        assert_eq!((rows, err), (vec!["42".to_string()], None));
    }
}

/// Held: a CancelRequest with the session's pid but a wrong secret does
/// not withdraw its held statement (only the session's own key does).
#[test]
fn held_a_wrong_cancel_key_does_not_withdraw_a_hold() {
    let a = hold();
    let t = format!("rt11_pay_cancel_{}", pid());
    let _drop = table(&t, 2);
    let mut r = a.gw.raw("shop");
    let pid = r.backend_pid.unwrap();
    let sql = format!("TRUNCATE {t}");
    r.send(&raw::query(&sql));
    assert_eq!(r.recv().unwrap().code().as_deref(), Some("PW002"));
    let req = a.wait_pending(&sql);
    for secret in [[0u8; 4], [0xff; 4], [1, 2, 3, 4]] {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", a.gw.port)).unwrap();
        let mut p = 16u32.to_be_bytes().to_vec();
        p.extend(80_877_102u32.to_be_bytes());
        p.extend(pid.to_be_bytes());
        p.extend(secret);
        std::io::Write::write_all(&mut c, &p).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    let (_, now) = a.call(
        "GET",
        &format!("/v1/approvals/{}", req["id"].as_str().unwrap()),
        Some(READ_TOKEN),
        None,
    );
    assert_eq!(now["state"], "pending", "{now}");
    assert_eq!(
        a.decide(req["id"].as_str().unwrap(), "deny", Some("no")),
        200
    );
    let (_, err) = raw::rows(&r.replies());
    assert!(err.unwrap().contains("dba denied it"));
    assert_eq!(count(&t), 2);
}

/// Held: the admin API's tokens and paths. No token or a wrong one: 401;
/// the read token cannot decide or terminate (403); `..` and encoded
/// segments name no request; other methods get 405; unknown body fields
/// are refused; a request's own id in another verb position does nothing.
#[test]
fn held_admin_paths_and_tokens() {
    let a = retry();
    let t = format!("rt11_pay_admin_{}", pid());
    let _drop = table(&t, 2);
    let mut r = a.gw.raw("shop");
    let sql = format!("TRUNCATE {t}");
    let _ = r.query(&sql);
    let req = a.wait_pending(&sql);
    let id = req["id"].as_str().unwrap();
    let approve = format!("/v1/approvals/{id}/approve");
    assert_eq!(a.call("POST", &approve, None, Some("{}")).0, 401);
    assert_eq!(
        a.call(
            "POST",
            &approve,
            Some("rt11-wrong-token-0123456789"),
            Some("{}")
        )
        .0,
        401
    );
    assert_eq!(
        a.call("POST", &approve, Some(READ_TOKEN), Some("{}")).0,
        403
    );
    assert_eq!(a.call("GET", &approve, Some(DBA_TOKEN), None).0, 405);
    for path in [
        format!("/v1/approvals/../approvals/{id}/approve/x"),
        format!("/v1/approvals/%2e%2e/{id}"),
        format!("/v1/approvals/{id}%2fapprove/approve"),
        format!("/v1/approvals/{}/approve", id.to_uppercase()),
        format!("/v1/sessions/{id}/terminate"),
    ] {
        let (status, v) = a.call("POST", &path, Some(DBA_TOKEN), Some("{}"));
        assert!(matches!(status, 404 | 405), "{path}: {status} {v}");
    }
    assert_eq!(
        a.call(
            "POST",
            &approve,
            Some(DBA_TOKEN),
            Some(r#"{"reason":"x","state":"used"}"#)
        )
        .0,
        400
    );
    let (_, now) = a.call(
        "GET",
        &format!("/v1/approvals/{id}"),
        Some(READ_TOKEN),
        None,
    );
    assert_eq!(now["state"], "pending", "{now}");
    assert_eq!(count(&t), 2);
}

/// Held (fixed while this pass ran, commit 7c74671): one user cannot flood
/// the book. Each distinct text made a request kept in memory and fsynced
/// to approvals.jsonl until it expired (10 minutes in retry mode), with no
/// cap: 1 MB comments made 1 MB requests, every ask scanned every live one
/// under the book's one lock, and `GET /v1/approvals` served them all in
/// one reply. Now the 101st live request of a user is refused with 53400,
/// and asking again for a pending one still names it.
#[test]
fn held_a_user_cannot_flood_the_book_with_requests() {
    let a = retry();
    let mut r = a.gw.raw("shop");
    let padding = "x".repeat(10_000);
    let mut codes = Vec::new();
    for i in 0..101 {
        let reply = r.query(&format!("TRUNCATE rt11_pay_flood /* {i} {padding} */"));
        codes.push(error_of(&reply).map(|e| e.0).unwrap_or_default());
    }
    assert!(codes[..100].iter().all(|c| c == "PW001"), "{codes:?}");
    assert_eq!(codes[100], "53400", "the 101st request");
    let again = r.query(&format!("TRUNCATE rt11_pay_flood /* 0 {padding} */"));
    assert_eq!(error_of(&again).map(|e| e.0), Some("PW001".to_string()));
}
