//! Findings of the eighth red-team pass: a domain named like a built-in type
//! that pgward reads casts to (`'search_path.x'::text` cut by a domain `text`
//! of varchar(11) to `search_path`), a hidden search_path change.

mod common;

use common::raw::rows;
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
    let mut r = gw.raw("shop");
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

#[test]
fn f1_serve_refuses_a_database_holding_such_a_type() {
    let db = format!("pgward_shadow_{}", std::process::id());
    cluster().sql("postgres", &format!("DROP DATABASE IF EXISTS {db}"));
    cluster().sql("postgres", &format!("CREATE DATABASE {db}"));
    cluster().sql(&db, "CREATE DOMAIN public.text AS varchar(11)");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pgward.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = [\"127.0.0.1:{}\"]\n\n{}",
            free_port(),
            cluster().database_section("shadow", &db)
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgward"))
        .args(["serve", "--config"])
        .arg(&path)
        .env("PGWARD_TEST_SVC_PASSWORD", &cluster().svc_password)
        .output()
        .unwrap();
    cluster().sql("postgres", &format!("DROP DATABASE IF EXISTS {db}"));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("public.text"), "{}", stderr(&out));
}
