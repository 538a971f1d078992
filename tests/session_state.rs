//! Where pgward's view of the session could differ from the server's: client
//! encoding, startup settings, standard_conforming_strings while a change is
//! in flight, prepared statements and portals, and statements the server
//! re-analyses. Each test drives the real server through pgward and checks
//! that the difference cannot be used.

mod common;

use common::raw::{frame, Msg, Raw};
use common::*;

fn gateway(role: &'static str) -> Gateway {
    Gateway::start(GatewayOptions {
        role,
        roles: include_str!("../examples/policy.toml").to_string(),
        ..Default::default()
    })
}

#[tokio::test]
async fn refusals_naming_non_ascii_names_arrive_intact() {
    let gw = gateway("reader");
    let client = gw.connect("shop").await;
    for name in ["秘密", "çé\\'", "表' || 'x"] {
        let quoted = name.replace('"', "\"\"");
        let err = client
            .simple_query(&format!("SELECT * FROM internal.\"{quoted}\""))
            .await
            .unwrap_err();
        let db = err.as_db_error().expect("a server error");
        assert_eq!(db.code().code(), "42501");
        assert_eq!(
            db.message(),
            format!("pgward: role reader may not read internal.{name}")
        );
    }
}

/// Expects a FATAL error with `code` and a closed connection; returns the message.
fn expect_fatal(m: Result<Raw, Msg>, code: &str) -> String {
    let e = match m {
        Ok(_) => panic!("the login succeeded; expected FATAL {code}"),
        Err(e) => e,
    };
    assert_eq!(e.field(b'V').as_deref(), Some("FATAL"), "{e:?}");
    assert_eq!(e.code().as_deref(), Some(code), "{:?}", e.field(b'M'));
    e.field(b'M').unwrap_or_default()
}

#[test]
fn client_encodings_other_than_utf8_are_refused_before_the_upstream() {
    // The upstream port is dead: a refusal that comes with 0A000 rather than
    // 08006 was made before pgward tried to connect.
    let gw = Gateway::start(GatewayOptions {
        upstream_port: Some(free_port()),
        ..Default::default()
    });
    for params in [
        vec![("database", "shop"), ("client_encoding", "SJIS")],
        vec![("database", "shop"), ("client_encoding", "big5")],
        vec![("database", "shop"), ("options", "-c client_encoding=GBK")],
        vec![
            ("database", "shop"),
            ("options", "--client-encoding=GB18030"),
        ],
        vec![
            ("database", "shop"),
            ("options", "-c client_encoding=UHC"),
            ("client_encoding", "UTF8"),
        ],
        vec![("database", "shop"), ("client_encoding", "auto")],
    ] {
        let msg = expect_fatal(
            Raw::login_with(gw.port, "agent", AGENT_PASSWORD, &params),
            "0A000",
        );
        assert!(
            msg.starts_with("pgward: client_encoding") && msg.contains("only UTF8"),
            "{params:?}: {msg}"
        );
    }
    // libpq's own spelling reaches the same refusal.
    let out = psql(
        &format!("{} client_encoding=SJIS", gw.dsn("shop")),
        &["-c", "SELECT 1"],
        "",
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("only UTF8"), "{}", stderr(&out));
}

#[test]
fn utf8_under_any_of_its_names_and_sql_ascii_are_accepted() {
    let gw = gateway("reader");
    for (asked, reported) in [
        ("UTF8", "UTF8"),
        ("utf-8", "UTF8"),
        ("Unicode", "UTF8"),
        ("SQL_ASCII", "SQL_ASCII"),
    ] {
        let mut r = Raw::login_with(
            gw.port,
            "agent",
            AGENT_PASSWORD,
            &[("database", "shop"), ("client_encoding", asked)],
        )
        .unwrap_or_else(|e| panic!("{asked}: {:?}", e.field(b'M')));
        let reply = r.query("SELECT current_setting('client_encoding')");
        let row = reply.iter().find(|m| m.tag == b'D').expect("a row");
        assert!(row.body.ends_with(reported.as_bytes()), "{asked}: {row:?}");
    }
}

/// A database of its own whose default client encoding is `encoding`, and a
/// gateway that reaches it as `enc`.
fn database_with_encoding(encoding: &str) -> (Gateway, String) {
    let db = format!(
        "pgward_enc_{}_{}",
        encoding.to_lowercase(),
        std::process::id()
    );
    cluster().sql("postgres", &format!("DROP DATABASE IF EXISTS {db}"));
    cluster().sql("postgres", &format!("CREATE DATABASE {db}"));
    cluster().sql(
        "postgres",
        &format!("ALTER DATABASE {db} SET client_encoding = '{encoding}'"),
    );
    let gw = Gateway::start(GatewayOptions {
        extra_config: cluster().database_section("enc", &db),
        ..Default::default()
    });
    (gw, db)
}

