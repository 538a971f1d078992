//! The classifier: parses SQL with sqlparser (PostgreSqlDialect) and walks the
//! whole tree, statements nested in CTEs, EXPLAIN and PREPARE included, to say
//! what it does. Anything it cannot analyse fully is an error, and the policy
//! denies errors: pgward fails closed.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use sqlparser::ast::{
    CopySource, CopyTarget, Expr, FromTable, FunctionArg, FunctionArgExpr, FunctionArguments,
    Ident, Insert, ObjectName, ObjectNamePart, ObjectType, OnConflictAction, OnInsert, Query,
    Reset, ResetStatement, SchemaName, Select, SelectItem, Set, Statement, TableFactor,
    TableObject, Value, Visit, Visitor,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use thiserror::Error;

use super::classification::{Classification, Name, Operation};

/// Why a statement could not be classified.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ClassifyError {
    /// sqlparser could not parse the text.
    #[error("cannot parse the statement: {0}")]
    Parse(String),
    /// The statement parses but pgward does not analyse its kind.
    #[error("{0} is not analysed by pgward")]
    Unsupported(String),
}

/// Classifies all the statements in `sql`.
pub fn classify(sql: &str) -> Result<Classification, ClassifyError> {
    let statements = match Parser::parse_sql(&PostgreSqlDialect {}, sql) {
        Ok(s) => s,
        Err(e) => {
            return super::fallback::copy_fallback(sql)
                .or_else(|| super::fallback::maintenance_fallback(sql))
                .ok_or_else(|| ClassifyError::Parse(e.to_string()))
        }
    };
    let mut c = Classification {
        statements: statements.len(),
        ..Classification::default()
    };
    let mut walker = Walker::new(&mut c);
    for s in &statements {
        if let ControlFlow::Break(e) = s.visit(&mut walker) {
            return Err(e);
        }
    }
    Ok(c)
}

/// An identifier as PostgreSQL sees it: unquoted ones fold to lower case.
fn ident(i: &Ident) -> String {
    if i.quote_style.is_some() {
        i.value.clone()
    } else {
        i.value.to_lowercase()
    }
}

/// An object name as written, or `None` for forms PostgreSQL has no use for.
fn object_name(n: &ObjectName) -> Option<Name> {
    let parts: Vec<String> =
        n.0.iter()
            .map(|p| match p {
                ObjectNamePart::Identifier(i) => Some(ident(i)),
                _ => None,
            })
            .collect::<Option<_>>()?;
    match parts.as_slice() {
        [name] => Some(Name::bare(name)),
        [schema, name] => Some(Name::qualified(schema, name)),
        [catalog, schema, name] => Some(Name {
            catalog: Some(catalog.clone()),
            ..Name::qualified(schema, name)
        }),
        _ => None,
    }
}

fn name_of(n: &ObjectName) -> Result<Name, ClassifyError> {
    object_name(n).ok_or_else(|| ClassifyError::Unsupported(format!("the name {n}")))
}

/// A string literal argument.
fn string_literal(e: &Expr) -> Option<String> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s)
            | Value::EscapedStringLiteral(s)
            | Value::DollarQuotedString(sqlparser::ast::DollarQuotedString { value: s, .. }) => {
                Some(s.clone())
            }
            _ => None,
        },
        Expr::Cast { expr, .. } => string_literal(expr),
        Expr::Nested(e) => string_literal(e),
        _ => None,
    }
}

fn first_arg(args: &FunctionArguments) -> Option<&Expr> {
    match args {
        FunctionArguments::List(l) => match l.args.first()? {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
            FunctionArg::Named {
                arg: FunctionArgExpr::Expr(e),
                ..
            } => Some(e),
            _ => None,
        },
        _ => None,
    }
}

/// A setting name as PostgreSQL compares them (case-insensitive).
fn setting_name(n: &ObjectName) -> String {
    n.to_string().to_lowercase()
}

/// Settings that change who the session is: never allowed through pgward.
const IDENTITY_SETTINGS: &[&str] = &["role", "session_authorization", "session authorization"];

/// Settings that change how pgward must read later statements.
const LEXER_SETTINGS: &[&str] = &[];

/// One FROM item visible to column references: the name it is referred to by
/// (alias or table name) and the base relation behind it (none for derived
/// tables, CTEs and functions).
#[derive(Debug, Clone)]
struct ScopeRel {
    name: String,
    relation: Option<Name>,
}

/// The CTEs one WITH clause defines, and how many are visible right now.
struct Scope {
    query: *const Query,
    ctes: Vec<(String, *const Query)>,
    recursive: bool,
    visible: usize,
}

struct Walker<'c> {
    c: &'c mut Classification,
    /// Relation names that are write targets (pointer identity in the tree).
    write_targets: Vec<*const ObjectName>,
    /// Write targets that are also read (UPDATE, DELETE, MERGE, RETURNING).
    read_write_targets: Vec<*const ObjectName>,
    /// Names that look like relations but are table functions or handled already.
    skip: Vec<*const ObjectName>,
    scopes: Vec<Scope>,
    /// Depth of DDL statements being walked: their relations are written.
    ddl: usize,
    /// For each statement being walked, whether it raised `ddl`.
    ddl_stack: Vec<bool>,
    /// FROM items of the SELECTs (and UPDATE/DELETE/MERGE) being walked,
    /// innermost last, for attributing column references to relations.
    column_scopes: Vec<Vec<ScopeRel>>,
    /// For each statement being walked, whether it pushed a column scope.
    statement_scoped: Vec<bool>,
    /// The SELECT whose output columns reach the client as they are: the
    /// top-level SELECT of a top-level query (not a set operation).
    top_select: Option<*const Select>,
    /// Bare column references in that SELECT's output list.
    direct_exprs: Vec<*const Expr>,
    /// Whether the column being attributed is a direct output (see above).
    direct: bool,
    /// Roots of predicate expressions (WHERE, HAVING, JOIN ON) of the SELECTs
    /// being walked, and how deep inside predicates the walk is (ORDER BY and
    /// GROUP BY count too).
    predicate_roots: Vec<*const Expr>,
    in_predicate: usize,
}

