//! What a statement does, as the policy sees it.

use std::collections::BTreeSet;
use std::fmt;

/// A kind of operation a role may be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    /// SELECT, VALUES, TABLE, EXPLAIN without ANALYZE.
    Select,
    /// INSERT.
    Insert,
    /// UPDATE, and INSERT ... ON CONFLICT DO UPDATE.
    Update,
    /// DELETE.
    Delete,
    /// MERGE.
    Merge,
    /// COPY ... TO STDOUT.
    CopyOut,
    /// COPY ... FROM STDIN.
    CopyIn,
    /// CREATE, ALTER, DROP, COMMENT, GRANT, REVOKE, SELECT INTO, ...
    Ddl,
    /// TRUNCATE.
    Truncate,
    /// BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE, SET TRANSACTION.
    Transaction,
    /// SET, RESET, set_config of a setting not on the built-in harmless list.
    Set,
    /// SHOW of a setting.
    Show,
    /// LISTEN, UNLISTEN.
    Listen,
    /// NOTIFY, pg_notify.
    Notify,
    /// LOCK.
    Lock,
    /// VACUUM, ANALYZE.
    Maintenance,
    /// PREPARE, EXECUTE, DEALLOCATE (SQL level).
    Prepare,
    /// DECLARE, FETCH, CLOSE, MOVE.
    Cursor,
    /// DISCARD.
    Discard,
    /// Code pgward cannot see into: DO blocks, and creating or changing
    /// functions, procedures, triggers, rules, operators, casts, aggregates
    /// and other objects whose code runs later with the server's rights.
    Code,
}

impl Operation {
    /// Every operation, for parsing and listing.
    pub const ALL: [Operation; 20] = [
        Operation::Select,
        Operation::Insert,
        Operation::Update,
        Operation::Delete,
        Operation::Merge,
        Operation::CopyOut,
        Operation::CopyIn,
        Operation::Ddl,
        Operation::Truncate,
        Operation::Transaction,
        Operation::Set,
        Operation::Show,
        Operation::Listen,
        Operation::Notify,
        Operation::Lock,
        Operation::Maintenance,
        Operation::Prepare,
        Operation::Cursor,
        Operation::Discard,
        Operation::Code,
    ];

    /// The name used in the policy file.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Select => "select",
            Operation::Insert => "insert",
            Operation::Update => "update",
            Operation::Delete => "delete",
            Operation::Merge => "merge",
            Operation::CopyOut => "copy_out",
            Operation::CopyIn => "copy_in",
            Operation::Ddl => "ddl",
            Operation::Truncate => "truncate",
            Operation::Transaction => "transaction",
            Operation::Set => "set",
            Operation::Show => "show",
            Operation::Listen => "listen",
            Operation::Notify => "notify",
            Operation::Lock => "lock",
            Operation::Maintenance => "maintenance",
            Operation::Prepare => "prepare",
            Operation::Cursor => "cursor",
            Operation::Discard => "discard",
            Operation::Code => "code",
        }
    }

    /// Parses a policy-file name.
    pub fn from_name(name: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|o| o.name() == name)
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A possibly schema-qualified name as written (unquoted parts lowercased, as
/// PostgreSQL folds them). Resolution through the search path is the
/// policy's job.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name {
    /// Database, when written (three-part names).
    pub catalog: Option<String>,
    /// Schema, when written.
    pub schema: Option<String>,
    /// Object name.
    pub name: String,
}

impl Name {
    /// An unqualified name.
    pub fn bare(name: &str) -> Name {
        Name {
            catalog: None,
            schema: None,
            name: name.to_string(),
        }
    }

    /// A schema-qualified name.
    pub fn qualified(schema: &str, name: &str) -> Name {
        Name {
            catalog: None,
            schema: Some(schema.to_string()),
            name: name.to_string(),
        }
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(c) = &self.catalog {
            write!(f, "{c}.")?;
        }
        if let Some(s) = &self.schema {
            write!(f, "{s}.")?;
        }
        f.write_str(&self.name)
    }
}

/// The value a statement gives a setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingValue {
    /// RESET, SET ... TO DEFAULT: back to the session's value.
    Reset,
    /// A literal value, as text.
    Literal(String),
    /// A value pgward cannot read (not a literal, FROM CURRENT).
    Unknown,
}

