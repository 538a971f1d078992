//! `pgward check --connect`: logs in to every upstream with every configured
//! login and reports what an operator must know before agents arrive:
//! unreachable hosts, wrong passwords, missing databases (errors); logins
//! that defeat least privilege: superuser, BYPASSRLS, owner of relations
//! (warnings); masks, `deny_columns` and `unmask` naming columns that do not
//! exist (a misspelled mask leaks its column: an error).

use std::collections::{BTreeMap, BTreeSet};

use crate::config::{Config, DatabaseConfig, Login};
use crate::provision::catalog::Grantee;
use crate::provision::connection::Connection;
use crate::provision::drift::{self, Drift};
use crate::provision::plan::{LoginSpec, Plan};

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The gateway cannot work as configured (an upstream or login problem).
    Error(String),
    /// The configuration does not match the database in a way that weakens
    /// protection (a mask naming no column): `serve` refuses to start.
    Misconfigured(String),
    /// It works, but weakens what pgward guarantees.
    Warning(String),
}

/// What the server says of one login.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoginFacts {
    /// rolsuper.
    pub superuser: bool,
    /// rolbypassrls.
    pub bypass_rls: bool,
    /// User relations it owns.
    pub owned: u64,
    /// The database's encoding (`server_encoding`).
    pub server_encoding: String,
}

const LOGIN_SQL: &str = "SELECT r.rolsuper, r.rolbypassrls, \
     (SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
      WHERE c.relowner = r.oid AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
        AND n.nspname NOT LIKE 'pg\\_toast%') \
     , pg_catalog.current_setting('server_encoding') \
     FROM pg_catalog.pg_roles r WHERE r.rolname = current_user";

const COLUMNS_SQL: &str = "SELECT n.nspname || '.' || c.relname, a.attname \
     FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f')";

/// Types outside pg_catalog named like the built-ins pgward reads casts to
/// (`text`, `regclass`, ...): on the search path before pg_catalog they
/// would stand in for them, so pgward would read a cast as the server does
/// not. pgward refuses to create them; one made otherwise is an error.
async fn shadowing_types(name: &str, conn: &mut Connection) -> Vec<Finding> {
    let names: Vec<String> = crate::policy::decide::SHADOWABLE_TYPES
        .iter()
        .map(|t| format!("'{t}'"))
        .collect();
    let sql = format!(
        "SELECT n.nspname || '.' || t.typname FROM pg_catalog.pg_type t \
         JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace \
         WHERE n.nspname <> 'pg_catalog' AND t.typtype <> 'c' AND t.typname IN ({})",
        names.join(", ")
    );
    match conn.query(&sql).await {
        Ok(reply) => reply
            .rows
            .into_iter()
            .filter_map(|r| r.into_iter().next().flatten())
            .map(|t| {
                Finding::Misconfigured(format!(
                    "databases.{name}: the type {t} is named like a built-in pgward reads casts to; on a search path before pg_catalog it would stand in for it (drop or rename it)"
                ))
            })
            .collect(),
        Err(e) => vec![Finding::Error(format!("databases.{name}: {e}"))],
    }
}

/// Findings about one login (`role` is the pgward role it serves, if any).
pub fn login_findings(db: &str, login: &str, role: Option<&str>, f: &LoginFacts) -> Vec<Finding> {
    let who = match role {
        Some(r) => format!("databases.{db}: the login {login} (for role {r})"),
        None => format!("databases.{db}: the login {login}"),
    };
    let mut out = Vec::new();
    if f.superuser {
        out.push(Finding::Warning(format!(
            "{who} is a superuser: a hole in the policy hands over everything; give each role a login of its own (pgward provision)"
        )));
    }
    if f.bypass_rls {
        out.push(Finding::Warning(format!(
            "{who} has BYPASSRLS: row-level security does not apply to it"
        )));
    }
    if f.owned > 0 {
        out.push(Finding::Warning(format!(
            "{who} owns {} relation(s): an owner may change or drop them whatever the grants",
            f.owned
        )));
    }
    if !f.server_encoding.is_empty() && !f.server_encoding.eq_ignore_ascii_case("UTF8") {
        out.push(Finding::Misconfigured(format!(
            "databases.{db}: the database's encoding is {}; pgward serves UTF8 databases only (every session would be refused)",
            f.server_encoding
        )));
    }
    out
}

