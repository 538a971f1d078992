//! Third red-team round against pgward: session limits (read-only sessions,
//! timeout ceilings), superuser-only settings, startup options. Every test
//! asserts the SECURE outcome, so each one FAILS while its hole is open. All
//! run through a real pgward in front of the test cluster (PostgreSQL 15),
//! whose service login is a superuser.

mod common;

use common::raw::{Msg, Raw};
use common::*;
use pgward::policy::limits::{parse_duration_ms, SessionLimits};
use pgward::sql::classification::SettingValue;

/// A reader (read-only session, 1s statement ceiling, 1s lock ceiling) that
/// may SET harmless settings; and one that may not SET anything else.
const ROLES: &str = r#"
[roles.reader]
operations = ["select", "transaction", "set", "show"]
read = ["public.*"]
functions = ["public.customer_order_count", "pg_sleep"]
statement_timeout = "1s"
lock_timeout = "1s"

[roles.plain]
operations = ["select", "transaction", "show"]
read = ["public.*"]
functions = ["pg_sleep"]
statement_timeout = "1s"
"#;

fn gateway(role: &'static str) -> Gateway {
    Gateway::with_roles(role, ROLES)
}

fn error_of(reply: &[Msg]) -> Option<(String, String)> {
    reply.iter().find(|m| m.tag == b'E').map(|m| {
        (
            m.field(b'C').unwrap_or_default(),
            m.field(b'M').unwrap_or_default(),
        )
    })
}

fn value_of(reply: &[Msg]) -> Option<String> {
    reply.iter().find(|m| m.tag == b'D').map(|m| {
        // One text column: count (2) + length (4) + value.
        String::from_utf8_lossy(&m.body[6..]).into_owned()
    })
}

// ---------------------------------------------------------------------------
// Finding 1: RESET transaction_read_only (or SET ... TO DEFAULT) inside a
// transaction block makes it read-write. PostgreSQL 15 resets the setting to
// its boot value, off, not to default_transaction_read_only; pgward's
// SessionLimits::refuse lets every Reset through.
// ---------------------------------------------------------------------------

#[test]
fn reset_transaction_read_only_does_not_leave_read_only() {
    let mut holes = Vec::new();
    // Pure: the limit must not accept a reset of transaction_read_only.
    let limits = SessionLimits {
        read_only: true,
        timeouts: vec![],
    };
    if limits
        .refuse("transaction_read_only", &SettingValue::Reset)
        .is_none()
    {
        holes.push("SessionLimits accepts RESET transaction_read_only".to_string());
    }

    // Live, as a role with no `set` operation at all (the setting is
    // "harmless", so no grant is needed).
    let gw = gateway("plain");
    let mut r = gw.raw("shop");
    for reset in [
        "RESET transaction_read_only",
        "SET transaction_read_only TO DEFAULT",
        "SET LOCAL transaction_read_only = DEFAULT",
    ] {
        r.query("BEGIN");
        let reply = r.query(reset);
        if error_of(&reply).is_none() {
            let state = value_of(&r.query("SHOW transaction_read_only"));
            if state.as_deref() != Some("on") {
                holes.push(format!(
                    "`BEGIN; {reset}`: transaction_read_only = {state:?}"
                ));
            }
        }
        r.query("ROLLBACK");
    }
    assert!(holes.is_empty(), "read-only left: {holes:#?}");
}

// ---------------------------------------------------------------------------
// Finding 2: timeouts of half a millisecond. pgward rounds 0.5 half away from
// zero (1ms, within the ceiling, not 0); PostgreSQL rounds with rint(), half
// to even: 0, which disables the timeout.
// ---------------------------------------------------------------------------

