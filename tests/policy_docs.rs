//! The examples in docs/policy.md are true: its TOML block loads as a policy,
//! and every row of its example table gets the verdict it states.

use pgward::policy::decide::decide;
use pgward::policy::{Policy, SessionView};
use pgward::sql::classify;

const DOC: &str = include_str!("../docs/policy.md");

#[test]
fn documented_examples_hold() {
    let start = DOC.find("```toml\n").expect("a toml block") + 8;
    let end = start + DOC[start..].find("```").unwrap();
    let policy = Policy::from_toml(&DOC[start..end]).unwrap();
    let path = vec!["public".to_string()];
    let view = SessionView {
        catalog: None,
        masks: None,
        database: "shop",
        upstream_database: "shop",
        search_path: &path,
    };
    let mut checked = 0;
    for line in DOC.lines() {
        let cells: Vec<&str> = line.split(" | ").collect();
        let [first, sql, verdict] = cells.as_slice() else {
            continue;
        };
        let Some(role) = first.strip_prefix("| ") else {
            continue;
        };
        let Some(sql) = sql.strip_prefix('`').and_then(|s| s.strip_suffix('`')) else {
            continue;
        };
        let verdict = verdict.trim_end_matches(" |");
        let allowed = match classify(sql) {
            Ok(c) => decide(&policy.roles_of(&[role.to_string()]), &c, &view).is_allowed(),
            Err(_) => false,
        };
        assert_eq!(allowed, verdict == "allow", "docs/policy.md: {role}: {sql}");
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} examples found");
}

#[test]
fn documented_explain_output_is_current() {
    let start = DOC.find("$ pgward explain").unwrap();
    let block = &DOC[start..start + DOC[start..].find("```").unwrap()];
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgward"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "explain",
            "--config",
            "examples/policy.toml",
            "--role",
            "writer",
            "UPDATE customers SET email = 'x'",
        ])
        .output()
        .unwrap();
    let expected: String = block.lines().skip(1).map(|l| format!("{l}\n")).collect();
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
}
