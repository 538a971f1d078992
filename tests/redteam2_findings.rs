//! Second red-team round against pgward: the extended protocol and session
//! state, masked values leaving by other paths, and the catalog-based checks.
//! Every test asserts the SECURE outcome, so each one FAILS while its hole is
//! open. Pure tests first (no server), then live ones through a real pgward in
//! front of the test cluster (PostgreSQL 15).

mod common;
#[path = "support/shop_catalog.rs"]
mod shop_catalog;

use std::collections::BTreeMap;

use common::raw::{bind, execute, parse, rows, sync, Raw};
use common::*;
use pgward::policy::catalog::Catalog;
use pgward::policy::decide::decide;
use pgward::policy::masks::{MaskSpec, Masks};
use pgward::policy::{Decision, Policy, SessionView};
use pgward::sql::classify;

const MASKS: &str = r#"
"public.customers.email" = "email"
"public.customers.phone" = { strategy = "partial", keep_last = 4 }
"public.customers.ssn" = "redact"
"public.customers.date_of_birth" = "null"
"public.payments.card_number" = "hash"
"#;

/// Decides `sql` for `role` of examples/policy.toml, with the sample masks
/// and a catalog snapshot holding the sample tables.
fn decision(role: &str, sql: &str, path: &[&str]) -> Result<Decision, String> {
    let c = classify(sql).map_err(|e| e.to_string())?;
    let policy = Policy::from_toml(include_str!("../examples/policy.toml")).unwrap();
    let raw: BTreeMap<String, MaskSpec> = toml::from_str(MASKS).unwrap();
    let masks = Masks::compile(&raw).unwrap();
    let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
    // The snapshot pgward decides with, read from examples/shop.sql.
    static CATALOG: std::sync::OnceLock<Catalog> = std::sync::OnceLock::new();
    let catalog = CATALOG.get_or_init(shop_catalog::shop_catalog);
    let view = SessionView {
        masks: Some(&masks),
        catalog: Some(catalog),
        database: "shop",
        upstream_database: "shop",
        search_path: &path,
    };
    let roles = policy.roles_of(&[role.to_string()]);
    Ok(decide(&roles, &c, &view))
}

fn allowed(role: &str, sql: &str) -> bool {
    decision(role, sql, &["public"]).is_ok_and(|d| d.is_allowed())
}

// ---------------------------------------------------------------------------
// Live tests: a real pgward in front of PostgreSQL 15.

const LIVE_ROLES: &str = r#"
[roles.reader]
operations = ["select", "cursor"]
read  = ["public.*", "!public.api_keys"]
catalog = true

[roles.migrator]
operations = ["select", "ddl", "transaction", "set"]
read  = ["public.*"]
write = ["public.*"]
catalog = true

[masks]
"public.customers.email" = "email"
"public.customers.phone" = { strategy = "partial", keep_last = 4 }
"public.customers.ssn" = "redact"
"public.customers.date_of_birth" = "null"
"public.payments.card_number" = "hash"

[masking]
hash_key = "test-only-key"
"#;

/// A gateway for `role`; `extra` is appended to its config (more databases).
fn live_gateway(role: &'static str, extra: String) -> Gateway {
    Gateway::start(GatewayOptions {
        role,
        roles: LIVE_ROLES.to_string(),
        workers: 1,
        extra_config: extra,
        ..Default::default()
    })
}

/// A database of this test's own (so DDL cannot disturb the shared `shop`),
/// reachable through pgward as `red2`: `public.customers` with one clear row,
/// plus whatever `setup` creates. Dropped on drop.
struct Scratch {
    dbname: String,
}

impl Scratch {
    fn new(tag: &str, setup: &str) -> Scratch {
        let dbname = format!("red2_{tag}_{}", std::process::id());
        let c = cluster();
        c.sql("postgres", &format!("DROP DATABASE IF EXISTS {dbname}"));
        c.sql("postgres", &format!("CREATE DATABASE {dbname}"));
        c.sql(
            &dbname,
            "CREATE TABLE public.customers (id int PRIMARY KEY, full_name text, email text, \
             phone text, ssn varchar(11), date_of_birth date, city text); \
             INSERT INTO public.customers VALUES \
             (1, 'Alice', 'alice.anders@example.com', '+1-202-555-0143', '901-23-4567', '1980-01-01', 'Springfield')",
        );
        if !setup.is_empty() {
            c.sql(&dbname, setup);
        }
        Scratch { dbname }
    }

    /// The `[databases.red2]` section for the gateway's config.
    fn section(&self) -> String {
        cluster().database_section("red2", &self.dbname)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .args([
                "-X",
                "-q",
                &cluster().direct_dsn("postgres"),
                "-c",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.dbname),
            ])
            .output();
    }
}

