//! What provisioning reads from the database: its schemas, relations,
//! columns, routines, what each view reads, which sequences belong to which
//! table, the roles and their memberships and settings, and every privilege
//! granted now (`aclexplode`). The queries live here beside the code that
//! reads their rows, so a row's shape is stated once; no I/O.

use std::collections::{BTreeMap, BTreeSet};

use thiserror::Error;

use super::ident::{literal, Quoter};
use super::privilege::{Object, Privilege, RelKind, RoutineKind};

/// A result row: each column as text, `None` for NULL.
pub type Row = Vec<Option<String>>;

/// A row that does not have the shape its query promises.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("unexpected row from the {part} query: {detail}")]
pub struct CatalogError {
    /// Which query.
    pub part: &'static str,
    /// What was wrong.
    pub detail: String,
}

/// Schemas that are the server's, or pgward's own (its refusal procedure,
/// examples/refusal-function.sql), not the database's.
const USER_SCHEMA: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgward') \
     AND n.nspname !~ '^pg_(toast|temp_)'";

/// One catalog query and what its rows become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Keywords,
    Database,
    Schemas,
    Relations,
    Columns,
    SequenceOwners,
    ViewReads,
    ViewCalls,
    Inherits,
    Routines,
    Roles,
    Memberships,
    Settings,
    DatabaseAcl,
    SchemaAcl,
    RelationAcl,
    ColumnAcl,
    RoutineAcl,
    DefaultAcl,
}

impl Part {
    /// Every query, in the order they are run.
    pub const ALL: [Part; 19] = [
        Part::Keywords,
        Part::Database,
        Part::Schemas,
        Part::Relations,
        Part::Columns,
        Part::SequenceOwners,
        Part::ViewReads,
        Part::ViewCalls,
        Part::Inherits,
        Part::Routines,
        Part::Roles,
        Part::Memberships,
        Part::Settings,
        Part::DatabaseAcl,
        Part::SchemaAcl,
        Part::RelationAcl,
        Part::ColumnAcl,
        Part::RoutineAcl,
        Part::DefaultAcl,
    ];

