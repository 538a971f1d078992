//! psycopg 3 with its defaults (no autocommit: an implicit BEGIN before the
//! first statement; server-side cursors by name; parameters by the extended
//! protocol) as the documented reader of examples/pgward.toml: an ordinary
//! driver works with the documented role.

mod common;

use std::process::Command;

use common::*;

/// The roles of examples/pgward.toml, from `[roles.reader]` on.
fn example_roles() -> String {
    let text = std::fs::read_to_string(repo_path("examples/pgward.toml")).unwrap();
    let at = text.find("[roles.reader]").expect("the example's reader");
    text[at..].to_string()
}

const SCRIPT: &str = r#"
import json, sys
import psycopg

conn = psycopg.connect(sys.argv[1])
out = {"autocommit": conn.autocommit}
with conn.cursor() as cur:
    cur.execute("SELECT id, status FROM orders ORDER BY id LIMIT %s", [3])
    out["orders"] = [list(r) for r in cur.fetchall()]
    out["in_transaction"] = conn.info.transaction_status.name
    cur.execute("SELECT current_setting(%s)", ["TimeZone"])
    out["timezone"] = cur.fetchone()[0]
# A server-side cursor: DECLARE, then Describe and FETCH by name.
with conn.cursor(name="orders_stream") as cur:
    cur.itersize = 2
    cur.execute("SELECT id FROM orders ORDER BY id")
    out["streamed"] = [r[0] for r in cur][:5]
try:
    conn.execute("SELECT key_value FROM api_keys")
except psycopg.errors.InsufficientPrivilege as e:
    out["refused"] = e.sqlstate
conn.rollback()
out["after_rollback"] = conn.execute("SELECT count(*) FROM products").fetchone()[0]
conn.commit()
conn.close()
print(json.dumps(out))
"#;

#[test]
fn psycopg_defaults_work_as_the_documented_reader() {
    let gw = Gateway::with_roles("reader", &example_roles());
    let out = Command::new(psycopg_python())
        .args(["-c", SCRIPT, &gw.dsn("shop")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        gw.log_text()
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["autocommit"], false);
    assert_eq!(got["in_transaction"], "INTRANS", "{got}");
    let direct = cluster().sql("shop", "SELECT id FROM orders ORDER BY id LIMIT 5");
    let ids: Vec<i64> = direct.lines().map(|l| l.parse().unwrap()).collect();
    let streamed: Vec<i64> = got["streamed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(streamed, ids, "{got}");
    assert_eq!(got["orders"].as_array().unwrap().len(), 3);
    assert_eq!(got["timezone"], cluster().sql("shop", "SHOW TimeZone"));
    assert_eq!(got["refused"], "42501");
    let products = cluster().sql("shop", "SELECT count(*) FROM products");
    assert_eq!(got["after_rollback"].to_string(), products);
}