impl<'c> Walker<'c> {
    fn new(c: &'c mut Classification) -> Self {
        Walker {
            c,
            write_targets: Vec::new(),
            read_write_targets: Vec::new(),
            skip: Vec::new(),
            scopes: Vec::new(),
            ddl: 0,
            ddl_stack: Vec::new(),
            column_scopes: Vec::new(),
            statement_scoped: Vec::new(),
            top_select: None,
            direct_exprs: Vec::new(),
            direct: false,
            predicate_roots: Vec::new(),
            in_predicate: 0,
        }
    }

    fn op(&mut self, op: Operation) {
        self.c.operations.insert(op);
    }

    fn forbid(&mut self, reason: impl Into<String>) {
        self.c.forbidden.push(reason.into());
    }

    fn target(&mut self, n: &ObjectName, also_read: bool) {
        if also_read {
            self.read_write_targets.push(n);
        } else {
            self.write_targets.push(n);
        }
    }

    fn table_factor_target(
        &mut self,
        t: &TableFactor,
        also_read: bool,
    ) -> ControlFlow<ClassifyError> {
        match t {
            TableFactor::Table {
                name, args: None, ..
            } => {
                self.target(name, also_read);
                ControlFlow::Continue(())
            }
            other => ControlFlow::Break(ClassifyError::Unsupported(format!("writing to {other}"))),
        }
    }

    /// True if an unqualified name refers to a CTE visible here.
    fn is_cte(&self, name: &Name) -> bool {
        if name.schema.is_some() || name.catalog.is_some() {
            return false;
        }
        self.scopes
            .iter()
            .any(|s| s.ctes[..s.visible].iter().any(|(n, _)| *n == name.name))
    }

    fn returning(&mut self, items: Option<&Vec<SelectItem>>) {
        if let Some(items) = items {
            self.wildcards(items);
        }
    }

    fn wildcards(&mut self, items: &[SelectItem]) {
        if items.iter().any(|i| {
            matches!(
                i,
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
            )
        }) {
            self.c.wildcard = true;
        }
    }

    /// The FROM items of a FROM list, with the names they are referred to by.
    fn scope_of(&self, from: &[sqlparser::ast::TableWithJoins]) -> Vec<ScopeRel> {
        let mut out = Vec::new();
        for t in from {
            self.scope_factor(&t.relation, &mut out);
            for j in &t.joins {
                self.scope_factor(&j.relation, &mut out);
            }
        }
        out
    }

    fn scope_factor(&self, t: &TableFactor, out: &mut Vec<ScopeRel>) {
        match t {
            TableFactor::Table {
                name,
                alias,
                args: None,
                ..
            } => {
                let Some(n) = object_name(name) else { return };
                let relation = (!self.is_cte(&n)).then(|| n.clone());
                let referred = alias.as_ref().map_or(n.name.clone(), |a| ident(&a.name));
                out.push(ScopeRel {
                    name: referred,
                    relation,
                });
            }
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => {
                self.scope_factor(&table_with_joins.relation, out);
                for j in &table_with_joins.joins {
                    self.scope_factor(&j.relation, out);
                }
            }
            TableFactor::Derived { alias: Some(a), .. }
            | TableFactor::Function { alias: Some(a), .. }
            | TableFactor::UNNEST { alias: Some(a), .. }
            | TableFactor::Table { alias: Some(a), .. } => out.push(ScopeRel {
                name: ident(&a.name),
                relation: None,
            }),
            _ => {}
        }
    }

    /// Records that `column` of the relation referred to as `qualifier` (or of
    /// every relation in scope, when unqualified) is read; `*` means all.
    fn attribute(&mut self, qualifier: Option<&str>, column: &str) {
        let mut found = false;
        for scope in self.column_scopes.iter().rev() {
            for r in scope {
                let matches = qualifier.is_none_or(|q| {
                    q == r.name || r.relation.as_ref().is_some_and(|n| n.name == q)
                });
                if matches {
                    found = true;
                    if let Some(rel) = &r.relation {
                        self.c
                            .columns
                            .entry(rel.clone())
                            .or_default()
                            .insert(column.to_string());
                        if self.in_predicate > 0 {
                            self.c
                                .predicate_columns
                                .entry(rel.clone())
                                .or_default()
                                .insert(column.to_string());
                        } else if !self.direct {
                            self.c
                                .indirect_columns
                                .entry(rel.clone())
                                .or_default()
                                .insert(column.to_string());
                        }
                    }
                }
            }
            if found && qualifier.is_some() {
                return;
            }
        }
        if !found {
            if self.in_predicate > 0 {
                self.c.predicate_unscoped.insert(column.to_string());
            } else {
                self.c.unscoped_columns.insert(column.to_string());
            }
        }
    }

    /// A bare name may be a column or, if it names a FROM item, its whole row.
    fn attribute_bare(&mut self, name: &str) {
        let whole_row = self.column_scopes.iter().flatten().any(|r| r.name == name);
        if whole_row {
            // A whole row is one composite value: never a plain output column.
            let direct = std::mem::replace(&mut self.direct, false);
            self.attribute(Some(name), "*");
            self.direct = direct;
        }
        self.attribute(None, name);
    }

    fn insert(&mut self, i: &Insert) -> ControlFlow<ClassifyError> {
        self.op(Operation::Insert);
        let upsert = matches!(
            &i.on,
            Some(OnInsert::OnConflict(oc)) if matches!(oc.action, OnConflictAction::DoUpdate(_))
        );
        if upsert {
            self.op(Operation::Update);
        }
        if matches!(i.on, Some(OnInsert::DuplicateKeyUpdate(_))) {
            return ControlFlow::Break(ClassifyError::Unsupported("ON DUPLICATE KEY".into()));
        }
        self.returning(i.returning.as_ref());
        match &i.table {
            TableObject::TableName(n) => {
                self.target(n, upsert || i.returning.is_some());
                ControlFlow::Continue(())
            }
            _ => ControlFlow::Break(ClassifyError::Unsupported("INSERT into a function".into())),
        }
    }

