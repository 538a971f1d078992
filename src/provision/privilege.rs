//! What a grant is about: an object of the database (the database itself, a
//! schema, a relation, a column, a routine) and one privilege on it. Both
//! the policy's wanted grants and the catalog's actual ones are sets of these,
//! so a drift is a set difference.

use std::fmt;

use super::ident::Quoter;

/// The kinds of relation provisioning grants on (`pg_class.relkind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RelKind {
    /// An ordinary table (`r`).
    Table,
    /// A partitioned table (`p`).
    Partitioned,
    /// A view (`v`).
    View,
    /// A materialized view (`m`).
    MaterializedView,
    /// A foreign table (`f`).
    Foreign,
    /// A sequence (`S`).
    Sequence,
}

impl RelKind {
    /// From `pg_class.relkind`; other kinds (indexes, types) are not granted on.
    pub fn from_relkind(kind: u8) -> Option<RelKind> {
        Some(match kind {
            b'r' => RelKind::Table,
            b'p' => RelKind::Partitioned,
            b'v' => RelKind::View,
            b'm' => RelKind::MaterializedView,
            b'f' => RelKind::Foreign,
            b'S' => RelKind::Sequence,
            _ => return None,
        })
    }

    /// The word used in messages.
    pub fn noun(self) -> &'static str {
        match self {
            RelKind::Table | RelKind::Partitioned => "table",
            RelKind::View => "view",
            RelKind::MaterializedView => "materialized view",
            RelKind::Foreign => "foreign table",
            RelKind::Sequence => "sequence",
        }
    }

    /// Views and materialized views: their definitions read other relations.
    pub fn is_view(self) -> bool {
        matches!(self, RelKind::View | RelKind::MaterializedView)
    }

    /// Relations rows can be written to (views through their rules or
    /// automatic updatability).
    pub fn is_writable(self) -> bool {
        matches!(
            self,
            RelKind::Table | RelKind::Partitioned | RelKind::View | RelKind::Foreign
        )
    }

    /// Relations with rows of their own that TRUNCATE and REFERENCES apply to.
    pub fn is_table(self) -> bool {
        matches!(self, RelKind::Table | RelKind::Partitioned)
    }
}

/// Functions and procedures (`pg_proc.prokind`): GRANT names them differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RoutineKind {
    /// Functions, aggregates and window functions.
    Function,
    /// Procedures.
    Procedure,
}

/// Something privileges are granted on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Object {
    /// The database being provisioned.
    Database(String),
    /// A schema.
    Schema(String),
    /// A table, view, sequence, ...
    Relation {
        schema: String,
        name: String,
        kind: RelKind,
    },
    /// One column of a relation (`attnum` orders columns as the table does).
    Column {
        schema: String,
        table: String,
        attnum: i16,
        column: String,
    },
    /// One function or procedure, overloads told apart by their arguments.
    Routine {
        schema: String,
        name: String,
        /// `pg_get_function_identity_arguments`, as SQL.
        args: String,
        kind: RoutineKind,
    },
}

impl Object {
    /// The schema the object lives in, if any.
    pub fn schema(&self) -> Option<&str> {
        match self {
            Object::Database(_) => None,
            Object::Schema(s) => Some(s),
            Object::Relation { schema, .. }
            | Object::Column { schema, .. }
            | Object::Routine { schema, .. } => Some(schema),
        }
    }

    /// The object as GRANT and REVOKE name it (`TABLE public.orders`). A
    /// column is named by its table; the column list goes with the privilege.
    pub fn sql(&self, q: &Quoter) -> String {
        match self {
            Object::Database(d) => format!("DATABASE {}", q.ident(d)),
            Object::Schema(s) => format!("SCHEMA {}", q.ident(s)),
            Object::Relation { schema, name, kind } => {
                let word = if *kind == RelKind::Sequence {
                    "SEQUENCE"
                } else {
                    "TABLE"
                };
                format!("{word} {}", q.qualified(schema, name))
            }
            Object::Column { schema, table, .. } => {
                format!("TABLE {}", q.qualified(schema, table))
            }
            Object::Routine {
                schema,
                name,
                args,
                kind,
            } => {
                let word = match kind {
                    RoutineKind::Function => "FUNCTION",
                    RoutineKind::Procedure => "PROCEDURE",
                };
                format!("{word} {}({args})", q.qualified(schema, name))
            }
        }
    }
}

