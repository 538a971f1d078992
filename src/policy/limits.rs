//! Limits a user's roles put on the upstream session itself: read-only
//! transactions for roles that write nothing, and ceilings on
//! `statement_timeout`, `lock_timeout` and `idle_in_transaction_session_timeout`.
//! pgward sets them when the upstream session starts; this module says which
//! startup parameters that takes and refuses any change that would loosen
//! them (SET, set_config, SET TRANSACTION, BEGIN READ WRITE, startup options).

use crate::sql::classification::SettingValue;
use crate::sql::Operation;

use super::role::Role;

/// Operations that change data or schema: a role with none is read-only.
const WRITES: &[Operation] = &[
    Operation::Insert,
    Operation::Update,
    Operation::Delete,
    Operation::Merge,
    Operation::CopyIn,
    Operation::Ddl,
    Operation::Truncate,
    Operation::Maintenance,
    Operation::Code,
];

/// The settings that control read-only transactions.
const READ_ONLY_SETTINGS: &[&str] = &["default_transaction_read_only", "transaction_read_only"];

/// The timeouts a role may cap, by setting name.
pub const TIMEOUTS: &[&str] = &[
    "statement_timeout",
    "lock_timeout",
    "idle_in_transaction_session_timeout",
];

/// What a user's roles impose on the upstream session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionLimits {
    /// No role grants a writing operation: transactions are read-only.
    pub read_only: bool,
    /// Ceilings in milliseconds, by setting (the smallest any role sets).
    pub timeouts: Vec<(&'static str, u64)>,
}

impl SessionLimits {
    /// The limits of a user with `roles`.
    pub fn of(roles: &[&Role]) -> SessionLimits {
        let read_only = !roles
            .iter()
            .any(|r| WRITES.iter().any(|op| r.operations.contains(op)));
        let timeouts = TIMEOUTS
            .iter()
            .filter_map(|&name| {
                roles
                    .iter()
                    .filter_map(|r| r.timeout(name))
                    .min()
                    .map(|ms| (name, ms))
            })
            .collect();
        SessionLimits {
            read_only,
            timeouts,
        }
    }

    /// Startup parameters that put the limits in force upstream. Plain
    /// parameters are applied after `options`, so a client's `-c` cannot
    /// override them.
    pub fn startup_params(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.read_only {
            out.push(("default_transaction_read_only".into(), "on".into()));
        }
        for (name, ms) in &self.timeouts {
            out.push((name.to_string(), format!("{ms}ms")));
        }
        out
    }

    /// Why changing `name` to `value` is refused, if it is.
    pub fn refuse(&self, name: &str, value: &SettingValue) -> Option<String> {
        if self.read_only && READ_ONLY_SETTINGS.contains(&name) {
            return match value {
                // RESET and DEFAULT return to the session's value: on.
                SettingValue::Reset => None,
                SettingValue::Literal(v) if is_true(v) => None,
                _ => Some(format!(
                    "turn {name} off: the user's roles write nothing, so the session is read-only"
                )),
            };
        }
        let (_, ceiling) = self.timeouts.iter().find(|(t, _)| *t == name)?;
        match value {
            SettingValue::Reset => None,
            SettingValue::Literal(v) => match parse_duration_ms(v) {
                Some(ms) if ms > 0 && ms <= *ceiling => None,
                _ => Some(format!(
                    "set {name} to {v:?}: the user's roles allow at most {ceiling}ms (and never 0, which disables it)"
                )),
            },
            SettingValue::Unknown => Some(format!(
                "set {name} to a value that is not a literal (the role caps it at {ceiling}ms)"
            )),
        }
    }
}

/// PostgreSQL's boolean spellings for true.
fn is_true(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "on" | "true" | "yes" | "1" | "t" | "y" | "tr" | "tru" | "ye"
    )
}

/// A time setting's value in milliseconds, as PostgreSQL reads it: a number
/// with an optional unit (`us`, `ms`, `s`, `min`, `h`, `d`; none means ms).
pub fn parse_duration_ms(v: &str) -> Option<u64> {
    let v = v.trim();
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (number, unit) = v.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match unit.trim() {
        "" | "ms" => 1.0,
        "us" => 0.001,
        "s" => 1000.0,
        "min" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        _ => return None,
    };
    let ms = (number * factor).round();
    (0.0..2_147_483_647.0).contains(&ms).then_some(ms as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_the_server_reads_them() {
        assert_eq!(parse_duration_ms("30s"), Some(30_000));
        assert_eq!(parse_duration_ms("1500"), Some(1500));
        assert_eq!(parse_duration_ms(" 2 min"), Some(120_000));
        assert_eq!(parse_duration_ms("1.5s"), Some(1500));
        assert_eq!(parse_duration_ms("0"), Some(0));
        assert_eq!(parse_duration_ms("-1"), None);
        assert_eq!(parse_duration_ms("5 fortnights"), None);
    }

    #[test]
    fn read_only_and_ceilings_cannot_be_loosened() {
        let limits = SessionLimits {
            read_only: true,
            timeouts: vec![("statement_timeout", 30_000)],
        };
        let lit = |v: &str| SettingValue::Literal(v.into());
        assert!(limits
            .refuse("default_transaction_read_only", &lit("off"))
            .is_some());
        assert!(limits
            .refuse("transaction_read_only", &lit("false"))
            .is_some());
        assert!(limits
            .refuse("transaction_read_only", &SettingValue::Unknown)
            .is_some());
        assert!(limits.refuse("transaction_read_only", &lit("on")).is_none());
        assert!(limits
            .refuse("default_transaction_read_only", &SettingValue::Reset)
            .is_none());
        assert!(limits.refuse("statement_timeout", &lit("10s")).is_none());
        assert!(limits.refuse("statement_timeout", &lit("0")).is_some());
        assert!(limits.refuse("statement_timeout", &lit("1min")).is_some());
        assert!(limits
            .refuse("statement_timeout", &SettingValue::Reset)
            .is_none());
        assert!(limits.refuse("lock_timeout", &lit("0")).is_none());
        assert_eq!(
            limits.startup_params(),
            vec![
                (
                    "default_transaction_read_only".to_string(),
                    "on".to_string()
                ),
                ("statement_timeout".to_string(), "30000ms".to_string())
            ]
        );
    }
}