    fn set(&mut self, s: &Set) -> ControlFlow<ClassifyError> {
        match s {
            Set::SingleAssignment {
                variable, values, ..
            } => {
                let name = setting_name(variable);
                if name == "search_path" {
                    self.search_path_values(values);
                }
                self.setting(name)
            }
            Set::ParenthesizedAssignments { variables, .. } => {
                for v in variables {
                    self.setting(setting_name(v));
                }
            }
            Set::MultipleAssignments { assignments } => {
                for a in assignments {
                    self.setting(setting_name(&a.name));
                }
            }
            Set::SetRole { .. } => self.forbid("SET ROLE changes the session's identity"),
            Set::SetSessionAuthorization(_) => {
                self.forbid("SET SESSION AUTHORIZATION changes the session's identity")
            }
            Set::SetTimeZone { .. } => self.setting("timezone".into()),
            Set::SetNames { .. } | Set::SetNamesDefault {} => {
                self.setting("client_encoding".into())
            }
            Set::SetTransaction { .. } => self.op(Operation::Transaction),
            Set::SetSessionParam(_) => {
                return ControlFlow::Break(ClassifyError::Unsupported("this SET form".into()))
            }
        }
        ControlFlow::Continue(())
    }

    /// Records the schemas of `SET search_path TO a, "B", 'c, d'`.
    fn search_path_values(&mut self, values: &[Expr]) {
        // The value decides how later names resolve, so it is part of the
        // classification even when written as a string literal.
        self.c.literal_sensitive = true;
        for v in values {
            match v {
                Expr::Identifier(i) => self.c.search_path.push(ident(i)),
                other => match string_literal(other) {
                    Some(text) => self.search_path_text(&text),
                    None => self.forbid("SET search_path to something other than schema names"),
                },
            }
        }
    }

