//! SIGHUP reloads the configuration without dropping sessions: new sessions
//! get the new policy at once, existing ones at their next statement; a bad
//! configuration is refused with the error logged and the old one kept.

mod common;

use common::raw::{bind, execute, parse, rows, sync, Msg, Raw};
use common::*;

const BEFORE: &str = r#"
[roles.reader]
operations = ["select"]
read = ["public.*"]
"#;

fn gateway() -> Gateway {
    Gateway::with_roles("reader", BEFORE)
}

fn login(gw: &Gateway) -> Raw {
    gw.raw("shop")
}

fn error_of(reply: &[Msg]) -> Option<String> {
    rows(reply).1
}

/// The running configuration with the reader's `read` list replaced and
/// `more` appended.
fn edited(gw: &Gateway, read: &str, more: &str) -> String {
    let text = gw.config_text();
    assert!(text.contains("read = [\"public.*\"]"), "{text}");
    format!(
        "{}\n{more}\n",
        text.replace("read = [\"public.*\"]", &format!("read = {read}"))
    )
}

#[test]
fn existing_sessions_take_up_the_new_policy_at_their_next_statement() {
    let gw = gateway();
    let mut old = login(&gw);
    assert_eq!(error_of(&old.query("SELECT count(*) FROM orders")), None);
    let direct_email = cluster().sql("shop", "SELECT email FROM customers WHERE id = 1");
    // Prepared and bound before the reload.
    let reply = old.extended(&[
        parse("s", "SELECT status FROM orders ORDER BY id LIMIT 1"),
        sync(),
    ]);
    assert_eq!(error_of(&reply), None);
    assert!(old.query("BEGIN").iter().any(|m| m.tag == b'Z'));
    assert_eq!(error_of(&old.extended(&[bind("p", "s"), sync()])), None);

    // Orders no longer readable; e-mail addresses masked.
    let config = edited(
        &gw,
        r#"["public.*", "!public.orders"]"#,
        "[masks]\n\"public.customers.email\" = \"redact\"\n",
    );
    assert!(gw.reload(&config), "{}", gw.log_text());

    // The old session, next statement: the new policy.
    let err = error_of(&old.query("SELECT count(*) FROM orders")).expect("refused");
    assert!(err.contains("public.orders"), "{err}");
    old.query("ROLLBACK; BEGIN");
    let (cells, err) = rows(&old.query("SELECT email FROM customers WHERE id = 1"));
    assert_eq!(err, None);
    assert_eq!(cells, ["[redacted]"], "masked after the reload");
    assert_ne!(cells[0], direct_email);
    // The statement prepared before is judged again; the portal bound
    // before is not run.
    let err = error_of(&old.extended(&[bind("", "s"), sync()])).expect("refused");
    assert!(err.contains("public.orders"), "{err}");
    old.query("ROLLBACK; BEGIN");
    let err = error_of(&old.extended(&[execute("p", 0), sync()])).expect("refused");
    assert!(err.contains("portal \"p\""), "{err}");
    old.query("ROLLBACK");

    // A new session: the new policy from the start.
    let mut new = login(&gw);
    assert!(error_of(&new.query("SELECT count(*) FROM orders")).is_some());
    assert_eq!(error_of(&new.query("SELECT count(*) FROM products")), None);
}

#[test]
fn a_bad_configuration_is_refused_and_the_old_one_kept() {
    let gw = gateway();
    let mut s = login(&gw);
    let good = gw.config_text();
    for bad in [
        // Not TOML.
        format!("{good}\n[roles.reader\n"),
        // A pattern of the wrong form.
        edited(&gw, r#"["orders"]"#, ""),
        // A mask on a column that does not exist.
        format!("{good}\n[masks]\n\"public.customers.emial\" = \"redact\"\n"),
    ] {
        assert!(!gw.reload(&bad), "accepted: {bad}");
        assert_eq!(error_of(&s.query("SELECT count(*) FROM orders")), None);
    }
    let log = gw.log_text();
    assert!(log.contains("reload refused"), "{log}");
    assert!(log.contains("emial"), "the reason is logged: {log}");
    // Still serving new sessions under the old policy.
    let mut fresh = login(&gw);
    assert_eq!(error_of(&fresh.query("SELECT count(*) FROM orders")), None);
}

#[test]
fn a_removed_user_is_told_at_its_next_statement() {
    let gw = gateway();
    let mut s = login(&gw);
    assert_eq!(error_of(&s.query("SELECT 1")), None);
    let config = gw
        .config_text()
        .replace("name = \"agent\"", "name = \"someone_else\"");
    assert!(gw.reload(&config));
    s.send(&common::raw::query("SELECT 1"));
    let m = s.recv_until(b'E');
    assert_eq!(m.code().as_deref(), Some("28000"), "{m:?}");
    assert_eq!(m.field(b'V').as_deref(), Some("FATAL"));
    assert!(m.field(b'M').unwrap().contains("agent"));
    assert!(s.closed());
    // The listen address cannot change without a restart: kept, and said.
    let moved = gw.config_text().replace(
        &format!("127.0.0.1:{}", gw.port),
        &format!("127.0.0.1:{}", free_port()),
    );
    assert!(gw.reload(&moved));
    assert!(gw.log_text().contains("server.listen"), "{}", gw.log_text());
    let out = psql(&gw.dsn("shop"), &["-c", "SELECT 1"], "");
    assert!(
        !out.status.success(),
        "the user is gone for new sessions too"
    );
    assert!(
        stderr(&out).contains("password authentication failed"),
        "{}",
        stderr(&out)
    );
}