#[test]
fn half_a_millisecond_is_read_as_the_server_reads_it() {
    // The server reads each of these as 0 (SHOW statement_timeout says 0).
    let misread: Vec<(&str, Option<u64>)> = ["0.5", "0.5ms", "500us", "  0.5 ms"]
        .into_iter()
        .map(|v| (v, parse_duration_ms(v)))
        .filter(|(_, ms)| !(ms.is_none() || *ms == Some(0)))
        .collect();
    assert!(
        misread.is_empty(),
        "read as nonzero, PostgreSQL reads 0 (disabled): {misread:?}"
    );
}

#[test]
fn a_half_millisecond_timeout_does_not_disable_the_ceiling() {
    let gw = gateway("reader");
    let mut holes = Vec::new();
    let mut r = gw.raw("shop");
    for sql in [
        "SET statement_timeout = '0.5'",
        "SET statement_timeout = 0.5",
        "SET statement_timeout = '500us'",
        "SELECT set_config('statement_timeout', '0.5', false)",
        "SET lock_timeout = '0.5ms'",
    ] {
        let reply = r.query(sql);
        if error_of(&reply).is_none() {
            let name = if sql.contains("lock_timeout") {
                "lock_timeout"
            } else {
                "statement_timeout"
            };
            let now = value_of(&r.query(&format!("SHOW {name}")));
            if now.as_deref() == Some("0") {
                holes.push(format!("`{sql}` disabled {name}"));
            }
        }
        r.query("RESET statement_timeout");
        r.query("RESET lock_timeout");
    }
    // As a startup parameter too.
    if let Ok(mut r) = Raw::login_with(
        gw.port,
        "agent",
        AGENT_PASSWORD,
        &[("database", "shop"), ("statement_timeout", "0.5")],
    ) {
        let reply = r.query("SELECT pg_sleep(2)");
        if error_of(&reply).is_none_or(|(c, _)| c != "57014") {
            holes.push("startup statement_timeout=0.5: pg_sleep(2) ran to the end".into());
        }
    }
    assert!(holes.is_empty(), "ceilings lifted: {holes:#?}");
}

// ---------------------------------------------------------------------------
// Finding 3: startup `options` are not split as the server's getopt splits
// them. pgward reads any switch other than -c/-- as one opaque "setting"
// (needs `set`), but the server's getopt (optstring
// "B:bc:C:D:d:EeFf:h:ijk:lN:nOPp:r:S:sTt:v:W:-:") groups flags (`-nc x=y`
// is -n then -c x=y) and lets a switch with an argument swallow the next
// word (`-D -c x=y` is -D with the argument "-c", then an ignored word...).
// ---------------------------------------------------------------------------

fn login_options(gw: &Gateway, options: &str) -> Result<Raw, Msg> {
    Raw::login_with(
        gw.port,
        "agent",
        AGENT_PASSWORD,
        &[("database", "shop"), ("options", options)],
    )
}

#[test]
fn grouped_switches_cannot_leave_read_only_or_lift_timeouts() {
    let gw = gateway("reader");
    // pgward sees default_transaction_read_only=on (fine) and "-nc...": it then
    // leaves out its own default_transaction_read_only=on; the server applies
    // on, then -n, then -c default_transaction_read_only=off.
    let cases = [
        (
            "-c default_transaction_read_only=on -ncdefault_transaction_read_only=off",
            "default_transaction_read_only",
            "on",
        ),
        // -D takes the next word as its argument (ignored for a client): the
        // server never sees the -c pgward relied on.
        (
            "-D -cdefault_transaction_read_only=on",
            "default_transaction_read_only",
            "on",
        ),
        (
            "-c statement_timeout=500ms -ncstatement_timeout=0",
            "statement_timeout",
            "500ms",
        ),
        ("-r -cstatement_timeout=500ms", "statement_timeout", "500ms"),
    ];
    let mut holes = Vec::new();
    for (options, setting, want) in cases {
        if let Ok(mut r) = login_options(&gw, options) {
            let got = value_of(&r.query(&format!("SHOW {setting}")));
            if got.as_deref() != Some(want) {
                holes.push(format!("options {options:?}: {setting} = {got:?}"));
            }
        }
    }
    assert!(holes.is_empty(), "limits lost at startup: {holes:#?}");
}

