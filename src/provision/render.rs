//! The provisioning script: SQL that gives every login exactly its plan,
//! in one transaction, with a comment before each block saying why. The
//! order is fixed and every list is sorted, so the same catalog and roles
//! print the same script. Pure logic.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use super::catalog::{Catalog, Grantee};
use super::ident::{dollar_tag, literal, Quoter};
use super::plan::{LoginPlan, Plan};
use super::privilege::{Object, Privilege, RelKind};
use crate::policy::limits::TIMEOUTS;

/// A rendered script.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Script {
    /// The SQL text, comments included.
    pub text: String,
    /// How many statements it holds.
    pub statements: usize,
}

impl Script {
    fn comment(&mut self, text: &str) {
        for line in text.lines() {
            let _ = writeln!(self.text, "-- {line}");
        }
    }

    fn stmt(&mut self, sql: String) {
        self.text.push_str(&sql);
        self.text.push_str(";\n");
        self.statements += 1;
    }

    fn blank(&mut self) {
        self.text.push('\n');
    }
}

/// Renders the script for `plan`. `passwords` holds, by login, the SCRAM
/// verifier to set (only `--apply` passes any: the printed script never
/// carries a password).
pub fn script(
    name: &str,
    plan: &Plan,
    catalog: &Catalog,
    passwords: &BTreeMap<String, String>,
) -> Script {
    let q = &catalog.quoter;
    let mut s = Script::default();
    s.comment(&format!(
        "pgward provision: the logins of databases.{name} (database {}), from its catalog as it is now.\n\
         Run it again after the schema or the roles change. What it grants and why: docs/provision.md.",
        catalog.database
    ));
    s.stmt("BEGIN".into());
    for login in &plan.logins {
        s.blank();
        login_section(&mut s, login, catalog, q, passwords.get(&login.user));
    }
    s.blank();
    public_section(&mut s, plan, catalog, q);
    s.blank();
    s.stmt("COMMIT".into());
    s
}

/// Which block of grants an object belongs to.
type Belongs = fn(&Object) -> bool;

