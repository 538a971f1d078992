//! The decision for one classified SQL text under a user's roles: allow (with
//! an optional row cap) or deny with a message that names what was refused,
//! the rule, and what is allowed. Roles are unioned; anything not granted is
//! denied.

use crate::sql::{Classification, Name, Operation};

use super::builtins::{
    is_catalog_schema, is_dangerous, is_harmless_setting, is_safe, is_secret_setting,
    is_superuser_setting, SENSITIVE_CATALOG, SENSITIVE_CATALOG_COLUMNS,
};
use super::catalog::Catalog;
use super::masks::Masks;
use super::role::Role;

/// What the session knows that changes how names resolve.
#[derive(Debug, Clone)]
pub struct SessionView<'a> {
    /// The database the client connected to (three-part names must match it).
    pub database: &'a str,
    /// The upstream database name.
    pub upstream_database: &'a str,
    /// Masked columns, when masking is configured.
    pub masks: Option<&'a Masks>,
    /// The upstream catalog, when known: views are expanded and unqualified
    /// names are checked only where they exist.
    pub catalog: Option<&'a Catalog>,
    /// Every schema an unqualified name may resolve to in this session: the
    /// search_path at login and every schema a later SET search_path named.
    /// An unqualified name must be allowed in each of them.
    pub search_path: &'a [String],
}

/// A refusal, ready to become an ErrorResponse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The SQLSTATE: 42501 (insufficient privilege) for a refusal, 42601
    /// for text PostgreSQL's parser rejects (a typo, not a denial).
    pub code: &'static str,
    /// Starts with `pgward:` and names what was refused.
    pub message: String,
    /// The rule that refused it.
    pub detail: String,
    /// What is allowed instead.
    pub hint: String,
}

/// The verdict for one SQL text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Run it; cap results at `max_rows` when set.
    Allow { max_rows: Option<u64> },
    /// Refuse it.
    Deny(Denial),
}

impl Decision {
    /// True for Allow.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }
}

struct Grants<'r> {
    roles: &'r [&'r Role],
    who: String,
}

impl Grants<'_> {
    fn any(&self, f: impl Fn(&Role) -> bool) -> bool {
        self.roles.iter().any(|r| f(r))
    }

    fn list(&self, f: impl Fn(&Role) -> String) -> String {
        let parts: Vec<String> = self
            .roles
            .iter()
            .map(|r| format!("{}: {}", r.name, f(r)))
            .collect();
        if parts.is_empty() {
            "nothing (the user has no roles)".into()
        } else {
            parts.join("; ")
        }
    }

    fn deny(&self, what: String, detail: String, hint: String) -> Decision {
        Decision::Deny(Denial {
            code: "42501",
            message: format!("pgward: {} may not {what}", self.who),
            detail,
            hint,
        })
    }
}

/// Resolves a relation or function name to the `schema.name` forms PostgreSQL
/// may pick for it: the written schema, pg_catalog for `pg_` names, otherwise
/// every schema the session's search_path may hold.
pub fn resolve(name: &Name, view: &SessionView) -> Result<Vec<String>, String> {
    if let Some(c) = &name.catalog {
        if c != view.database && c != view.upstream_database {
            return Err(format!("{name} names another database"));
        }
    }
    if let Some(s) = &name.schema {
        return Ok(with_ancestors(vec![format!("{s}.{}", name.name)], view));
    }
    let system = format!("pg_catalog.{}", name.name);
    if name.name.starts_with("pg_") {
        // pg_catalog is searched first unless the path names it later; a
        // `pg_` relation of a path schema may win then, or when pg_catalog
        // has none: every one that exists is a candidate.
        let Some(catalog) = view.catalog else {
            return Ok(vec![system]);
        };
        let mut out: Vec<String> = view
            .search_path
            .iter()
            .map(|s| format!("{s}.{}", name.name))
            .filter(|q| *q != system && catalog.exists(q))
            .collect();
        let nowhere = out.is_empty() && !catalog.exists(&system);
        if nowhere {
            // Nowhere in the snapshot (a new table?): wherever it may be.
            out = view
                .search_path
                .iter()
                .filter(|s| !matches!(s.as_str(), "$user" | "pg_catalog"))
                .map(|s| format!("{s}.{}", name.name))
                .collect();
        }
        if nowhere || catalog.exists(&system) || out.is_empty() {
            out.insert(0, system);
        }
        return Ok(with_ancestors(out, view));
    }
    let mut out: Vec<String> = view
        .search_path
        .iter()
        .filter(|s| !matches!(s.as_str(), "$user" | "pg_catalog"))
        // A schema that does not exist is skipped by the server.
        .filter(|s| view.catalog.is_none_or(|c| c.has_schema(s)))
        .map(|s| format!("{s}.{}", name.name))
        .collect();
    if out.is_empty() {
        out.push(format!("public.{}", name.name));
    }
    if let Some(catalog) = view.catalog {
        // PostgreSQL can only pick a schema where the name exists; when it
        // exists nowhere, the statement fails (or names a temporary table).
        let existing: Vec<String> = out.iter().filter(|q| catalog.exists(q)).cloned().collect();
        if !existing.is_empty() {
            out = existing;
        }
    }
    Ok(with_ancestors(out, view))
}