    /// The query's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Part::Keywords => "keywords",
            Part::Database => "database",
            Part::Schemas => "schemas",
            Part::Relations => "relations",
            Part::Columns => "columns",
            Part::SequenceOwners => "sequence owners",
            Part::ViewReads => "view dependencies",
            Part::ViewCalls => "view routines",
            Part::Inherits => "inheritance",
            Part::Routines => "routines",
            Part::Roles => "roles",
            Part::Memberships => "memberships",
            Part::Settings => "role settings",
            Part::DatabaseAcl => "database privileges",
            Part::SchemaAcl => "schema privileges",
            Part::RelationAcl => "relation privileges",
            Part::ColumnAcl => "column privileges",
            Part::RoutineAcl => "routine privileges",
            Part::DefaultAcl => "default privileges",
        }
    }

    /// The SQL. Run with an empty search_path, so routine arguments of user
    /// types come back schema-qualified.
    pub fn sql(self) -> String {
        match self {
            Part::Keywords => {
                "SELECT word FROM pg_catalog.pg_get_keywords() WHERE catcode <> 'U'".into()
            }
            Part::Database => "SELECT d.datname, pg_catalog.pg_get_userbyid(d.datdba), current_user, \
                 r.rolsuper FROM pg_catalog.pg_database d, pg_catalog.pg_roles r \
                 WHERE d.datname = pg_catalog.current_database() AND r.rolname = current_user"
                .into(),
            Part::Schemas => format!(
                "SELECT n.nspname, pg_catalog.pg_get_userbyid(n.nspowner) \
                 FROM pg_catalog.pg_namespace n WHERE {USER_SCHEMA}"
            ),
            Part::Relations => format!(
                "SELECT n.nspname, c.relname, c.relkind, pg_catalog.pg_get_userbyid(c.relowner) \
                 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND {USER_SCHEMA}"
            ),
            Part::Columns => format!(
                "SELECT n.nspname, c.relname, a.attnum, a.attname \
                 FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE a.attnum > 0 AND NOT a.attisdropped \
                 AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND {USER_SCHEMA}"
            ),
            // Serial (`a`) and identity (`i`) sequences, with their table.
            Part::SequenceOwners => "SELECT sn.nspname, s.relname, tn.nspname, t.relname \
                 FROM pg_catalog.pg_depend d \
                 JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S' \
                 JOIN pg_catalog.pg_namespace sn ON sn.oid = s.relnamespace \
                 JOIN pg_catalog.pg_class t ON t.oid = d.refobjid \
                 JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace \
                 WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass \
                 AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass \
                 AND d.deptype IN ('a', 'i')"
                .into(),
            // What a view's rewrite rule reads: whole relations (column 0)
            // and the columns it names, in any schema.
            Part::ViewReads => format!(
                "SELECT DISTINCT n.nspname, v.relname, dn.nspname, dc.relname, da.attname \
                 FROM pg_catalog.pg_rewrite r \
                 JOIN pg_catalog.pg_class v ON v.oid = r.ev_class \
                 JOIN pg_catalog.pg_namespace n ON n.oid = v.relnamespace \
                 JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass \
                  AND d.objid = r.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass \
                 JOIN pg_catalog.pg_class dc ON dc.oid = d.refobjid \
                 JOIN pg_catalog.pg_namespace dn ON dn.oid = dc.relnamespace \
                 LEFT JOIN pg_catalog.pg_attribute da ON da.attrelid = d.refobjid \
                  AND da.attnum = d.refobjsubid AND d.refobjsubid > 0 \
                 WHERE v.relkind IN ('v', 'm') AND d.refobjid <> v.oid AND {USER_SCHEMA}"
            ),
            // The routines a view's rewrite rule calls.
            Part::ViewCalls => format!(
                "SELECT DISTINCT n.nspname, v.relname, pn.nspname, p.proname \
                 FROM pg_catalog.pg_rewrite r \
                 JOIN pg_catalog.pg_class v ON v.oid = r.ev_class \
                 JOIN pg_catalog.pg_namespace n ON n.oid = v.relnamespace \
                 JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass \
                  AND d.objid = r.oid AND d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass \
                 JOIN pg_catalog.pg_proc p ON p.oid = d.refobjid \
                 JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace \
                 WHERE v.relkind IN ('v', 'm') AND {USER_SCHEMA}"
            ),
            Part::Inherits => "SELECT cn.nspname, c.relname, pn.nspname, p.relname \
                 FROM pg_catalog.pg_inherits i \
                 JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid \
                 JOIN pg_catalog.pg_namespace cn ON cn.oid = c.relnamespace \
                 JOIN pg_catalog.pg_class p ON p.oid = i.inhparent \
                 JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace"
                .into(),
            Part::Routines => format!(
                "SELECT n.nspname, p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid), \
                 p.prokind, pg_catalog.pg_get_userbyid(p.proowner) \
                 FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
                 WHERE {USER_SCHEMA}"
            ),
            Part::Roles => "SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, \
                 rolcanlogin, rolreplication, rolbypassrls FROM pg_catalog.pg_roles"
                .into(),
            Part::Memberships => "SELECT m.rolname, r.rolname FROM pg_catalog.pg_auth_members a \
                 JOIN pg_catalog.pg_roles r ON r.oid = a.roleid \
                 JOIN pg_catalog.pg_roles m ON m.oid = a.member"
                .into(),
            // Settings of a role in this database only (ALTER ROLE ... IN DATABASE).
            Part::Settings => "SELECT r.rolname, c.setting \
                 FROM pg_catalog.pg_db_role_setting s \
                 JOIN pg_catalog.pg_roles r ON r.oid = s.setrole \
                 JOIN pg_catalog.pg_database d ON d.oid = s.setdatabase \
                 CROSS JOIN LATERAL pg_catalog.unnest(s.setconfig) AS c(setting) \
                 WHERE d.datname = pg_catalog.current_database()"
                .into(),
            Part::DatabaseAcl => format!(
                "SELECT {GRANTEE}, a.privilege_type FROM pg_catalog.pg_database d \
                 CROSS JOIN LATERAL pg_catalog.aclexplode(COALESCE(d.datacl, \
                   pg_catalog.acldefault('d', d.datdba))) a \
                 WHERE d.datname = pg_catalog.current_database() AND a.grantee <> d.datdba"
            ),
            Part::SchemaAcl => format!(
                "SELECT n.nspname, {GRANTEE}, a.privilege_type FROM pg_catalog.pg_namespace n \
                 CROSS JOIN LATERAL pg_catalog.aclexplode(n.nspacl) a WHERE a.grantee <> n.nspowner"
            ),
            // Relations and columns have no grants to others by default, so a
            // NULL ACL means none; every schema counts (a grant on a system
            // catalog to a login is drift too).
            Part::RelationAcl => format!(
                "SELECT n.nspname, c.relname, c.relkind, {GRANTEE}, a.privilege_type \
                 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) a \
                 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND a.grantee <> c.relowner"
            ),
            Part::ColumnAcl => format!(
                "SELECT n.nspname, c.relname, t.attnum, t.attname, {GRANTEE}, a.privilege_type \
                 FROM pg_catalog.pg_attribute t JOIN pg_catalog.pg_class c ON c.oid = t.attrelid \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 CROSS JOIN LATERAL pg_catalog.aclexplode(t.attacl) a \
                 WHERE t.attnum > 0 AND NOT t.attisdropped AND a.grantee <> c.relowner"
            ),
            // A routine with a NULL ACL is executable by PUBLIC: the default
            // counts in user schemas; elsewhere only explicit grants do.
            Part::RoutineAcl => format!(
                "SELECT n.nspname, p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid), \
                 p.prokind, {GRANTEE}, a.privilege_type \
                 FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
                 CROSS JOIN LATERAL pg_catalog.aclexplode(COALESCE(p.proacl, \
                   pg_catalog.acldefault('f', p.proowner))) a \
                 WHERE a.grantee <> p.proowner AND (p.proacl IS NOT NULL OR ({USER_SCHEMA}))"
            ),
            // Whether functions a role creates later are executable by PUBLIC
            // (no row: the built-in default, which says they are).
            Part::DefaultAcl => "SELECT pg_catalog.pg_get_userbyid(d.defaclrole), \
                 EXISTS (SELECT 1 FROM pg_catalog.aclexplode(d.defaclacl) a \
                         WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE') \
                 FROM pg_catalog.pg_default_acl d \
                 WHERE d.defaclobjtype = 'f' AND d.defaclnamespace = 0"
                .into(),
        }
    }
}

