//! The walker's state: what it has found so far (the classification), the
//! scopes column references resolve in, and the CTEs visible at each point.
//! The walk itself is in `nodes` (every node kind), `queries` (SELECT and
//! DML), `utility` (every other statement), `functions` and `settings`.

use super::census::Kind;
use super::classification::{Classification, Name};
use super::classify::ClassifyError;

/// The result of one step of the walk.
pub type Walk = Result<(), ClassifyError>;

/// How a column reference's value is used, which decides what masking and
/// column rules make of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// A plain output column of the top-level query: it reaches the client
    /// as it is, where pgward can mask it.
    Direct,
    /// In a predicate (WHERE, JOIN, ORDER BY, GROUP BY, ...): it shapes the
    /// result without appearing in it.
    Predicate,
    /// Anything else: inside an expression, a subquery's output, a CTE, a
    /// set operation, RETURNING, a written value.
    Indirect,
}

impl Use {
    /// The use of something nested inside an expression of this use.
    pub fn nested(self) -> Use {
        match self {
            Use::Direct => Use::Indirect,
            other => other,
        }
    }
}

/// One item of a FROM list as column references see it.
#[derive(Debug, Clone)]
pub struct ScopeItem {
    /// The name it is referred to by (alias, or the relation's name).
    pub refname: String,
    /// The base relations whose columns it shows: one for a table, every
    /// table of a join for a join alias, none for a derived table, a CTE or
    /// a function (their own walk attributed what they read).
    pub relations: Vec<Name>,
    /// Its columns were renamed by an alias column list, so a reference by
    /// name cannot be tied to a base column: it counts as all of them.
    pub renamed: bool,
    /// Columns merged by `JOIN ... USING` (or every column, `*`, for a
    /// NATURAL join): an unqualified reference to one is computed from both
    /// sides.
    pub merged: Vec<String>,
    /// For a join item: the relations on both sides of the merge.
    pub merged_relations: Vec<Name>,
    /// False for the join's member items once a join alias hides them.
    pub visible: bool,
}

/// The CTEs of one WITH clause.
#[derive(Debug, Clone, Default)]
pub struct CteScope {
    /// Names, in order.
    pub names: Vec<String>,
    /// How many are visible now (all, once the main body is walked).
    pub visible: usize,
}

/// The classifier's walk over one parse tree.
pub struct Walker<'c> {
    /// What has been found.
    pub c: &'c mut Classification,
    /// CTE scopes, innermost last.
    pub ctes: Vec<CteScope>,
    /// Column scopes of the queries being walked, innermost last.
    pub scopes: Vec<Vec<ScopeItem>>,
    /// Nodes the walker accounted for, as (kind, position), for the census.
    pub seen: Vec<(Kind, i32)>,
    /// True while walking DDL: every relation named is written.
    pub ddl: bool,
    /// The number of every bind parameter reference walked (`$1` is 1).
    pub parameters: Vec<i32>,
    /// The SELECT levels being walked, innermost last: the relations each
    /// reads in its FROM list (`None`: a context whose reads nothing bounds).
    pub levels: Vec<Option<Vec<Name>>>,
    /// Set while a FROM item's subquery (or a set operation's branch) is
    /// walked: its rows feed the level around it, whose LIMIT bounds them.
    pub in_from: bool,
    /// Function calls walked so far.
    pub calls: u32,
    /// How many contexts that may run a query more than once (a subquery in
    /// an expression, LATERAL, a recursive CTE) enclose the walk: a LIMIT
    /// there bounds one run, not the statement.
    pub repeats: u32,
    /// While a DML statement's filter is walked: what it must name.
    pub filter: Option<Filter>,
}

/// The filter of an UPDATE, DELETE or MERGE being walked.
#[derive(Debug, Clone)]
pub struct Filter {
    /// The target relation.
    pub target: Name,
    /// How many scopes deep the statement's own scope is.
    pub depth: usize,
    /// Whether the target is the only item in that scope (so an
    /// unqualified column can only be the target's).
    pub alone: bool,
    /// References to the target's columns seen.
    pub seen: u32,
}

impl<'c> Walker<'c> {
    /// A walker filling `c`.
    pub fn new(c: &'c mut Classification) -> Self {
        Walker {
            c,
            ctes: Vec::new(),
            scopes: Vec::new(),
            seen: Vec::new(),
            ddl: false,
            parameters: Vec::new(),
            levels: Vec::new(),
            in_from: false,
            calls: 0,
            repeats: 0,
            filter: None,
        }
    }