#[test]
fn an_encoding_the_server_reports_at_login_is_checked_too() {
    let (gw, db) = database_with_encoding("SJIS");
    // The client named no encoding: the database's default applies.
    let msg = expect_fatal(
        Raw::login_with(gw.port, "agent", AGENT_PASSWORD, &[("database", "enc")]),
        "0A000",
    );
    assert!(
        msg.contains("\"SJIS\"") && msg.contains("only UTF8"),
        "{msg}"
    );
    // A client that names UTF8 overrides the default and is served.
    let mut r = Raw::login_with(
        gw.port,
        "agent",
        AGENT_PASSWORD,
        &[("database", "enc"), ("client_encoding", "UTF8")],
    )
    .unwrap_or_else(|e| panic!("{:?}", e.field(b'M')));
    let reply = r.query("SELECT 'served'");
    assert!(reply
        .iter()
        .any(|m| m.tag == b'D' && m.body.ends_with(b"served")));
    drop(r);
    drop(gw);
    // The refused session left no backend behind (it may take a moment to go).
    let gone = || {
        cluster().sql(
            "postgres",
            &format!("SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}'"),
        ) == "0"
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !gone() {
        assert!(
            std::time::Instant::now() < deadline,
            "backends left on {db}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    cluster().sql("postgres", &format!("DROP DATABASE {db}"));
}

#[test]
fn an_encoding_change_mid_session_ends_the_session() {
    // The classifier cannot see inside a function: this one switches the
    // session to SJIS, and only the server's ParameterStatus tells.
    let f = format!("pgward_to_sjis_{}", std::process::id());
    cluster().sql(
        "shop",
        &format!(
            "CREATE OR REPLACE FUNCTION public.{f}() RETURNS text LANGUAGE sql AS $$ SELECT set_config('client_encoding', 'SJIS', false) $$"
        ),
    );
    let gw = Gateway::start(GatewayOptions {
        role: "switcher",
        roles: format!(
            "[roles.switcher]\noperations = [\"select\"]\nread = [\"public.*\"]\nfunctions = [\"public.{f}\"]\n"
        ),
        ..Default::default()
    });
    let app = format!("pgward-enc-switch-{}", std::process::id());
    let mut r = Raw::login_with(
        gw.port,
        "agent",
        AGENT_PASSWORD,
        &[("database", "shop"), ("application_name", &app)],
    )
    .unwrap();
    // The switch, and a second query pipelined behind it.
    let mut q = frame(b'Q', format!("SELECT public.{f}()\0").as_bytes());
    q.extend(frame(b'Q', b"SELECT 'after the switch'\0"));
    r.send(&q);
    let mut seen = Vec::new();
    let fatal = loop {
        let m = r.recv().expect("a FATAL error before the close");
        if m.tag == b'E' {
            break m;
        }
        seen.push(m);
    };
    assert_eq!(fatal.field(b'V').as_deref(), Some("FATAL"));
    assert_eq!(fatal.code().as_deref(), Some("0A000"));
    let msg = fatal.field(b'M').unwrap();
    assert!(msg.starts_with("pgward: client_encoding \"SJIS\""), "{msg}");
    assert!(
        !seen.iter().any(|m| m.tag == b'S' || m.tag == b'Z'),
        "the report and everything after it stay with pgward: {seen:?}"
    );
    assert!(
        !seen.iter().any(|m| m.body.ends_with(b"after the switch")),
        "{seen:?}"
    );
    assert!(r.closed(), "the session must be closed");
    // And the upstream session is gone.
    let count = || {
        cluster().sql(
            "shop",
            &format!("SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app}'"),
        )
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while count() != "0" {
        assert!(
            std::time::Instant::now() < deadline,
            "upstream session outlived the halt"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    cluster().sql("shop", &format!("DROP FUNCTION public.{f}()"));
}

#[test]
fn a_startup_setting_takes_the_value_the_server_applies() {
    let gw = gateway("reader");
    // Which table a session read: its OID.
    let oid = |schema: &str| {
        cluster().sql(
            "shop",
            &format!("SELECT '{schema}.customers'::regclass::oid"),
        )
    };
    // The server applies options first, then the plain parameter: public.
    let mut r = Raw::login_with(
        gw.port,
        "agent",
        AGENT_PASSWORD,
        &[
            ("database", "shop"),
            ("options", "-c search_path=internal"),
            ("search_path", "public"),
        ],
    )
    .unwrap();
    let reply =
        r.query("SELECT current_setting('search_path'), tableoid::oid FROM customers LIMIT 1");
    let row = reply
        .iter()
        .find(|m| m.tag == b'D')
        .unwrap_or_else(|| panic!("{reply:?}"));
    let text = String::from_utf8_lossy(&row.body);
    assert!(
        text.contains("public") && !text.contains("internal"),
        "{text}"
    );
    assert!(text.ends_with(&oid("public")), "{text}");
    // The reverse: options after the plain parameter in the packet. The
    // server still applies the plain parameter last (internal), so pgward
    // must not think the session reads public.customers.
    let mut r = Raw::login_with(
        gw.port,
        "agent",
        AGENT_PASSWORD,
        &[
            ("database", "shop"),
            ("search_path", "internal"),
            ("options", "-c search_path=public"),
        ],
    )
    .unwrap();
    let reply = r.query("SELECT count(*) FROM customers");
    assert!(
        !reply.iter().any(|m| m.tag == b'D'),
        "internal.customers was read: {reply:?}"
    );
    let e = reply.iter().find(|m| m.tag == b'E').expect("a refusal");
    assert_eq!(e.code().as_deref(), Some("42501"));
    assert!(
        e.field(b'M')
            .unwrap()
            .contains("may not read internal.customers"),
        "{:?}",
        e.field(b'M')
    );
}
