//! Red-team findings against the pg_query classifier, the decision cache and
//! the session setup. Every test asserts the SECURE outcome, so each one
//! FAILS while its hole is open. Pure tests first (no server), then live ones
//! through a real pgward in front of the test cluster (PostgreSQL 15).

mod common;
#[path = "support/shop_catalog.rs"]
mod shop_catalog;

use std::collections::BTreeMap;

use common::raw::{frame, rows, startup_packet, Raw};
use common::*;
use pgward::auth::scram_client::ScramClient;
use pgward::policy::catalog::Catalog;
use pgward::policy::decide::decide;
use pgward::policy::masks::{MaskSpec, Masks};
use pgward::policy::{Policy, SessionView};
use pgward::sql::cache::ClassificationCache;
use pgward::sql::classify;
use pgward::sql::fingerprint::Strings;
use pgward::sql::Classification;

const MASKS: &str = r#"
"public.customers.email" = "email"
"public.customers.phone" = { strategy = "partial", keep_last = 4 }
"public.customers.ssn" = "redact"
"public.customers.date_of_birth" = "null"
"public.payments.card_number" = "hash"
"#;

/// Decides `c` for `role` of examples/policy.toml, with the sample masks.
fn allowed(role: &str, c: &Classification) -> bool {
    let policy = Policy::from_toml(include_str!("../examples/policy.toml")).unwrap();
    let raw: BTreeMap<String, MaskSpec> = toml::from_str(MASKS).unwrap();
    let masks = Masks::compile(&raw).unwrap();
    let path = vec!["$user".to_string(), "public".to_string()];
    // The snapshot pgward decides with: the sample tables and their columns.
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
    decide(&roles, c, &view).is_allowed()
}

fn allowed_sql(role: &str, sql: &str) -> bool {
    classify(sql).is_ok_and(|c| allowed(role, &c))
}

/// Classifies `primer` and then `attack` through one decision cache (as one
/// pgward worker does) and says whether `attack` is allowed.
fn allowed_after(role: &str, primer: &str, attack: &str) -> bool {
    let mut cache = ClassificationCache::new(100);
    let _ = cache
        .classify(primer.as_bytes(), Strings::Standard)
        .unwrap();
    let c = cache
        .classify(attack.as_bytes(), Strings::Standard)
        .unwrap();
    match c.as_ref() {
        Ok(c) => allowed(role, c),
        Err(_) => false,
    }
}

// ---------------------------------------------------------------------------
// F1. Attribute notation: `t.f` is the function call f(t) when t has no
// column f. PostgreSQL 15 runs `c.row_to_json` as row_to_json(c): the whole
// row, masked and denied columns included, in one computed (unmasked) value.
// pgward takes it for a plain column named "row_to_json".

#[test]
fn f1_attribute_notation_function_on_whole_row_is_refused() {
    // Masked columns of customers, in clear, as JSON.
    assert!(
        !allowed_sql("reader", "SELECT c.row_to_json FROM customers c"),
        "c.row_to_json is row_to_json(c): every masked column in clear"
    );
    assert!(
        !allowed_sql("reader", "SELECT customers.concat FROM customers"),
        "customers.concat is concat(customers): the whole row as text"
    );
    // deny_columns: employees.salary, never readable, comes out in to_jsonb(e).
    assert!(
        !allowed_sql("reader", "SELECT e.to_jsonb FROM employees e"),
        "e.to_jsonb is to_jsonb(e): includes employees.salary"
    );
    assert!(
        !allowed_sql(
            "reader",
            "SELECT full_name FROM employees e WHERE (e.to_jsonb->>'salary')::numeric > 300000"
        ),
        "salary used in a predicate through e.to_jsonb"
    );
}

// ---------------------------------------------------------------------------
// F2. Decision-cache poisoning through UESCAPE. The fingerprint collapses the
// UESCAPE string of a U&"..." identifier like any literal, but that string
// decides what the identifier is. The primer (escape '#') names a table
// "!0061pi_keys" (allowed, the server just errors); the attack (escape '!')
// names api_keys and is served the primer's cached classification.