fn login_section(
    s: &mut Script,
    login: &LoginPlan,
    catalog: &Catalog,
    q: &Quoter,
    password: Option<&String>,
) {
    let me = q.ident(&login.user);
    s.comment(&format!(
        "==== login {} for role(s) {} ====",
        login.user,
        login.roles.join(", ")
    ));
    s.comment(
        "The login, created if missing: never a superuser, never creating roles or databases,\n\
         replicating or bypassing row security, and inheriting no other role's privileges.",
    );
    let check = format!(
        "IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = {}) THEN CREATE ROLE {me}; END IF;",
        literal(&login.user)
    );
    let tag = dollar_tag(&check);
    s.stmt(format!("DO {tag} BEGIN {check} END {tag}"));
    s.stmt(format!(
        "ALTER ROLE {me} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT"
    ));
    match password {
        Some(verifier) => {
            s.comment(&format!(
                "Its password, from {}, as a SCRAM-SHA-256 verifier.",
                login.source
            ));
            s.stmt(format!("ALTER ROLE {me} PASSWORD {}", literal(verifier)));
        }
        None => s.comment(&format!(
            "Its password comes from {}; --apply sets it, and it is never printed.",
            login.source
        )),
    }
    let memberships: Vec<&String> = catalog
        .memberships
        .iter()
        .filter(|(m, _)| *m == login.user)
        .map(|(_, r)| r)
        .collect();
    if !memberships.is_empty() {
        s.comment("Memberships in other roles: SET ROLE would reach their privileges.");
        for r in memberships {
            s.stmt(format!("REVOKE {} FROM {me}", q.ident(r)));
        }
    }

    s.comment(
        "Everything it holds now is revoked first, so that the grants below are all it holds\n\
         and running this again changes nothing. What it owns keeps its owner's rights.",
    );
    s.stmt(format!(
        "REVOKE ALL ON DATABASE {} FROM {me}",
        q.ident(&catalog.database)
    ));
    for (schema, owner) in &catalog.schemas {
        if *owner != login.user {
            s.stmt(format!(
                "REVOKE ALL ON SCHEMA {} FROM {me}",
                q.ident(schema)
            ));
        }
        let relations: Vec<_> = catalog
            .relations
            .iter()
            .filter(|((sc, _), _)| sc == schema)
            .collect();
        let routines: Vec<_> = catalog
            .routines
            .iter()
            .filter(|r| r.schema == *schema)
            .collect();
        let owns_here = relations.iter().any(|(_, r)| r.owner == login.user)
            || routines.iter().any(|r| r.owner == login.user);
        if !owns_here {
            for what in ["TABLES", "SEQUENCES", "ROUTINES"] {
                s.stmt(format!(
                    "REVOKE ALL ON ALL {what} IN SCHEMA {} FROM {me}",
                    q.ident(schema)
                ));
            }
            continue;
        }
        // A blanket revoke would strip the owner's own privileges too.
        for ((sc, name), rel) in relations {
            if rel.owner != login.user {
                let object = Object::Relation {
                    schema: sc.clone(),
                    name: name.clone(),
                    kind: rel.kind,
                };
                s.stmt(format!("REVOKE ALL ON {} FROM {me}", object.sql(q)));
            }
        }
        for r in routines {
            if r.owner != login.user {
                s.stmt(format!("REVOKE ALL ON {} FROM {me}", r.object().sql(q)));
            }
        }
    }
    // Grants on objects outside the user schemas (system catalogs, say):
    // nothing a role implies lives there.
    let elsewhere: Vec<(Object, Privilege)> = catalog
        .acl
        .iter()
        .filter(|e| e.grantee == Grantee::Role(login.user.clone()))
        .filter(|e| {
            e.object
                .schema()
                .is_some_and(|sc| !catalog.schemas.contains_key(sc))
        })
        .map(|e| (e.object.clone(), e.privilege.clone()))
        .collect();
    for (object, privileges) in group(&elsewhere, q) {
        s.stmt(format!(
            "REVOKE {privileges} ON {} FROM {me}",
            object.sql(q)
        ));
    }

    let grants: Vec<(Object, Privilege)> = login.grants.iter().cloned().collect();
    let blocks: [(&str, Belongs); 5] = [
        (
            "What its roles imply. The database, and the schemas holding what it reads, writes or\n\
             calls (CREATE where its DDL may create: it then owns what it creates).",
            |o| matches!(o, Object::Database(_) | Object::Schema(_)),
        ),
        (
            "Relations it reads and writes. A view needs only its own grant (it reads its tables\n\
             with its owner's rights), so one is granted only when all it reads may be read.",
            |o| matches!(o, Object::Relation { kind, .. } if *kind != RelKind::Sequence),
        ),
        (
            "Tables with denied columns: SELECT on every other column only.",
            |o| matches!(o, Object::Column { .. }),
        ),
        (
            "Sequences it reads, and nextval() on those of tables it inserts into.",
            |o| matches!(o, Object::Relation { kind: RelKind::Sequence, .. }),
        ),
        (
            "Routines its roles name, every overload.",
            |o| matches!(o, Object::Routine { .. }),
        ),
    ];
    for (why, belongs) in blocks {
        let block: Vec<(Object, Privilege)> =
            grants.iter().filter(|(o, _)| belongs(o)).cloned().collect();
        if block.is_empty() {
            continue;
        }
        s.comment(why);
        for (object, privileges) in group(&block, q) {
            s.stmt(format!("GRANT {privileges} ON {} TO {me}", object.sql(q)));
        }
    }

    s.comment(
        "Session settings in this database: read-only transactions for roles that write nothing,\n\
         and the roles' timeouts (pgward also sets them at session start).",
    );
    let db = q.ident(&catalog.database);
    if login.read_only {
        s.stmt(format!(
            "ALTER ROLE {me} IN DATABASE {db} SET default_transaction_read_only = on"
        ));
    } else {
        s.stmt(format!(
            "ALTER ROLE {me} IN DATABASE {db} RESET default_transaction_read_only"
        ));
    }
    for name in TIMEOUTS {
        match login.timeouts.iter().find(|(t, _)| t == name) {
            Some((_, ms)) => s.stmt(format!(
                "ALTER ROLE {me} IN DATABASE {db} SET {name} = '{ms}ms'"
            )),
            None => s.stmt(format!("ALTER ROLE {me} IN DATABASE {db} RESET {name}")),
        }
    }
}