#[test]
fn grouped_switches_cannot_set_superuser_or_identity_settings() {
    let gw = gateway("reader");
    let mut holes = Vec::new();
    for (options, setting, unwanted) in [
        (
            "-ncsession_replication_role=replica",
            "session_replication_role",
            "replica",
        ),
        ("-O", "allow_system_table_mods", "on"),
        ("-nclog_statement=mod", "log_statement", "mod"),
        ("-ncrole=pg_read_all_data", "role", "pg_read_all_data"),
    ] {
        if let Ok(mut r) = login_options(&gw, options) {
            let got = value_of(&r.query(&format!("SHOW {setting}")));
            if got.as_deref() == Some(unwanted) {
                holes.push(format!("options {options:?}: {setting} = {got:?}"));
            }
        }
    }
    assert!(holes.is_empty(), "never-allowed settings set: {holes:#?}");
}

// ---------------------------------------------------------------------------
// Finding 4: settings only a superuser may set at connection start
// (context superuser-backend) are missing from SUPERUSER_SETTINGS:
// log_connections, log_disconnections, jit_debugging_support,
// jit_profiling_support. With the superuser service login the server
// applies them (a client turns off the disconnection log of its session).
// ---------------------------------------------------------------------------

#[test]
fn superuser_backend_settings_are_refused_at_startup() {
    let gw = gateway("reader");
    let mut holes = Vec::new();
    for (setting, value) in [
        ("log_disconnections", "on"),
        ("log_connections", "on"),
        ("jit_profiling_support", "on"),
    ] {
        let login = Raw::login_with(
            gw.port,
            "agent",
            AGENT_PASSWORD,
            &[("database", "shop"), (setting, value)],
        );
        if let Ok(mut r) = login {
            let got = value_of(&r.query(&format!("SHOW {setting}")));
            holes.push(format!(
                "startup {setting}={value} accepted: SHOW says {got:?}"
            ));
        }
    }
    assert!(holes.is_empty(), "superuser-only settings set: {holes:#?}");
}

// ---------------------------------------------------------------------------
// Finding 5: a function named with its database (`shop.pg_catalog.set_config`)
// skips every check of its text arguments. sql/functions.rs function_call
// calls builtin_with_names only when `name.catalog.is_none()`; the server
// accepts a catalog part that names the current database. So set_config
// changes any setting unseen (read-only, timeouts, search_path, superuser
// and identity settings), current_setting reads secret settings, and
// nextval/setval write sequences unseen.
// ---------------------------------------------------------------------------

#[test]
fn a_database_qualified_set_config_is_checked() {
    let gw = gateway("plain");
    let mut holes = Vec::new();
    let mut r = gw.raw("shop");
    // Read-only: the role writes nothing and may not SET anything.
    let reply =
        r.query("SELECT shop.pg_catalog.set_config('default_transaction_read_only', 'off', false)");
    if error_of(&reply).is_none() {
        r.query("BEGIN");
        let got = value_of(&r.query("SHOW transaction_read_only"));
        r.query("ROLLBACK");
        holes.push(format!("read-only left: transaction_read_only = {got:?}"));
    }
    // The 1s statement ceiling.
    let reply = r.query("SELECT shop.pg_catalog.set_config('statement_timeout', '0', false)");
    if error_of(&reply).is_none() {
        let got = value_of(&r.query("SHOW statement_timeout"));
        holes.push(format!("statement_timeout = {got:?}"));
    }
    // A superuser-only setting (the service login is a superuser).
    let reply =
        r.query("SELECT shop.pg_catalog.set_config('session_replication_role', 'replica', false)");
    if error_of(&reply).is_none() {
        let got = value_of(&r.query("SHOW session_replication_role"));
        holes.push(format!("session_replication_role = {got:?}"));
    }
    // A secret setting (the server's data directory).
    let reply = r.query("SELECT shop.pg_catalog.current_setting('data_directory')");
    if error_of(&reply).is_none() {
        holes.push(format!("data_directory read: {:?}", value_of(&reply)));
    }
    assert!(holes.is_empty(), "unchecked settings: {holes:#?}");
}

