//! Where the database differs from the plan, in both directions: logins
//! missing or with attributes they must not have, memberships, privileges
//! missing or extra (PUBLIC's included), ownership, session settings,
//! passwords, and PUBLIC's default right to execute new functions. One line
//! per difference. Pure logic.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::catalog::{Catalog, Grantee};
use super::plan::{LoginPlan, Plan};
use super::privilege::{Object, Privilege};
use crate::auth::scram::{ct_eq, Verifier};
use crate::policy::limits::parse_duration_ms;

/// One difference between the database and the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// The login role does not exist.
    NoLogin { login: String },
    /// A role attribute differs (`wanted` is what the plan says).
    Attribute {
        login: String,
        attribute: &'static str,
        wanted: bool,
    },
    /// The login is a member of another role.
    Membership { login: String, role: String },
    /// A privilege the plan grants is not held.
    Missing {
        login: String,
        object: Object,
        privilege: Privilege,
    },
    /// A privilege is held beyond the plan.
    Extra {
        grantee: Grantee,
        object: Object,
        privilege: Privilege,
    },
    /// The login owns something its roles may not change.
    Owns { login: String, object: String },
    /// A session setting in this database differs.
    Setting {
        login: String,
        name: String,
        actual: Option<String>,
        wanted: Option<String>,
    },
    /// The stored password is not the configured one.
    Password { login: String, source: String },
    /// Functions this role creates later will be executable by PUBLIC.
    FunctionDefaults { owner: String },
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::NoLogin { login } => write!(f, "{login}: missing login (the role does not exist)"),
            Drift::Attribute {
                login,
                attribute,
                wanted,
            } => {
                let (which, name) = if *wanted {
                    ("missing", attribute.to_string())
                } else {
                    ("extra", attribute.to_string())
                };
                write!(f, "{login}: {which} attribute {name}")
            }
            Drift::Membership { login, role } => {
                write!(f, "{login}: extra membership in role {role}")
            }
            Drift::Missing {
                login,
                object,
                privilege,
            } => write!(f, "{login}: missing {privilege} on {object}"),
            Drift::Extra {
                grantee,
                object,
                privilege,
            } => write!(f, "{grantee}: extra {privilege} on {object}"),
            Drift::Owns { login, object } => write!(f, "{login}: extra ownership of {object}"),
            Drift::Setting {
                login,
                name,
                actual,
                wanted,
            } => write!(
                f,
                "{login}: setting {name} is {} in this database, the policy wants {}",
                actual.as_deref().unwrap_or("unset"),
                wanted.as_deref().unwrap_or("it unset")
            ),
            Drift::Password { login, source } => {
                write!(f, "{login}: its password is not the one in {source}")
            }
            Drift::FunctionDefaults { owner } => write!(
                f,
                "PUBLIC: extra EXECUTE on functions {owner} creates later (ALTER DEFAULT PRIVILEGES)"
            ),
        }
    }
}

/// Whether a stored `rolpassword` is a SCRAM verifier of `password`.
pub fn password_matches(stored: Option<&str>, password: &str) -> bool {
    let Some(v) = stored.and_then(|s| Verifier::parse(s).ok()) else {
        return false;
    };
    let fresh = Verifier::from_password(password, &v.salt, v.iterations);
    ct_eq(&fresh.stored_key, &v.stored_key) && ct_eq(&fresh.server_key, &v.server_key)
}

/// Every difference between `catalog` and `plan`. `passwords` holds the
/// configured password of each login that has one; they are compared only
/// when the catalog could read the stored ones (as a superuser).
pub fn compute(plan: &Plan, catalog: &Catalog, passwords: &BTreeMap<String, String>) -> Vec<Drift> {
    let mut out = Vec::new();
    for login in &plan.logins {
        login_drift(&mut out, login, catalog, passwords.get(&login.user));
    }
    for e in &catalog.acl {
        if e.grantee != Grantee::Public {
            continue;
        }
        let in_user_schema = e
            .object
            .schema()
            .is_some_and(|s| catalog.schemas.contains_key(s));
        // PUBLIC's CONNECT and TEMPORARY on the database, and USAGE on
        // schemas, are left as PostgreSQL makes them (docs/provision.md).
        let kept = matches!(e.object, Object::Database(_))
            || (matches!(e.object, Object::Schema(_)) && e.privilege == Privilege::Usage);
        if in_user_schema && !kept {
            out.push(Drift::Extra {
                grantee: Grantee::Public,
                object: e.object.clone(),
                privilege: e.privilege.clone(),
            });
        }
    }
    for owner in &plan.owners {
        if catalog.function_defaults.get(owner) != Some(&false) {
            out.push(Drift::FunctionDefaults {
                owner: owner.clone(),
            });
        }
    }
    out
}

