//! Roles as the policy file states them (`[roles.NAME]`), compiled into
//! grants that can be checked quickly, and the union of a user's roles.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::glob::Patterns;
use crate::sql::Operation;

/// `[roles.NAME]` as written in the config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleConfig {
    /// Operations granted: select, insert, update, ... (see `Operation`).
    #[serde(default)]
    pub operations: Vec<String>,
    /// Relations the role may read: `schema.name` globs, `!` excludes.
    #[serde(default)]
    pub read: Vec<String>,
    /// Relations the role may write.
    #[serde(default)]
    pub write: Vec<String>,
    /// Functions beyond the built-in safe list: `schema.name` or a built-in name.
    #[serde(default)]
    pub functions: Vec<String>,
    /// Columns never readable, not even in WHERE: `schema.table.column`.
    #[serde(default)]
    pub deny_columns: Vec<String>,
    /// May read schema metadata in pg_catalog and information_schema.
    #[serde(default)]
    pub catalog: bool,
    /// Largest number of rows one result may return.
    pub max_rows: Option<u64>,
    /// Masked columns this role sees in clear: `schema.table.column`.
    #[serde(default)]
    pub unmask: Vec<String>,
    /// Personal data to find and mask inside unmasked text columns:
    /// `email`, `card`, `ssn`.
    #[serde(default)]
    pub scan_entities: Vec<String>,
    /// Extensions the role may create (`CREATE EXTENSION`, with `ddl`), by name.
    #[serde(default)]
    pub extensions: Vec<String>,
    /// Ceiling on `statement_timeout` (`"30s"`), set at session start.
    pub statement_timeout: Option<String>,
    /// Ceiling on `lock_timeout`.
    pub lock_timeout: Option<String>,
    /// Ceiling on `idle_in_transaction_session_timeout`.
    pub idle_in_transaction_session_timeout: Option<String>,
    /// Statements that run only once a human approves them.
    pub approval: Option<super::approval::ApprovalConfig>,
}

/// One compiled role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// The role's name.
    pub name: String,
    /// Operations granted.
    pub operations: BTreeSet<Operation>,
    /// Readable relations.
    pub read: Patterns,
    /// Writable relations.
    pub write: Patterns,
    /// Extra functions granted.
    pub functions: BTreeSet<String>,
    /// Columns denied, as (schema.table, column).
    pub deny_columns: Vec<(String, String)>,
    /// Catalog metadata access.
    pub catalog: bool,
    /// Result row cap.
    pub max_rows: Option<u64>,
    /// Masked columns seen in clear, as (schema.table, column).
    pub unmask: Vec<(String, String)>,
    /// Entities masked inside unmasked text columns.
    pub scan_entities: crate::mask::scan::Entities,
    /// Timeout ceilings in milliseconds, by setting name.
    pub timeouts: Vec<(&'static str, u64)>,
    /// Extensions the role may create.
    pub extensions: BTreeSet<String>,
    /// Statements that wait for a human's approval.
    pub approval: Option<super::approval::Approval>,
}