fn public_section(s: &mut Script, plan: &Plan, catalog: &Catalog, q: &Quoter) {
    s.comment(
        "==== PUBLIC ====\n\
         Whatever PUBLIC holds, every login holds. In the user schemas PUBLIC may create nothing and\n\
         holds nothing on tables, sequences and routines (PostgreSQL lets it execute every new\n\
         function); the logins above get what they need by name. Other roles of this database\n\
         lose these PUBLIC grants too: grant them what they use (docs/provision.md).",
    );
    for schema in catalog.schemas.keys() {
        let sc = q.ident(schema);
        s.stmt(format!("REVOKE CREATE ON SCHEMA {sc} FROM PUBLIC"));
        s.stmt(format!(
            "REVOKE ALL ON ALL TABLES IN SCHEMA {sc} FROM PUBLIC"
        ));
        s.stmt(format!(
            "REVOKE ALL ON ALL SEQUENCES IN SCHEMA {sc} FROM PUBLIC"
        ));
        s.stmt(format!(
            "REVOKE EXECUTE ON ALL ROUTINES IN SCHEMA {sc} FROM PUBLIC"
        ));
    }
    if !plan.owners.is_empty() {
        s.comment("Functions these roles create later are not executable by PUBLIC either.");
        for owner in &plan.owners {
            s.stmt(format!(
                "ALTER DEFAULT PRIVILEGES FOR ROLE {} REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC",
                q.ident(owner)
            ));
        }
    }
}