/// The grantee column of the ACL queries over `aclexplode` aliased `a`:
/// '' for PUBLIC.
const GRANTEE: &str =
    "CASE WHEN a.grantee = 0 THEN '' ELSE pg_catalog.pg_get_userbyid(a.grantee) END";

/// The stored password verifiers of `logins` (superusers only can read them).
pub fn passwords_sql(logins: &[&str]) -> String {
    let names: Vec<String> = logins.iter().map(|l| literal(l)).collect();
    format!(
        "SELECT rolname, rolpassword FROM pg_catalog.pg_authid WHERE rolname IN ({})",
        if names.is_empty() {
            "NULL".to_string()
        } else {
            names.join(", ")
        }
    )
}

/// Who holds a privilege.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Grantee {
    /// Every role.
    Public,
    /// One role.
    Role(String),
}

impl std::fmt::Display for Grantee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Grantee::Public => f.write_str("PUBLIC"),
            Grantee::Role(r) => f.write_str(r),
        }
    }
}

/// One relation of a user schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    /// Its kind.
    pub kind: RelKind,
    /// The role that owns it.
    pub owner: String,
    /// Its columns, by attnum.
    pub columns: Vec<(i16, String)>,
    /// For a serial or identity sequence: the table it belongs to.
    pub owned_by: Option<(String, String)>,
    /// For a view: the relations it reads and the columns it names
    /// (`None` for the relation as a whole).
    pub reads: BTreeSet<(String, String, Option<String>)>,
    /// For a view: the routines it calls, (schema, name).
    pub calls: BTreeSet<(String, String)>,
    /// Tables it inherits from or is a partition of.
    pub parents: Vec<(String, String)>,
}

/// One function or procedure of a user schema.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Routine {
    /// Its schema.
    pub schema: String,
    /// Its name.
    pub name: String,
    /// Identity arguments, as SQL.
    pub args: String,
    /// Function or procedure.
    pub kind: RoutineKind,
    /// The role that owns it.
    pub owner: String,
}

impl Routine {
    /// The routine as a grant object.
    pub fn object(&self) -> Object {
        Object::Routine {
            schema: self.schema.clone(),
            name: self.name.clone(),
            args: self.args.clone(),
            kind: self.kind,
        }
    }
}

/// A role's attributes (`pg_roles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RoleAttributes {
    pub superuser: bool,
    pub inherit: bool,
    pub create_role: bool,
    pub create_db: bool,
    pub login: bool,
    pub replication: bool,
    pub bypass_rls: bool,
}