/// The analysis of one SQL text (all the statements in it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Classification {
    /// How many statements the text holds.
    pub statements: usize,
    /// Every operation performed.
    pub operations: BTreeSet<Operation>,
    /// Relations read (tables, views, sequences), as written.
    pub reads: BTreeSet<Name>,
    /// Relations written or whose definition changes.
    pub writes: BTreeSet<Name>,
    /// Functions called anywhere, as written.
    pub functions: BTreeSet<Name>,
    /// Functions, procedures and aggregates the text creates or replaces.
    pub routines_created: BTreeSet<Name>,
    /// Types and domains the text creates, or renames to (the new name).
    pub types_created: BTreeSet<Name>,
    /// Operators written with a schema (`OPERATOR(s.===)`), as written.
    pub operators: BTreeSet<Name>,
    /// Settings changed (SET, RESET, set_config with a literal name).
    pub settings: BTreeSet<String>,
    /// The values given to settings changed, by name (also the read-only
    /// and deferrable options of BEGIN and SET TRANSACTION).
    pub setting_values: Vec<(String, SettingValue)>,
    /// Settings read (SHOW, current_setting with a literal name).
    pub settings_read: BTreeSet<String>,
    /// Columns read per relation (as written), `*` for all of them (a `*`, a
    /// whole-row reference, COPY of the table).
    pub columns: std::collections::BTreeMap<Name, BTreeSet<String>>,
    /// Columns used other than as plain output columns of the top-level
    /// SELECT: in expressions, predicates, subqueries, set operations, CTEs,
    /// RETURNING, or written elsewhere. A masked column may not be used so.
    pub indirect_columns: std::collections::BTreeMap<Name, BTreeSet<String>>,
    /// Columns used in predicates: WHERE, HAVING, JOIN ON, ORDER BY, GROUP BY.
    pub predicate_columns: std::collections::BTreeMap<Name, BTreeSet<String>>,
    /// Qualified column references `t.name` whose item is a table (or a join
    /// of tables): the candidate relations and the name. When no candidate
    /// has a column of that name, PostgreSQL reads `t.name` as `name(t)`, a
    /// function call on the whole row: the policy checks them with the catalog.
    pub qualified_columns: BTreeSet<(Vec<Name>, String)>,
    /// Column names in predicates that could not be tied to a relation (the
    /// ORDER BY of a query, say).
    pub predicate_unscoped: BTreeSet<String>,
    /// For a plain top-level SELECT without `*`: each output column's base
    /// (relation, column) when it is a plain column reference, else `None`.
    pub outputs: Option<Vec<Option<(Name, String)>>>,
    /// Column names that could not be tied to a relation (ORDER BY of a set
    /// operation, say): column rules treat them as read from every relation.
    pub unscoped_columns: BTreeSet<String>,
    /// True when a `*` or `t.*` appears.
    pub wildcard: bool,
    /// Field names selected as `(expr).name`: a field of a composite value,
    /// or, when the value is not composite, the call `name(expr)`.
    pub field_selections: BTreeSet<String>,
    /// Reasons this text can never be allowed (COPY PROGRAM, SET ROLE, ...).
    pub forbidden: Vec<String>,
    /// Features pgward does not offer (two-phase commit): refused as not
    /// supported (0A000), which drivers report as such.
    pub unsupported: Vec<String>,
    /// True when the result depends on literal values (set_config('role', ..)),
    /// so a cache must key it by its literals too.
    pub literal_sensitive: bool,
    /// Schemas named by a search_path change in this text.
    pub search_path: Vec<String>,
    /// Cursors the text declares and closes, in order: the portals the
    /// server gains and loses by running it.
    pub cursors: Vec<CursorChange>,
    /// Prepared statements the text deallocates (`None`: DEALLOCATE ALL).
    pub deallocated: Vec<Option<String>>,
    /// Names SQL-level PREPARE gives statements.
    pub prepared: Vec<String>,
    /// Extensions the text creates.
    pub extensions: Vec<String>,
    /// Settings named or given a value by bind parameters
    /// (`current_setting($1)`, `set_config($1, $2, false)`): known only at
    /// Bind, where `with_parameters` completes the classification.
    pub bound_settings: Vec<BoundSetting>,
    /// True when a CASCADE (TRUNCATE, DROP, ALTER ... DROP, RENAME,
    /// REVOKE) may reach objects the text does not name.
    pub cascade: bool,
    /// Relations a DELETE or UPDATE changes with nothing to filter them: no
    /// WHERE, or one that names none of the target's columns (`WHERE true`).
    pub unfiltered: BTreeSet<(Operation, Name)>,
    /// Every relation read, with the most rows the text can take from it:
    /// the constant LIMIT of the SELECT whose FROM list reads it (or of the
    /// query that SELECT feeds from a FROM item), `None` when nothing bounds
    /// it (no LIMIT, a function call, grouping or window in the output that
    /// may fold every row into one, a read outside a SELECT's FROM list).
    pub row_bounds: std::collections::BTreeMap<Name, Option<u64>>,
}

impl Classification {
    /// Notes that the text takes at most `rows` rows of `name` (`None`:
    /// unbounded); the loosest bound found wins.
    pub fn bound_rows(&mut self, name: Name, rows: Option<u64>) {
        let e = self.row_bounds.entry(name).or_insert(rows);
        *e = match (*e, rows) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
    }
}

/// A setting argument: text written in the statement, or a bind parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingArgument {
    /// A string literal.
    Literal(String),
    /// Bind parameter `$n` (1-based).
    Parameter(usize),
    /// Anything else (an expression): unknown until it runs.
    Unknown,
}

/// A setting use whose name or value is a bind parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoundSetting {
    /// `current_setting($n)`.
    Read(usize),
    /// `set_config(name, value, ...)`, the name or the value a parameter.
    Change {
        name: SettingArgument,
        value: SettingArgument,
    },
}

/// What running a statement does to the server's portals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CursorChange {
    /// DECLARE: a portal of that name (as the server folds it); `hold` when
    /// it outlives its transaction (WITH HOLD).
    Declare { name: String, hold: bool },
    /// CLOSE of one portal, or of all of them (`None`: CLOSE ALL).
    Close(Option<String>),
}
