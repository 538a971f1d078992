//! Which allowed statements wait for a human: `[roles.NAME.approval]` as
//! written, compiled into risks, and the risks one classified statement
//! matches. Pure logic; the requests themselves live in `approval`.

use std::time::Duration;

use serde::Deserialize;

use super::decide::{resolve, SessionView};
use super::glob::Patterns;
use super::role::Role;
use crate::sql::{Classification, Name, Operation};

/// `[roles.NAME.approval]` as written in the config file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ApprovalConfig {
    /// The risks that need approval (see `Risk`).
    #[serde(default)]
    pub require: Vec<String>,
    /// `hold` (default) or `retry`.
    pub mode: Option<String>,
    /// How long a held statement waits for a decision (`"5m"`).
    pub hold_timeout: Option<String>,
    /// Retry mode: how long an approval stays usable (`"10m"`).
    pub grant_ttl: Option<String>,
    /// A LIMIT above this counts as unbounded (default 1000).
    pub select_limit: Option<u64>,
}

/// How a statement that needs approval waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// pgward keeps the statement and runs it once approved.
    Hold,
    /// pgward refuses it (SQLSTATE PW001); once approved, the identical
    /// statement runs once within the grant's lifetime.
    Retry,
}

impl Mode {
    /// The name in the config file.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Hold => "hold",
            Mode::Retry => "retry",
        }
    }
}

/// One kind of statement that needs approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Risk {
    /// Any statement performing the operation (`ddl` also covers `code`:
    /// creating functions, DO blocks).
    Operation(Operation),
    /// A DELETE whose WHERE names no column of its target (or has none).
    DeleteWithoutWhere,
    /// An UPDATE whose WHERE names no column of its target (or has none).
    UpdateWithoutWhere,
    /// A read of a matching relation (every relation without a pattern)
    /// that no LIMIT up to the role's `select_limit` (the number here)
    /// bounds.
    UnboundedSelect(Option<Patterns>, u64),
    /// A write to a matching relation.
    Write(Patterns),
    /// A read of a matching relation.
    Read(Patterns),
}

/// A role's approval rules, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// Each risk with its text as written (the reason a request names).
    pub risks: Vec<(String, Risk)>,
    /// How statements wait.
    pub mode: Mode,
    /// How long a held statement waits.
    pub hold_timeout: Duration,
    /// How long a retry-mode approval stays usable.
    pub grant_ttl: Duration,
}

/// Reads `"5m"`, `"30s"`, `"1h"`, `"500ms"`, `"2d"` (`min` for minutes too).
pub fn parse_span(text: &str) -> Option<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().ok()?;
    let ms = match unit.trim() {
        "ms" => 1,
        "s" | "" => 1000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(ms).map(Duration::from_millis)
}

fn pattern(key: &str, pat: &str) -> Result<Patterns, String> {
    Patterns::new(&[pat.to_string()]).map_err(|e| format!("{key}: {e}"))
}

/// Compiles one risk as written in `require`; `select_limit` is the
/// largest LIMIT that bounds a read.
pub fn parse_risk(text: &str, select_limit: u64) -> Result<Risk, String> {
    let (kind, arg) = match text.split_once(':') {
        Some((k, a)) => (k, Some(a)),
        None => (text, None),
    };
    let risk = match (kind, arg) {
        ("delete_without_where", None) => Risk::DeleteWithoutWhere,
        ("update_without_where", None) => Risk::UpdateWithoutWhere,
        ("unbounded_select", None) => Risk::UnboundedSelect(None, select_limit),
        ("unbounded_select", Some(p)) => {
            Risk::UnboundedSelect(Some(pattern(text, p)?), select_limit)
        }
        ("write", Some(p)) => Risk::Write(pattern(text, p)?),
        ("read", Some(p)) => Risk::Read(pattern(text, p)?),
        (op, None) if Operation::from_name(op).is_some() => {
            Risk::Operation(Operation::from_name(op).unwrap_or(Operation::Code))
        }
        _ => {
            let ops: Vec<&str> = Operation::ALL.iter().map(|o| o.name()).collect();
            return Err(format!(
                "unknown risk {text:?}; expected delete_without_where, update_without_where, unbounded_select[:schema.table], write:schema.table, read:schema.table or an operation ({})",
                ops.join(", ")
            ));
        }
    };
    Ok(risk)
}