    /// Records the schemas of a search_path string such as `a, "B"`.
    fn search_path_text(&mut self, text: &str) {
        self.c.literal_sensitive = true;
        for part in text.split(',') {
            let p = part.trim();
            if p.is_empty() {
                continue;
            }
            let schema = match p.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                Some(quoted) => quoted.replace("\"\"", "\""),
                None => p.to_lowercase(),
            };
            self.c.search_path.push(schema);
        }
    }

    fn setting(&mut self, name: String) {
        if IDENTITY_SETTINGS.contains(&name.as_str()) {
            self.forbid(format!("setting {name} changes the session's identity"));
        }
        if LEXER_SETTINGS.contains(&name.as_str()) {
            self.forbid(format!("changing {name} mid-session"));
        }
        self.op(Operation::Set);
        self.c.settings.insert(name);
    }

    fn statement(&mut self, s: &Statement) -> ControlFlow<ClassifyError> {
        use Statement as S;
        match s {
            S::Query(_) => self.op(Operation::Select),
            S::Insert(i) => return self.insert(i),
            S::Update(u) => {
                self.op(Operation::Update);
                self.returning(u.returning.as_ref());
                return self.table_factor_target(&u.table.relation, true);
            }
            S::Delete(d) => {
                self.op(Operation::Delete);
                self.returning(d.returning.as_ref());
                for t in &d.tables {
                    self.target(t, true);
                }
                let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = &d.from;
                for t in from {
                    if let ControlFlow::Break(e) = self.table_factor_target(&t.relation, true) {
                        return ControlFlow::Break(e);
                    }
                }
            }
            S::Merge(m) => {
                self.op(Operation::Merge);
                return self.table_factor_target(&m.table, true);
            }
            S::Copy {
                source, to, target, ..
            } => {
                match target {
                    CopyTarget::Stdin | CopyTarget::Stdout => {}
                    CopyTarget::File { .. } | CopyTarget::Program { .. } => {
                        self.forbid("COPY to or from a server file or program")
                    }
                }
                self.op(if *to {
                    Operation::CopyOut
                } else {
                    Operation::CopyIn
                });
                if let CopySource::Table { table_name, .. } = source {
                    let name = match object_name(table_name) {
                        Some(n) => n,
                        None => {
                            return ControlFlow::Break(ClassifyError::Unsupported(format!(
                                "the name {table_name}"
                            )))
                        }
                    };
                    self.skip.push(table_name);
                    if *to {
                        self.c
                            .columns
                            .entry(name.clone())
                            .or_default()
                            .insert("*".into());
                        // COPY rows are not masked in place (yet): an indirect use.
                        self.c
                            .indirect_columns
                            .entry(name.clone())
                            .or_default()
                            .insert("*".into());
                        self.c.reads.insert(name);
                        self.c.wildcard = true;
                    } else {
                        self.c.writes.insert(name);
                    }
                }
            }
            S::Truncate(t) => {
                self.op(Operation::Truncate);
                for n in &t.table_names {
                    self.target(&n.name, false);
                }
            }
            S::StartTransaction { .. }
            | S::Commit { .. }
            | S::Rollback { .. }
            | S::Savepoint { .. }
            | S::ReleaseSavepoint { .. } => self.op(Operation::Transaction),
            S::Set(set) => return self.set(set),
            S::Reset(ResetStatement { reset }) => match reset {
                Reset::ALL => self.setting("all".into()),
                Reset::SessionAuthorization => {
                    self.forbid("RESET SESSION AUTHORIZATION changes the session's identity")
                }
                Reset::ConfigurationParameter(n) => self.setting(setting_name(n)),
            },
            S::ShowVariable { variable } => {
                self.op(Operation::Show);
                let words: Vec<String> = variable.iter().map(|i| i.value.to_lowercase()).collect();
                let spaced = words.join(" ");
                // The parser splits `a.b` into words; only a few SHOW forms
                // really are several words.
                let name = match spaced.as_str() {
                    "time zone" | "transaction isolation level" | "session authorization" => spaced,
                    _ => words.join("."),
                };
                self.c.settings_read.insert(name);
            }
            S::Explain { .. } => {}
            S::Prepare { .. } => self.op(Operation::Prepare),
            S::Execute { .. } => {
                self.forbid("EXECUTE of an SQL-level prepared statement is not analysed")
            }
            S::Deallocate { .. } => self.op(Operation::Prepare),
            S::Declare { .. } | S::Fetch { .. } | S::Close { .. } => self.op(Operation::Cursor),
            S::LISTEN { .. } | S::UNLISTEN { .. } => self.op(Operation::Listen),
            S::NOTIFY { .. } => self.op(Operation::Notify),
            S::Lock(_) => self.op(Operation::Lock),
            S::Vacuum(_) | S::Analyze(_) => self.op(Operation::Maintenance),
            S::Discard { .. } => self.op(Operation::Discard),
            S::Call(_) => self.forbid("CALL runs a procedure pgward cannot analyse"),
            S::CreateRole(_)
            | S::AlterRole { .. }
            | S::CreateUser(_)
            | S::AlterUser(_)
            | S::GrantRole(_)
            | S::RevokeRole(_)
            | S::CreateExtension(_)
            | S::DropExtension(_)
            | S::CreateServer(_)
            | S::CreateUserMapping(_)
            | S::CreateForeignDataWrapper(_)
            | S::CreateDatabase { .. }
            | S::Load { .. } => {
                self.forbid(format!("{} needs the database owner", statement_kind(s)))
            }
            S::CreateTable(_)
            | S::CreateView(_)
            | S::CreateIndex(_)
            | S::CreateSchema { .. }
            | S::CreateSequence { .. }
            | S::CreateType { .. }
            | S::CreateDomain(_)
            | S::CreateFunction(_)
            | S::CreateTrigger(_)
            | S::CreatePolicy(_)
            | S::AlterTable(_)
            | S::AlterIndex { .. }
            | S::AlterView(_)
            | S::AlterSchema(_)
            | S::AlterType(_)
            | S::AlterPolicy(_)
            | S::Drop { .. }
            | S::DropFunction(_)
            | S::DropTrigger(_)
            | S::DropPolicy(_)
            | S::DropDomain(_)
            | S::Comment { .. }
            | S::Grant(_)
            | S::Revoke(_)
            | S::RenameTable(_)
            | S::CreateForeignTable(_)
            | S::CreateRule(_)
            | S::CreateOperator(_)
            | S::CreateOperatorFamily(_)
            | S::CreateOperatorClass(_)
            | S::CreateTextSearch(_)
            | S::CreateAggregate(_)
            | S::CreateCollation(_)
            | S::CreateProcedure { .. }
            | S::AlterFunction(_)
            | S::AlterCollation(_)
            | S::AlterOperator(_)
            | S::AlterOperatorFamily(_)
            | S::AlterOperatorClass(_)
            | S::AlterTextSearch(_)
            | S::AlterTrigger(_)
            | S::AlterDefaultPrivileges(_)
            | S::DropProcedure { .. }
            | S::DropRule(_)
            | S::DropOperator(_)
            | S::DropOperatorFamily(_)
            | S::DropOperatorClass(_) => {
                self.op(Operation::Ddl);
                self.ddl += 1;
                if let S::Drop {
                    names, object_type, ..
                } = s
                {
                    return self.drop(names, object_type);
                }
                if let S::CreateSchema { schema_name, .. } = s {
                    return self.create_schema(schema_name);
                }
            }
            other => return ControlFlow::Break(ClassifyError::Unsupported(statement_kind(other))),
        }
        ControlFlow::Continue(())
    }

    fn drop(&mut self, names: &[ObjectName], kind: &ObjectType) -> ControlFlow<ClassifyError> {
        for n in names {
            let Some(name) = object_name(n) else {
                return ControlFlow::Break(ClassifyError::Unsupported(format!("the name {n}")));
            };
            match kind {
                // Dropping a schema drops everything in it.
                ObjectType::Schema => {
                    self.c.writes.insert(Name::qualified(&name.name, "*"));
                }
                ObjectType::Database | ObjectType::Role | ObjectType::User => {
                    self.forbid(format!("DROP {kind}"));
                }
                _ => {
                    self.c.writes.insert(name);
                }
            }
            // The names were recorded here; the walker must not add them again.
            self.skip.push(n);
        }
        ControlFlow::Continue(())
    }

    /// Creating a schema is writing everything that will be in it.
    fn create_schema(&mut self, schema: &SchemaName) -> ControlFlow<ClassifyError> {
        match schema {
            SchemaName::Simple(n) | SchemaName::NamedAuthorization(n, _) => match object_name(n) {
                Some(name) => {
                    self.c.writes.insert(Name::qualified(&name.name, "*"));
                }
                None => {
                    return ControlFlow::Break(ClassifyError::Unsupported(format!("the name {n}")))
                }
            },
            SchemaName::UnnamedAuthorization(_) => self.forbid("CREATE SCHEMA AUTHORIZATION"),
        }
        ControlFlow::Continue(())
    }

    fn function_call(&mut self, f: &sqlparser::ast::Function) -> ControlFlow<ClassifyError> {
        let Some(name) = object_name(&f.name) else {
            return ControlFlow::Break(ClassifyError::Unsupported(format!(
                "the function name {}",
                f.name
            )));
        };
        let unqualified_or_catalog = name.schema.as_deref().is_none_or(|s| s == "pg_catalog");
        if unqualified_or_catalog {
            let first = first_arg(&f.args);
            match name.name.as_str() {
                "set_config" => {
                    self.c.literal_sensitive = true;
                    match first.and_then(string_literal) {
                        Some(setting) => {
                            let setting = setting.to_lowercase();
                            if setting == "search_path" {
                                let value = match &f.args {
                                    FunctionArguments::List(l) => match l.args.get(1) {
                                        Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(e))) => {
                                            string_literal(e)
                                        }
                                        _ => None,
                                    },
                                    _ => None,
                                };
                                match value {
                                    Some(v) => self.search_path_text(&v),
                                    None => self.forbid("set_config of search_path to a value that is not a literal"),
                                }
                            }
                            self.setting(setting)
                        }
                        None => self.forbid("set_config with a setting name that is not a literal"),
                    }
                }
                "current_setting" => {
                    self.c.literal_sensitive = true;
                    match first.and_then(string_literal) {
                        Some(setting) => {
                            self.c.settings_read.insert(setting.to_lowercase());
                        }
                        None => {
                            self.forbid("current_setting with a setting name that is not a literal")
                        }
                    }
                }
                "nextval" | "setval" | "currval" => {
                    self.c.literal_sensitive = true;
                    match first
                        .and_then(string_literal)
                        .and_then(|s| parse_relation_literal(&s))
                    {
                        Some(seq) => {
                            if name.name != "currval" {
                                self.c.writes.insert(seq.clone());
                            }
                            self.c.reads.insert(seq);
                        }
                        None => self.forbid(format!(
                            "{} with a sequence that is not a literal",
                            name.name
                        )),
                    }
                }
                "pg_notify" => self.op(Operation::Notify),
                _ => {}
            }
        }
        // `f(t.*)` passes a whole row of `t`.
        if let FunctionArguments::List(l) = &f.args {
            for a in &l.args {
                let (FunctionArg::Unnamed(arg) | FunctionArg::Named { arg, .. }) = a else {
                    continue;
                };
                if let FunctionArgExpr::QualifiedWildcard(q) = arg {
                    if let Some(n) = object_name(q) {
                        self.attribute(Some(&n.name), "*");
                    }
                }
            }
        }
        self.c.functions.insert(name);
        ControlFlow::Continue(())
    }
}

