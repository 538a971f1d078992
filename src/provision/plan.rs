//! The grants the policy implies for each login, from its roles and the
//! catalog: the login serves the union of the roles mapped to it, and the
//! union is read as the policy reads it (any role's grant counts, any role's
//! denied column is denied). Pure logic.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::catalog::{Catalog, Relation};
use super::privilege::{Grant, Object, Privilege, RelKind};
use crate::config::DatabaseConfig;
use crate::policy::builtins::{
    is_catalog_schema, is_dangerous, SENSITIVE_CATALOG, SENSITIVE_CATALOG_COLUMNS,
};
use crate::policy::glob::glob;
use crate::policy::limits::SessionLimits;
use crate::policy::role::{Policy, Role};
use crate::sql::Operation;

/// Views nested deeper than this are not granted (the policy refuses them too).
const MAX_VIEW_DEPTH: usize = 16;

/// One database login and the roles it serves.
#[derive(Debug, Clone)]
pub struct LoginSpec<'p> {
    /// The database user.
    pub user: String,
    /// The pgward roles mapped to it, by name.
    pub roles: Vec<&'p Role>,
    /// Its configured password.
    pub password: Option<String>,
    /// Where the password comes from, for messages (`databases.shop.logins.reader`).
    pub source: String,
}

/// The logins of `[databases.NAME.logins]`, one per database user, each
/// with every role that names it.
pub fn logins<'p>(
    name: &str,
    db: &DatabaseConfig,
    policy: &'p Policy,
) -> Result<Vec<LoginSpec<'p>>, String> {
    let mut by_user: BTreeMap<&str, LoginSpec<'p>> = BTreeMap::new();
    for (role, login) in &db.logins {
        let r = policy
            .roles
            .get(role)
            .ok_or_else(|| format!("databases.{name}.logins.{role}: no such role"))?;
        let source = format!("databases.{name}.logins.{role}");
        if login.user == db.user {
            // Provisioning would strip the service login of what the roles
            // without a login of their own use.
            return Err(format!(
                "{source}: names {:?}, the database's own user; give the role a login of its own",
                login.user
            ));
        }
        let spec = by_user
            .entry(login.user.as_str())
            .or_insert_with(|| LoginSpec {
                user: login.user.clone(),
                roles: Vec::new(),
                password: login.password.clone(),
                source: source.clone(),
            });
        if spec.password != login.password {
            return Err(format!(
                "{source}: login {:?} also serves {} with another password; give it one password",
                login.user, spec.source
            ));
        }
        spec.roles.push(r);
    }
    if by_user.is_empty() {
        return Err(format!(
            "databases.{name} has no [databases.{name}.logins]: nothing to provision (see docs/provision.md)"
        ));
    }
    Ok(by_user.into_values().collect())
}

/// What one login should hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginPlan {
    /// The database user.
    pub user: String,
    /// The roles it serves.
    pub roles: Vec<String>,
    /// Where its password comes from.
    pub source: String,
    /// No role writes: transactions are read-only by default.
    pub read_only: bool,
    /// Timeout ceilings in milliseconds, by setting.
    pub timeouts: Vec<(&'static str, u64)>,
    /// Every privilege it should hold, and nothing else.
    pub grants: BTreeSet<Grant>,
    /// Objects it owns that its roles may change by DDL (anything else it
    /// owns is drift).
    pub may_own: BTreeSet<Object>,
}

impl LoginPlan {
    /// Schemas it may create objects in.
    pub fn create_schemas(&self) -> impl Iterator<Item = &str> {
        self.grants.iter().filter_map(|(o, p)| match (o, p) {
            (Object::Schema(s), Privilege::Create) => Some(s.as_str()),
            _ => None,
        })
    }
}

/// The desired state of every login of one database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// One per login, ordered by user name.
    pub logins: Vec<LoginPlan>,
    /// Roles whose future functions PUBLIC must not execute: every owner of
    /// something in a user schema, and every login that may create.
    pub owners: BTreeSet<String>,
}