impl Approval {
    /// Compiles `[roles.NAME.approval]`; errors name the key.
    pub fn compile(c: &ApprovalConfig) -> Result<Approval, (String, String)> {
        let select_limit = c.select_limit.unwrap_or(1000);
        let mut risks = Vec::new();
        for r in &c.require {
            let risk = parse_risk(r, select_limit).map_err(|e| ("require".into(), e))?;
            risks.push((r.clone(), risk));
        }
        let mode = match c.mode.as_deref() {
            None | Some("hold") => Mode::Hold,
            Some("retry") => Mode::Retry,
            Some(m) => {
                return Err((
                    "mode".into(),
                    format!("{m:?} is not a mode; expected \"hold\" or \"retry\""),
                ))
            }
        };
        let span =
            |key: &str, v: &Option<String>, default: u64| -> Result<Duration, (String, String)> {
                match v {
                    None => Ok(Duration::from_secs(default)),
                    Some(t) => parse_span(t).filter(|d| !d.is_zero()).ok_or_else(|| {
                        (
                            key.to_string(),
                            format!(
                            "{t:?} is not a positive duration such as \"5m\", \"30s\" or \"1h\""
                        ),
                        )
                    }),
                }
            };
        Ok(Approval {
            risks,
            mode,
            hold_timeout: span("hold_timeout", &c.hold_timeout, 300)?,
            grant_ttl: span("grant_ttl", &c.grant_ttl, 600)?,
        })
    }

    /// The approval rules of a user with `roles`: every role's risks (each
    /// with its own role's `select_limit`); the mode and times of the
    /// first role that has an `approval` table.
    pub fn of(roles: &[&Role]) -> Option<Approval> {
        let mut with = roles.iter().filter_map(|r| r.approval.as_ref());
        let mut out = with.next()?.clone();
        for a in with {
            for r in &a.risks {
                if !out.risks.contains(r) {
                    out.risks.push(r.clone());
                }
            }
        }
        Some(out)
    }

    /// The risks (as written) an allowed statement matches; empty when it
    /// runs without approval. A name matches when any schema it may
    /// resolve to matches.
    pub fn reasons(&self, c: &Classification, view: &SessionView) -> Vec<String> {
        let matches = |p: &Patterns, n: &Name| match resolve(n, view) {
            // A relation the catalog snapshot does not know yet (made since,
            // perhaps a view over anything): fail closed.
            Ok(candidates) if unknown(&candidates, view) => true,
            Ok(candidates) => relations_behind(candidates, view)
                .iter()
                .any(|q| p.matches(q)),
            // A name the policy cannot place: fail closed.
            Err(_) => true,
        };
        let ops = &c.operations;
        self.risks
            .iter()
            .filter(|(_, risk)| match risk {
                Risk::Operation(Operation::Ddl) => {
                    ops.contains(&Operation::Ddl) || ops.contains(&Operation::Code)
                }
                Risk::Operation(op) => ops.contains(op),
                Risk::DeleteWithoutWhere => {
                    c.unfiltered.iter().any(|(o, _)| *o == Operation::Delete)
                }
                Risk::UpdateWithoutWhere => {
                    c.unfiltered.iter().any(|(o, _)| *o == Operation::Update)
                }
                Risk::UnboundedSelect(p, limit) => c.row_bounds.iter().any(|(n, bound)| {
                    bound.is_none_or(|b| b > *limit) && p.as_ref().is_none_or(|p| matches(p, n))
                }),
                Risk::Write(p) => c.writes.iter().any(|n| matches(p, n)),
                Risk::Read(p) => c.reads.iter().any(|n| matches(p, n)),
            })
            .map(|(text, _)| text.clone())
            .fold(Vec::new(), |mut out, t| {
                // (Two roles may name one risk with different limits.)
                if !out.contains(&t) {
                    out.push(t);
                }
                out
            })
    }
}

/// True when a snapshot is in use and none of the names exists in it.
fn unknown(names: &[String], view: &SessionView) -> bool {
    view.catalog
        .is_some_and(|c| !names.iter().any(|n| c.exists(n)))
}