/// Parses `'schema.name'` as regclass input does (quotes honoured).
fn parse_relation_literal(s: &str) -> Option<Name> {
    let stmt = format!("SELECT * FROM {s}");
    let parsed = Parser::parse_sql(&PostgreSqlDialect {}, &stmt).ok()?;
    let [Statement::Query(q)] = parsed.as_slice() else {
        return None;
    };
    let sqlparser::ast::SetExpr::Select(sel) = q.body.as_ref() else {
        return None;
    };
    let [t] = sel.from.as_slice() else {
        return None;
    };
    match &t.relation {
        TableFactor::Table {
            name,
            args: None,
            alias: None,
            ..
        } if t.joins.is_empty() => object_name(name),
        _ => None,
    }
}

/// The RETURNING list of a data-modifying statement.
fn returning_of(s: &Statement) -> Option<&Vec<SelectItem>> {
    match s {
        Statement::Insert(i) => i.returning.as_ref(),
        Statement::Update(u) => u.returning.as_ref(),
        Statement::Delete(d) => d.returning.as_ref(),
        _ => None,
    }
}

/// The first words of a statement, for messages.
fn statement_kind(s: &Statement) -> String {
    let text = s.to_string();
    let words: Vec<&str> = text.split_whitespace().take(2).collect();
    words.join(" ").to_uppercase()
}

