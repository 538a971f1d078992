//! Findings of the eighth red-team pass: a domain named like a built-in type
//! that pgward reads casts to (`'search_path.x'::text` cut by a domain `text`
//! of varchar(11) to `search_path`), a hidden search_path change.

mod common;

use common::raw::{rows, Raw};
use common::*;

const ROLES: &str = r#"
[roles.ext]
operations = ["select", "ddl", "set"]
read = ["public.*", "!public.api_keys"]
write = ["public.*"]

[masks]
"public.customers.email" = "email"
"public.customers.ssn" = "redact"
"#;

#[test]
fn f1_a_domain_cannot_take_a_built_in_types_name() {
    let gw = Gateway::with_roles("ext", ROLES);
    let mut r = Raw::login(gw.port, "agent", AGENT_PASSWORD, "shop");
    let (_, err) = rows(&r.query("CREATE DOMAIN public.text AS varchar(11)"));
    let err = err.expect("refused");
    assert!(err.contains("type named text"), "{err}");
    r.query("SET search_path = public, pg_catalog");
    r.query("SELECT set_config('search_path.x'::text, 'internal', false)");
    let (cells, _) = rows(&r.query("SELECT ssn FROM customers ORDER BY id LIMIT 1"));
    let ssn = cluster().sql("shop", "SELECT ssn FROM customers ORDER BY id LIMIT 1");
    assert!(!cells.contains(&ssn), "{cells:?}");
    let (path, _) = rows(&r.query("SHOW search_path"));
    assert!(!path.iter().any(|p| p.contains("internal")), "{path:?}");
}