/// Grants grouped per object, in order: `(TABLE t, "SELECT, INSERT")`, and
/// column grants as one `SELECT (a, b)` per table and privilege.
fn group(grants: &[(Object, Privilege)], q: &Quoter) -> Vec<(Object, String)> {
    let mut per_object: BTreeMap<Object, BTreeSet<Privilege>> = BTreeMap::new();
    let mut per_table: BTreeMap<(Object, Privilege), Vec<(i16, String)>> = BTreeMap::new();
    for (object, privilege) in grants {
        match object {
            Object::Column {
                schema,
                table,
                attnum,
                column,
            } => {
                // Keyed by a column-less stand-in, so one table's columns group.
                let key = Object::Column {
                    schema: schema.clone(),
                    table: table.clone(),
                    attnum: 0,
                    column: String::new(),
                };
                per_table
                    .entry((key, privilege.clone()))
                    .or_default()
                    .push((*attnum, column.clone()));
            }
            _ => {
                per_object
                    .entry(object.clone())
                    .or_default()
                    .insert(privilege.clone());
            }
        }
    }
    let mut out: Vec<(Object, String)> = per_object
        .into_iter()
        .map(|(o, ps)| {
            let list: Vec<&str> = ps.iter().map(Privilege::keyword).collect();
            (o, list.join(", "))
        })
        .collect();
    for ((table, privilege), mut columns) in per_table {
        columns.sort();
        let list: Vec<String> = columns.iter().map(|(_, c)| q.ident(c)).collect();
        out.push((table, format!("{privilege} ({})", list.join(", "))));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provision::plan::tests::shop;
    use crate::provision::plan::LoginSpec;

    fn plan(c: &Catalog) -> Plan {
        let p = crate::policy::Policy::from_toml(
            r#"
[roles.reader]
operations = ["select"]
read = ["public.*", "!public.api_keys"]
functions = ["public.count_orders"]
deny_columns = ["public.employees.salary"]
"#,
        )
        .unwrap();
        let spec = LoginSpec {
            user: "shop_reader".into(),
            roles: vec![&p.roles["reader"]],
            password: Some("secret".into()),
            source: "databases.shop.logins.reader".into(),
        };
        Plan::new(c, &[spec])
    }

    #[test]
    fn the_script_is_complete_commented_and_stable() {
        let c = shop();
        let text = script("shop", &plan(&c), &c, &BTreeMap::new()).text;
        for want in [
            "BEGIN;\n",
            "DO $pgward$ BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'shop_reader') THEN CREATE ROLE shop_reader; END IF; END $pgward$;",
            "ALTER ROLE shop_reader LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT;",
            "REVOKE ALL ON ALL TABLES IN SCHEMA public FROM shop_reader;",
            "REVOKE ALL ON ALL ROUTINES IN SCHEMA internal FROM shop_reader;",
            "GRANT CONNECT ON DATABASE shop TO shop_reader;",
            "GRANT USAGE ON SCHEMA public TO shop_reader;",
            "GRANT SELECT ON TABLE public.orders TO shop_reader;",
            "GRANT SELECT (id, name) ON TABLE public.employees TO shop_reader;",
            "GRANT SELECT ON SEQUENCE public.orders_id_seq TO shop_reader;",
            "GRANT EXECUTE ON FUNCTION public.count_orders(p_id integer) TO shop_reader;",
            "ALTER ROLE shop_reader IN DATABASE shop SET default_transaction_read_only = on;",
            "ALTER ROLE shop_reader IN DATABASE shop RESET statement_timeout;",
            "REVOKE CREATE ON SCHEMA public FROM PUBLIC;",
            "REVOKE EXECUTE ON ALL ROUTINES IN SCHEMA public FROM PUBLIC;",
            "ALTER DEFAULT PRIVILEGES FOR ROLE svc REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;",
            "COMMIT;\n",
        ] {
            assert!(text.contains(want), "missing {want}\n{text}");
        }
        assert!(!text.contains("api_keys"), "{text}");
        assert!(!text.contains("secret"), "the password is never printed");
        assert!(text.contains("-- Its password comes from databases.shop.logins.reader"));
        assert_eq!(text, script("shop", &plan(&c), &c, &BTreeMap::new()).text);
        // Every statement but the comments ends in a semicolon.
        for line in text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with("--"))
        {
            assert!(line.ends_with(';'), "{line}");
        }
    }

    #[test]
    fn owned_objects_keep_their_rights_and_held_grants_elsewhere_go() {
        let mut c = shop();
        c.relations
            .get_mut(&("public".to_string(), "orders".to_string()))
            .unwrap()
            .owner = "shop_reader".into();
        c.memberships
            .insert(("shop_reader".into(), "pg_read_all_data".into()));
        c.acl.insert(crate::provision::catalog::AclEntry {
            grantee: Grantee::Role("shop_reader".into()),
            object: Object::Relation {
                schema: "pg_catalog".into(),
                name: "pg_authid".into(),
                kind: RelKind::Table,
            },
            privilege: Privilege::Select,
        });
        let mut pw = BTreeMap::new();
        pw.insert(
            "shop_reader".to_string(),
            "SCRAM-SHA-256$4096:abc".to_string(),
        );
        let text = script("shop", &plan(&c), &c, &pw).text;
        assert!(!text.contains("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM shop_reader"));
        assert!(text.contains("REVOKE ALL ON TABLE public.api_keys FROM shop_reader;"));
        assert!(!text.contains("ON TABLE public.orders FROM shop_reader"));
        assert!(text.contains("REVOKE ALL ON ALL TABLES IN SCHEMA internal FROM shop_reader;"));
        assert!(text.contains("REVOKE pg_read_all_data FROM shop_reader;"));
        assert!(text.contains("REVOKE SELECT ON TABLE pg_catalog.pg_authid FROM shop_reader;"));
        assert!(text.contains("ALTER ROLE shop_reader PASSWORD 'SCRAM-SHA-256$4096:abc';"));
    }
}