/// Columns named by masks, deny_columns and unmask that the database lacks.
pub fn column_findings(
    db: &str,
    config: &Config,
    columns: &BTreeSet<(String, String)>,
) -> Vec<Finding> {
    let exists = |table: &str, col: &str| {
        columns
            .iter()
            .any(|(t, c)| t.eq_ignore_ascii_case(table) && c.eq_ignore_ascii_case(col))
    };
    let has_table = |table: &str| columns.iter().any(|(t, _)| t.eq_ignore_ascii_case(table));
    let mut out = Vec::new();
    for (table, col) in config.masks.rules.keys() {
        // Masks apply to every database; one that has the table must have
        // the column (a table no database has is checked in `run`).
        if has_table(table) && !exists(table, col) {
            out.push(Finding::Misconfigured(format!(
                "masks.\"{table}.{col}\": {table} in databases.{db} has no column {col}; a misspelled mask masks nothing"
            )));
        }
    }
    for (name, role) in &config.policy.roles {
        for (key, list) in [
            ("deny_columns", &role.deny_columns),
            ("unmask", &role.unmask),
        ] {
            for (table, col) in list {
                if !exists(table, col) {
                    out.push(Finding::Warning(format!(
                        "roles.{name}.{key}: databases.{db} has no column {table}.{col}"
                    )));
                }
            }
        }
    }
    out
}

/// Grants the database's own login holds beyond what the roles without a
/// login of their own imply (those roles' sessions run as it).
async fn own_login_grants(
    name: &str,
    db: &DatabaseConfig,
    config: &Config,
    conn: &mut Connection,
) -> Vec<Finding> {
    let roles: Vec<_> = config
        .policy
        .roles
        .iter()
        .filter(|(r, _)| !db.logins.contains_key(*r))
        .map(|(_, role)| role)
        .collect();
    let spec = LoginSpec {
        user: db.user.clone(),
        roles,
        password: None,
        source: format!("databases.{name}.user"),
    };
    let specs = [spec];
    let catalog = match crate::provision::command::read_catalog(conn, &specs).await {
        Ok(c) => c,
        Err(e) => return vec![Finding::Error(format!("databases.{name}: {e}"))],
    };
    if catalog.superuser {
        // A superuser holds everything; the warning above says so.
        return Vec::new();
    }
    let plan = Plan::new(&catalog, &specs);
    let extra: Vec<String> = drift::compute(&plan, &catalog, &BTreeMap::new())
        .into_iter()
        .filter(|d| matches!(d, Drift::Extra { grantee: Grantee::Role(r), .. } if *r == db.user))
        .map(|d| d.to_string())
        .collect();
    if extra.is_empty() {
        return Vec::new();
    }
    vec![Finding::Warning(format!(
        "databases.{name}: the login {} holds grants beyond what the roles without a login of their own need ({} of them, e.g. {}); see pgward provision",
        db.user,
        extra.len(),
        extra[0]
    ))]
}

/// Every login of a database: its own, then each role's, by user name.
fn logins(db: &DatabaseConfig) -> BTreeMap<String, (Login, Option<String>)> {
    let mut out = BTreeMap::new();
    out.insert(
        db.user.clone(),
        (
            Login {
                user: db.user.clone(),
                password: db.password.clone(),
            },
            None,
        ),
    );
    for (role, login) in &db.logins {
        out.entry(login.user.clone())
            .or_insert_with(|| (login.clone(), Some(role.clone())));
    }
    out
}