// ---------------------------------------------------------------------------
// R1. FETCH through the extended protocol carries no masking plan. pgward
// asks for a portal's description before Execute only when the portal's
// statement reads a masked table (guard.rs portal_reads_masked, from
// decide::reads_masked over the text's relations). `FETCH ALL FROM c` reads
// no relation, so its rows arrive with no RowDescription before them and the
// masker (which plans per RowDescription) passes them in clear. The cursor's
// own DECLARE is allowed: its masked columns are plain output columns, which
// a simple-Query FETCH does mask.

#[test]
fn r1_fetch_by_extended_protocol_is_masked() {
    let gw = live_gateway("reader", String::new());
    let mut r = gw.raw("shop");
    let (_, err) = rows(&r.query(
        "DECLARE leak CURSOR WITH HOLD FOR SELECT id, email, ssn FROM customers WHERE id = 1",
    ));
    assert_eq!(err, None, "DECLARE of plain masked columns is allowed");
    // Sanity: a simple-Query FETCH is masked (its RowDescription has the OIDs).
    let (simple, _) = rows(&r.query("FETCH ABSOLUTE 1 FROM leak"));
    assert_eq!(simple[2], "[redacted]", "{simple:?}");
    // The same rows by Parse/Bind/Execute, no Describe.
    let mut batch = parse("", "FETCH ABSOLUTE 1 FROM leak");
    batch.extend(bind("", ""));
    batch.extend(execute("", 0));
    batch.extend(sync());
    r.send(&batch);
    let (got, err) = rows(&r.replies());
    assert!(
        !got.iter()
            .any(|v| v == "901-23-4567" || v.starts_with("alice.anders@")),
        "FETCH by the extended protocol returned clear masked values: {got:?} {err:?}"
    );
}

// ---------------------------------------------------------------------------
// R2. DDL moves masked data out from under the masks. Masks (and
// deny_columns) name `schema.table.column`; the masker maps a result column
// (table OID, attnum) to its current name in the catalog snapshot. A role
// with `ddl` and write on the table (examples' migrator: no unmask) may
// rename the table or the column, or make the table a child of a new parent;
// after the snapshot is read again, the same values come out under a name no
// mask names. decide.rs lets `ALTER TABLE ... RENAME`/`INHERIT` through
// (they use no column); nothing checks that the target holds masked columns.

#[test]
fn r2_pure_ddl_that_unmasks_is_refused() {
    for sql in [
        "ALTER TABLE customers RENAME COLUMN ssn TO not_secret",
        "ALTER TABLE customers RENAME TO clients",
        "ALTER TABLE customers INHERIT public.parent",
    ] {
        assert!(
            !allowed("migrator", sql),
            "{sql}: the masks no longer apply afterwards"
        );
    }
}

#[test]
fn r2_live_rename_and_inherit_unmask() {
    let db = Scratch::new("r2", "");
    let gw = live_gateway("migrator", db.section());
    let mut r = gw.raw("red2");
    let (plain, _) = rows(&r.query("SELECT ssn FROM customers"));
    assert_eq!(plain, ["[redacted]"], "sanity: ssn is masked");
    // A parent with the same columns, then customers made its child: the
    // parent's rows are customers' rows, under the parent's (unmasked) name.
    let _ = r.query(
        "CREATE TABLE public.parent (id int, full_name text, email text, phone text, \
         ssn varchar(11), date_of_birth date, city text)",
    );
    let mut leaks = Vec::new();
    let (_, err) = rows(&r.query("ALTER TABLE customers RENAME COLUMN ssn TO not_secret"));
    let (got, _) = rows(&r.query("SELECT not_secret FROM customers"));
    if got.iter().any(|v| v == "901-23-4567") {
        leaks.push(format!("RENAME COLUMN ({err:?}): {got:?}"));
    }
    let _ = r.query("ALTER TABLE customers RENAME COLUMN not_secret TO ssn");
    let (_, err) = rows(&r.query("ALTER TABLE customers INHERIT public.parent"));
    let (got, _) = rows(&r.query("SELECT email, ssn FROM public.parent"));
    if got.iter().any(|v| v == "901-23-4567") {
        leaks.push(format!("INHERIT ({err:?}), then the parent: {got:?}"));
    }
    let (_, err) = rows(&r.query("ALTER TABLE customers RENAME TO clients"));
    let (got, _) = rows(&r.query("SELECT email FROM clients"));
    if got.iter().any(|v| v.starts_with("alice.anders@")) {
        leaks.push(format!("RENAME TO ({err:?}): {got:?}"));
    }
    assert!(
        leaks.is_empty(),
        "masked values in clear after DDL: {leaks:#?}"
    );
}

// ---------------------------------------------------------------------------
// R3. The `$user` schema. The server's default search_path is
// `"$user", public`: an unqualified name is looked up first in the schema
// named like the session user (the service login), when it exists. pgward's
// guard starts from `["public"]` (guard.rs Guard::new) and resolve()
// (decide.rs) drops `$user` from any path, so it judges `vault` as
// public.vault (readable) while the server reads pgward_svc.vault.