#[test]
fn f2_uescape_identifier_does_not_reuse_a_cached_decision() {
    let primer = r##"SELECT * FROM U&"!0061pi_keys" UESCAPE '#'"##;
    let attack = r#"SELECT * FROM U&"!0061pi_keys" UESCAPE '!'"#;
    assert!(
        !allowed_sql("reader", attack),
        "sanity: api_keys alone is denied"
    );
    assert!(
        !allowed_after("reader", primer, attack),
        "the cached classification of the primer let the reader read public.api_keys"
    );
    // Same trick on a denied column.
    let primer = r##"SELECT U&"!0073alary" UESCAPE '#' FROM employees"##;
    let attack = r#"SELECT U&"!0073alary" UESCAPE '!' FROM employees"#;
    assert!(
        !allowed_after("reader", primer, attack),
        "the cached classification of the primer let the reader read employees.salary"
    );
}

// ---------------------------------------------------------------------------
// F3. Decision-cache poisoning through ORDER BY / GROUP BY / DISTINCT ON
// positions: `literal_sensitive` is set only when the item is an integer, so
// `ORDER BY 'x'` (or 1.5) is cached under the same key as `ORDER BY 1`.

#[test]
fn f3_positional_order_by_does_not_reuse_a_cached_decision() {
    let primer = "SELECT ssn FROM customers ORDER BY 'x'";
    let attack = "SELECT ssn FROM customers ORDER BY 1";
    assert!(
        !allowed_sql("reader", attack),
        "sanity: ORDER BY 1 = ssn is denied"
    );
    assert!(
        !allowed_after("reader", primer, attack),
        "ORDER BY 1 (= ORDER BY ssn) was allowed from the cache"
    );
    let primer = "SELECT DISTINCT ON (1.5) ssn FROM customers";
    let attack = "SELECT DISTINCT ON (1) ssn FROM customers";
    assert!(
        !allowed_after("reader", primer, attack),
        "DISTINCT ON (1) (= ssn) was allowed from the cache"
    );
}

// ---------------------------------------------------------------------------
// F4. A position after a `*` is mapped to the wrong target: in
// `SELECT *, id, id, id, id FROM customers ORDER BY 5` pgward takes 5 for the
// fifth target (id); the server sorts by the fifth column of * (ssn).

#[test]
fn f4_positions_after_a_star_count_the_expanded_columns() {
    assert!(
        !allowed_sql(
            "reader",
            "SELECT *, id, id, id, id FROM customers ORDER BY 5"
        ),
        "ORDER BY 5 here is ORDER BY ssn"
    );
    assert!(
        !allowed_sql(
            "reader",
            "SELECT c.*, 1, 2, 3, 4 FROM customers c ORDER BY 5"
        ),
        "ORDER BY 5 here is ORDER BY ssn"
    );
}

// ---------------------------------------------------------------------------
// F5. Positions inside ROLLUP / CUBE / GROUPING SETS are output positions
// too (the server resolves them like plain GROUP BY items); pgward ignores
// them (and does not mark the text literal-sensitive).

#[test]
fn f5_positions_inside_grouping_sets_are_predicates() {
    assert!(
        !allowed_sql(
            "reader",
            "SELECT ssn, count(*) FROM customers GROUP BY ROLLUP (1)"
        ),
        "ROLLUP (1) groups by ssn"
    );
    assert!(
        !allowed_sql(
            "reader",
            "SELECT ssn, count(*) FROM customers GROUP BY GROUPING SETS ((1), ())"
        ),
        "GROUPING SETS ((1)) groups by ssn"
    );
    let c = classify("SELECT id, ssn FROM customers GROUP BY CUBE (2)").unwrap();
    assert!(
        c.literal_sensitive,
        "the meaning of CUBE (2) depends on the literal"
    );
}