impl Role {
    /// Compiles a role; errors name the key (`operations`, `read`, ...).
    pub fn compile(name: &str, r: &RoleConfig) -> Result<Role, (String, String)> {
        let mut operations = BTreeSet::new();
        for o in &r.operations {
            let op = Operation::from_name(o).ok_or_else(|| {
                let all: Vec<&str> = Operation::ALL.iter().map(|o| o.name()).collect();
                (
                    "operations".to_string(),
                    format!(
                        "unknown operation {o:?}; expected one of {}",
                        all.join(", ")
                    ),
                )
            })?;
            operations.insert(op);
        }
        let read = Patterns::new(&r.read).map_err(|e| ("read".to_string(), e))?;
        let write = Patterns::new(&r.write).map_err(|e| ("write".to_string(), e))?;
        let deny_columns = columns("deny_columns", &r.deny_columns)?;
        let unmask = columns("unmask", &r.unmask)?;
        let mut timeouts = Vec::new();
        for (key, value) in [
            ("statement_timeout", &r.statement_timeout),
            ("lock_timeout", &r.lock_timeout),
            (
                "idle_in_transaction_session_timeout",
                &r.idle_in_transaction_session_timeout,
            ),
        ] {
            if let Some(v) = value {
                match super::limits::parse_duration_ms(v) {
                    Some(ms) if ms > 0 => timeouts.push((key, ms)),
                    _ => {
                        return Err((
                            key.to_string(),
                            format!(
                                "{v:?} is not a positive duration such as \"30s\" or \"500ms\""
                            ),
                        ))
                    }
                }
            }
        }
        if let Some(bad) = r
            .extensions
            .iter()
            .find(|e| e.is_empty() || e.contains(['*', '.', ' ']))
        {
            return Err((
                "extensions".to_string(),
                format!(
                    "{bad:?} is not an extension name (name each one, as CREATE EXTENSION does)"
                ),
            ));
        }
        let approval = match &r.approval {
            Some(a) => Some(
                super::approval::Approval::compile(a)
                    .map_err(|(k, m)| (format!("approval.{k}"), m))?,
            ),
            None => None,
        };
        Ok(Role {
            approval,
            timeouts,
            extensions: r.extensions.iter().cloned().collect(),
            name: name.to_string(),
            operations,
            read,
            write,
            functions: r.functions.iter().map(|f| f.to_lowercase()).collect(),
            deny_columns,
            catalog: r.catalog,
            max_rows: r.max_rows,
            unmask,
            scan_entities: crate::mask::scan::Entities::parse(&r.scan_entities)
                .map_err(|e| ("scan_entities".to_string(), e))?,
        })
    }
}

impl Role {
    /// The role's ceiling on a timeout setting, in milliseconds.
    pub fn timeout(&self, setting: &str) -> Option<u64> {
        self.timeouts
            .iter()
            .find(|(s, _)| *s == setting)
            .map(|(_, ms)| *ms)
    }
}

/// Parses a list of `schema.table.column` into (schema.table, column).
fn columns(key: &str, list: &[String]) -> Result<Vec<(String, String)>, (String, String)> {
    list.iter()
        .map(|c| match c.rsplit_once('.') {
            Some((table, col)) if table.contains('.') && !col.is_empty() => {
                Ok((table.to_ascii_lowercase(), col.to_ascii_lowercase()))
            }
            _ => Err((
                key.to_string(),
                format!("{c:?} is not a column like \"schema.table.column\""),
            )),
        })
        .collect()
}

/// All roles of a configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Roles by name.
    pub roles: BTreeMap<String, Role>,
}

impl Policy {
    /// Compiles every role; an error names `roles.NAME.KEY`.
    pub fn compile(raw: &BTreeMap<String, RoleConfig>) -> Result<Policy, (String, String)> {
        let mut roles = BTreeMap::new();
        for (name, r) in raw {
            let role = Role::compile(name, r).map_err(|(k, m)| (format!("roles.{name}.{k}"), m))?;
            roles.insert(name.clone(), role);
        }
        Ok(Policy { roles })
    }

    /// Compiles the `[roles.*]` tables of a TOML text (other tables ignored).
    pub fn from_toml(text: &str) -> Result<Policy, String> {
        #[derive(Deserialize)]
        struct Roles {
            #[serde(default)]
            roles: BTreeMap<String, RoleConfig>,
        }
        let table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        let roles: Roles = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| e.to_string())?;
        Policy::compile(&roles.roles).map_err(|(k, m)| format!("{k}: {m}"))
    }

    /// The roles named, skipping unknown names (config validation rejects them).
    pub fn roles_of<'p>(&'p self, names: &[String]) -> Vec<&'p Role> {
        names.iter().filter_map(|n| self.roles.get(n)).collect()
    }
}