/// A partition's or an inheriting table's rows are its parents' too: every
/// rule of a parent (read, masks, deny_columns) applies to them.
fn with_ancestors(mut names: Vec<String>, view: &SessionView) -> Vec<String> {
    if let Some(catalog) = view.catalog {
        for n in names.clone() {
            for a in catalog.ancestors(&n) {
                if !names.contains(&a) {
                    names.push(a);
                }
            }
        }
    }
    names
}

/// True when the text reads a relation with masked columns, directly or
/// through a view that shows one (its rows then need a masking plan).
pub fn reads_masked(c: &Classification, view: &SessionView) -> bool {
    let Some(masks) = view.masks.filter(|m| !m.is_empty()) else {
        return false;
    };
    if c.operations.contains(&Operation::Cursor) {
        // FETCH returns a cursor's rows without naming what it reads.
        return true;
    }
    let masked = |r: &str| masks.rules.keys().any(|(t, _)| same(t, r));
    c.reads.iter().any(|n| {
        resolve(n, view).is_ok_and(|rs| {
            rs.iter().any(|r| {
                masked(r)
                    || view.catalog.is_some_and(|cat| {
                        cat.view_column_bases(r)
                            .iter()
                            .any(|(_, table, _)| masked(table))
                    })
            })
        })
    })
}