#[test]
fn a_database_qualified_search_path_change_cannot_read_another_schema() {
    // The reader may read public.* only; internal.customers holds risk notes.
    let gw = gateway("plain");
    let mut r = gw.raw("shop");
    assert!(error_of(&r.query("SELECT risk_notes FROM internal.customers")).is_some());
    let reply = r.query("SELECT shop.pg_catalog.set_config('search_path', 'internal', false)");
    if error_of(&reply).is_none() {
        // pgward still resolves `customers` as public.customers.
        let reply =
            r.query("SELECT risk_notes FROM customers WHERE risk_notes IS NOT NULL LIMIT 1");
        assert!(
            error_of(&reply).is_some(),
            "internal.customers read by a reader of public only: {:?}",
            value_of(&reply)
        );
    }
}

// ---------------------------------------------------------------------------
// Finding 6: an unqualified call of a built-in's name is judged as the
// built-in (policy/decide.rs check_function: `builtin` when the name has no
// schema), but the server picks a same-named function of a search_path
// schema when its argument types match better (an exact match beats
// pg_catalog's that needs a cast), or when the path lists pg_catalog later.
// A role with `code` defines public.upper(varchar) and calls it as `upper`,
// with no `functions` grant: its body reads a table the role may not read.
// ---------------------------------------------------------------------------

#[test]
fn an_unqualified_builtin_name_cannot_call_a_user_function() {
    let roles = r#"
[roles.coder]
operations = ["select", "transaction", "ddl", "code"]
read = ["public.orders"]
write = ["public.*"]
"#;
    let gw = Gateway::with_roles("coder", roles);
    let mut r = gw.raw("shop");
    assert!(error_of(&r.query("SELECT key_value FROM public.api_keys")).is_some());
    r.query("BEGIN");
    let created = r.query(
        "CREATE FUNCTION public.upper(varchar) RETURNS text LANGUAGE sql \
         AS $$SELECT string_agg(key_value, ',') FROM public.api_keys$$",
    );
    // pgward refuses a routine named like a built-in (the fix); were it
    // created, called by its own name it would need a grant:
    assert!(
        error_of(&created).is_some()
            || error_of(&r.query("SELECT public.upper('x'::varchar)")).is_some()
    );
    r.query("ROLLBACK");
    r.query("BEGIN");
    r.query(
        "CREATE FUNCTION public.upper(varchar) RETURNS text LANGUAGE sql \
         AS $$SELECT string_agg(key_value, ',') FROM public.api_keys$$",
    );
    let reply = r.query("SELECT upper('x'::varchar)");
    r.query("ROLLBACK");
    assert!(
        error_of(&reply).is_some() || value_of(&reply).as_deref() == Some("X"),
        "api_keys read through upper(): {:?}",
        value_of(&reply)
    );
    // A function that already exists under a built-in's name (the owner's)
    // is one an unqualified call may reach: it must be granted.
    // initcap is a safe built-in no other test calls.
    let f = "initcap";
    cluster().sql(
        "shop",
        "CREATE FUNCTION public.initcap(varchar) RETURNS text LANGUAGE sql AS 'SELECT ''owned''::text'",
    );
    let reader = Gateway::with_roles("reader", include_str!("../examples/policy.toml"));
    let mut r = reader.raw("shop");
    let reply = r.query(&format!("SELECT {f}('x'::varchar)"));
    let plain = r.query("SELECT pg_catalog.initcap('x')");
    cluster().sql("shop", "DROP FUNCTION public.initcap(varchar)");
    assert!(error_of(&plain).is_none(), "{plain:?}");
    assert!(
        error_of(&reply).is_some(),
        "an ungranted user function ran: {reply:?}"
    );
}