fn login_drift(
    out: &mut Vec<Drift>,
    login: &LoginPlan,
    catalog: &Catalog,
    password: Option<&String>,
) {
    let me = &login.user;
    let Some(attrs) = catalog.roles.get(me) else {
        out.push(Drift::NoLogin { login: me.clone() });
        return;
    };
    for (attribute, actual, wanted) in [
        ("LOGIN", attrs.login, true),
        ("SUPERUSER", attrs.superuser, false),
        ("CREATEDB", attrs.create_db, false),
        ("CREATEROLE", attrs.create_role, false),
        ("REPLICATION", attrs.replication, false),
        ("BYPASSRLS", attrs.bypass_rls, false),
        ("INHERIT", attrs.inherit, false),
    ] {
        if actual != wanted {
            out.push(Drift::Attribute {
                login: me.clone(),
                attribute,
                wanted,
            });
        }
    }
    for (member, role) in &catalog.memberships {
        if member == me {
            out.push(Drift::Membership {
                login: me.clone(),
                role: role.clone(),
            });
        }
    }
    let held: BTreeSet<(Object, Privilege)> = catalog
        .acl
        .iter()
        .filter(|e| e.grantee == Grantee::Role(me.clone()))
        .map(|e| (e.object.clone(), e.privilege.clone()))
        .collect();
    for (object, privilege) in login.grants.difference(&held) {
        out.push(Drift::Missing {
            login: me.clone(),
            object: object.clone(),
            privilege: privilege.clone(),
        });
    }
    for (object, privilege) in held.difference(&login.grants) {
        out.push(Drift::Extra {
            grantee: Grantee::Role(me.clone()),
            object: object.clone(),
            privilege: privilege.clone(),
        });
    }
    let mut owned: Vec<Object> = Vec::new();
    owned.extend(
        catalog
            .schemas
            .iter()
            .filter(|(_, o)| *o == me)
            .map(|(s, _)| Object::Schema(s.clone())),
    );
    owned.extend(
        catalog
            .relations
            .iter()
            .filter(|(_, r)| r.owner == *me)
            .map(|((s, n), r)| Object::Relation {
                schema: s.clone(),
                name: n.clone(),
                kind: r.kind,
            }),
    );
    owned.extend(
        catalog
            .routines
            .iter()
            .filter(|r| r.owner == *me)
            .map(|r| r.object()),
    );
    for object in owned {
        if !login.may_own.contains(&object) {
            out.push(Drift::Owns {
                login: me.clone(),
                object: object.to_string(),
            });
        }
    }
    if catalog.database_owner == *me {
        out.push(Drift::Owns {
            login: me.clone(),
            object: format!("database {}", catalog.database),
        });
    }
    let actual = |name: &str| {
        catalog
            .settings
            .get(me)
            .and_then(|s| s.iter().find(|(n, _)| n == name))
            .map(|(_, v)| v.clone())
    };
    let read_only = actual("default_transaction_read_only");
    let wanted = login.read_only.then(|| "on".to_string());
    if read_only.as_deref().map(is_on) != wanted.as_deref().map(is_on) {
        out.push(Drift::Setting {
            login: me.clone(),
            name: "default_transaction_read_only".into(),
            actual: read_only,
            wanted,
        });
    }
    for name in crate::policy::limits::TIMEOUTS {
        let have = actual(name);
        let want = login
            .timeouts
            .iter()
            .find(|(t, _)| t == name)
            .map(|(_, ms)| *ms);
        if have.as_deref().and_then(parse_duration_ms) != want || (have.is_some() && want.is_none())
        {
            out.push(Drift::Setting {
                login: me.clone(),
                name: name.to_string(),
                actual: have,
                wanted: want.map(|ms| format!("{ms}ms")),
            });
        }
    }
    if let (Some(stored), Some(pw)) = (&catalog.passwords, password) {
        if !password_matches(stored.get(me).map(String::as_str), pw) {
            out.push(Drift::Password {
                login: me.clone(),
                source: login.source.clone(),
            });
        }
    }
}