impl Visitor for Walker<'_> {
    type Break = ClassifyError;

    fn pre_visit_statement(&mut self, s: &Statement) -> ControlFlow<ClassifyError> {
        if self.ddl_stack.is_empty() {
            // A top-level statement: only a plain SELECT's output list reaches
            // the client column by column.
            self.top_select = match s {
                Statement::Query(q) => match q.body.as_ref() {
                    sqlparser::ast::SetExpr::Select(sel) => Some(&**sel as *const Select),
                    _ => None,
                },
                _ => None,
            };
        }
        let depth = self.ddl;
        let flow = self.statement(s);
        self.ddl_stack.push(self.ddl > depth);
        // UPDATE, DELETE and MERGE see their target and FROM/USING items.
        let scope = match s {
            Statement::Update(u) => {
                let mut items = vec![u.table.clone()];
                if let Some(
                    sqlparser::ast::UpdateTableFromKind::BeforeSet(f)
                    | sqlparser::ast::UpdateTableFromKind::AfterSet(f),
                ) = &u.from
                {
                    items.extend(f.iter().cloned());
                }
                Some(self.scope_of(&items))
            }
            Statement::Delete(d) => {
                let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = &d.from;
                let mut items = from.clone();
                items.extend(d.using.iter().flatten().cloned());
                Some(self.scope_of(&items))
            }
            Statement::Merge(m) => {
                let mut out = Vec::new();
                self.scope_factor(&m.table, &mut out);
                self.scope_factor(&m.source, &mut out);
                Some(out)
            }
            Statement::Insert(i) => {
                if let TableObject::TableName(n) = &i.table {
                    if let Some(name) = object_name(n) {
                        for col in &i.columns {
                            if let Some(c) = object_name(col) {
                                self.c
                                    .columns
                                    .entry(name.clone())
                                    .or_default()
                                    .insert(c.name);
                            }
                        }
                        let referred = i
                            .table_alias
                            .as_ref()
                            .map_or(name.name.clone(), |a| ident(&a.alias));
                        Some(vec![ScopeRel {
                            name: referred,
                            relation: Some(name),
                        }])
                    } else {
                        None
                    }
                } else {
                    None
                }
            }
            _ => None,
        };
        let scoped = scope.is_some();
        if let Some(scope) = scope {
            self.column_scopes.push(scope);
            if let Some(items) = returning_of(s) {
                if items.iter().any(|i| {
                    matches!(
                        i,
                        SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
                    )
                }) {
                    self.attribute(None, "*");
                }
            }
        }
        self.statement_scoped.push(scoped);
        flow
    }

    fn post_visit_statement(&mut self, _: &Statement) -> ControlFlow<ClassifyError> {
        if self.ddl_stack.pop() == Some(true) {
            self.ddl -= 1;
        }
        if self.statement_scoped.pop() == Some(true) {
            self.column_scopes.pop();
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<ClassifyError> {
        let ptr: *const Query = q;
        for s in self.scopes.iter_mut() {
            if let Some(i) = s.ctes.iter().position(|(_, body)| *body == ptr) {
                // Inside a CTE's body only the CTEs before it are visible
                // (all of them, itself included, under WITH RECURSIVE).
                s.visible = if s.recursive { s.ctes.len() } else { i };
            }
        }
        if !q.locks.is_empty() {
            self.op(Operation::Lock);
        }
        if let Some(with) = &q.with {
            let ctes = with
                .cte_tables
                .iter()
                .map(|c| (ident(&c.alias.name), &*c.query as *const Query))
                .collect::<Vec<_>>();
            self.scopes.push(Scope {
                query: ptr,
                visible: 0,
                ctes,
                recursive: with.recursive,
            });
        }
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, q: &Query) -> ControlFlow<ClassifyError> {
        let ptr: *const Query = q;
        if self.scopes.last().is_some_and(|s| s.query == ptr) {
            self.scopes.pop();
        }
        for s in self.scopes.iter_mut() {
            if s.ctes.iter().any(|(_, body)| *body == ptr) {
                s.visible = s.ctes.len();
            }
        }
        // Once the WITH clause is walked, the main body sees every CTE.
        if let Some(s) = self.scopes.last_mut() {
            if s.query == ptr {
                s.visible = s.ctes.len();
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_select(&mut self, _: &Select) -> ControlFlow<ClassifyError> {
        self.column_scopes.pop();
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, s: &Select) -> ControlFlow<ClassifyError> {
        self.wildcards(&s.projection);
        let scope = self.scope_of(&s.from);
        self.column_scopes.push(scope);
        if let Some(w) = &s.selection {
            self.predicate_roots.push(w);
        }
        if let Some(h) = &s.having {
            self.predicate_roots.push(h);
        }
        for t in &s.from {
            for j in &t.joins {
                use sqlparser::ast::{JoinConstraint as C, JoinOperator as J};
                let constraint = match &j.join_operator {
                    J::Join(c)
                    | J::Inner(c)
                    | J::Left(c)
                    | J::LeftOuter(c)
                    | J::Right(c)
                    | J::RightOuter(c)
                    | J::FullOuter(c)
                    | J::CrossJoin(c)
                    | J::Semi(c)
                    | J::LeftSemi(c)
                    | J::RightSemi(c)
                    | J::Anti(c)
                    | J::LeftAnti(c)
                    | J::RightAnti(c)
                    | J::StraightJoin(c) => Some(c),
                    J::AsOf { constraint, .. } => Some(constraint),
                    _ => None,
                };
                if let Some(C::On(e)) = constraint {
                    self.predicate_roots.push(e);
                }
            }
        }
        let top = self.top_select == Some(s as *const Select) && s.into.is_none();
        if top {
            // Which base column each output column is, where it is one.
            let scope = self.column_scopes.last().cloned().unwrap_or_default();
            let base_of = |qualifier: Option<&str>, col: &str| -> Option<(Name, String)> {
                let candidates: Vec<&ScopeRel> = scope
                    .iter()
                    .filter(|r| {
                        qualifier.is_none_or(|q| {
                            q == r.name || r.relation.as_ref().is_some_and(|n| n.name == q)
                        })
                    })
                    .collect();
                match candidates.as_slice() {
                    [one] => one.relation.clone().map(|n| (n, col.to_string())),
                    _ => None,
                }
            };
            let mut outputs = Vec::new();
            let mut complete = true;
            for item in &s.projection {
                match item {
                    SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                        outputs.push(match e {
                            Expr::Identifier(i) => base_of(None, &ident(i)),
                            Expr::CompoundIdentifier(parts) if parts.len() >= 2 => base_of(
                                Some(&ident(&parts[parts.len() - 2])),
                                &ident(&parts[parts.len() - 1]),
                            ),
                            _ => None,
                        })
                    }
                    // A * expands to columns pgward cannot count without the catalog.
                    _ => complete = false,
                }
            }
            self.c.outputs = complete.then_some(outputs);
            for item in &s.projection {
                let e = match item {
                    SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
                    _ => continue,
                };
                if matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) {
                    self.direct_exprs.push(e);
                }
            }
        }
        self.direct = top;
        for item in &s.projection {
            match item {
                SelectItem::Wildcard(_) => self.attribute(None, "*"),
                SelectItem::QualifiedWildcard(
                    sqlparser::ast::SelectItemQualifiedWildcardKind::ObjectName(n),
                    _,
                ) => match object_name(n) {
                    Some(q) => self.attribute(Some(&q.name), "*"),
                    None => self.attribute(None, "*"),
                },
                SelectItem::QualifiedWildcard(..) => self.attribute(None, "*"),
                _ => {}
            }
        }
        self.direct = false;
        if let Some(into) = &s.into {
            self.op(Operation::Ddl);
            for t in &into.targets {
                if let Expr::Identifier(i) = t {
                    self.c.writes.insert(Name::bare(&ident(i)));
                } else if let Expr::CompoundIdentifier(parts) = t {
                    let n = ObjectName(
                        parts
                            .iter()
                            .cloned()
                            .map(ObjectNamePart::Identifier)
                            .collect(),
                    );
                    match object_name(&n) {
                        Some(n) => {
                            self.c.writes.insert(n);
                        }
                        None => {
                            return ControlFlow::Break(ClassifyError::Unsupported(
                                "SELECT INTO this target".into(),
                            ))
                        }
                    }
                } else {
                    return ControlFlow::Break(ClassifyError::Unsupported(
                        "SELECT INTO this target".into(),
                    ));
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<ClassifyError> {
        if let TableFactor::Table {
            name,
            args: Some(_),
            ..
        } = t
        {
            // A function in FROM (generate_series(...), unnest(...)).
            self.skip.push(name);
            match object_name(name) {
                Some(n) => {
                    self.c.functions.insert(n);
                }
                None => {
                    return ControlFlow::Break(ClassifyError::Unsupported(format!(
                        "the function name {name}"
                    )))
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, n: &ObjectName) -> ControlFlow<ClassifyError> {
        let ptr: *const ObjectName = n;
        if self.skip.contains(&ptr) {
            return ControlFlow::Continue(());
        }
        let name = match name_of(n) {
            Ok(name) => name,
            Err(e) => return ControlFlow::Break(e),
        };
        if self.write_targets.contains(&ptr) {
            self.c.writes.insert(name);
        } else if self.read_write_targets.contains(&ptr) || self.ddl > 0 {
            self.c.writes.insert(name.clone());
            self.c.reads.insert(name);
        } else if !self.is_cte(&name) {
            self.c.reads.insert(name);
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, e: &Expr) -> ControlFlow<ClassifyError> {
        if self.predicate_roots.contains(&(e as *const Expr)) {
            self.in_predicate -= 1;
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_order_by(&mut self, _: &sqlparser::ast::OrderBy) -> ControlFlow<ClassifyError> {
        self.in_predicate += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_order_by(&mut self, _: &sqlparser::ast::OrderBy) -> ControlFlow<ClassifyError> {
        self.in_predicate -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_group_by(
        &mut self,
        _: &sqlparser::ast::GroupByExpr,
    ) -> ControlFlow<ClassifyError> {
        self.in_predicate += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_group_by(
        &mut self,
        _: &sqlparser::ast::GroupByExpr,
    ) -> ControlFlow<ClassifyError> {
        self.in_predicate -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<ClassifyError> {
        if self.predicate_roots.contains(&(e as *const Expr)) {
            self.in_predicate += 1;
        }
        match e {
            Expr::Function(f) => return self.function_call(f),
            Expr::Identifier(i) => {
                let name = ident(i);
                self.direct = self.direct_exprs.contains(&(e as *const Expr));
                self.attribute_bare(&name);
                self.direct = false;
            }
            // `t.col` references the column; its qualifier is not a
            // whole-row reference (a bare `t` is, and is caught above).
            Expr::CompoundIdentifier(parts) => {
                if let Some(last) = parts.last() {
                    let col = ident(last);
                    let qualifier = parts.len().checked_sub(2).map(|i| ident(&parts[i]));
                    self.direct = self.direct_exprs.contains(&(e as *const Expr));
                    self.attribute(qualifier.as_deref(), &col);
                    self.direct = false;
                }
            }
            Expr::Cast {
                expr, data_type, ..
            } => {
                let ty = data_type.to_string().to_lowercase();
                if ty == "regclass" || ty.ends_with(".regclass") {
                    self.c.literal_sensitive = true;
                    let text = string_literal(expr);
                    // A numeric OID names no relation pgward could check, and
                    // the cast only turns it into a name (psql's \d does this).
                    let is_oid = text
                        .as_deref()
                        .is_some_and(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()));
                    match text.as_deref().and_then(parse_relation_literal) {
                        Some(rel) => {
                            self.c.reads.insert(rel);
                        }
                        None if text.is_some() && !is_oid => {
                            self.forbid("a regclass literal pgward cannot read")
                        }
                        None => {}
                    }
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// The relation names in a set, as text (for tests and messages).
pub fn names(set: &BTreeSet<Name>) -> Vec<String> {
    set.iter().map(Name::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reads(sql: &str) -> Vec<String> {
        names(&classify(sql).unwrap().reads)
    }

    fn writes(sql: &str) -> Vec<String> {
        names(&classify(sql).unwrap().writes)
    }

    fn ops(sql: &str) -> Vec<&'static str> {
        classify(sql)
            .unwrap()
            .operations
            .iter()
            .map(|o| o.name())
            .collect()
    }

    #[test]
    fn reads_through_joins_subqueries_and_set_operations() {
        assert_eq!(
            reads("SELECT abalance FROM pgbench_accounts WHERE aid = 42"),
            ["pgbench_accounts"]
        );
        assert_eq!(
            reads("SELECT * FROM orders o JOIN Customers c ON c.id = o.customer_id WHERE EXISTS (SELECT 1 FROM payments p) UNION SELECT * FROM internal.x"),
            ["customers", "orders", "payments", "internal.x"]
        );
        assert_eq!(
            reads("SELECT (SELECT key FROM \"API_Keys\") FROM generate_series(1, 3)"),
            ["API_Keys"]
        );
        assert_eq!(
            reads("SELECT * FROM shop.public.orders"),
            ["shop.public.orders"]
        );
    }

    #[test]
    fn ctes_shadow_only_where_visible() {
        assert_eq!(
            reads("WITH recent AS (SELECT * FROM orders) SELECT * FROM recent"),
            ["orders"]
        );
        // A non-recursive CTE's body sees the real table of the same name.
        assert_eq!(
            reads("WITH api_keys AS (SELECT * FROM api_keys) SELECT * FROM api_keys"),
            ["api_keys"]
        );
        // A CTE defined inside a subquery does not hide the outer table.
        assert_eq!(
            reads("SELECT * FROM api_keys, (WITH api_keys AS (SELECT 1) SELECT * FROM api_keys) s"),
            ["api_keys"]
        );
        // Later CTEs see earlier ones.
        assert_eq!(
            reads("WITH a AS (SELECT 1), b AS (SELECT * FROM a) SELECT * FROM b"),
            Vec::<String>::new()
        );
        assert_eq!(
            reads("WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a"),
            ["b"]
        );
    }

    fn columns(sql: &str) -> Vec<String> {
        let c = classify(sql).unwrap();
        let mut out: Vec<String> = c
            .columns
            .iter()
            .flat_map(|(t, cols)| cols.iter().map(move |col| format!("{t}.{col}")))
            .collect();
        out.extend(c.unscoped_columns.iter().map(|c| format!("?.{c}")));
        out
    }

    #[test]
    fn columns_are_attributed_to_their_relations() {
        assert_eq!(
            columns("SELECT e.full_name FROM employees e"),
            ["employees.full_name"]
        );
        assert_eq!(
            columns(
                "SELECT c.id, o.total_cents FROM customers c JOIN orders o ON o.customer_id = c.id"
            ),
            ["customers.id", "orders.customer_id", "orders.total_cents"]
        );
        assert_eq!(
            columns("SELECT customers.* FROM customers, employees"),
            ["customers.*"]
        );
        assert_eq!(
            columns("SELECT * FROM customers, employees"),
            ["customers.*", "employees.*"]
        );
        assert_eq!(
            columns("SELECT e FROM employees e"),
            ["employees.*", "employees.e"]
        );
        assert_eq!(
            columns("SELECT to_jsonb(e.*) FROM employees e"),
            ["employees.*"]
        );
        assert_eq!(
            columns("SELECT full_name FROM employees ORDER BY salary"),
            ["employees.full_name"]
        );
        assert!(classify("SELECT full_name FROM employees ORDER BY salary")
            .unwrap()
            .predicate_unscoped
            .contains("salary"));
        assert_eq!(
            columns("UPDATE orders SET status = 'x' WHERE total_cents > 5"),
            ["orders.total_cents"]
        );
        assert_eq!(
            columns("INSERT INTO orders (status) VALUES ('x') RETURNING *"),
            ["orders.*", "orders.status"]
        );
        assert_eq!(columns("COPY employees TO STDOUT"), ["employees.*"]);
        assert_eq!(
            columns("SELECT id FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id)"),
            ["customers.id", "orders.customer_id"]
        );
    }

    #[test]
    fn writes_and_operations() {
        assert_eq!(
            writes("INSERT INTO orders (id) SELECT id FROM customers"),
            ["orders"]
        );
        assert_eq!(
            reads("INSERT INTO orders (id) SELECT id FROM customers"),
            ["customers"]
        );
        assert_eq!(
            ops("INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET x = 1"),
            ["insert", "update"]
        );
        assert_eq!(
            writes("UPDATE orders SET status = 'x' FROM customers WHERE true"),
            ["orders"]
        );
        assert_eq!(
            reads("UPDATE orders SET status = 'x' FROM customers WHERE true"),
            ["customers", "orders"]
        );
        assert_eq!(writes("DELETE FROM orders USING customers"), ["orders"]);
        assert_eq!(
            writes("WITH d AS (DELETE FROM customers RETURNING *) SELECT * FROM d"),
            ["customers"]
        );
        assert_eq!(
            ops("WITH d AS (DELETE FROM customers RETURNING *) SELECT * FROM d"),
            ["select", "delete"]
        );
        assert_eq!(
            ops("SELECT 1; COMMIT; DROP SCHEMA public CASCADE"),
            ["select", "ddl", "transaction"]
        );
        assert_eq!(writes("TRUNCATE a, b"), ["a", "b"]);
        assert_eq!(ops("COPY orders TO STDOUT"), ["copy_out"]);
        assert_eq!(writes("COPY orders FROM STDIN"), ["orders"]);
        assert_eq!(
            reads("COPY (SELECT * FROM api_keys) TO STDOUT"),
            ["api_keys"]
        );
        assert_eq!(
            writes("CREATE TABLE x AS SELECT * FROM orders"),
            ["orders", "x"]
        );
        assert_eq!(ops("SELECT * INTO newt FROM orders"), ["select", "ddl"]);
        assert_eq!(writes("SELECT * INTO newt FROM orders"), ["newt"]);
        assert_eq!(ops("SELECT * FROM orders FOR UPDATE"), ["select", "lock"]);
        assert_eq!(ops("EXPLAIN ANALYZE DELETE FROM orders"), ["delete"]);
    }

    #[test]
    fn functions_settings_and_forbidden_forms() {
        let c = classify("SELECT lower(email), pg_catalog.count(*), public.customer_order_count(1) FROM customers").unwrap();
        assert_eq!(
            names(&c.functions),
            [
                "count",
                "lower",
                "pg_catalog.count",
                "public.customer_order_count"
            ][1..]
        );
        let c = classify("SELECT set_config('search_path', 'internal', false)").unwrap();
        assert!(c.literal_sensitive);
        assert!(c.settings.contains("search_path"));
        assert!(!classify("SELECT set_config('role', 'postgres', false)")
            .unwrap()
            .forbidden
            .is_empty());
        assert!(!classify("SET ROLE postgres").unwrap().forbidden.is_empty());
        assert!(!classify("SET SESSION AUTHORIZATION postgres")
            .unwrap()
            .forbidden
            .is_empty());
        assert!(!classify("COPY orders TO PROGRAM 'sh'")
            .unwrap()
            .forbidden
            .is_empty());
        assert!(!classify("COPY orders FROM '/etc/passwd'")
            .unwrap()
            .forbidden
            .is_empty());
        assert_eq!(
            reads("SELECT nextval('public.orders_id_seq')"),
            ["public.orders_id_seq"]
        );
        assert_eq!(reads("SELECT 'api_keys'::regclass"), ["api_keys"]);
        assert!(classify("DO $$ BEGIN END $$").is_err());
        let copy = classify("copy pgbench_accounts from stdin with (freeze on)").unwrap();
        assert_eq!(names(&copy.writes), ["pgbench_accounts"]);
        assert!(classify("copy pgbench_accounts from program 'id' with (freeze on)").is_err());
        assert!(classify("copy x from stdin with (freeze on); drop table y").is_err());
        let v = classify("vacuum analyze pgbench_branches").unwrap();
        assert_eq!(names(&v.writes), ["pgbench_branches"]);
        assert!(classify("vacuum analyze x; drop table y").is_err());
        assert!(
            classify("SHOW app.secret")
                .unwrap()
                .settings_read
                .contains("app.secret"),
            "{:?}",
            classify("SHOW app.secret").unwrap().settings_read
        );
        assert!(classify("SHOW TIME ZONE")
            .unwrap()
            .settings_read
            .contains("time zone"));
        assert!(classify("SELECT FROM WHERE").is_err());
    }
}