/// One privilege someone holds now.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AclEntry {
    /// Who holds it.
    pub grantee: Grantee,
    /// On what.
    pub object: Object,
    /// Which privilege.
    pub privilege: Privilege,
}

/// The database as provisioning sees it.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// The database's name.
    pub database: String,
    /// Its owner.
    pub database_owner: String,
    /// The role the catalog was read as.
    pub current_user: String,
    /// Whether that role is a superuser.
    pub superuser: bool,
    /// Quotes names as this server reads them.
    pub quoter: Quoter,
    /// User schemas and their owners.
    pub schemas: BTreeMap<String, String>,
    /// Relations of user schemas, by (schema, name).
    pub relations: BTreeMap<(String, String), Relation>,
    /// Routines of user schemas.
    pub routines: BTreeSet<Routine>,
    /// Every role's attributes, by name.
    pub roles: BTreeMap<String, RoleAttributes>,
    /// (member, role) pairs.
    pub memberships: BTreeSet<(String, String)>,
    /// Settings in this database, by role: (name, value).
    pub settings: BTreeMap<String, Vec<(String, String)>>,
    /// Privileges held now by anyone but the owner.
    pub acl: BTreeSet<AclEntry>,
    /// Roles with a default ACL for functions: whether PUBLIC may execute.
    pub function_defaults: BTreeMap<String, bool>,
    /// Stored password verifiers, when the catalog was read as a superuser.
    pub passwords: Option<BTreeMap<String, String>>,
}

fn field(part: Part, row: &Row, i: usize) -> Result<&str, CatalogError> {
    row.get(i).and_then(|v| v.as_deref()).ok_or(CatalogError {
        part: part.name(),
        detail: format!("column {} is missing or NULL", i + 1),
    })
}

fn flag(part: Part, row: &Row, i: usize) -> Result<bool, CatalogError> {
    match field(part, row, i)? {
        "t" => Ok(true),
        "f" => Ok(false),
        other => Err(CatalogError {
            part: part.name(),
            detail: format!("{other:?} is not a boolean"),
        }),
    }
}

fn kind(part: Part, row: &Row, i: usize) -> Result<u8, CatalogError> {
    field(part, row, i)?
        .bytes()
        .next()
        .ok_or_else(|| CatalogError {
            part: part.name(),
            detail: "empty kind".into(),
        })
}

fn attnum(part: Part, row: &Row, i: usize) -> Result<i16, CatalogError> {
    let v = field(part, row, i)?;
    v.parse().map_err(|_| CatalogError {
        part: part.name(),
        detail: format!("{v:?} is not a column number"),
    })
}

fn grantee(part: Part, row: &Row, i: usize) -> Result<Grantee, CatalogError> {
    Ok(match field(part, row, i)? {
        "" => Grantee::Public,
        r => Grantee::Role(r.to_string()),
    })
}

fn routine_kind(k: u8) -> RoutineKind {
    if k == b'p' {
        RoutineKind::Procedure
    } else {
        RoutineKind::Function
    }
}

