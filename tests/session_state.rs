//! Where pgward's view of the session could differ from the server's: client
//! encoding, startup settings, standard_conforming_strings while a change is
//! in flight, prepared statements and portals, and statements the server
//! re-analyses. Each test drives the real server through pgward and checks
//! that the difference cannot be used.

mod common;

use common::raw::{bind, close, execute, frame, parse, query, sync, tags, Msg, Raw};
use common::*;

fn gateway(role: &'static str) -> Gateway {
    Gateway::with_roles(role, include_str!("../examples/policy.toml"))
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
            msg.starts_with("pgward: client_encoding") && msg.contains("is not supported"),
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
    assert!(
        stderr(&out).contains("is not supported"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn utf8_sql_ascii_and_server_encodings_are_accepted() {
    let gw = gateway("reader");
    for (asked, reported) in [
        ("UTF8", "UTF8"),
        ("utf-8", "UTF8"),
        ("Unicode", "UTF8"),
        ("SQL_ASCII", "SQL_ASCII"),
        ("latin1", "LATIN1"),
        ("ISO-8859-15", "LATIN9"),
        ("EUC_JP", "EUC_JP"),
        ("win1252", "WIN1252"),
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
        msg.contains("\"SJIS\"") && msg.contains("is not supported"),
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

/// Roles for the tests below: one that may change settings and use cursors,
/// with masked e-mail addresses and the API keys out of reach.
const SESSION_ROLES: &str = r#"
[roles.agent]
operations = ["select", "set", "transaction", "cursor"]
read = ["public.*", "!public.api_keys"]
catalog = true

[masks]
"public.customers.email" = "email"

[masking]
hash_key = "test-only-key"
"#;

fn agent_gateway() -> Gateway {
    Gateway::with_roles("agent", SESSION_ROLES)
}

fn login(gw: &Gateway) -> Raw {
    gw.raw("shop")
}

/// Sends the messages, then reads the replies through `syncs` ReadyForQuery.
fn exchange(r: &mut Raw, msgs: &[Vec<u8>], syncs: usize) -> Vec<Msg> {
    r.send(&msgs.concat());
    let mut out = Vec::new();
    let mut left = syncs;
    while left > 0 {
        let m = r
            .recv()
            .unwrap_or_else(|| panic!("closed early after {out:?}"));
        left -= usize::from(m.tag == b'Z');
        out.push(m);
    }
    out
}

/// The text of every DataRow's single column.
fn values(ms: &[Msg]) -> Vec<String> {
    ms.iter()
        .filter(|m| m.tag == b'D')
        .map(|m| String::from_utf8_lossy(&m.body[6..]).into_owned())
        .collect()
}

/// Fails when any message carries one of the keys (one per line).
fn assert_no_key(ms: &[Msg], keys: &str) {
    for key in keys.lines().filter(|k| !k.is_empty()) {
        let leaked = ms
            .iter()
            .any(|m| m.body.windows(key.len()).any(|w| w == key.as_bytes()));
        assert!(!leaked, "an API key leaked: {ms:?}");
    }
}

fn errors(ms: &[Msg]) -> Vec<(String, String)> {
    ms.iter()
        .filter(|m| m.tag == b'E')
        .map(|m| {
            (
                m.code().unwrap_or_default(),
                m.field(b'M').unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn a_parse_the_server_refuses_keeps_the_statement_it_had() {
    let gw = agent_gateway();
    let direct = cluster().sql("shop", "SELECT email FROM customers WHERE id = 1");
    let mut r = login(&gw);
    let masked = "SELECT email FROM customers WHERE id = 1";
    let r1 = exchange(&mut r, &[parse("s", masked), sync()], 1);
    assert_eq!(tags(&r1), "1Z");
    // Parse of the same name with a text that reads nothing masked: the
    // server refuses it (42P05) and keeps the masked statement.
    let r2 = exchange(&mut r, &[parse("s", "SELECT 'x' AS email"), sync()], 1);
    assert_eq!(errors(&r2)[0].0, "42P05", "{r2:?}");
    // Bind and Execute without Describe: the rows are the masked statement's
    // and must come masked.
    let r3 = exchange(&mut r, &[bind("", "s"), execute("", 0), sync()], 1);
    let got = values(&r3);
    assert_eq!(got.len(), 1, "{r3:?}");
    assert_ne!(got[0], direct, "the e-mail address came through unmasked");
    assert!(got[0].contains("***"), "{got:?}");
}

#[test]
fn a_close_the_server_skipped_leaves_the_statement() {
    let gw = agent_gateway();
    let mut r = login(&gw);
    let r1 = exchange(&mut r, &[parse("s", "SELECT 'kept'"), sync()], 1);
    assert_eq!(tags(&r1), "1Z");
    // The Parse fails at the server, so it skips the Close up to Sync.
    let r2 = exchange(
        &mut r,
        &[
            parse("bad", "SELECT * FROM no_such_table"),
            close(b'S', "s"),
            sync(),
        ],
        1,
    );
    assert_eq!(tags(&r2), "EZ", "{r2:?}");
    let r3 = exchange(&mut r, &[bind("", "s"), execute("", 0), sync()], 1);
    assert_eq!(values(&r3), ["kept"], "{r3:?}");
    // What the server skipped is not there either: pgward says so itself.
    let r4 = exchange(&mut r, &[bind("", "bad"), execute("", 0), sync()], 1);
    let e = errors(&r4);
    assert_eq!(e[0].0, "42501", "{r4:?}");
    assert!(
        e[0].1.contains("\"bad\" was refused or does not exist"),
        "{e:?}"
    );
    // A Close the server did does forget it.
    let r5 = exchange(&mut r, &[close(b'S', "s"), sync()], 1);
    assert_eq!(tags(&r5), "3Z");
    let r6 = exchange(&mut r, &[bind("", "s"), execute("", 0), sync()], 1);
    let e = errors(&r6);
    assert_eq!(e[0].0, "42501", "pgward refuses it itself: {e:?}");
    assert!(
        e[0].1.contains("\"s\" was refused or does not exist"),
        "{e:?}"
    );
}

#[test]
fn a_portal_record_does_not_outlive_the_servers_portal() {
    let gw = agent_gateway();
    let mut r = login(&gw);
    let unknown = |ms: &[Msg]| {
        let e = errors(ms);
        e.len() == 1
            && e[0].0 == "42501"
            && e[0]
                .1
                .contains("portal \"c\" was refused or does not exist")
    };
    // Outside a transaction block a portal ends at Sync: pgward forgets it
    // too, and refuses an Execute of it itself.
    let r1 = exchange(
        &mut r,
        &[parse("s", "SELECT 'portal'"), bind("c", "s"), sync()],
        1,
    );
    assert_eq!(tags(&r1), "12Z");
    let r2 = exchange(&mut r, &[execute("c", 0), sync()], 1);
    assert!(unknown(&r2), "{r2:?}");
    // Inside one it lives on until CLOSE names it; a cursor declared under
    // the name then has the record of its DECLARE, not the old portal's.
    assert!(errors(&r.query("BEGIN")).is_empty());
    let r3 = exchange(&mut r, &[bind("c", "s"), sync()], 1);
    assert_eq!(tags(&r3), "2Z");
    let r4 = exchange(&mut r, &[execute("c", 0), sync()], 1);
    assert_eq!(values(&r4), ["portal"], "{r4:?}");
    let r5 = r.query("CLOSE c");
    assert!(errors(&r5).is_empty(), "{r5:?}");
    let r6 = exchange(&mut r, &[execute("c", 0), sync()], 1);
    assert!(unknown(&r6), "a closed portal is forgotten: {r6:?}");
    assert!(errors(&r.query("ROLLBACK; BEGIN")).is_empty());
    let r7 = r.query("DECLARE c CURSOR FOR SELECT 'cursor'");
    assert!(errors(&r7).is_empty(), "{r7:?}");
    let r8 = exchange(&mut r, &[execute("c", 0), sync()], 1);
    assert_eq!(values(&r8), ["cursor"], "{r8:?}");
    assert!(errors(&r.query("CLOSE c")).is_empty());
    let r9 = exchange(&mut r, &[execute("c", 0), sync()], 1);
    assert!(unknown(&r9), "{r9:?}");
    assert!(errors(&r.query("ROLLBACK")).is_empty());
}

#[test]
fn a_prepared_statement_is_judged_again_when_the_search_path_changes() {
    let oid = |schema: &str| {
        cluster().sql(
            "shop",
            &format!("SELECT '{schema}.customers'::regclass::oid"),
        )
    };
    let sql = "SELECT tableoid::oid FROM customers LIMIT 1";
    // The server analyses the statement again after the change: prove it.
    let direct = std::process::Command::new("psql")
        .args(["-X", "-At", &cluster().direct_dsn("shop")])
        .args(["-c", &format!("PREPARE s AS {sql}"), "-c", "EXECUTE s"])
        .args([
            "-c",
            "SET search_path = internal, public",
            "-c",
            "EXECUTE s",
        ])
        .output()
        .unwrap();
    let lines: Vec<String> = stdout(&direct).lines().map(str::to_string).collect();
    assert_eq!(
        lines,
        ["PREPARE", &oid("public"), "SET", &oid("internal")].map(String::from)
    );

    let gw = gateway("reader");
    let mut r = gw.raw("shop");
    let r1 = exchange(
        &mut r,
        &[parse("s", sql), bind("", "s"), execute("", 0), sync()],
        1,
    );
    assert_eq!(values(&r1), [oid("public")], "{r1:?}");
    let r2 = r.query("SET search_path = internal, public");
    assert!(errors(&r2).is_empty(), "{r2:?}");
    let r3 = exchange(&mut r, &[bind("", "s"), execute("", 0), sync()], 1);
    assert!(
        values(&r3).is_empty(),
        "internal.customers was read: {r3:?}"
    );
    let e = errors(&r3);
    assert_eq!(e[0].0, "42501");
    assert_eq!(
        e[0].1,
        "pgward: role reader may not read internal.customers"
    );
    let detail = r3
        .iter()
        .find(|m| m.tag == b'E')
        .and_then(|m| m.field(b'D'));
    assert!(detail.unwrap_or_default().contains("judged again"));
    // A Describe would show internal.customers' columns: refused too.
    let r4 = exchange(&mut r, &[frame(b'D', b"Ss\0"), sync()], 1);
    assert!(!r4.iter().any(|m| m.tag == b'T'), "{r4:?}");
    assert_eq!(
        errors(&r4)[0].1,
        "pgward: role reader may not read internal.customers"
    );
}

/// Under standard_conforming_strings = off, `\'` does not end the first
/// string, so the table name is code; under on it is inside a string. (The
/// comment ends at the newline, so a `;` after it ends the statement in
/// both modes, for psql too.)
const STRINGS_TRICK: &str = "SELECT '\\' AS x, ' , key_value FROM api_keys --'\n";

#[test]
fn a_text_pipelined_behind_a_strings_change_waits_for_it() {
    let gw = agent_gateway();
    let direct_keys = cluster().sql("shop", "SELECT key_value FROM api_keys");
    let mut r = login(&gw);
    // Simple protocol: the change and the trick in one write.
    let replies = exchange(
        &mut r,
        &[
            query("SET standard_conforming_strings = off"),
            query(STRINGS_TRICK),
        ],
        2,
    );
    let e = errors(&replies);
    assert_eq!(e.len(), 1, "{replies:?}");
    assert_eq!(e[0].0, "42501");
    assert!(
        e[0].1.contains(
            "holds a backslash or a non-ASCII character while earlier statements are still running"
        ),
        "{e:?}"
    );
    assert_no_key(&replies, &direct_keys);
    // Once settled, the same text is judged as the server now reads it.
    let replies = r.query(STRINGS_TRICK);
    let e = errors(&replies);
    assert_eq!(
        e[0].1, "pgward: role agent may not read public.api_keys",
        "{replies:?}"
    );
    let replies = r.query("SELECT 'it\\'s'");
    assert_eq!(values(&replies), ["it's"]);
    // Extended protocol: the change runs at Execute and settles at Sync; a
    // Parse behind it in the same batch waits too. (Its refusal is an error
    // in the same implicit transaction, which undoes the change: the server
    // stays at off, and so does pgward.)
    let replies = exchange(
        &mut r,
        &[
            parse("", "SET standard_conforming_strings = on"),
            bind("", ""),
            execute("", 0),
            parse("t", "SELECT E'\\\\' AS backslash"),
            sync(),
        ],
        1,
    );
    assert_eq!(tags(&replies), "12CEZ", "{replies:?}");
    assert!(
        errors(&replies)[0].1.contains("holds a backslash"),
        "{replies:?}"
    );
    let replies = r.query("SELECT current_setting('standard_conforming_strings')");
    assert_eq!(values(&replies), ["off"]);
    let replies = r.query(STRINGS_TRICK);
    assert_eq!(
        errors(&replies)[0].1,
        "pgward: role agent may not read public.api_keys"
    );
    // Back to on: the trick is one harmless string again.
    assert!(errors(&r.query("SET standard_conforming_strings = on")).is_empty());
    let replies = r.query(STRINGS_TRICK);
    assert_eq!(values(&replies).len(), 1, "{replies:?}");
    assert!(errors(&replies).is_empty(), "{replies:?}");
}

#[test]
fn psql_follows_standard_conforming_strings_both_ways() {
    let gw = agent_gateway();
    let direct_keys = cluster().sql("shop", "SELECT key_value FROM api_keys");
    let script = format!(
        "SET standard_conforming_strings = off;\n\
         SELECT 'it\\'s';\n\
         {STRINGS_TRICK};\n\
         SELECT 'after';\n\
         BEGIN;\n\
         SET standard_conforming_strings = on;\n\
         ROLLBACK;\n\
         {STRINGS_TRICK};\n\
         SET standard_conforming_strings = on;\n\
         {STRINGS_TRICK};\n"
    );
    let out = psql(&gw.dsn("shop"), &["-v", "ON_ERROR_STOP=0"], &script);
    let err = stderr(&out);
    let text = stdout(&out);
    assert_eq!(
        err.matches("pgward: role agent may not read public.api_keys")
            .count(),
        2,
        "refused under off, also after a ROLLBACK brought off back: {err}"
    );
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.contains(&"it's") && lines.contains(&"after"),
        "{text}"
    );
    for key in direct_keys.lines() {
        assert!(!text.contains(key), "an API key leaked: {text}");
    }
    // Under on, the trick is two strings: `\` and ` , key_value ... --`.
    assert_eq!(
        lines.last(),
        Some(&"\\| , key_value FROM api_keys --"),
        "{text}"
    );
}

#[test]
fn a_change_nobody_announced_still_holds_back_texts_behind_it() {
    // A view that changes the setting as a side effect: the statement that
    // reads it does not say so, and the server reports the change only just
    // before its ReadyForQuery, after the rows of whatever ran meanwhile.
    let v = format!("pgward_scs_view_{}", std::process::id());
    cluster().sql(
        "shop",
        &format!("CREATE OR REPLACE VIEW public.{v} AS SELECT set_config('standard_conforming_strings', 'off', false) AS s"),
    );
    let direct_keys = cluster().sql("shop", "SELECT key_value FROM api_keys");
    let gw = agent_gateway();
    let mut r = login(&gw);
    // One Sync: the trick would run, under off, before the report arrives.
    let replies = exchange(
        &mut r,
        &[
            parse("", &format!("SELECT s FROM public.{v}")),
            bind("", ""),
            execute("", 0),
            parse("t", STRINGS_TRICK),
            bind("", "t"),
            execute("", 0),
            sync(),
        ],
        1,
    );
    assert_no_key(&replies, &direct_keys);
    let e = errors(&replies);
    assert_eq!(e.len(), 1, "{replies:?}");
    assert!(
        e[0].1.contains(
            "holds a backslash or a non-ASCII character while earlier statements are still running"
        ),
        "{e:?}"
    );
    // The refusal's error undid the change in the implicit transaction; run
    // the view alone, then the trick is judged as the server reads it.
    assert!(errors(&r.query(&format!("SELECT * FROM public.{v}"))).is_empty());
    let replies = r.query(STRINGS_TRICK);
    assert_eq!(
        errors(&replies)[0].1,
        "pgward: role agent may not read public.api_keys"
    );
    cluster().sql("shop", &format!("DROP VIEW public.{v}"));
}

#[tokio::test]
async fn an_extended_copy_in_keeps_the_replies_in_step() {
    use futures_util::SinkExt;
    let gw = Gateway::start(GatewayOptions::default());
    let client = gw.connect("shop").await;
    client
        .batch_execute("CREATE TEMP TABLE t (id int)")
        .await
        .unwrap();
    // tokio-postgres sends Sync right after Execute; the server ignores a
    // Sync that arrives during COPY FROM STDIN, so it owes one ReadyForQuery
    // fewer than the client sent Syncs.
    let sink = client.copy_in("COPY t FROM STDIN").await.unwrap();
    futures_util::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(b"1\n2\n"))
        .await
        .unwrap();
    assert_eq!(sink.finish().await.unwrap(), 2);
    // A lexing change settles at its own ReadyForQuery, not one later.
    client
        .batch_execute("SET standard_conforming_strings = off")
        .await
        .unwrap();
    let rows = client.simple_query("SELECT 'it\\'s'").await.unwrap();
    let value = rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    });
    assert_eq!(value.as_deref(), Some("it's"));
    // And prepared statements still settle in step.
    let stmt = client.prepare("SELECT count(*) FROM t").await.unwrap();
    let n: i64 = client.query_one(&stmt, &[]).await.unwrap().get(0);
    assert_eq!(n, 2);
}

#[test]
fn continued_strings_cannot_share_a_cache_entry_with_split_ones() {
    // To the server, a string followed by whitespace holding a newline and
    // another quote is one string, read in the first part's rules: after
    // E'a', `\'` escapes the quote. pgward's fingerprint lexer reads it so
    // too; one that keyed the parts as two strings read both texts below as
    // "select ? ? as x , ?", and served the second the first's decision.
    let direct_keys = cluster().sql("shop", "SELECT key_value FROM api_keys");
    let gw = gateway("reader");
    let mut r = gw.raw("shop");
    let primer = r.query("SELECT 'a'\n'b' AS x, 'c'");
    assert!(errors(&primer).is_empty(), "{primer:?}");
    assert!(
        primer
            .iter()
            .any(|m| m.tag == b'D' && m.body.windows(2).any(|w| w == b"ab")),
        "the server joins the parts: {primer:?}"
    );
    let replies = r.query("SELECT E'a'\n'\\' AS x, ' , key_value FROM api_keys --'");
    assert_no_key(&replies, &direct_keys);
    let e = errors(&replies);
    assert_eq!(e.len(), 1, "{replies:?}");
    assert_eq!(e[0].0, "42501", "{e:?}");
    assert!(e[0].1.contains("api_keys"), "{e:?}");
}

#[test]
fn latin1_and_latin9_statements_are_read_as_the_server_converts_them() {
    let gw = Gateway::with_roles("reader", "[roles.reader]\noperations = [\"select\"]\nread = [\"public.*\", \"!public.clés\"]\n\n[masks]\n\"public.customers.email\" = \"email\"\n");
    for encoding in ["LATIN1", "LATIN9"] {
        let mut r = Raw::login_with(
            gw.port,
            "agent",
            AGENT_PASSWORD,
            &[("database", "shop"), ("client_encoding", encoding)],
        )
        .unwrap_or_else(|e| panic!("{encoding}: {:?}", e.field(b'M')));
        // A literal outside ASCII comes back as sent.
        r.send(&frame(b'Q', b"SELECT 'caf\xe9'\0"));
        let reply = r.replies();
        let row = reply.iter().find(|m| m.tag == b'D').expect("a row");
        assert!(row.body.ends_with(b"caf\xe9"), "{encoding}: {row:?}");
        // A name outside ASCII is the name the server reads: refused.
        r.send(&frame(b'Q', b"SELECT * FROM cl\xe9s\0"));
        let e = errors(&r.replies());
        assert_eq!(e.len(), 1, "{encoding}");
        assert!(e[0].1.contains("public.cl"), "{encoding}: {e:?}");
        // Masks hold.
        let reply = r.query("SELECT email FROM customers ORDER BY id LIMIT 1");
        let row = reply.iter().find(|m| m.tag == b'D').expect("a row");
        assert!(
            String::from_utf8_lossy(&row.body).contains("***@"),
            "{row:?}"
        );
    }
    // LATIN9's own characters: 0xA4 is the euro sign.
    let mut r = Raw::login_with(
        gw.port,
        "agent",
        AGENT_PASSWORD,
        &[("database", "shop"), ("client_encoding", "LATIN9")],
    )
    .unwrap();
    r.send(&frame(
        b'Q',
        b"SELECT length('\xa4'), '\xa4' = U&'\\20AC'\0",
    ));
    assert_eq!(values_of(&r.replies()), ["1", "t"]);
}

#[test]
fn other_server_encodings_take_plain_ascii_statements() {
    let gw = gateway("reader");
    let mut r = Raw::login_with(
        gw.port,
        "agent",
        AGENT_PASSWORD,
        &[("database", "shop"), ("client_encoding", "EUC_JP")],
    )
    .unwrap();
    assert!(errors(&r.query("SELECT 1")).is_empty());
    // EUC_JP's "あ" in a literal: refused, the session goes on.
    r.send(&frame(b'Q', b"SELECT '\xa4\xa2'\0"));
    let e = errors(&r.replies());
    assert!(e[0].1.contains("plain ASCII"), "{e:?}");
    // The same value as a bind parameter reaches the server.
    let reply = exchange(
        &mut r,
        &[
            parse("", "SELECT length($1::text)"),
            // One text parameter, EUC_JP bytes.
            frame(b'B', b"\0\0\0\0\0\x01\0\0\0\x02\xa4\xa2\0\0"),
            execute("", 0),
            sync(),
        ],
        1,
    );
    assert!(errors(&reply).is_empty(), "{reply:?}");
    assert_eq!(values(&reply), ["1"]);
}

/// Every DataRow field's text, in order.
fn values_of(reply: &[Msg]) -> Vec<String> {
    common::raw::rows(reply).0
}