    /// Notes that the node of `kind` at `location` was analysed.
    pub fn saw(&mut self, kind: Kind, location: i32) {
        self.seen.push((kind, location));
    }

    /// True if an unqualified name refers to a CTE visible here.
    pub fn is_cte(&self, name: &Name) -> bool {
        name.schema.is_none()
            && name.catalog.is_none()
            && self
                .ctes
                .iter()
                .any(|s| s.names[..s.visible].contains(&name.name))
    }

    /// Records a relation read.
    pub fn read(&mut self, name: Name) {
        if self.ddl {
            self.c.writes.insert(name.clone());
        }
        match self.levels.last_mut() {
            Some(Some(level)) => level.push(name.clone()),
            _ => self.c.bound_rows(name.clone(), None),
        }
        self.c.reads.insert(name);
    }

    /// Records a relation (or other schema object) written.
    pub fn write(&mut self, name: Name) {
        self.c.writes.insert(name);
    }

    /// Records that `column` (or `*`) of `rel` is used as `how`.
    pub fn column_use(&mut self, rel: &Name, column: &str, how: Use) {
        self.c
            .columns
            .entry(rel.clone())
            .or_default()
            .insert(column.to_string());
        let map = match how {
            Use::Direct => return,
            Use::Predicate => &mut self.c.predicate_columns,
            Use::Indirect => &mut self.c.indirect_columns,
        };
        map.entry(rel.clone())
            .or_default()
            .insert(column.to_string());
    }

    /// Attributes a column reference `qualifier.column` (or unqualified) to
    /// the relations it may name. Unqualified names count for every relation
    /// in every enclosing scope, since without the catalog pgward cannot
    /// tell which one has the column; a name no scope explains is kept as
    /// unscoped, and the column rules treat it as read from everything.
    pub fn attribute(&mut self, qualifier: Option<&str>, column: &str, how: Use) {
        let mut targets: Vec<(Name, String, Use)> = Vec::new();
        let mut found = false;
        let mut filters = 0;
        // (Unqualified, a name inside a subquery may be its own table's.)
        let innermost = self.scopes.len();
        for (depth, scope) in self.scopes.iter().enumerate().rev() {
            for item in scope {
                let matches = match qualifier {
                    Some(q) => item.visible && item.refname == q,
                    None => true,
                };
                if !matches {
                    continue;
                }
                // A filter names the target's column in the statement's own
                // scope: qualified, or unqualified with nothing else there.
                if let Some(f) = &self.filter {
                    let own = depth + 1 == f.depth && item.relations.contains(&f.target);
                    let plain = f.alone && innermost == f.depth;
                    if own && (qualifier.is_some() || plain) && column != "*" {
                        filters += 1;
                    }
                }
                // Merged USING columns are computed from both sides (for a
                // FULL join the server sends them with no table OID at all);
                // `*` includes them.
                let is_join = !item.merged_relations.is_empty();
                let merged: Vec<&str> = if !(qualifier.is_none() || is_join) {
                    Vec::new()
                } else if column == "*" {
                    item.merged.iter().map(String::as_str).collect()
                } else if item.merged.iter().any(|m| m == column || m == "*") {
                    vec![column]
                } else {
                    Vec::new()
                };
                for m in merged {
                    for r in &item.merged_relations {
                        targets.push((r.clone(), m.to_string(), Use::Indirect));
                    }
                    found = true;
                }
                let col = if item.renamed { "*" } else { column };
                for r in &item.relations {
                    targets.push((r.clone(), col.to_string(), how));
                }
                if qualifier.is_some() || !item.relations.is_empty() {
                    found = true;
                }
            }
            if found && qualifier.is_some() {
                break;
            }
        }
        if let Some(f) = &mut self.filter {
            f.seen += filters;
        }
        for (rel, col, how) in targets {
            self.column_use(&rel, &col, how);
        }
        if !found {
            if how == Use::Predicate {
                self.c.predicate_unscoped.insert(column.to_string());
            } else {
                self.c.unscoped_columns.insert(column.to_string());
            }
        }
    }

    /// True if a bare name refers to a FROM item (a whole-row reference).
    pub fn is_item_name(&self, name: &str) -> bool {
        self.scopes
            .iter()
            .flatten()
            .any(|i| i.visible && i.refname == name)
    }

    /// Records a reason the text can never be allowed.
    pub fn forbid(&mut self, reason: impl Into<String>) {
        self.c.forbidden.push(reason.into());
    }
}