#[test]
fn r3_pure_user_schema_is_resolved() {
    // The guard reads the path from the session and writes `$user` as the
    // upstream login (pgward_svc here), as the server resolves it.
    let d = decision("reader", "SELECT * FROM vault", &["pgward_svc", "public"]).unwrap();
    // Without knowing the login's name, pgward cannot know where `vault` is.
    assert!(!d.is_allowed(), "unqualified name with $user on the path");
}

#[test]
fn r3_live_user_schema_reads_an_ungranted_schema() {
    let svc = cluster().svc_user.clone();
    let db = Scratch::new(
        "r3",
        &format!(
            "CREATE SCHEMA {svc}; CREATE TABLE {svc}.vault (secret text); \
             INSERT INTO {svc}.vault VALUES ('user-schema-secret')"
        ),
    );
    let gw = live_gateway("reader", db.section());
    let mut r = gw.raw("red2");
    let (_, err) = rows(&r.query(&format!("SELECT secret FROM {svc}.vault")));
    assert!(
        err.is_some_and(|e| e.starts_with("pgward:")),
        "sanity: the qualified name is refused"
    );
    let (got, err) = rows(&r.query("SELECT secret FROM vault"));
    assert!(
        !got.iter().any(|v| v == "user-schema-secret"),
        "read {svc}.vault (not granted) by its unqualified name: {got:?} {err:?}"
    );
}

// ---------------------------------------------------------------------------
// R4. Unqualified `pg_*` relation names. resolve() (decide.rs) maps every
// unqualified name starting with `pg_` to pg_catalog, and check_read lets a
// `catalog = true` role read pg_catalog. The server looks the name up in
// pg_catalog and then along the search_path: a relation `internal.pg_vault`
// (no such catalog relation) is read as internal.pg_vault, a schema the role
// may not read. The same holds when the path names pg_catalog after another
// schema (`public, pg_catalog`): that schema's `pg_x` wins.

#[test]
fn r4_pure_pg_prefix_is_resolved_on_the_path() {
    let d = decision("reader", "SELECT * FROM pg_vault", &["internal", "public"]).unwrap();
    assert!(!d.is_allowed(), "pg_vault may be internal.pg_vault");
}

#[test]
fn r4_live_pg_prefixed_table_in_an_ungranted_schema() {
    let db = Scratch::new(
        "r4",
        "CREATE SCHEMA internal; CREATE TABLE internal.pg_vault (secret text); \
         INSERT INTO internal.pg_vault VALUES ('internal-secret')",
    );
    let gw = live_gateway("reader", db.section());
    let mut r = Raw::login_with(
        gw.port,
        "agent",
        AGENT_PASSWORD,
        &[("database", "red2"), ("search_path", "internal, public")],
    )
    .unwrap_or_else(|e| panic!("login: {:?}", e.field(b'M')));
    let (_, err) = rows(&r.query("SELECT secret FROM internal.pg_vault"));
    assert!(
        err.is_some_and(|e| e.starts_with("pgward:")),
        "sanity: the qualified name is refused"
    );
    let (got, err) = rows(&r.query("SELECT secret FROM pg_vault"));
    assert!(
        !got.iter().any(|v| v == "internal-secret"),
        "read internal.pg_vault (not granted) as pg_catalog.pg_vault: {got:?} {err:?}"
    );
}

// ---------------------------------------------------------------------------
// R5. Foreign-server credentials through information_schema. builtins.rs
// SENSITIVE_CATALOG lists pg_user_mapping and pg_user_mappings, but
// information_schema.user_mapping_options (and its helper
// information_schema._pg_user_mappings) show the same options, passwords
// included, to a superuser or the mapping's owner (the service login is
// both here). check_read lets any `catalog = true` role read them.

#[test]
fn r5_pure_user_mapping_options_are_sensitive() {
    for sql in [
        "SELECT option_value FROM information_schema.user_mapping_options",
        "SELECT umoptions FROM information_schema._pg_user_mappings",
    ] {
        assert!(!allowed("reader", sql), "{sql}: user mapping passwords");
    }
}

#[test]
fn r5_live_user_mapping_password_is_readable() {
    let db = Scratch::new(
        "r5",
        "CREATE EXTENSION postgres_fdw; \
         CREATE SERVER billing FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host 'billing.internal'); \
         CREATE USER MAPPING FOR PUBLIC SERVER billing OPTIONS (user 'billing', password 'fdw-secret-pw')",
    );
    let gw = live_gateway("reader", db.section());
    let mut r = gw.raw("red2");
    let (_, err) = rows(&r.query("SELECT umoptions FROM pg_catalog.pg_user_mappings"));
    assert!(
        err.is_some_and(|e| e.starts_with("pgward:")),
        "sanity: pg_user_mappings is refused"
    );
    let (got, err) = rows(&r.query(
        "SELECT option_value FROM information_schema.user_mapping_options WHERE option_name = 'password'",
    ));
    assert!(
        !got.iter().any(|v| v == "fdw-secret-pw"),
        "the user mapping's password through information_schema: {got:?} {err:?}"
    );
}
