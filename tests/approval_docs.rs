//! The examples in docs/approvals.md are true: its TOML block loads, and
//! every row of its example table gets the outcome it states (runs, or
//! approval with the risks named).

use pgward::policy::approval::Approval;
use pgward::policy::decide::decide;
use pgward::policy::{Policy, SessionView};
use pgward::sql::classify;

const DOC: &str = include_str!("../docs/approvals.md");

#[test]
fn documented_approval_examples_hold() {
    let start = DOC.find("```toml\n").expect("a toml block") + 8;
    let end = start + DOC[start..].find("```").unwrap();
    let policy = Policy::from_toml(&DOC[start..end]).unwrap();
    let roles = policy.roles_of(&["writer".to_string()]);
    let rules = Approval::of(&roles).expect("the role has approval rules");
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
        let [sql, outcome] = cells.as_slice() else {
            continue;
        };
        let Some(sql) = sql.strip_prefix("| `").and_then(|s| s.strip_suffix('`')) else {
            continue;
        };
        let outcome = outcome.trim_end_matches(" |");
        if outcome != "runs" && !outcome.starts_with("approval: ") {
            // (The table of risks, not of examples.)
            continue;
        }
        let c = classify(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert!(
            decide(&roles, &c, &view).is_allowed(),
            "docs/approvals.md: the policy refuses {sql}"
        );
        let reasons = rules.reasons(&c, &view);
        let got = if reasons.is_empty() {
            "runs".to_string()
        } else {
            format!("approval: {}", reasons.join(", "))
        };
        assert_eq!(got, outcome, "docs/approvals.md: {sql}");
        checked += 1;
    }
    assert!(checked >= 12, "only {checked} examples found");
}