/// Runs every check; the findings in order.
pub fn run(config: &Config) -> Vec<Finding> {
    let mut rt = match monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return vec![Finding::Error(format!("cannot start a runtime: {e}"))],
    };
    rt.block_on(async {
        let mut out = Vec::new();
        // Tables seen in every database read, and whether all were read.
        let mut tables: BTreeSet<String> = BTreeSet::new();
        let mut all_read = true;
        for (name, db) in &config.databases {
            for (user, (login, role)) in logins(db) {
                let mut conn = match Connection::open(&db.as_login(&login)).await {
                    Ok(c) => c,
                    Err(e) => {
                        if role.is_none() {
                            all_read = false;
                        }
                        out.push(Finding::Error(format!("databases.{name}: {e}")));
                        continue;
                    }
                };
                match conn.query(LOGIN_SQL).await {
                    Ok(reply) => {
                        let row = reply.rows.first().cloned().unwrap_or_default();
                        let flag = |i: usize| row.get(i).cloned().flatten().as_deref() == Some("t");
                        let facts = LoginFacts {
                            superuser: flag(0),
                            bypass_rls: flag(1),
                            owned: row
                                .get(2)
                                .cloned()
                                .flatten()
                                .and_then(|v| v.parse().ok())
                                .unwrap_or(0),
                            server_encoding: row.get(3).cloned().flatten().unwrap_or_default(),
                        };
                        out.extend(login_findings(name, &user, role.as_deref(), &facts));
                    }
                    Err(e) => out.push(Finding::Error(format!("databases.{name}: {user}: {e}"))),
                }
                if role.is_none() {
                    out.extend(own_login_grants(name, db, config, &mut conn).await);
                    out.extend(shadowing_types(name, &mut conn).await);
                    match conn.query(COLUMNS_SQL).await {
                        Ok(reply) => {
                            let columns: BTreeSet<(String, String)> = reply
                                .rows
                                .into_iter()
                                .filter_map(|r| match r.as_slice() {
                                    [Some(t), Some(c)] => Some((t.clone(), c.clone())),
                                    _ => None,
                                })
                                .collect();
                            tables.extend(columns.iter().map(|(t, _)| t.to_ascii_lowercase()));
                            out.extend(column_findings(name, config, &columns));
                        }
                        Err(e) => {
                            all_read = false;
                            out.push(Finding::Error(format!("databases.{name}: {e}")))
                        }
                    }
                }
                conn.close().await;
            }
        }
        if all_read {
            for (table, col) in config.masks.rules.keys() {
                if !tables.contains(&table.to_ascii_lowercase()) {
                    // An error for `check`; `serve` only warns: the table
                    // may be created later (masked from its first row).
                    out.push(Finding::Error(format!(
                        "masks.\"{table}.{col}\": no configured database has a table {table}; a misspelled mask masks nothing"
                    )));
                }
            }
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_that_defeat_least_privilege_are_named() {
        let f = LoginFacts {
            superuser: true,
            bypass_rls: true,
            owned: 3,
            server_encoding: "UTF8".into(),
        };
        let got = login_findings("shop", "svc", Some("reader"), &f);
        assert_eq!(got.len(), 3);
        assert!(
            matches!(&got[0], Finding::Warning(w) if w.contains("superuser") && w.contains("role reader"))
        );
        assert!(login_findings("shop", "svc", None, &LoginFacts::default()).is_empty());
        let latin1 = LoginFacts {
            server_encoding: "LATIN1".into(),
            ..LoginFacts::default()
        };
        let got = login_findings("shop", "svc", None, &latin1);
        assert!(
            matches!(&got[..], [Finding::Misconfigured(e)] if e.contains("LATIN1")),
            "{got:?}"
        );
    }

    #[test]
    fn a_misspelled_mask_is_an_error() {
        let config = Config::from_toml(
            "[server]\nlisten = [\"127.0.0.1:1\"]\n[databases.shop]\nhost = \"h\"\nuser = \"u\"\n\
             [roles.r]\ndeny_columns = [\"public.t.nope\"]\n\
             [masks]\n\"public.t.emial\" = \"email\"\n\"public.T.Name\" = \"redact\"\n",
            "t.toml",
            std::path::Path::new("."),
        )
        .unwrap();
        let columns: BTreeSet<(String, String)> = [("public.t".to_string(), "name".to_string())]
            .into_iter()
            .collect();
        let got = column_findings("shop", &config, &columns);
        assert!(got
            .iter()
            .any(|f| matches!(f, Finding::Misconfigured(e) if e.contains("public.t.emial"))));
        assert!(!got
            .iter()
            .any(|f| matches!(f, Finding::Misconfigured(e) if e.contains("name"))));
        assert!(got
            .iter()
            .any(|f| matches!(f, Finding::Warning(w) if w.contains("deny_columns"))));
    }
}