/// Decides whether `roles` may run the classified text.
pub fn decide(roles: &[&Role], c: &Classification, view: &SessionView) -> Decision {
    let who = match roles {
        [] => "a user without roles".to_string(),
        [r] => format!("role {}", r.name),
        rs => format!(
            "roles {}",
            rs.iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let g = Grants { roles, who };

    if let Some(reason) = c.forbidden.first() {
        return Decision::Deny(Denial {
            code: "42501",
            message: format!("pgward: {reason} is never allowed"),
            detail: "rule: built-in; pgward refuses this for every role".into(),
            hint: "run it directly against the database as its owner if it is really needed".into(),
        });
    }
    if c.cascade && !roles.iter().any(|r| r.write.grants_everything()) {
        return Decision::Deny(Denial {
            code: "42501",
            message: "pgward: CASCADE reaches objects the statement does not name".into(),
            detail: "rule: built-in; only a role that may write every relation (write = [\"*.*\"]) may CASCADE".into(),
            hint: "drop, truncate or revoke each object by name".into(),
        });
    }
    if let Some(feature) = c.unsupported.first() {
        return Decision::Deny(Denial {
            code: "0A000",
            message: format!("pgward: {feature} is not supported"),
            detail: "rule: built-in; pgward does not offer this to any role".into(),
            hint: "run it directly against the database if it is really needed".into(),
        });
    }

    for op in &c.operations {
        let needed = match op {
            Operation::Set => !c.settings.iter().all(|s| is_harmless_setting(s)),
            // Reading settings is metadata; secret ones are refused below.
            Operation::Show => false,
            // Transaction control changes no data (what runs inside is judged
            // statement by statement; READ WRITE is a session limit), and
            // every driver sends BEGIN by default.
            Operation::Transaction => false,
            // A cursor returns what its query reads, and the query is judged
            // at DECLARE like any other; FETCH, MOVE and CLOSE add nothing.
            Operation::Cursor => false,
            _ => true,
        };
        if needed && !g.any(|r| r.operations.contains(op)) {
            let what = match op {
                Operation::Set => format!(
                    "change {}",
                    c.settings
                        .iter()
                        .filter(|s| !is_harmless_setting(s))
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                op => format!("run {}", describe_op(*op)),
            };
            return g.deny(
                what,
                format!("rule: operations; {op} is not granted"),
                format!("allowed operations: {}", g.list(ops_list)),
            );
        }
    }
    if let Some(s) = c.settings.iter().find(|s| is_superuser_setting(s)) {
        return Decision::Deny(Denial {
            code: "42501",
            message: format!("pgward: changing {s} is never allowed"),
            detail: "rule: built-in; only a superuser may change it (logging, triggers, debugging)"
                .into(),
            hint: "ask the database owner to change it for the login".into(),
        });
    }
    let limits = super::limits::SessionLimits::of(roles);
    for (name, value) in &c.setting_values {
        if let Some(why) = limits.refuse(name, value) {
            return g.deny(
                why,
                "rule: session limits; the role's read-only or timeout limit".into(),
                "work within the limit; an operator can change the role".into(),
            );
        }
    }
    if c.settings.contains("search_path") && c.statements > 1 {
        let unqualified = c
            .reads
            .iter()
            .chain(&c.writes)
            .chain(&c.functions)
            .any(|n| n.schema.is_none());
        if unqualified {
            return g.deny(
                "change search_path and use unqualified names in one message".into(),
                "rule: built-in; names must resolve against a known search_path".into(),
                "send SET search_path as its own statement, or qualify the names".into(),
            );
        }
    }

    for name in &c.reads {
        let rels = match resolve(name, view) {
            Ok(r) => r,
            Err(e) => {
                return g.deny(
                    format!("read {name}"),
                    format!("rule: built-in; {e}"),
                    "use names of this database".into(),
                )
            }
        };
        for rel in rels {
            if let Some(d) = check_read(&g, &rel) {
                return d;
            }
            if let Some(d) = check_view(&g, &rel, view, 0) {
                return d;
            }
        }
    }
    for name in &c.writes {
        let rels = match resolve(name, view) {
            Ok(r) => r,
            Err(e) => {
                return g.deny(
                    format!("write {name}"),
                    format!("rule: built-in; {e}"),
                    "use names of this database".into(),
                )
            }
        };
        for rel in rels {
            if !g.any(|r| r.write.matches(&rel)) {
                return g.deny(
                    format!("write {rel}"),
                    format!("rule: write; {rel} is not granted"),
                    format!("writable: {}", g.list(|r| r.write.describe())),
                );
            }
        }
    }
    if let Some(t) = c
        .types_created
        .iter()
        .find(|t| SHADOWABLE_TYPES.contains(&t.name.as_str()))
    {
        return g.deny(
            format!("create a type named {}", t.name),
            "rule: built-in; a type named like a built-in pgward reads casts to would stand in for it on the search path (a domain text of varchar(11) cuts a setting's name)".into(),
            "give it a name of its own".into(),
        );
    }
    if let Some(r) = c
        .routines_created
        .iter()
        .find(|r| is_safe(&r.name) || is_dangerous(&r.name) || r.name.starts_with("pg_"))
    {
        return g.deny(
            format!("create a routine named {}", r.name),
            "rule: built-in; a routine named like a built-in would run in its place for unqualified calls".into(),
            "give it a name of its own".into(),
        );
    }
    if c.operations.contains(&Operation::Ddl) {
        if let Some(d) = check_ddl_on_guarded_tables(&g, c, view) {
            return d;
        }
    }
    if let Some(e) = c
        .extensions
        .iter()
        .find(|e| !g.any(|r| r.extensions.contains(*e)))
    {
        return g.deny(
            format!("create the extension {e}"),
            format!("rule: extensions; {e} is not granted"),
            format!(
                "name it in the role's extensions to allow it; granted: {}",
                g.list(|r| r.extensions.iter().cloned().collect::<Vec<_>>().join(", "))
            ),
        );
    }
    for f in &c.functions {
        if let Some(d) = check_function(&g, f, view) {
            return d;
        }
    }
    for op in &c.operators {
        // An operator is a function call under another name; one outside
        // pg_catalog runs whatever function its owner gave it.
        let key = op.to_string();
        let granted = g.any(|r| {
            r.functions
                .iter()
                .any(|p| *p == key || (p.contains('*') && super::glob::glob(p, &key)))
        });
        if !granted {
            return g.deny(
                format!("use the operator {key}"),
                "rule: functions; operators outside pg_catalog must be granted like functions"
                    .into(),
                format!("granted: {}", g.list(fn_list)),
            );
        }
    }
    for s in &c.settings_read {
        if is_secret_setting(s) {
            return g.deny(
                format!("read the setting {s}"),
                "rule: built-in; custom settings and server file locations can hold secrets".into(),
                "read ordinary settings only".into(),
            );
        }
    }
    if let Some(d) = check_columns(&g, c, view) {
        return d;
    }
    if let Some(d) = check_attribute_calls(&g, c, view) {
        return d;
    }
    if let Some(d) = check_field_calls(&g, c, view) {
        return d;
    }
    if let Some(d) = check_masks(&g, c, view, false) {
        return d;
    }
    let max_rows = roles.iter().filter_map(|r| r.max_rows).min();
    Decision::Allow { max_rows }
}

/// Masks and `deny_columns` name `schema.table.column`: DDL that renames,
/// moves, reparents or attaches such a table or column would take its values
/// out from under the rule, so DDL writing one is refused, unless the role
/// sees every masked column of it in clear and has no denied column there.
fn check_ddl_on_guarded_tables(
    g: &Grants,
    c: &Classification,
    view: &SessionView,
) -> Option<Decision> {
    for name in &c.writes {
        for rel in resolve(name, view).unwrap_or_default() {
            let masked = view.masks.is_some_and(|m| {
                m.rules.keys().any(|(t, col)| {
                    same(t, &rel)
                        && !g.any(|r| {
                            r.unmask
                                .iter()
                                .any(|(ut, uc)| same(ut, &rel) && same(uc, col))
                        })
                })
            });
            let denied = g.any(|r| r.deny_columns.iter().any(|(t, _)| same(t, &rel)));
            if masked || denied {
                let what = if masked { "masked" } else { "denied" };
                return Some(g.deny(
                    format!("change the definition of {rel}"),
                    format!("rule: masks; {rel} has {what} columns, which DDL could rename or move out from under the rule"),
                    "run schema changes on such tables as the database owner, outside pgward".into(),
                ));
            }
        }
    }
    None
}

/// `t.name` where no table behind `t` has a column `name` is the function
/// call `name(t)` on the whole row (attribute notation): refused, since the
/// row would leave through a function pgward never saw called.
fn check_attribute_calls(g: &Grants, c: &Classification, view: &SessionView) -> Option<Decision> {
    let catalog = view.catalog?;
    for (relations, col) in &c.qualified_columns {
        let resolved: Vec<String> = relations
            .iter()
            .filter_map(|n| resolve(n, view).ok())
            .flatten()
            .collect();
        let known: Vec<&String> = resolved
            .iter()
            .filter(|r| catalog.knows_columns(r))
            .collect();
        if known.is_empty() || known.iter().any(|r| catalog.has_column(r, col)) {
            continue;
        }
        return Some(g.deny(
            format!("call {col}() on a whole row of {}", known[0]),
            format!(
                "rule: built-in; {} has no column {col}, so the server reads it as {col}(row)",
                known[0]
            ),
            "name the columns you need, or call the function on them explicitly".into(),
        ));
    }
    None
}

/// `(expr).name` selects a field of a composite value, but when the value is
/// not composite PostgreSQL reads it as the call `name(expr)`. pgward cannot
/// tell the value's type, so a name some reachable function has (in
/// pg_catalog or a schema on the path; any name when there is no catalog
/// snapshot) is judged as that call.
fn check_field_calls(g: &Grants, c: &Classification, view: &SessionView) -> Option<Decision> {
    for name in &c.field_selections {
        let may_call = match view.catalog {
            None => true,
            Some(catalog) => {
                is_dangerous(name)
                    || std::iter::once("pg_catalog")
                        .chain(view.search_path.iter().map(String::as_str))
                        .any(|s| catalog.has_function(&format!("{s}.{name}")))
            }
        };
        if !may_call {
            continue;
        }
        if let Some(Decision::Deny(d)) = check_function(g, &Name::bare(name), view) {
            return Some(Decision::Deny(Denial {
                detail: format!(
                    "{}; (value).{name} is the call {name}(value) when the value is not composite",
                    d.detail
                ),
                ..d
            }));
        }
    }
    None
}

/// Built-in type names that an unqualified cast resolves through the search
/// path, and whose casts pgward looks through (`'x'::text`,
/// `'s'::regclass`): no type or domain may take them. (`varchar` is a
/// keyword the parser fixes to pg_catalog.)
pub const SHADOWABLE_TYPES: &[&str] = &[
    "text",
    "name",
    "bpchar",
    "regclass",
    "regproc",
    "regprocedure",
    "regoper",
    "regoperator",
    "regtype",
    "regconfig",
    "regdictionary",
    "regnamespace",
    "regrole",
    "regcollation",
];

/// A view is readable only if everything its definition reads and calls is.
fn check_view(g: &Grants, rel: &str, view: &SessionView, depth: usize) -> Option<Decision> {
    let def = view.catalog?.view(rel)?;
    if depth > 16 {
        return Some(g.deny(
            format!("read {rel}"),
            "rule: built-in; views nested more than 16 deep are not analysed".into(),
            "read the underlying tables directly".into(),
        ));
    }
    if let Some(why) = &def.unanalysable {
        return Some(g.deny(
            format!("read the view {rel}"),
            format!("rule: built-in; its definition cannot be analysed: {why}"),
            "read the underlying tables directly".into(),
        ));
    }
    for inner in &def.reads {
        if let Some(Decision::Deny(d)) =
            check_read(g, inner).or_else(|| check_view(g, inner, view, depth + 1))
        {
            return Some(Decision::Deny(Denial {
                code: "42501",
                message: format!("{} (through the view {rel})", d.message),
                ..d
            }));
        }
    }
    for f in &def.functions {
        if let Some(Decision::Deny(d)) = check_function(g, f, view) {
            return Some(Decision::Deny(Denial {
                code: "42501",
                message: format!("{} (through the view {rel})", d.message),
                ..d
            }));
        }
    }
    if let Some(c) = &def.classification {
        if let Some(Decision::Deny(d)) =
            check_columns(g, c, view).or_else(|| check_masks(g, c, view, true))
        {
            return Some(Decision::Deny(Denial {
                code: "42501",
                message: format!("{} (through the view {rel})", d.message),
                ..d
            }));
        }
    }
    None
}

fn check_read(g: &Grants, rel: &str) -> Option<Decision> {
    let (schema, table) = rel.split_once('.').unwrap_or(("", rel));
    if is_catalog_schema(schema) {
        if g.any(|r| r.read.names_exactly(rel)) {
            return None;
        }
        if SENSITIVE_CATALOG.contains(&table) {
            return Some(g.deny(
                format!("read {rel}"),
                "rule: catalog; this catalog relation holds data or secrets, not schema metadata".into(),
                format!("grant it by name in read (\"{rel}\") if the role really needs it"),
            ));
        }
        if g.any(|r| r.catalog) {
            return None;
        }
        return Some(g.deny(
            format!("read {rel}"),
            "rule: catalog = false".into(),
            "set catalog = true on the role to allow schema metadata".into(),
        ));
    }
    if g.any(|r| r.read.matches(rel)) {
        return None;
    }
    Some(g.deny(
        format!("read {rel}"),
        format!("rule: read; {rel} is not granted"),
        format!("readable: {}", g.list(|r| r.read.describe())),
    ))
}

fn check_function(g: &Grants, f: &Name, view: &SessionView) -> Option<Decision> {
    if f.schema.is_none() {
        if let Some(d) = check_user_functions_reachable(g, f, view) {
            return Some(d);
        }
    }
    let builtin = f.schema.as_deref().is_none_or(|s| s == "pg_catalog");
    // A function named exactly, or matched by a pattern such as "public.*".
    // Patterns never grant the dangerous built-ins: those must be named.
    let exact = |key: &str| g.any(|r| r.functions.contains(key));
    let pattern = |key: &str| {
        g.any(|r| {
            r.functions
                .iter()
                .any(|p| p.contains('*') && super::glob::glob(p, key))
        })
    };
    let granted = |key: &str| exact(key) || pattern(key);
    if builtin {
        let short = f.name.as_str();
        let qualified = format!("pg_catalog.{short}");
        if exact(short) || exact(&qualified) {
            return None;
        }
        if !is_dangerous(short) && (pattern(short) || pattern(&qualified)) {
            return None;
        }
        if is_dangerous(short) {
            return Some(g.deny(
                format!("call {short}()"),
                "rule: functions; it reaches beyond the session's data (files, other sessions, servers, or SQL passed as text)".into(),
                format!("name it in the role's functions to allow it; granted: {}", g.list(fn_list)),
            ));
        }
        if is_safe(short) {
            return None;
        }
        if f.schema.is_some() {
            return Some(g.deny(
                format!("call pg_catalog.{short}()"),
                "rule: functions; not on the built-in safe list".into(),
                format!("granted: {}", g.list(fn_list)),
            ));
        }
    }
    let resolved = resolve(f, view).unwrap_or_else(|_| vec![f.to_string()]);
    let refused = resolved.iter().find(|r| !granted(r))?;
    Some(g.deny(
        format!("call {refused}()"),
        "rule: functions; not granted and not on the built-in safe list".into(),
        format!("granted: {}", g.list(fn_list)),
    ))
}

/// An unqualified call reaches a user function of the same name on the search
/// path whenever its argument types match better than the built-in's (or the
/// path lists pg_catalog later): each such function must be granted.
fn check_user_functions_reachable(g: &Grants, f: &Name, view: &SessionView) -> Option<Decision> {
    let catalog = view.catalog?;
    for schema in view.search_path {
        if matches!(schema.as_str(), "$user" | "pg_catalog") {
            continue;
        }
        let key = format!("{schema}.{}", f.name);
        if !catalog.has_function(&key) {
            continue;
        }
        let granted = g.any(|r| {
            r.functions
                .iter()
                .any(|p| *p == key || (p.contains('*') && super::glob::glob(p, &key)))
        });
        if !granted {
            return Some(g.deny(
                format!("call {}() (it may reach {key}())", f.name),
                format!("rule: functions; {key} has the same name and the server may pick it for an unqualified call"),
                format!("call pg_catalog.{}() to mean the built-in; granted: {}", f.name, g.list(fn_list)),
            ));
        }
    }
    None
}

fn check_columns(g: &Grants, c: &Classification, view: &SessionView) -> Option<Decision> {
    let read: Vec<String> = c
        .reads
        .iter()
        .filter_map(|n| resolve(n, view).ok())
        .flatten()
        .collect();
    let mut denied: Vec<(String, String, &'static str)> = Vec::new();
    for r in g.roles {
        for (t, col) in &r.deny_columns {
            denied.push((t.clone(), col.clone(), "deny_columns"));
        }
    }
    for (t, col) in SENSITIVE_CATALOG_COLUMNS {
        let schema = if *t == "routines" {
            "information_schema"
        } else {
            "pg_catalog"
        };
        denied.push((format!("{schema}.{t}"), col.to_string(), "catalog"));
    }
    for (table, col, rule) in denied {
        if !read.iter().any(|r| same(r, &table)) {
            continue;
        }
        let mut reason = None;
        for (name, cols) in &c.columns {
            let here = resolve(name, view).is_ok_and(|rs| rs.iter().any(|r| same(r, &table)));
            if here && cols.iter().any(|c| same(c, &col)) {
                reason = Some("it is referenced");
            } else if here && cols.contains("*") {
                reason = Some("a * or a whole-row reference would include it");
            }
            if reason.is_some() {
                break;
            }
        }
        if reason.is_none()
            && (c.unscoped_columns.iter().any(|c| same(c, &col))
                || c.predicate_unscoped.iter().any(|c| same(c, &col)))
        {
            reason = Some("it is referenced");
        }
        let Some(reason) = reason else { continue };
        return Some(g.deny(
            format!("read {table}.{col}"),
            format!("rule: {rule}; {reason}"),
            format!("name the other columns of {table} explicitly"),
        ));
    }
    None
}

/// Masked columns may reach the client only as plain output columns of the
/// top-level SELECT, where pgward masks them in the result stream. Any other
/// use (an expression, a predicate, a subquery, a set operation, a whole-row
/// reference, a view, COPY) could carry the clear value out, so it is refused
/// unless a role unmasks the column. In a view definition every use counts.
fn check_masks(
    g: &Grants,
    c: &Classification,
    view: &SessionView,
    in_view: bool,
) -> Option<Decision> {
    let reads_table = |c: &Classification, table: &str| {
        c.reads
            .iter()
            .any(|n| resolve(n, view).is_ok_and(|rs| rs.iter().any(|r| same(r, table))))
    };
    let masks = view.masks?;
    if masks.is_empty() {
        return None;
    }
    for ((table, col), rule) in &masks.rules {
        if g.any(|r| {
            r.unmask
                .iter()
                .any(|(t, uc)| same(t, table) && same(uc, col))
        }) {
            continue;
        }
        // A use of the column itself, or of a view column that shows it.
        let names = |cols: &std::collections::BTreeMap<
            crate::sql::Name,
            std::collections::BTreeSet<String>,
        >| {
            cols.iter().any(|(name, cols)| {
                let used = |c: &str| cols.iter().any(|x| same(x, c) || x == "*");
                resolve(name, view).is_ok_and(|rs| {
                    rs.iter().any(|r| {
                        (same(r, table) && used(col))
                            || view.catalog.is_some_and(|cat| {
                                cat.view_column_bases(r).iter().any(|(vc, bt, bc)| {
                                    same(bt, table) && same(bc, col) && used(vc)
                                })
                            })
                    })
                })
            })
        };
        let mut used = names(&c.indirect_columns)
            || (!rule.allow_predicates
                && (names(&c.predicate_columns)
                    || (c.predicate_unscoped.iter().any(|x| same(x, col))
                        && reads_table(c, table))))
            || (c.unscoped_columns.iter().any(|x| same(x, col)) && reads_table(c, table));
        if in_view && !used && names(&c.columns) {
            // A view may show a masked column as one of its own columns (it is
            // then masked in place), but only if pgward can tell which one.
            let mapped = c.outputs.as_ref().is_some_and(|outs| {
                outs.iter().flatten().any(|(n, oc)| {
                    same(oc, col)
                        && resolve(n, view).is_ok_and(|rs| rs.iter().any(|r| same(r, table)))
                })
            });
            used = !mapped;
        }
        if used {
            return Some(g.deny(
                format!("use the masked column {table}.{col} here"),
                "rule: masks; a masked column may only be selected as a plain output column, where pgward masks it".into(),
                format!("select {col} directly, or leave it out of expressions, predicates, views, COPY and whole-row references"),
            ));
        }
    }
    None
}

/// Names compared with masks, `deny_columns` and `unmask` as written in the
/// config: ASCII case does not matter. For masks and denials that errs on the
/// side of masking and denying (`"User"."emailAddress"` is masked by
/// `public.user.emailaddress`); PostgreSQL folds only ASCII letters.
fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn describe_op(op: Operation) -> String {
    match op {
        Operation::CopyOut => "COPY ... TO STDOUT".into(),
        Operation::CopyIn => "COPY ... FROM STDIN".into(),
        Operation::Ddl => "DDL (CREATE, ALTER, DROP, GRANT, ...)".into(),
        other => other.name().to_uppercase(),
    }
}

fn ops_list(r: &Role) -> String {
    if r.operations.is_empty() {
        return "none".into();
    }
    r.operations
        .iter()
        .map(|o| o.name())
        .collect::<Vec<_>>()
        .join(", ")
}

fn fn_list(r: &Role) -> String {
    if r.functions.is_empty() {
        return "built-ins only".into();
    }
    r.functions.iter().cloned().collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod cascade_tests {
    use super::*;
    use crate::policy::Policy;
    use crate::sql::classify::classify;

    #[test]
    fn cascade_needs_a_role_that_may_write_everything() {
        let policy = Policy::from_toml(
            "[roles.narrow]\noperations = [\"ddl\", \"truncate\"]\nread = [\"*.*\"]\nwrite = [\"public.parent\"]\n\n[roles.all]\noperations = [\"ddl\", \"truncate\"]\nread = [\"*.*\"]\nwrite = [\"*.*\"]\n",
        )
        .unwrap();
        let path = ["public".to_string()];
        let view = SessionView {
            database: "d",
            upstream_database: "d",
            masks: None,
            catalog: None,
            search_path: &path,
        };
        let allowed = |role: &str, sql: &str| {
            decide(
                &policy.roles_of(&[role.to_string()]),
                &classify(sql).unwrap(),
                &view,
            )
            .is_allowed()
        };
        for sql in [
            "TRUNCATE parent CASCADE",
            "DROP TABLE parent CASCADE",
            "ALTER TABLE parent DROP COLUMN v CASCADE",
        ] {
            assert!(!allowed("narrow", sql), "{sql}");
            assert!(allowed("all", sql), "{sql}");
        }
        assert!(allowed("narrow", "TRUNCATE parent"));
    }
}