impl Catalog {
    /// Adds the rows of one query. Relations come before what refers to them
    /// (columns, sequence owners, view reads, inheritance): `Part::ALL` order.
    pub fn add(&mut self, part: Part, rows: &[Row]) -> Result<(), CatalogError> {
        if part == Part::Keywords {
            let words: Result<Vec<&str>, CatalogError> =
                rows.iter().map(|r| field(part, r, 0)).collect();
            self.quoter = Quoter::new(words?);
            return Ok(());
        }
        for row in rows {
            let f = |i| field(part, row, i);
            match part {
                Part::Keywords => {}
                Part::Database => {
                    self.database = f(0)?.into();
                    self.database_owner = f(1)?.into();
                    self.current_user = f(2)?.into();
                    self.superuser = flag(part, row, 3)?;
                }
                Part::Schemas => {
                    self.schemas.insert(f(0)?.into(), f(1)?.into());
                }
                Part::Relations => {
                    let Some(k) = RelKind::from_relkind(kind(part, row, 2)?) else {
                        continue;
                    };
                    self.relations.insert(
                        (f(0)?.into(), f(1)?.into()),
                        Relation {
                            kind: k,
                            owner: f(3)?.into(),
                            columns: Vec::new(),
                            owned_by: None,
                            reads: BTreeSet::new(),
                            calls: BTreeSet::new(),
                            parents: Vec::new(),
                        },
                    );
                }
                Part::Columns => {
                    if let Some(r) = self.relations.get_mut(&(f(0)?.into(), f(1)?.into())) {
                        r.columns.push((attnum(part, row, 2)?, f(3)?.into()));
                        r.columns.sort();
                    }
                }
                Part::SequenceOwners => {
                    if let Some(r) = self.relations.get_mut(&(f(0)?.into(), f(1)?.into())) {
                        r.owned_by = Some((f(2)?.into(), f(3)?.into()));
                    }
                }
                Part::ViewReads => {
                    let column = row.get(4).cloned().flatten();
                    if let Some(r) = self.relations.get_mut(&(f(0)?.into(), f(1)?.into())) {
                        r.reads.insert((f(2)?.into(), f(3)?.into(), column));
                    }
                }
                Part::ViewCalls => {
                    if let Some(r) = self.relations.get_mut(&(f(0)?.into(), f(1)?.into())) {
                        r.calls.insert((f(2)?.into(), f(3)?.into()));
                    }
                }
                Part::Inherits => {
                    if let Some(r) = self.relations.get_mut(&(f(0)?.into(), f(1)?.into())) {
                        r.parents.push((f(2)?.into(), f(3)?.into()));
                    }
                }
                Part::Routines => {
                    self.routines.insert(Routine {
                        schema: f(0)?.into(),
                        name: f(1)?.into(),
                        args: f(2)?.into(),
                        kind: routine_kind(kind(part, row, 3)?),
                        owner: f(4)?.into(),
                    });
                }
                Part::Roles => {
                    let b = |i| flag(part, row, i);
                    self.roles.insert(
                        f(0)?.into(),
                        RoleAttributes {
                            superuser: b(1)?,
                            inherit: b(2)?,
                            create_role: b(3)?,
                            create_db: b(4)?,
                            login: b(5)?,
                            replication: b(6)?,
                            bypass_rls: b(7)?,
                        },
                    );
                }
                Part::Memberships => {
                    self.memberships.insert((f(0)?.into(), f(1)?.into()));
                }
                Part::Settings => {
                    let (name, value) = f(1)?.split_once('=').unwrap_or((f(1)?, ""));
                    self.settings
                        .entry(f(0)?.into())
                        .or_default()
                        .push((name.to_string(), value.to_string()));
                }
                Part::DatabaseAcl => {
                    self.acl.insert(AclEntry {
                        grantee: grantee(part, row, 0)?,
                        object: Object::Database(self.database.clone()),
                        privilege: Privilege::parse(f(1)?),
                    });
                }
                Part::SchemaAcl => {
                    self.acl.insert(AclEntry {
                        grantee: grantee(part, row, 1)?,
                        object: Object::Schema(f(0)?.into()),
                        privilege: Privilege::parse(f(2)?),
                    });
                }
                Part::RelationAcl => {
                    let Some(k) = RelKind::from_relkind(kind(part, row, 2)?) else {
                        continue;
                    };
                    self.acl.insert(AclEntry {
                        grantee: grantee(part, row, 3)?,
                        object: Object::Relation {
                            schema: f(0)?.into(),
                            name: f(1)?.into(),
                            kind: k,
                        },
                        privilege: Privilege::parse(f(4)?),
                    });
                }
                Part::ColumnAcl => {
                    self.acl.insert(AclEntry {
                        grantee: grantee(part, row, 4)?,
                        object: Object::Column {
                            schema: f(0)?.into(),
                            table: f(1)?.into(),
                            attnum: attnum(part, row, 2)?,
                            column: f(3)?.into(),
                        },
                        privilege: Privilege::parse(f(5)?),
                    });
                }
                Part::RoutineAcl => {
                    self.acl.insert(AclEntry {
                        grantee: grantee(part, row, 4)?,
                        object: Object::Routine {
                            schema: f(0)?.into(),
                            name: f(1)?.into(),
                            args: f(2)?.into(),
                            kind: routine_kind(kind(part, row, 3)?),
                        },
                        privilege: Privilege::parse(f(5)?),
                    });
                }
                Part::DefaultAcl => {
                    self.function_defaults
                        .insert(f(0)?.into(), flag(part, row, 1)?);
                }
            }
        }
        Ok(())
    }