impl Plan {
    /// Computes the plan for `logins` over `catalog`.
    pub fn new(catalog: &Catalog, logins: &[LoginSpec]) -> Plan {
        let logins: Vec<LoginPlan> = logins.iter().map(|l| plan_login(catalog, l)).collect();
        let mut owners = catalog.owners();
        for l in &logins {
            if l.create_schemas().next().is_some() || !l.may_own.is_empty() {
                owners.insert(l.user.clone());
            }
        }
        Plan { logins, owners }
    }
}

/// A login's roles read as one, the way the policy reads a user's roles.
struct Union<'a> {
    roles: &'a [&'a Role],
    catalog: &'a Catalog,
}

impl Union<'_> {
    fn any(&self, f: impl Fn(&Role) -> bool) -> bool {
        self.roles.iter().any(|r| f(r))
    }

    fn has(&self, ops: &[Operation]) -> bool {
        self.any(|r| ops.iter().any(|o| r.operations.contains(o)))
    }

    /// The relation and everything it inherits from match `read`.
    fn reads(&self, schema: &str, name: &str) -> bool {
        let key = format!("{schema}.{name}");
        self.any(|r| r.read.matches(&key))
            && self
                .catalog
                .ancestors(schema, name)
                .iter()
                .all(|(s, n)| self.any(|r| r.read.matches(&format!("{s}.{n}"))))
    }

    /// The relation and everything it inherits from match `write`.
    fn writes(&self, schema: &str, name: &str) -> bool {
        let key = format!("{schema}.{name}");
        self.any(|r| r.write.matches(&key))
            && self
                .catalog
                .ancestors(schema, name)
                .iter()
                .all(|(s, n)| self.any(|r| r.write.matches(&format!("{s}.{n}"))))
    }

    /// Some role denies the column, on the relation or one it inherits from.
    /// The policy keeps `deny_columns` lower-cased, so names are compared
    /// without case: a denial meant for `"Staff"."Salary"` still denies.
    fn denies(&self, schema: &str, name: &str, column: &str) -> bool {
        let mut tables = vec![(schema.to_string(), name.to_string())];
        tables.extend(self.catalog.ancestors(schema, name));
        let column = column.to_lowercase();
        tables.iter().any(|(s, n)| {
            let key = format!("{s}.{n}").to_lowercase();
            self.any(|r| {
                r.deny_columns
                    .iter()
                    .any(|(t, c)| *t == key && *c == column)
            })
        })
    }

    /// A routine of a user schema named exactly or matched by a pattern.
    fn calls(&self, schema: &str, name: &str) -> bool {
        let key = format!("{schema}.{name}");
        self.any(|r| {
            r.functions
                .iter()
                .any(|f| *f == key || (f.contains('*') && glob(f, &key)))
        })
    }

    /// A system catalog relation (and column) the policy lets the roles read.
    fn reads_system(&self, schema: &str, name: &str, column: Option<&str>) -> bool {
        let key = format!("{schema}.{name}");
        if self.any(|r| r.read.names_exactly(&key)) {
            return true;
        }
        let sensitive_column =
            column.is_some_and(|c| SENSITIVE_CATALOG_COLUMNS.contains(&(name, c)));
        !SENSITIVE_CATALOG.contains(&name) && !sensitive_column && self.any(|r| r.catalog)
    }

    /// Whether the relation may be read: its name is granted, and a view's
    /// definition reads only what may be read, denied columns excepted, and
    /// calls only routines that may be called.
    fn readable(
        &self,
        memo: &mut HashMap<(String, String), bool>,
        schema: &str,
        name: &str,
        depth: usize,
    ) -> bool {
        let key = (schema.to_string(), name.to_string());
        if let Some(&known) = memo.get(&key) {
            return known;
        }
        let verdict = match self.catalog.relation(schema, name) {
            None => false,
            Some(rel) => {
                self.reads(schema, name)
                    && (!rel.kind.is_view() || self.view_reads_allowed(memo, rel, depth))
            }
        };
        memo.insert(key, verdict);
        verdict
    }

    fn view_reads_allowed(
        &self,
        memo: &mut HashMap<(String, String), bool>,
        view: &Relation,
        depth: usize,
    ) -> bool {
        if depth >= MAX_VIEW_DEPTH {
            return false;
        }
        let calls = view.calls.iter().all(|(s, n)| {
            if is_catalog_schema(s) {
                // A built-in that reaches beyond the session's data must be
                // named; the others are the policy's to judge.
                !is_dangerous(n)
                    || self.any(|r| {
                        r.functions.contains(n.as_str())
                            || r.functions.contains(&format!("{s}.{n}"))
                    })
            } else {
                self.calls(s, n)
            }
        });
        calls
            && view.reads.iter().all(|(s, n, column)| {
                if is_catalog_schema(s) {
                    return self.reads_system(s, n, column.as_deref());
                }
                self.readable(memo, s, n, depth + 1)
                    && column.as_deref().is_none_or(|c| !self.denies(s, n, c))
            })
    }
}