/// PostgreSQL's spellings of a true boolean setting.
fn is_on(v: &str) -> bool {
    matches!(
        v.trim().trim_matches('"').to_ascii_lowercase().as_str(),
        "on" | "true" | "yes" | "1" | "t" | "y"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provision::catalog::{AclEntry, RoleAttributes};
    use crate::provision::plan::tests::shop;
    use crate::provision::plan::LoginSpec;
    use crate::provision::privilege::RelKind;

    fn reader_plan(c: &Catalog) -> Plan {
        let p = crate::policy::Policy::from_toml(
            r#"
[roles.reader]
operations = ["select"]
read = ["public.orders"]
statement_timeout = "30s"
"#,
        )
        .unwrap();
        Plan::new(
            c,
            &[LoginSpec {
                user: "r".into(),
                roles: vec![&p.roles["reader"]],
                password: None,
                source: "databases.shop.logins.reader".into(),
            }],
        )
    }

    /// The catalog after a faithful provisioning of `plan`.
    fn provisioned(mut c: Catalog, plan: &Plan) -> Catalog {
        for l in &plan.logins {
            c.roles.insert(
                l.user.clone(),
                RoleAttributes {
                    login: true,
                    ..Default::default()
                },
            );
            for (object, privilege) in &l.grants {
                c.acl.insert(AclEntry {
                    grantee: Grantee::Role(l.user.clone()),
                    object: object.clone(),
                    privilege: privilege.clone(),
                });
            }
            let mut s = vec![("default_transaction_read_only".into(), "on".into())];
            s.extend(
                l.timeouts
                    .iter()
                    .map(|(n, ms)| (n.to_string(), format!("{}s", ms / 1000))),
            );
            c.settings.insert(l.user.clone(), s);
        }
        for o in &plan.owners {
            c.function_defaults.insert(o.clone(), false);
        }
        c
    }

    fn lines(d: &[Drift]) -> Vec<String> {
        d.iter().map(|d| d.to_string()).collect()
    }

    #[test]
    fn a_faithful_database_has_no_drift() {
        let c = shop();
        let plan = reader_plan(&c);
        let c = provisioned(c, &plan);
        assert_eq!(
            lines(&compute(&plan, &c, &BTreeMap::new())),
            Vec::<String>::new()
        );
    }

    #[test]
    fn every_kind_of_difference_is_one_line() {
        let c = shop();
        let plan = reader_plan(&c);
        let mut c = provisioned(c, &plan);
        let orders = Object::Relation {
            schema: "public".into(),
            name: "orders".into(),
            kind: RelKind::Table,
        };
        let keys = Object::Relation {
            schema: "public".into(),
            name: "api_keys".into(),
            kind: RelKind::Table,
        };
        c.acl.retain(|e| e.object != orders);
        c.acl.insert(AclEntry {
            grantee: Grantee::Role("r".into()),
            object: keys.clone(),
            privilege: Privilege::Select,
        });
        c.acl.insert(AclEntry {
            grantee: Grantee::Public,
            object: Object::Schema("public".into()),
            privilege: Privilege::Create,
        });
        c.acl.insert(AclEntry {
            grantee: Grantee::Public,
            object: Object::Schema("public".into()),
            privilege: Privilege::Usage,
        });
        c.acl.insert(AclEntry {
            grantee: Grantee::Public,
            object: Object::Database("shop".into()),
            privilege: Privilege::Temporary,
        });
        c.roles.get_mut("r").unwrap().superuser = true;
        c.roles.get_mut("r").unwrap().inherit = true;
        c.memberships
            .insert(("r".into(), "pg_read_all_data".into()));
        c.relations
            .get_mut(&("public".to_string(), "employees".to_string()))
            .unwrap()
            .owner = "r".into();
        c.settings
            .insert("r".into(), vec![("statement_timeout".into(), "0".into())]);
        c.function_defaults.insert("svc".into(), true);
        c.passwords = Some(BTreeMap::new());
        let mut pw = BTreeMap::new();
        pw.insert("r".to_string(), "secret".to_string());
        let mut got = lines(&compute(&plan, &c, &pw));
        got.sort();
        assert_eq!(
            got,
            vec![
                "PUBLIC: extra CREATE on schema public",
                "PUBLIC: extra EXECUTE on functions svc creates later (ALTER DEFAULT PRIVILEGES)",
                "r: extra SELECT on table public.api_keys",
                "r: extra attribute INHERIT",
                "r: extra attribute SUPERUSER",
                "r: extra membership in role pg_read_all_data",
                "r: extra ownership of table public.employees",
                "r: its password is not the one in databases.shop.logins.reader",
                "r: missing SELECT on table public.orders",
                "r: setting default_transaction_read_only is unset in this database, the policy wants on",
                "r: setting statement_timeout is 0 in this database, the policy wants 30000ms",
            ]
        );
        c.roles.remove("r");
        assert!(lines(&compute(&plan, &c, &pw))
            .contains(&"r: missing login (the role does not exist)".to_string()));
    }

    #[test]
    fn passwords_are_checked_against_scram_verifiers() {
        let v = Verifier::generate("pw").to_string();
        assert!(password_matches(Some(&v), "pw"));
        assert!(!password_matches(Some(&v), "other"));
        assert!(!password_matches(Some("md5abc"), "pw"));
        assert!(!password_matches(None, "pw"));
    }
}
