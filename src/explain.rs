//! `pgward explain`: the classification of a statement and the policy's
//! decision for a role, as text or JSON, without touching a database.

use std::process::ExitCode;

use serde_json::json;

use crate::policy::decide::decide;
use crate::policy::Policy;
use crate::policy::{Decision, SessionView};
use crate::sql::classify::names;
use crate::sql::{classify, Classification};

fn classification_json(c: &Classification) -> serde_json::Value {
    json!({
        "statements": c.statements,
        "operations": c.operations.iter().map(|o| o.name()).collect::<Vec<_>>(),
        "reads": names(&c.reads),
        "writes": names(&c.writes),
        "functions": names(&c.functions),
        "settings": c.settings,
        "settings_read": c.settings_read,
        "columns": c.columns.iter().map(|(t, cols)| (t.to_string(), cols.iter().cloned().collect::<Vec<_>>())).collect::<std::collections::BTreeMap<_, _>>(),
        "unscoped_columns": c.unscoped_columns,
        "wildcard": c.wildcard,
        "forbidden": c.forbidden,
        "search_path": c.search_path,
        "judged_at_bind": c.setting_parameters().iter().map(|n| format!("${n}")).collect::<Vec<_>>(),
    })
}

/// The masked columns an allowed statement's results will carry masked:
/// every masked column of a relation it reads (through a view, the view's
/// column that shows it) that it selects by name or by `*`, unless a role
/// unmasks it.
fn masked_outputs(
    c: &Classification,
    masks: &crate::policy::masks::Masks,
    roles: &[&crate::policy::role::Role],
    view: &SessionView,
) -> Vec<String> {
    let mut out = Vec::new();
    for ((table, col), rule) in &masks.rules {
        let unmasked = roles.iter().any(|r| {
            r.unmask
                .iter()
                .any(|(t, uc)| t.eq_ignore_ascii_case(table) && uc.eq_ignore_ascii_case(col))
        });
        if unmasked {
            continue;
        }
        let selected = c.columns.iter().any(|(name, cols)| {
            crate::policy::decide::resolve(name, view)
                .is_ok_and(|rs| rs.iter().any(|r| r.eq_ignore_ascii_case(table)))
                && cols.iter().any(|x| x == "*" || x.eq_ignore_ascii_case(col))
        });
        if selected {
            out.push(format!("{table}.{col} ({:?})", rule.strategy).to_lowercase());
        }
    }
    out
}

/// Runs the command; exit 0 when allowed, 1 when denied, 2 on a usage error.
pub fn run(
    policy: &Policy,
    masks: Option<&crate::policy::masks::Masks>,
    roles: &str,
    database: &str,
    search_path: &str,
    as_json: bool,
    sql: &str,
) -> ExitCode {
    let role_names: Vec<String> = roles.split(',').map(|r| r.trim().to_string()).collect();
    for r in &role_names {
        if !policy.roles.contains_key(r) {
            eprintln!("pgward: role {r:?} is not defined in the config");
            return ExitCode::from(2);
        }
    }
    let upstream = database.to_string();
    let path: Vec<String> = search_path
        .split(',')
        .map(|s| s.trim().to_lowercase())
        .collect();
    let view = SessionView {
        catalog: None,
        masks,
        database,
        upstream_database: &upstream,
        search_path: &path,
    };
    let roles = policy.roles_of(&role_names);
    let (classification, decision) = match classify(sql) {
        Ok(c) => {
            let d = decide(&roles, &c, &view);
            (Some(c), d)
        }
        // As serve answers: a syntax error is 42601, anything else refused.
        Err(crate::sql::classify::ClassifyError::Parse(e)) => (
            None,
            Decision::Deny(crate::policy::Denial {
                code: "42601",
                message: format!("pgward: syntax error: {e}"),
                detail: "rule: syntax; the statement does not parse".into(),
                hint: "fix the statement; PostgreSQL's own parser rejects it".into(),
            }),
        ),
        Err(e) => (
            None,
            Decision::Deny(crate::policy::Denial {
                code: "42501",
                message: format!("pgward: {e}"),
                detail: "rule: built-in; statements pgward cannot analyse are refused".into(),
                hint: "rewrite it with plain SQL that names its tables and functions".into(),
            }),
        ),
    };
    let masked = match (&classification, masks) {
        (Some(c), Some(m)) if decision.is_allowed() => masked_outputs(c, m, &roles, &view),
        _ => Vec::new(),
    };
    if as_json {
        let verdict = match &decision {
            Decision::Allow { max_rows } => json!({"verdict": "allow", "max_rows": max_rows}),
            Decision::Deny(d) => {
                json!({"verdict": "deny", "message": d.message, "detail": d.detail, "hint": d.hint})
            }
        };
        let out = json!({
            "roles": role_names,
            "masked": masked,
            "classification": classification.as_ref().map(classification_json),
            "decision": verdict,
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    } else {
        match &classification {
            Some(c) => {
                let list = |v: Vec<String>| {
                    if v.is_empty() {
                        "-".to_string()
                    } else {
                        v.join(", ")
                    }
                };
                println!("statements: {}", c.statements);
                println!(
                    "operations: {}",
                    list(c.operations.iter().map(|o| o.name().to_string()).collect())
                );
                println!("reads:      {}", list(names(&c.reads)));
                println!("writes:     {}", list(names(&c.writes)));
                println!("functions:  {}", list(names(&c.functions)));
                let cols: Vec<String> = c
                    .columns
                    .iter()
                    .map(|(t, cols)| {
                        format!(
                            "{t}({})",
                            cols.iter().cloned().collect::<Vec<_>>().join(", ")
                        )
                    })
                    .chain(c.unscoped_columns.iter().map(|c| format!("?({c})")))
                    .collect();
                println!("columns:    {}", list(cols));
                if !masked.is_empty() {
                    println!("masked:     {}", masked.join(", "));
                }
                if !c.settings.is_empty() {
                    println!("settings:   {}", list(c.settings.iter().cloned().collect()));
                }
                if !c.forbidden.is_empty() {
                    println!("forbidden:  {}", c.forbidden.join("; "));
                }
                let bound = c.setting_parameters();
                if !bound.is_empty() {
                    let list: Vec<String> = bound.iter().map(|n| format!("${n}")).collect();
                    println!(
                        "at bind:    {} name or set settings: judged again with their values",
                        list.join(", ")
                    );
                }
            }
            None => println!("classification: failed"),
        }
        match &decision {
            Decision::Allow { max_rows: Some(n) } => {
                println!("verdict:    allow (results capped at {n} rows)")
            }
            Decision::Allow { max_rows: None } => println!("verdict:    allow"),
            Decision::Deny(d) => {
                println!("verdict:    deny");
                println!("message:    {}", d.message);
                println!("detail:     {}", d.detail);
                println!("hint:       {}", d.hint);
            }
        }
    }
    if decision.is_allowed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