// ---------------------------------------------------------------------------
// F6. SELECT ... INTO at the top level: the outputs are walked as Direct (the
// caller's `how`), so masked columns are copied in clear into a new table.
// CREATE TABLE AS is refused; SELECT INTO, its synonym, is not.

#[test]
fn f6_select_into_copies_masked_columns_in_clear() {
    assert!(
        !allowed_sql("migrator", "CREATE TABLE leak AS SELECT ssn FROM customers"),
        "sanity: CREATE TABLE AS is refused"
    );
    assert!(
        !allowed_sql(
            "migrator",
            "SELECT ssn, email INTO public.leak FROM customers"
        ),
        "SELECT INTO stores the clear ssn/email in a new table"
    );
    assert!(
        !allowed_sql("migrator", "SELECT * INTO public.leak FROM customers"),
        "SELECT * INTO stores every masked column in clear"
    );
}

// ---------------------------------------------------------------------------
// F8. Decision-cache poisoning through string continuation. The server joins
// a string and the next quoted part when only whitespace holding a newline
// lies between them, reading every part in the first part's rules: after
// E'a', `\'` escapes the quote. A lexer that keyed the parts as two strings
// read both texts below as "select ? ? as x , ?"; to the server the first
// reads nothing and the second reads key_value FROM api_keys.

#[test]
fn f8_continued_strings_do_not_reuse_a_cached_decision() {
    let primer = "SELECT 'a'\n'b' AS x, 'c'";
    let attack = "SELECT E'a'\n'\\' AS x, ' , key_value FROM api_keys --'";
    assert!(
        allowed_sql("reader", primer),
        "sanity: the primer reads nothing"
    );
    assert!(
        !allowed_sql("reader", attack),
        "sanity: the attack reads public.api_keys"
    );
    assert!(
        !allowed_after("reader", primer, attack),
        "the cached classification of the primer let the reader read public.api_keys"
    );
    // Under standard_conforming_strings off a plain string reads as E''.
    let attack = "SELECT 'a'\n'\\' AS x, ' , key_value FROM api_keys --'";
    for (strings, primer, attack) in [
        (
            Strings::Standard,
            primer,
            "SELECT E'a'\n'\\' AS x, ' , key_value FROM api_keys --'",
        ),
        (Strings::Escaped, primer, attack),
    ] {
        let mut cache = ClassificationCache::new(100);
        let first = cache.classify(primer.as_bytes(), strings).unwrap();
        let second = cache.classify(attack.as_bytes(), strings).unwrap();
        assert!(!std::rc::Rc::ptr_eq(&first, &second), "{strings:?}");
        assert_eq!((cache.hits, cache.misses), (0, 2), "{strings:?}");
        assert!(
            second
                .as_ref()
                .as_ref()
                .is_ok_and(|c| !allowed("reader", c)),
            "{strings:?}: the attack must be judged on its own and refused"
        );
    }
}

// ---------------------------------------------------------------------------
// Live tests: a real pgward in front of PostgreSQL 15.

const LIVE_ROLES: &str = r#"
[roles.reader]
operations = ["select"]
read  = ["public.*", "!public.api_keys"]
functions = ["public.customer_order_count"]
deny_columns = ["public.employees.salary"]
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

fn live_gateway() -> Gateway {
    Gateway::start(GatewayOptions {
        role: "reader",
        roles: LIVE_ROLES.to_string(),
        workers: 1,
        ..Default::default()
    })
}

/// SCRAM login with extra startup parameters, up to ReadyForQuery.
fn login_with(port: u16, extra: &[(&str, &str)]) -> Raw {
    let mut r = Raw::connect(port);
    let mut params = vec![("user", "agent"), ("database", "shop")];
    params.extend_from_slice(extra);
    r.send(&startup_packet(&params));
    let m = r.recv().expect("auth request");
    assert_eq!(m.tag, b'R', "expected AuthenticationSASL, got {m:?}");
    let mut client = ScramClient::new(AGENT_PASSWORD, "rawclientnonce");
    let first = client.client_first();
    let mut body = b"SCRAM-SHA-256\0".to_vec();
    body.extend_from_slice(&(first.len() as i32).to_be_bytes());
    body.extend_from_slice(first.as_bytes());
    r.send(&frame(b'p', &body));
    let m = r.recv().expect("SASLContinue");
    let fin = client.handle_server_first(&m.body[4..]).unwrap();
    r.send(&frame(b'p', fin.as_bytes()));
    let m = r.recv().expect("SASLFinal");
    assert_eq!(m.tag, b'R', "login failed: {m:?} {:?}", m.field(b'M'));
    r.recv_until(b'Z');
    r
}