impl fmt::Display for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Object::Database(d) => write!(f, "database {d}"),
            Object::Schema(s) => write!(f, "schema {s}"),
            Object::Relation { schema, name, kind } => {
                write!(f, "{} {schema}.{name}", kind.noun())
            }
            Object::Column {
                schema,
                table,
                column,
                ..
            } => write!(f, "column {schema}.{table}.{column}"),
            Object::Routine {
                schema,
                name,
                args,
                kind,
            } => {
                let noun = match kind {
                    RoutineKind::Function => "function",
                    RoutineKind::Procedure => "procedure",
                };
                write!(f, "{noun} {schema}.{name}({args})")
            }
        }
    }
}

/// A privilege as `aclexplode` names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Privilege {
    Select,
    Insert,
    Update,
    Delete,
    Truncate,
    References,
    Trigger,
    Usage,
    Create,
    Execute,
    Connect,
    Temporary,
    /// Anything newer servers add (MAINTAIN, ...).
    Other(String),
}

impl Privilege {
    /// From `aclexplode(...).privilege_type`.
    pub fn parse(text: &str) -> Privilege {
        match text {
            "SELECT" => Privilege::Select,
            "INSERT" => Privilege::Insert,
            "UPDATE" => Privilege::Update,
            "DELETE" => Privilege::Delete,
            "TRUNCATE" => Privilege::Truncate,
            "REFERENCES" => Privilege::References,
            "TRIGGER" => Privilege::Trigger,
            "USAGE" => Privilege::Usage,
            "CREATE" => Privilege::Create,
            "EXECUTE" => Privilege::Execute,
            "CONNECT" => Privilege::Connect,
            "TEMPORARY" | "TEMP" => Privilege::Temporary,
            other => Privilege::Other(other.to_string()),
        }
    }

    /// The keyword in GRANT and REVOKE.
    pub fn keyword(&self) -> &str {
        match self {
            Privilege::Select => "SELECT",
            Privilege::Insert => "INSERT",
            Privilege::Update => "UPDATE",
            Privilege::Delete => "DELETE",
            Privilege::Truncate => "TRUNCATE",
            Privilege::References => "REFERENCES",
            Privilege::Trigger => "TRIGGER",
            Privilege::Usage => "USAGE",
            Privilege::Create => "CREATE",
            Privilege::Execute => "EXECUTE",
            Privilege::Connect => "CONNECT",
            Privilege::Temporary => "TEMPORARY",
            Privilege::Other(o) => o,
        }
    }
}

impl fmt::Display for Privilege {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

/// One privilege on one object.
pub type Grant = (Object, Privilege);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_named_as_grant_names_them() {
        let q = Quoter::new(["order"]);
        let rel = |kind| Object::Relation {
            schema: "public".into(),
            name: "order".into(),
            kind,
        };
        assert_eq!(rel(RelKind::View).sql(&q), "TABLE public.\"order\"");
        assert_eq!(rel(RelKind::Sequence).sql(&q), "SEQUENCE public.\"order\"");
        assert_eq!(
            rel(RelKind::MaterializedView).to_string(),
            "materialized view public.order"
        );
        let f = Object::Routine {
            schema: "public".into(),
            name: "Count".into(),
            args: "p_id integer".into(),
            kind: RoutineKind::Procedure,
        };
        assert_eq!(f.sql(&q), "PROCEDURE public.\"Count\"(p_id integer)");
        assert_eq!(f.to_string(), "procedure public.Count(p_id integer)");
        assert_eq!(Privilege::parse("MAINTAIN").keyword(), "MAINTAIN");
        assert_eq!(Privilege::parse("TEMPORARY"), Privilege::Temporary);
    }
}