    /// Adds the rows of `passwords_sql`.
    pub fn add_passwords(&mut self, rows: &[Row]) {
        let map = self.passwords.get_or_insert_with(BTreeMap::new);
        for row in rows {
            if let (Some(Some(name)), Some(Some(pw))) = (row.first(), row.get(1)) {
                map.insert(name.clone(), pw.clone());
            }
        }
    }

    /// The relation `schema.name`, if it is in a user schema.
    pub fn relation(&self, schema: &str, name: &str) -> Option<&Relation> {
        self.relations.get(&(schema.to_string(), name.to_string()))
    }

    /// The relation's inheritance ancestors, transitively.
    pub fn ancestors(&self, schema: &str, name: &str) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut todo = vec![(schema.to_string(), name.to_string())];
        while let Some((s, n)) = todo.pop() {
            for p in self
                .relation(&s, &n)
                .map(|r| r.parents.as_slice())
                .unwrap_or(&[])
            {
                if !out.contains(p) && (p.0 != schema || p.1 != name) {
                    out.push(p.clone());
                    todo.push(p.clone());
                }
            }
        }
        out
    }

    /// Roles that own something in a user schema: the functions they create
    /// later must not be executable by PUBLIC either.
    pub fn owners(&self) -> BTreeSet<String> {
        self.schemas
            .values()
            .chain(self.relations.values().map(|r| &r.owner))
            .chain(self.routines.iter().map(|r| &r.owner))
            // Predefined roles (pg_database_owner owns schema public) create nothing.
            .filter(|o| !o.starts_with("pg_"))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Text rows from string slices; `None` for NULL.
    pub fn rows(rows: &[&[Option<&str>]]) -> Vec<Row> {
        rows.iter()
            .map(|r| r.iter().map(|v| v.map(str::to_string)).collect())
            .collect()
    }

    #[test]
    fn rows_become_the_model() {
        let mut c = Catalog::default();
        let s = Some;
        c.add(Part::Keywords, &rows(&[&[s("select")], &[s("order")]]))
            .unwrap();
        c.add(
            Part::Database,
            &rows(&[&[s("shop"), s("owner"), s("admin"), s("t")]]),
        )
        .unwrap();
        c.add(
            Part::Relations,
            &rows(&[
                &[s("public"), s("orders"), s("r"), s("owner")],
                &[s("public"), s("orders_id_seq"), s("S"), s("owner")],
                &[s("public"), s("orders_idx"), s("i"), s("owner")],
            ]),
        )
        .unwrap();
        c.add(
            Part::Columns,
            &rows(&[
                &[s("public"), s("orders"), s("2"), s("status")],
                &[s("public"), s("orders"), s("1"), s("id")],
            ]),
        )
        .unwrap();
        c.add(
            Part::SequenceOwners,
            &rows(&[&[s("public"), s("orders_id_seq"), s("public"), s("orders")]]),
        )
        .unwrap();
        c.add(
            Part::RoutineAcl,
            &rows(&[&[
                s("public"),
                s("f"),
                s("x integer"),
                s("f"),
                s(""),
                s("EXECUTE"),
            ]]),
        )
        .unwrap();
        c.add(
            Part::Settings,
            &rows(&[&[s("r"), s("statement_timeout=30s")]]),
        )
        .unwrap();
        assert_eq!(c.quoter.ident("order"), "\"order\"");
        assert!(c.superuser);
        assert_eq!(c.relations.len(), 2, "indexes are not granted on");
        let orders = c.relation("public", "orders").unwrap();
        assert_eq!(orders.columns, vec![(1, "id".into()), (2, "status".into())]);
        assert_eq!(
            c.relation("public", "orders_id_seq").unwrap().owned_by,
            Some(("public".into(), "orders".into()))
        );
        assert_eq!(c.acl.iter().next().unwrap().grantee, Grantee::Public);
        assert_eq!(
            c.settings["r"],
            vec![("statement_timeout".to_string(), "30s".to_string())]
        );
        let e = c
            .add(Part::Roles, &rows(&[&[s("r"), s("yes")]]))
            .unwrap_err();
        assert_eq!(e.part, "roles");
    }

    #[test]
    fn passwords_are_asked_for_by_name() {
        assert_eq!(
            passwords_sql(&["a", "o'b"]),
            "SELECT rolname, rolpassword FROM pg_catalog.pg_authid WHERE rolname IN ('a', 'o''b')"
        );
    }
}
