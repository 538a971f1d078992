//! Defense in depth inside the upstream session: a role that writes nothing
//! gets read-only transactions it cannot leave, and a role's timeouts are
//! ceilings the client cannot raise or disable. Against the real server.

mod common;

use common::raw::Raw;
use common::*;

const ROLES: &str = r#"
[roles.reader]
operations = ["select", "transaction", "set", "show"]
read = ["public.*"]
functions = ["public.customer_order_count", "pg_sleep"]
statement_timeout = "1s"

[roles.writer]
operations = ["select", "insert", "transaction"]
read = ["public.*"]
write = ["public.orders"]
"#;

fn gateway(role: &'static str) -> Gateway {
    Gateway::with_roles(role, ROLES)
}

fn error_of(reply: &[common::raw::Msg]) -> Option<(String, String)> {
    reply.iter().find(|m| m.tag == b'E').map(|m| {
        (
            m.field(b'C').unwrap_or_default(),
            m.field(b'M').unwrap_or_default(),
        )
    })
}

fn value_of(reply: &[common::raw::Msg]) -> Option<String> {
    reply.iter().find(|m| m.tag == b'D').map(|m| {
        // One text column: count (2) + length (4) + value.
        String::from_utf8_lossy(&m.body[6..]).into_owned()
    })
}

#[test]
fn a_reader_cannot_leave_read_only() {
    let gw = gateway("reader");
    let mut r = gw.raw("shop");
    assert_eq!(
        value_of(&r.query("SHOW default_transaction_read_only")).as_deref(),
        Some("on")
    );
    for sql in [
        "SET default_transaction_read_only = off",
        "SET SESSION default_transaction_read_only TO false",
        "SET transaction_read_only = off",
        "SELECT set_config('default_transaction_read_only', 'off', false)",
        "SELECT set_config('transaction_read_only', 'off', true)",
        "BEGIN READ WRITE",
        "START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ WRITE",
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
    ] {
        let reply = r.query(sql);
        let (code, message) = error_of(&reply).unwrap_or_else(|| panic!("allowed: {sql}"));
        assert_eq!(code, "42501", "{sql}: {message}");
        assert!(message.contains("read-only"), "{sql}: {message}");
        r.query("ROLLBACK");
    }
    r.query("BEGIN");
    let reply = r.query("SET TRANSACTION READ WRITE");
    assert!(error_of(&reply).is_some_and(|(c, _)| c == "42501"));
    r.query("ROLLBACK");
    // RESET ALL and DISCARD go back to the session's value: still on.
    r.query("RESET ALL");
    assert_eq!(
        value_of(&r.query("SHOW default_transaction_read_only")).as_deref(),
        Some("on")
    );
    // A hole planted in the policy (a table write the guard would allow)
    // meets the server's refusal.
    let reply = r.query("BEGIN; SELECT 1; COMMIT");
    assert!(error_of(&reply).is_none(), "{reply:?}");
    let c = cluster();
    let f = format!("pw_writes_{}", std::process::id());
    c.sql(
        "shop",
        &format!("CREATE FUNCTION public.{f}() RETURNS int LANGUAGE sql AS 'INSERT INTO public.orders (customer_id, status, total_cents) VALUES (1, ''x'', 1) RETURNING 1'"),
    );
    let planted = Gateway::start(GatewayOptions {
        role: "reader",
        roles: ROLES.replace("\"pg_sleep\"]", &format!("\"pg_sleep\", \"public.{f}\"]")),
        ..Default::default()
    });
    let mut p = planted.raw("shop");
    let reply = p.query(&format!("SELECT public.{f}()"));
    c.sql("shop", &format!("DROP FUNCTION public.{f}()"));
    let (code, message) = error_of(&reply).expect("the server refuses the write");
    assert_eq!(code, "25006", "{message}");
}

#[test]
fn startup_options_cannot_leave_read_only_or_raise_timeouts() {
    let gw = gateway("reader");
    for params in [
        [
            ("database", "shop"),
            ("options", "-c default_transaction_read_only=off"),
        ],
        [
            ("database", "shop"),
            ("default_transaction_read_only", "off"),
        ],
        [("database", "shop"), ("statement_timeout", "0")],
        [
            ("database", "shop"),
            ("options", "-c statement_timeout=5min"),
        ],
    ] {
        let err = Raw::login_with(gw.port, "agent", AGENT_PASSWORD, &params)
            .err()
            .unwrap_or_else(|| panic!("login allowed with {params:?}"));
        let message = err.field(b'M').unwrap_or_default();
        assert!(message.starts_with("pgward:"), "{params:?}: {message}");
    }
    // Within the limit, the client's own value stands.
    let mut r = Raw::login_with(
        gw.port,
        "agent",
        AGENT_PASSWORD,
        &[("database", "shop"), ("statement_timeout", "500ms")],
    )
    .unwrap();
    assert_eq!(
        value_of(&r.query("SHOW statement_timeout")).as_deref(),
        Some("500ms")
    );
}

#[test]
fn role_timeouts_are_ceilings() {
    let gw = gateway("reader");
    let mut r = gw.raw("shop");
    assert_eq!(
        value_of(&r.query("SHOW statement_timeout")).as_deref(),
        Some("1s")
    );
    for sql in [
        "SET statement_timeout = 0",
        "SET statement_timeout = '10min'",
        "SELECT set_config('statement_timeout', '0', false)",
    ] {
        let (code, message) = error_of(&r.query(sql)).unwrap_or_else(|| panic!("allowed: {sql}"));
        assert_eq!(code, "42501", "{sql}: {message}");
    }
    assert!(error_of(&r.query("SET statement_timeout = '200ms'")).is_none());
    let (code, _) = error_of(&r.query("SELECT pg_sleep(2)")).expect("cancelled");
    assert_eq!(code, "57014");
    assert!(error_of(&r.query("RESET statement_timeout")).is_none());
    assert_eq!(
        value_of(&r.query("SHOW statement_timeout")).as_deref(),
        Some("1s")
    );
}

#[test]
fn a_writer_is_not_read_only() {
    let gw = gateway("writer");
    let mut r = gw.raw("shop");
    assert_eq!(
        value_of(&r.query("SHOW default_transaction_read_only")).as_deref(),
        Some("off")
    );
}