const INSERTS: &[Operation] = &[Operation::Insert, Operation::CopyIn, Operation::Merge];
const UPDATES: &[Operation] = &[Operation::Update, Operation::Merge];
const DELETES: &[Operation] = &[Operation::Delete, Operation::Merge];
const CREATES: &[Operation] = &[Operation::Ddl, Operation::Code];

fn plan_login(catalog: &Catalog, spec: &LoginSpec) -> LoginPlan {
    let u = Union {
        roles: &spec.roles,
        catalog,
    };
    let me = spec.user.as_str();
    let mut grants: BTreeSet<Grant> = BTreeSet::new();
    let mut may_own: BTreeSet<Object> = BTreeSet::new();
    let mut memo = HashMap::new();

    // Schemas it may create objects in: DDL (or code) and a write pattern
    // covering every name in the schema.
    let creates: BTreeSet<&str> = catalog
        .schemas
        .keys()
        .filter(|s| u.has(CREATES) && u.any(|r| r.write.matches(&format!("{s}.*"))))
        .map(String::as_str)
        .collect();

    for ((schema, name), rel) in &catalog.relations {
        let object = Object::Relation {
            schema: schema.clone(),
            name: name.clone(),
            kind: rel.kind,
        };
        if rel.owner == me {
            // An owner holds every privilege; DDL needs ownership in
            // PostgreSQL, so a DDL role may own what it may write.
            if u.has(&[Operation::Ddl]) && u.writes(schema, name) {
                may_own.insert(object);
            }
            continue;
        }
        if u.readable(&mut memo, schema, name, 0) {
            let denied: Vec<&(i16, String)> = rel
                .columns
                .iter()
                .filter(|(_, c)| u.denies(schema, name, c))
                .collect();
            if denied.is_empty() {
                grants.insert((object.clone(), Privilege::Select));
            } else {
                for (attnum, column) in rel.columns.iter().filter(|c| !denied.contains(c)) {
                    grants.insert((
                        Object::Column {
                            schema: schema.clone(),
                            table: name.clone(),
                            attnum: *attnum,
                            column: column.clone(),
                        },
                        Privilege::Select,
                    ));
                }
            }
        }
        if rel.kind.is_writable() && u.writes(schema, name) {
            for (ops, privilege, tables_only) in [
                (INSERTS, Privilege::Insert, false),
                (UPDATES, Privilege::Update, false),
                (DELETES, Privilege::Delete, false),
                (&[Operation::Truncate][..], Privilege::Truncate, true),
                // New tables' foreign keys need REFERENCES on existing ones.
                (&[Operation::Ddl][..], Privilege::References, true),
            ] {
                if u.has(ops) && (!tables_only || rel.kind.is_table()) {
                    grants.insert((object.clone(), privilege));
                }
            }
        }
    }
    // nextval() on the serial sequences of tables it inserts into.
    for ((schema, name), rel) in &catalog.relations {
        let Some((ts, tn)) = &rel.owned_by else {
            continue;
        };
        let Some(table) = catalog.relation(ts, tn) else {
            continue;
        };
        let table = Object::Relation {
            schema: ts.clone(),
            name: tn.clone(),
            kind: table.kind,
        };
        if rel.owner != me && grants.contains(&(table, Privilege::Insert)) {
            let seq = Object::Relation {
                schema: schema.clone(),
                name: name.clone(),
                kind: RelKind::Sequence,
            };
            grants.insert((seq.clone(), Privilege::Usage));
            grants.insert((seq, Privilege::Select));
        }
    }
    for r in &catalog.routines {
        if r.owner == me {
            if creates.contains(r.schema.as_str()) {
                may_own.insert(r.object());
            }
            continue;
        }
        if u.calls(&r.schema, &r.name) {
            grants.insert((r.object(), Privilege::Execute));
        }
    }
    let mut usage: BTreeSet<String> = grants
        .iter()
        .filter_map(|(o, _)| o.schema().map(str::to_string))
        .collect();
    usage.extend(creates.iter().map(|s| s.to_string()));
    for schema in usage {
        if catalog.schemas.get(&schema).is_some_and(|o| o == me) {
            if creates.contains(schema.as_str()) {
                may_own.insert(Object::Schema(schema));
            }
            continue;
        }
        if creates.contains(schema.as_str()) {
            grants.insert((Object::Schema(schema.clone()), Privilege::Create));
        }
        grants.insert((Object::Schema(schema), Privilege::Usage));
    }
    grants.insert((
        Object::Database(catalog.database.clone()),
        Privilege::Connect,
    ));

    let limits = SessionLimits::of(&spec.roles);
    let mut roles: Vec<String> = spec.roles.iter().map(|r| r.name.clone()).collect();
    roles.sort();
    LoginPlan {
        user: spec.user.clone(),
        roles,
        source: spec.source.clone(),
        read_only: limits.read_only,
        timeouts: limits.timeouts,
        grants,
        may_own,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::provision::catalog::tests::rows;
    use crate::provision::catalog::Part;

    /// A small catalog shaped like examples/shop.sql.
    pub fn shop() -> Catalog {
        let s = Some;
        let mut c = Catalog::default();
        let add = |c: &mut Catalog, part, r: &[&[Option<&str>]]| c.add(part, &rows(r)).unwrap();
        add(
            &mut c,
            Part::Database,
            &[&[s("shop"), s("svc"), s("svc"), s("t")]],
        );
        add(
            &mut c,
            Part::Schemas,
            &[
                &[s("public"), s("pg_database_owner")],
                &[s("internal"), s("svc")],
            ],
        );
        add(
            &mut c,
            Part::Relations,
            &[
                &[s("public"), s("orders"), s("r"), s("svc")],
                &[s("public"), s("orders_id_seq"), s("S"), s("svc")],
                &[s("public"), s("api_keys"), s("r"), s("svc")],
                &[s("public"), s("employees"), s("r"), s("svc")],
                &[s("public"), s("key_inventory"), s("v"), s("svc")],
                &[s("public"), s("staff"), s("v"), s("svc")],
                &[s("public"), s("pay"), s("v"), s("svc")],
                &[s("public"), s("summary"), s("v"), s("svc")],
                &[s("public"), s("leak"), s("v"), s("svc")],
                &[s("public"), s("counts"), s("v"), s("svc")],
                &[s("internal"), s("customers"), s("r"), s("svc")],
            ],
        );
        add(
            &mut c,
            Part::Columns,
            &[
                &[s("public"), s("orders"), s("1"), s("id")],
                &[s("public"), s("orders"), s("2"), s("total")],
                &[s("public"), s("employees"), s("1"), s("id")],
                &[s("public"), s("employees"), s("2"), s("name")],
                &[s("public"), s("employees"), s("3"), s("salary")],
                &[s("public"), s("api_keys"), s("1"), s("key_value")],
            ],
        );
        add(
            &mut c,
            Part::SequenceOwners,
            &[&[s("public"), s("orders_id_seq"), s("public"), s("orders")]],
        );
        add(
            &mut c,
            Part::ViewReads,
            &[
                &[
                    s("public"),
                    s("key_inventory"),
                    s("public"),
                    s("api_keys"),
                    None,
                ],
                &[
                    s("public"),
                    s("staff"),
                    s("public"),
                    s("employees"),
                    s("name"),
                ],
                &[
                    s("public"),
                    s("pay"),
                    s("public"),
                    s("employees"),
                    s("salary"),
                ],
                &[
                    s("public"),
                    s("summary"),
                    s("public"),
                    s("orders"),
                    s("total"),
                ],
                &[
                    s("public"),
                    s("summary"),
                    s("pg_catalog"),
                    s("pg_authid"),
                    None,
                ],
            ],
        );
        add(
            &mut c,
            Part::ViewCalls,
            &[
                &[s("public"), s("leak"), s("public"), s("get_api_key")],
                &[s("public"), s("counts"), s("public"), s("count_orders")],
                &[s("public"), s("counts"), s("pg_catalog"), s("count")],
            ],
        );
        add(
            &mut c,
            Part::Routines,
            &[
                &[
                    s("public"),
                    s("count_orders"),
                    s("p_id integer"),
                    s("f"),
                    s("svc"),
                ],
                &[s("public"), s("count_orders"), s(""), s("f"), s("svc")],
                &[s("public"), s("get_api_key"), s("p text"), s("f"), s("svc")],
                &[s("internal"), s("purge"), s(""), s("p"), s("svc")],
            ],
        );
        c
    }

    fn policy() -> Policy {
        Policy::from_toml(
            r#"
[roles.reader]
operations = ["select"]
read = ["public.*", "!public.api_keys"]
functions = ["public.count_orders"]
deny_columns = ["public.employees.salary"]
statement_timeout = "30s"

[roles.writer]
operations = ["select", "insert", "update"]
read = ["public.*"]
write = ["public.orders"]

[roles.migrator]
operations = ["select", "ddl"]
read = ["public.*"]
write = ["public.*"]
"#,
        )
        .unwrap()
    }

    fn spec<'p>(p: &'p Policy, user: &str, roles: &[&str]) -> LoginSpec<'p> {
        LoginSpec {
            user: user.into(),
            roles: roles.iter().map(|r| &p.roles[*r]).collect(),
            password: None,
            source: format!("databases.shop.logins.{}", roles[0]),
        }
    }

    fn names(plan: &LoginPlan) -> Vec<String> {
        plan.grants
            .iter()
            .map(|(o, p)| format!("{p} {o}"))
            .collect()
    }

    #[test]
    fn a_reader_reads_what_its_patterns_and_views_allow() {
        let p = policy();
        let plan = plan_login(&shop(), &spec(&p, "r", &["reader"]));
        assert_eq!(
            names(&plan),
            vec![
                "CONNECT database shop",
                "USAGE schema public",
                "SELECT view public.counts",
                "SELECT table public.orders",
                "SELECT sequence public.orders_id_seq",
                "SELECT view public.staff",
                "SELECT column public.employees.id",
                "SELECT column public.employees.name",
                "EXECUTE function public.count_orders()",
                "EXECUTE function public.count_orders(p_id integer)",
            ]
        );
        // key_inventory reads api_keys, pay reads a denied column, summary
        // reads pg_authid, leak calls get_api_key: none of them is granted.
        assert!(plan.read_only);
        assert_eq!(plan.timeouts, vec![("statement_timeout", 30_000)]);
    }

    #[test]
    fn a_writer_gets_writes_and_its_sequences() {
        let p = policy();
        let plan = plan_login(&shop(), &spec(&p, "w", &["writer"]));
        let n = names(&plan);
        for want in [
            "INSERT table public.orders",
            "UPDATE table public.orders",
            "USAGE sequence public.orders_id_seq",
            "SELECT sequence public.orders_id_seq",
            "SELECT table public.api_keys",
            "SELECT view public.pay",
        ] {
            assert!(n.contains(&want.to_string()), "{want}: {n:?}");
        }
        assert!(!n
            .iter()
            .any(|g| g.starts_with("DELETE") || g.starts_with("EXECUTE")));
        assert!(!n.iter().any(|g| g.contains("internal")));
        assert!(!plan.read_only);
    }

    #[test]
    fn a_migrator_creates_and_may_own_what_it_writes() {
        let p = policy();
        let mut c = shop();
        c.relations
            .get_mut(&("public".to_string(), "orders".to_string()))
            .unwrap()
            .owner = "m".into();
        c.relations
            .get_mut(&("internal".to_string(), "customers".to_string()))
            .unwrap()
            .owner = "m".into();
        let plan = plan_login(&c, &spec(&p, "m", &["migrator"]));
        let n = names(&plan);
        assert!(n.contains(&"CREATE schema public".to_string()), "{n:?}");
        assert!(n.contains(&"REFERENCES table public.api_keys".to_string()));
        assert!(!n
            .iter()
            .any(|g| g.contains("public.orders ") || g.ends_with("public.orders")));
        assert_eq!(
            plan.may_own
                .iter()
                .map(|o| o.to_string())
                .collect::<Vec<_>>(),
            vec!["table public.orders"],
            "internal.customers is outside its writes"
        );
        assert_eq!(plan.create_schemas().collect::<Vec<_>>(), vec!["public"]);
    }

    #[test]
    fn denied_columns_of_quoted_names_stay_denied() {
        let p = Policy::from_toml(
            "[roles.r]\noperations = [\"select\"]\nread = [\"Odd.*\"]\ndeny_columns = [\"Odd.Staff.Salary\"]\n",
        )
        .unwrap();
        let mut c = Catalog::default();
        let s = Some;
        c.add(Part::Schemas, &rows(&[&[s("Odd"), s("svc")]]))
            .unwrap();
        c.add(
            Part::Relations,
            &rows(&[&[s("Odd"), s("Staff"), s("r"), s("svc")]]),
        )
        .unwrap();
        c.add(
            Part::Columns,
            &rows(&[
                &[s("Odd"), s("Staff"), s("1"), s("Name")],
                &[s("Odd"), s("Staff"), s("2"), s("Salary")],
            ]),
        )
        .unwrap();
        let plan = plan_login(&c, &spec(&p, "r", &["r"]));
        assert_eq!(
            names(&plan)
                .into_iter()
                .filter(|g| g.starts_with("SELECT"))
                .collect::<Vec<_>>(),
            vec!["SELECT column Odd.Staff.Name"]
        );
    }

    #[test]
    fn a_login_serves_the_union_of_its_roles() {
        let p = policy();
        let plan = plan_login(&shop(), &spec(&p, "rw", &["reader", "writer"]));
        let n = names(&plan);
        // The reader's denied column stays denied; the writer's reads and
        // writes are added.
        assert!(n.contains(&"SELECT column public.employees.id".to_string()));
        assert!(!n.contains(&"SELECT table public.employees".to_string()));
        assert!(n.contains(&"SELECT table public.api_keys".to_string()));
        assert!(n.contains(&"INSERT table public.orders".to_string()));
        assert!(!plan.read_only);
    }

    #[test]
    fn logins_group_roles_by_user() {
        let p = policy();
        let text = r#"
[server]
listen = ["127.0.0.1:6432"]
[databases.shop]
host = "h"
user = "svc"
[databases.shop.logins]
reader = { user = "shop_rw", password = "x" }
writer = { user = "shop_rw", password = "x" }
migrator = { user = "shop_m" }
"#;
        let config = crate::config::Config::from_toml(
            &format!("{text}\n{}", POLICY_TEXT),
            "t.toml",
            std::path::Path::new("."),
        )
        .unwrap();
        let specs = logins("shop", &config.databases["shop"], &p).unwrap();
        let got: Vec<(String, Vec<String>)> = specs
            .iter()
            .map(|s| {
                (
                    s.user.clone(),
                    s.roles.iter().map(|r| r.name.clone()).collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("shop_m".to_string(), vec!["migrator".to_string()]),
                (
                    "shop_rw".to_string(),
                    vec!["reader".to_string(), "writer".to_string()]
                ),
            ]
        );
        let mut db = config.databases["shop"].clone();
        db.logins.get_mut("writer").unwrap().password = Some("y".into());
        assert!(logins("shop", &db, &p)
            .unwrap_err()
            .contains("another password"));
        db.logins.get_mut("writer").unwrap().user = "svc".into();
        assert!(logins("shop", &db, &p)
            .unwrap_err()
            .contains("the database's own user"));
        db.logins.clear();
        assert!(logins("shop", &db, &p)
            .unwrap_err()
            .contains("nothing to provision"));
    }

    const POLICY_TEXT: &str = r#"
[roles.reader]
[roles.writer]
[roles.migrator]
"#;
}