#[test]
fn live_f1_attribute_notation_leaks_masked_and_denied_columns() {
    let gw = live_gateway();
    let mut r = login_with(gw.port, &[]);
    let (plain, _) = rows(&r.query("SELECT ssn FROM customers WHERE id = 1"));
    assert_eq!(plain, ["[redacted]"], "sanity: ssn is masked");
    let (got, _) = rows(&r.query("SELECT c.row_to_json FROM customers c WHERE c.id = 1"));
    assert!(
        !got.iter().any(|v| v.contains("901-23-4567")),
        "the clear ssn came through pgward: {got:?}"
    );
    let (got, _) = rows(&r.query("SELECT e.to_jsonb FROM employees e WHERE e.id = 1"));
    assert!(
        !got.iter().any(|v| v.contains("salary")),
        "employees.salary (deny_columns) came through pgward: {got:?}"
    );
}

#[test]
fn live_f2_uescape_cache_poisoning_reads_api_keys() {
    let gw = live_gateway();
    let mut r = login_with(gw.port, &[]);
    // (No sanity query first: it would itself fill the cache under this key.)
    // The primer: allowed by pgward, the server only says the table is missing.
    let _ = r.query(r##"SELECT * FROM U&"!0061pi_keys" UESCAPE '#'"##);
    let (got, _) = rows(&r.query(r#"SELECT * FROM U&"!0061pi_keys" UESCAPE '!'"#));
    assert!(
        !got.iter().any(|v| v.starts_with("sk_live_")),
        "public.api_keys was read through a cached decision: {got:?}"
    );
}

#[test]
fn live_f3_order_by_cache_poisoning_sorts_by_a_masked_column() {
    let gw = live_gateway();
    let mut r = login_with(gw.port, &[]);
    let attack = "SELECT id, ssn FROM customers ORDER BY 2";
    let (_, err) = rows(&r.query(attack));
    assert!(
        err.is_some_and(|e| e.starts_with("pgward:")),
        "sanity: ORDER BY ssn is refused"
    );
    let _ = r.query("SELECT id, ssn FROM customers ORDER BY 'x'");
    let (got, err) = rows(&r.query(attack));
    assert!(
        err.is_some_and(|e| e.starts_with("pgward:")),
        "ORDER BY 2 (= ssn) ran from a cached decision: {got:?}"
    );
}

/// PostgreSQL applies the `-c` settings of `options` first and the startup
/// packet's own settings after them; pgward keeps the last search_path in
/// packet order. A packet with `search_path=internal` before
/// `options=-c search_path=public` leaves pgward resolving names in public
/// while the server reads the unreadable schema `internal`.
#[test]
fn live_f7_startup_search_path_precedence() {
    let gw = live_gateway();
    let mut r = login_with(
        gw.port,
        &[
            ("search_path", "internal"),
            ("options", "-c search_path=public"),
        ],
    );
    let (path, _) = rows(&r.query("SHOW search_path"));
    let (got, err) = rows(&r.query("SELECT risk_notes FROM customers WHERE id = 5"));
    assert!(
        err.is_some(),
        "server search_path {path:?}; internal.customers was read: {got:?}"
    );
    let (got, _) = rows(&r.query("SELECT detail FROM audit_log"));
    assert!(
        !got.iter().any(|v| v.contains("sk_live_")),
        "internal.audit_log was read: {got:?}"
    );
}