/// The relations whose rows reading `names` touches: the names, the tables
/// that inherit from them or are their partitions, and what views read
/// (nested views too), as far as the catalog snapshot tells.
fn relations_behind(names: Vec<String>, view: &SessionView) -> Vec<String> {
    let Some(catalog) = view.catalog else {
        return names;
    };
    let mut out: Vec<String> = Vec::new();
    let mut todo = names;
    // (Bounded: a view cycle cannot be created, but a snapshot is not trusted.)
    while let Some(n) = todo.pop() {
        if out.contains(&n) || out.len() > 1000 {
            continue;
        }
        for d in catalog.descendants(&n) {
            todo.push(d);
        }
        if let Some(def) = catalog.view(&n) {
            todo.extend(def.reads.iter().cloned());
        }
        out.push(n);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::classify::classify;

    fn approval(require: &[&str]) -> Approval {
        Approval::compile(&ApprovalConfig {
            require: require.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
        .unwrap()
    }

    fn reasons(a: &Approval, sql: &str) -> Vec<String> {
        let path = ["public".to_string()];
        let view = SessionView {
            database: "app",
            upstream_database: "app",
            masks: None,
            catalog: None,
            search_path: &path,
        };
        a.reasons(&classify(sql).unwrap(), &view)
    }

    #[test]
    fn statements_match_the_risks_the_issue_names() {
        let a = approval(&[
            "ddl",
            "truncate",
            "delete_without_where",
            "update_without_where",
            "copy_out",
            "unbounded_select:public.customers",
            "write:public.payments",
        ]);
        assert_eq!(reasons(&a, "CREATE TABLE t (id int)"), ["ddl"]);
        assert_eq!(reasons(&a, "DO $$ BEGIN END $$"), ["ddl"]);
        assert_eq!(reasons(&a, "TRUNCATE orders"), ["truncate"]);
        assert_eq!(
            reasons(&a, "DELETE FROM orders WHERE true"),
            ["delete_without_where"]
        );
        assert!(reasons(&a, "DELETE FROM orders WHERE id = 1").is_empty());
        assert_eq!(
            reasons(&a, "UPDATE orders SET total = 1"),
            ["update_without_where"]
        );
        assert_eq!(reasons(&a, "COPY orders TO STDOUT"), ["copy_out"]);
        assert_eq!(
            reasons(&a, "SELECT * FROM customers"),
            ["unbounded_select:public.customers"]
        );
        assert_eq!(
            reasons(&a, "SELECT * FROM public.customers LIMIT 5000"),
            ["unbounded_select:public.customers"]
        );
        assert!(reasons(&a, "SELECT * FROM customers LIMIT 10").is_empty());
        assert!(reasons(&a, "SELECT * FROM orders").is_empty());
        assert_eq!(
            reasons(&a, "INSERT INTO payments VALUES (1)"),
            ["write:public.payments"]
        );
        assert_eq!(
            reasons(&a, "SELECT 1; DELETE FROM orders; TRUNCATE payments"),
            ["truncate", "delete_without_where", "write:public.payments"]
        );
    }

    #[test]
    fn views_count_for_what_they_read_and_unknown_relations_fail_closed() {
        let a = approval(&["unbounded_select:public.customers"]);
        let catalog = crate::policy::catalog::Catalog::from_rows(
            [
                ("public", "customers", b'r', None),
                ("public", "orders", b'r', None),
                (
                    "public",
                    "directory",
                    b'v',
                    Some("SELECT id, name FROM public.customers"),
                ),
            ],
            1,
        );
        let path = ["public".to_string()];
        let view = SessionView {
            database: "app",
            upstream_database: "app",
            masks: None,
            catalog: Some(&catalog),
            search_path: &path,
        };
        let needs = |sql: &str| !a.reasons(&classify(sql).unwrap(), &view).is_empty();
        assert!(needs("SELECT * FROM directory"));
        assert!(!needs("SELECT * FROM directory LIMIT 5"));
        assert!(!needs("SELECT * FROM orders"));
        // A view made since the snapshot could read anything.
        assert!(needs("SELECT * FROM made_since"));
    }

    #[test]
    fn each_role_keeps_its_own_select_limit() {
        let loose = Approval::compile(&ApprovalConfig {
            require: vec!["unbounded_select:public.orders".into()],
            select_limit: Some(1_000_000),
            ..Default::default()
        })
        .unwrap();
        let strict = approval(&["unbounded_select:public.customers"]);
        let roles = [("analyst", loose), ("writer", strict)].map(|(name, a)| Role {
            approval: Some(a),
            ..crate::policy::Policy::from_toml(&format!("[roles.{name}]\n"))
                .unwrap()
                .roles[name]
                .clone()
        });
        let both = Approval::of(&roles.iter().collect::<Vec<_>>()).unwrap();
        assert_eq!(
            reasons(&both, "SELECT * FROM customers LIMIT 500000"),
            ["unbounded_select:public.customers"]
        );
        assert!(reasons(&both, "SELECT * FROM orders LIMIT 500000").is_empty());
    }

    #[test]
    fn bad_rules_are_refused_with_their_key() {
        let bad = |c: ApprovalConfig| Approval::compile(&c).unwrap_err().0;
        let req = |r: &str| ApprovalConfig {
            require: vec![r.into()],
            ..Default::default()
        };
        assert_eq!(bad(req("drop_everything")), "require");
        assert_eq!(bad(req("write:payments")), "require");
        assert_eq!(bad(req("write")), "require");
        let mode = ApprovalConfig {
            mode: Some("later".into()),
            ..Default::default()
        };
        assert_eq!(bad(mode), "mode");
        let t = ApprovalConfig {
            hold_timeout: Some("0s".into()),
            ..Default::default()
        };
        assert_eq!(bad(t), "hold_timeout");
        assert_eq!(parse_span("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_span("10min"), Some(Duration::from_secs(600)));
        assert_eq!(parse_span("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_span("5 weeks"), None);
    }
}
