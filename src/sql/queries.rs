//! Queries and data-modifying statements: SELECT (with set operations,
//! VALUES and `TABLE x`), INSERT, UPDATE, DELETE and MERGE; their FROM items,
//! CTEs, column scopes and the uses of every column reference.

use pg_query::protobuf::{
    self as pb, ColumnRef, DeleteStmt, InsertStmt, MergeStmt, RangeVar, ReturningClause,
    SelectStmt, SetOperation, SubLink, UpdateStmt, WithClause,
};
use pg_query::{Node, NodeEnum};

use super::census::Kind;
use super::classification::{Name, Operation};
use super::names::{integer_constant, range_var_name, range_var_refname, string_of};
use super::walker::{CteScope, ScopeItem, Use, Walk, Walker};

impl Walker<'_> {
    /// Walks a WITH clause: each CTE sees the ones before it (all of them,
    /// itself included, under RECURSIVE). Pushes a CTE scope the caller pops.
    fn with_clause(&mut self, w: &Option<WithClause>) -> Walk {
        let Some(w) = w else {
            self.ctes.push(CteScope::default());
            return Ok(());
        };
        let mut names = Vec::new();
        let mut bodies = Vec::new();
        for cte in &w.ctes {
            match cte.node.as_ref() {
                Some(NodeEnum::CommonTableExpr(c)) => {
                    names.push(c.ctename.clone());
                    bodies.push(c);
                }
                _ => return Err(super::classify::unsupported("a WITH item")),
            }
        }
        let n = names.len();
        self.ctes.push(CteScope { names, visible: 0 });
        // A CTE's rows feed no FROM item of the query that holds it.
        let feeds = std::mem::take(&mut self.in_from);
        for (i, c) in bodies.iter().enumerate() {
            if let Some(s) = self.ctes.last_mut() {
                s.visible = if w.recursive { n } else { i };
            }
            // A CTE's rows reach the client only through another query. A
            // recursive one runs its body once per round.
            let recursive = u32::from(w.recursive);
            self.repeats += recursive;
            let r = self.subquery(c.ctequery.as_deref(), Use::Indirect);
            self.repeats -= recursive;
            r?;
            if let Some(cyc) = &c.cycle_clause {
                self.opt(&cyc.cycle_mark_value, Use::Indirect)?;
                self.opt(&cyc.cycle_mark_default, Use::Indirect)?;
            }
        }
        if let Some(s) = self.ctes.last_mut() {
            s.visible = n;
        }
        self.in_from = feeds;
        Ok(())
    }

    /// Walks a nested query or data-modifying statement whose output is used as `how`.
    pub fn subquery(&mut self, n: Option<&Node>, how: Use) -> Walk {
        match n.and_then(|n| n.node.as_ref()) {
            // A subquery needs no `select` of its own: what it reads is checked.
            Some(NodeEnum::SelectStmt(s)) => self.select(s, false, how),
            Some(other) => self.statement(other, false, how),
            None => Ok(()),
        }
    }

    /// Walks a SELECT. `top` is true for the statement whose rows reach the
    /// client as they are; otherwise its outputs are used as `how`.
    pub fn select(&mut self, s: &SelectStmt, top: bool, how: Use) -> Walk {
        self.with_clause(&s.with_clause)?;
        let r = self.select_body(s, top, how);
        self.ctes.pop();
        r
    }

    fn select_body(&mut self, s: &SelectStmt, top: bool, how: Use) -> Walk {
        // The rows this level takes from the relations in its FROM list are
        // bounded by its LIMIT, or by the level it feeds.
        let feeds = std::mem::take(&mut self.in_from);
        self.levels.push(Some(Vec::new()));
        let walked = self.select_level(s, top, how);
        let reads = self.levels.pop().flatten().unwrap_or_default();
        self.in_from = false;
        let plain = walked?;
        // FETCH FIRST n ROWS WITH TIES returns every row tied with the
        // last; a LIMIT where the level may run many times bounds one run.
        let ties = pg_query::protobuf::LimitOption::try_from(s.limit_option)
            == Ok(pg_query::protobuf::LimitOption::WithTies);
        let limit = s
            .limit_count
            .as_deref()
            .and_then(integer_constant)
            .and_then(|n| u64::try_from(n).ok())
            .filter(|_| !ties && self.repeats == 0);
        let constant = s
            .limit_count
            .as_deref()
            .is_some_and(|n| matches!(n.node, Some(NodeEnum::AConst(_))));
        if constant {
            // The bound is the literal's value: the cache must key this
            // text by its literals (LIMIT 5, LIMIT 5000 and LIMIT 5e3 share
            // a fingerprint).
            self.c.literal_sensitive = true;
        }
        let folds = !plain
            || !s.group_clause.is_empty()
            || s.having_clause.is_some()
            || !s.window_clause.is_empty();
        match (folds, limit) {
            (true, _) => reads.into_iter().for_each(|r| self.c.bound_rows(r, None)),
            (false, Some(n)) => reads
                .into_iter()
                .for_each(|r| self.c.bound_rows(r, Some(n))),
            (false, None) => match self.levels.last_mut() {
                Some(Some(outer)) if feeds => outer.extend(reads),
                _ => reads.into_iter().for_each(|r| self.c.bound_rows(r, None)),
            },
        }
        Ok(())
    }

    /// One SELECT level; true when its output calls no function (none that
    /// could fold every row into one, such as string_agg).
    fn select_level(
        &mut self,
        s: &SelectStmt,
        top: bool,
        how: Use,
    ) -> Result<bool, super::classify::ClassifyError> {
        let set_op = SetOperation::try_from(s.op).unwrap_or(SetOperation::Undefined);
        if set_op != SetOperation::SetopNone {
            // A set operation's rows are computed: no output is a base column.
            let branch = if top { Use::Indirect } else { how };
            for side in [&s.larg, &s.rarg] {
                match side {
                    Some(b) => {
                        self.in_from = true;
                        self.select(b, false, branch)?
                    }
                    None => return Err(super::classify::unsupported("a set operation")),
                }
            }
            self.scopes.push(Vec::new());
            let r = self
                .nodes(&s.sort_clause, Use::Predicate)
                .and_then(|_| self.opt(&s.limit_offset, Use::Indirect))
                .and_then(|_| self.opt(&s.limit_count, Use::Indirect))
                .and_then(|_| self.nodes(&s.locking_clause, Use::Indirect));
            self.scopes.pop();
            return r.map(|_| true);
        }
        let mut scope = Vec::new();
        for item in &s.from_clause {
            self.scan_from_node(item, &mut scope)?;
        }
        self.scopes.push(scope);
        let r = self.select_in_scope(s, top, how);
        self.scopes.pop();
        r
    }

    fn select_in_scope(
        &mut self,
        s: &SelectStmt,
        top: bool,
        how: Use,
    ) -> Result<bool, super::classify::ClassifyError> {
        if let Some(into) = &s.into_clause {
            // SELECT INTO creates a table from the rows.
            self.c.operations.insert(Operation::Ddl);
            if let Some(rel) = &into.rel {
                self.saw(Kind::Relation, rel.location);
                self.write(range_var_name(rel));
            }
        }
        let direct = top && s.into_clause.is_none();
        let out = if direct {
            Use::Direct
        } else if s.into_clause.is_some() {
            // SELECT INTO copies the values into a table, unmasked.
            Use::Indirect
        } else {
            how
        };
        for v in &s.values_lists {
            self.node(v, out.nested())?;
        }
        if direct {
            self.c.outputs = self.outputs(&s.target_list);
        }
        let calls = self.calls;
        for t in &s.target_list {
            self.node(t, out)?;
        }
        let plain = self.calls == calls;
        self.opt(&s.where_clause, Use::Predicate)?;
        self.order_or_group(&s.group_clause, &s.target_list)?;
        self.opt(&s.having_clause, Use::Predicate)?;
        for w in &s.window_clause {
            self.node(w, Use::Predicate)?;
        }
        if s.distinct_clause.len() == 1 && s.distinct_clause[0].node.is_none() {
            // Plain DISTINCT compares every output column, like GROUP BY.
            for t in &s.target_list {
                self.target_as_predicate(t)?;
            }
        } else {
            self.order_or_group(&s.distinct_clause, &s.target_list)?;
        }
        self.order_or_group(&s.sort_clause, &s.target_list)?;
        self.opt(&s.limit_offset, Use::Indirect)?;
        self.opt(&s.limit_count, Use::Indirect)?;
        self.nodes(&s.locking_clause, Use::Indirect)?;
        Ok(plain)
    }

    /// ORDER BY, GROUP BY and DISTINCT ON items: predicates. `ORDER BY 2`
    /// and `ORDER BY alias` name an output column, whose expression is then
    /// used as a predicate too.
    fn order_or_group(&mut self, items: &[Node], targets: &[Node]) -> Walk {
        for item in items {
            let expr = match item.node.as_ref() {
                Some(NodeEnum::SortBy(s)) => s.node.as_deref(),
                Some(NodeEnum::GroupingSet(g)) => {
                    // ROLLUP (1), CUBE, GROUPING SETS: the same positions.
                    self.order_or_group(&g.content, targets)?;
                    continue;
                }
                _ => Some(item),
            };
            if let Some(e) = expr {
                if matches!(e.node, Some(NodeEnum::AConst(_))) {
                    // A constant item may be a position: its meaning depends
                    // on the literal, so the cache must key it by its value.
                    self.c.literal_sensitive = true;
                }
                if let Some(pos) = integer_constant(e) {
                    let index = usize::try_from(pos).ok().and_then(|p| p.checked_sub(1));
                    let star_before =
                        index.is_none_or(|i| targets.iter().take(i + 1).any(is_star_target));
                    match index.and_then(|i| targets.get(i)) {
                        // After a `*`, positions name columns only the catalog knows.
                        Some(t) if !star_before => self.target_as_predicate(t)?,
                        _ => self.attribute(None, "*", Use::Predicate),
                    }
                } else if let Some(alias) = bare_name(e) {
                    for t in targets {
                        if let Some(NodeEnum::ResTarget(r)) = t.node.as_ref() {
                            if r.name == alias {
                                self.target_as_predicate(t)?;
                            }
                        }
                    }
                }
            }
            self.node(item, Use::Predicate)?;
        }
        Ok(())
    }

    fn target_as_predicate(&mut self, t: &Node) -> Walk {
        // Walked again for its uses only: the census counts each node once
        // and the walker's second visit adds a duplicate it ignores.
        match t.node.as_ref() {
            Some(NodeEnum::ResTarget(r)) => self.opt(&r.val, Use::Predicate),
            _ => self.node(t, Use::Predicate),
        }
    }

    /// For a plain top-level SELECT without `*`: each output column's base
    /// (relation, column) when it is a plain column reference.
    fn outputs(&self, targets: &[Node]) -> Option<Vec<Option<(Name, String)>>> {
        let scope = self.scopes.last()?;
        let mut out = Vec::new();
        for t in targets {
            let Some(NodeEnum::ResTarget(r)) = t.node.as_ref() else {
                return None;
            };
            let Some(NodeEnum::ColumnRef(c)) = r.val.as_ref().and_then(|v| v.node.as_ref()) else {
                out.push(None);
                continue;
            };
            let fields: Option<Vec<&str>> = c.fields.iter().map(string_of).collect();
            let Some(fields) = fields else {
                // A `*` expands to columns only the catalog can count.
                return None;
            };
            let (qualifier, col) = match fields.as_slice() {
                [col] => (None, *col),
                [.., q, col] => (Some(*q), *col),
                [] => return None,
            };
            let candidates: Vec<&ScopeItem> = scope
                .iter()
                .filter(|i| qualifier.is_none_or(|q| i.visible && i.refname == q))
                .collect();
            out.push(match candidates.as_slice() {
                [one] if !one.renamed && one.merged.is_empty() => match one.relations.as_slice() {
                    [rel] => Some((rel.clone(), col.to_string())),
                    _ => None,
                },
                _ => None,
            });
        }
        Some(out)
    }

    /// Adds a FROM item (walking what it reads) to `scope`, with the items
    /// already in `scope` visible to it (LATERAL).
    fn scan_from_node(&mut self, n: &Node, scope: &mut Vec<ScopeItem>) -> Walk {
        match n.node.as_ref() {
            Some(inner) => self.scan_from_item(inner, scope),
            None => Ok(()),
        }
    }

    /// One FROM item.
    pub fn scan_from_item(&mut self, n: &NodeEnum, scope: &mut Vec<ScopeItem>) -> Walk {
        match n {
            NodeEnum::RangeVar(r) => {
                self.saw(Kind::Relation, r.location);
                let name = range_var_name(r);
                let relations = if self.is_cte(&name) {
                    Vec::new()
                } else {
                    self.read(name.clone());
                    vec![name]
                };
                scope.push(item(
                    range_var_refname(r),
                    relations,
                    r.alias.as_ref().is_some_and(|a| !a.colnames.is_empty()),
                ));
                Ok(())
            }
            NodeEnum::RangeSubselect(s) => {
                let lateral = u32::from(s.lateral);
                self.with_partial_scope(scope, |w| {
                    // A LATERAL subquery runs once per row before it.
                    w.in_from = true;
                    w.repeats += lateral;
                    let r = w.subquery(s.subquery.as_deref(), Use::Indirect);
                    w.repeats -= lateral;
                    w.in_from = false;
                    r
                })?;
                scope.push(item(alias_name(&s.alias), Vec::new(), false));
                Ok(())
            }
            NodeEnum::RangeFunction(f) => {
                self.with_partial_scope(scope, |w| {
                    for entry in &f.functions {
                        // Each entry is a list: the call, then its column definitions.
                        match entry.node.as_ref() {
                            Some(NodeEnum::List(l)) => w.nodes(&l.items, Use::Indirect)?,
                            _ => w.node(entry, Use::Indirect)?,
                        }
                    }
                    w.nodes(&f.coldeflist, Use::Indirect)
                })?;
                scope.push(item(alias_name(&f.alias), Vec::new(), false));
                Ok(())
            }
            NodeEnum::RangeTableFunc(t) => {
                self.with_partial_scope(scope, |w| {
                    w.opt(&t.docexpr, Use::Indirect)?;
                    w.opt(&t.rowexpr, Use::Indirect)?;
                    w.nodes(&t.namespaces, Use::Indirect)?;
                    w.nodes(&t.columns, Use::Indirect)
                })?;
                scope.push(item(alias_name(&t.alias), Vec::new(), false));
                Ok(())
            }
            NodeEnum::JsonTable(t) => {
                // An older server reads JSON_TABLE(...) as a function in FROM.
                self.c
                    .functions
                    .insert(super::classification::Name::bare("json_table"));
                self.with_partial_scope(scope, |w| {
                    if let Some(v) = &t.context_item {
                        w.opt(&v.raw_expr, Use::Indirect)?;
                        w.opt(&v.formatted_expr, Use::Indirect)?;
                    }
                    if let Some(p) = &t.pathspec {
                        w.opt(&p.string, Use::Indirect)?;
                    }
                    w.nodes(&t.passing, Use::Indirect)?;
                    w.nodes(&t.columns, Use::Indirect)?;
                    if let Some(b) = &t.on_error {
                        w.opt(&b.expr, Use::Indirect)?;
                    }
                    Ok(())
                })?;
                scope.push(item(alias_name(&t.alias), Vec::new(), false));
                Ok(())
            }
            NodeEnum::RangeTableSample(t) => {
                // The sampling method is a function (a tablesample handler).
                match super::names::name_of_list(&t.method) {
                    Some(m) => {
                        self.c.functions.insert(m);
                    }
                    None => return Err(super::classify::unsupported("this TABLESAMPLE method")),
                }
                self.nodes(&t.args, Use::Indirect)?;
                self.opt(&t.repeatable, Use::Indirect)?;
                match t.relation.as_deref().and_then(|r| r.node.as_ref()) {
                    Some(inner) => self.scan_from_item(inner, scope),
                    None => Err(super::classify::unsupported("TABLESAMPLE without a table")),
                }
            }
            NodeEnum::JoinExpr(j) => self.join(j, scope),
            _ => Err(super::classify::unsupported("this FROM item")),
        }
    }

    /// Runs `f` with the FROM items gathered so far in scope (for LATERAL).
    fn with_partial_scope(
        &mut self,
        scope: &[ScopeItem],
        f: impl FnOnce(&mut Self) -> Walk,
    ) -> Walk {
        self.scopes.push(scope.to_vec());
        let r = f(self);
        self.scopes.pop();
        r
    }

    fn join(&mut self, j: &pb::JoinExpr, scope: &mut Vec<ScopeItem>) -> Walk {
        let mut members = Vec::new();
        for side in [&j.larg, &j.rarg] {
            let Some(inner) = side.as_deref().and_then(|n| n.node.as_ref()) else {
                return Err(super::classify::unsupported("a join without two sides"));
            };
            // LATERAL items on the right see the left side and earlier items.
            let mut visible = scope.clone();
            visible.extend(members.iter().cloned());
            let before = visible.len();
            self.scan_from_item(inner, &mut visible)?;
            members.extend(visible.drain(before..));
        }
        // The base relations on both sides of the join.
        let all_rels: Vec<Name> = members
            .iter()
            .flat_map(|i| i.relations.iter().cloned())
            .collect();
        let mut merged: Vec<String> = j
            .using_clause
            .iter()
            .filter_map(|u| string_of(u).map(str::to_string))
            .collect();
        if j.is_natural {
            merged.push("*".into());
        }
        // The compared columns are predicates on both sides.
        for col in &merged {
            for rel in &all_rels {
                self.column_use(rel, col, Use::Predicate);
            }
        }
        let mut with_members = scope.clone();
        with_members.extend(members.iter().cloned());
        self.scopes.push(with_members);
        let r = self.opt(&j.quals, Use::Predicate);
        self.scopes.pop();
        r?;
        let join_item = |refname: String, relations: Vec<Name>, renamed: bool| ScopeItem {
            refname,
            relations,
            renamed,
            merged: merged.clone(),
            merged_relations: all_rels.clone(),
            visible: true,
        };
        match &j.alias {
            Some(a) => {
                // An aliased join hides its members' names; unqualified
                // references still reach their columns.
                for mut m in members {
                    m.visible = false;
                    scope.push(m);
                }
                scope.push(join_item(
                    a.aliasname.clone(),
                    all_rels.clone(),
                    !a.colnames.is_empty(),
                ));
            }
            None => {
                scope.extend(members);
                scope.push(join_item(String::new(), Vec::new(), false));
            }
        }
        if let Some(a) = &j.join_using_alias {
            scope.push(join_item(a.aliasname.clone(), Vec::new(), false));
        }
        Ok(())
    }

    /// A column reference. `*` and `t.*` as plain output columns expand to
    /// columns pgward masks in place; anywhere else they are whole rows.
    pub fn column_ref(&mut self, c: &ColumnRef, how: Use) -> Walk {
        self.saw(Kind::Column, c.location);
        let mut fields = Vec::with_capacity(c.fields.len());
        for f in &c.fields {
            match f.node.as_ref() {
                Some(NodeEnum::String(s)) => fields.push(Some(s.sval.as_str())),
                Some(NodeEnum::AStar(_)) => fields.push(None),
                _ => return Err(super::classify::unsupported("this column reference")),
            }
        }
        match fields.as_slice() {
            [None] => {
                self.c.wildcard = true;
                self.attribute(None, "*", how);
            }
            [Some(name)] => {
                if self.is_item_name(name) {
                    // A bare FROM item name is its whole row: one composite value.
                    self.attribute(Some(name), "*", Use::Indirect);
                }
                self.attribute(None, name, how);
            }
            [.., Some(q), None] => {
                self.c.wildcard = true;
                if self.is_item_name(q) {
                    self.attribute(Some(q), "*", how);
                } else {
                    // `(composite_column).*`: the column, taken apart.
                    self.attribute(None, q, how.nested());
                }
            }
            [.., Some(q), Some(col)] => {
                if self.is_item_name(q) {
                    self.qualified_reference(q, col);
                    self.attribute(Some(q), col, how);
                } else {
                    self.attribute(Some(q), col, how);
                    // `composite_column.field`: the column is read.
                    self.attribute(None, q, how.nested());
                }
                if let [Some(first), Some(second), _, ..] = fields.as_slice() {
                    // `table.column.field`: the middle part may be the column.
                    if self.is_item_name(first) {
                        self.attribute(Some(first), second, how.nested());
                    }
                }
            }
            _ => return Err(super::classify::unsupported("this column reference")),
        }
        Ok(())
    }

    /// Records `q.col` for the catalog check: if `col` is no column of the
    /// item's tables, the server calls the function `col` on the whole row.
    fn qualified_reference(&mut self, q: &str, col: &str) {
        let items: Vec<(Vec<Name>, bool)> = self
            .scopes
            .iter()
            .rev()
            .flatten()
            .filter(|i| i.visible && i.refname == q)
            .map(|i| (i.relations.clone(), i.renamed))
            .take(1)
            .collect();
        for (relations, renamed) in items {
            if relations.is_empty() {
                continue;
            }
            if renamed {
                // Names are aliases: whatever it is, it may be the whole row.
                for r in &relations {
                    self.column_use(r, "*", Use::Indirect);
                }
                continue;
            }
            self.c
                .qualified_columns
                .insert((relations, col.to_string()));
        }
    }

    /// A subquery in an expression.
    pub fn sublink(&mut self, s: &SubLink, how: Use) -> Walk {
        self.opt(&s.testexpr, how.nested())?;
        self.operator_names(&s.oper_name)?;
        // A correlated subquery runs once per outer row.
        self.repeats += 1;
        let r = self.subquery(s.subselect.as_deref(), how.nested());
        self.repeats -= 1;
        r
    }

    /// The target of INSERT, UPDATE, DELETE or MERGE: written, and read when
    /// the statement also reads it.
    fn target(
        &mut self,
        r: &Option<RangeVar>,
        also_read: bool,
    ) -> Result<ScopeItem, super::classify::ClassifyError> {
        let Some(r) = r else {
            return Err(super::classify::unsupported("a statement without a target"));
        };
        self.saw(Kind::Relation, r.location);
        let name = range_var_name(r);
        if self.is_cte(&name) {
            return Err(super::classify::unsupported("writing to a CTE"));
        }
        self.write(name.clone());
        if also_read {
            self.c.reads.insert(name.clone());
        }
        Ok(item(range_var_refname(r), vec![name], false))
    }

    fn returning(&mut self, r: &Option<ReturningClause>, target: &ScopeItem) -> Walk {
        let Some(r) = r else { return Ok(()) };
        let mut scope = self.scopes.pop().unwrap_or_default();
        for o in &r.options {
            if let Some(NodeEnum::ReturningOption(opt)) = o.node.as_ref() {
                scope.push(item(opt.value.clone(), target.relations.clone(), false));
            }
        }
        for name in ["old", "new"] {
            scope.push(item(name.into(), target.relations.clone(), false));
        }
        self.scopes.push(scope);
        // RETURNING rows are not masked in place: every use is indirect.
        self.nodes(&r.exprs, Use::Indirect)
    }

    /// INSERT.
    pub fn insert(&mut self, s: &InsertStmt) -> Walk {
        // Nothing bounds the rows a data-modifying statement reads.
        self.levels.push(None);
        let r = self
            .with_clause(&s.with_clause)
            .and_then(|_| self.insert_body(s));
        self.ctes.pop();
        self.levels.pop();
        r
    }

    fn insert_body(&mut self, s: &InsertStmt) -> Walk {
        self.c.operations.insert(Operation::Insert);
        let upsert = s.on_conflict_clause.as_ref().is_some_and(|oc| {
            pb::OnConflictAction::try_from(oc.action) == Ok(pb::OnConflictAction::OnconflictUpdate)
        });
        if upsert {
            self.c.operations.insert(Operation::Update);
        }
        let target = self.target(&s.relation, upsert || s.returning_clause.is_some())?;
        // The inserted values come from outside the target's scope.
        self.subquery(s.select_stmt.as_deref(), Use::Indirect)?;
        // An upsert updates a row per row inserted: from a VALUES list that
        // is bounded; from a query it may be every row of the target.
        let values = matches!(
            s.select_stmt.as_deref().and_then(|n| n.node.as_ref()),
            Some(NodeEnum::SelectStmt(v)) if !v.values_lists.is_empty()
        );
        if upsert && !values {
            for rel in &target.relations {
                self.c.unfiltered.insert((Operation::Update, rel.clone()));
            }
        }
        let mut scope = vec![target.clone()];
        scope.push(item("excluded".into(), target.relations.clone(), false));
        self.scopes.push(scope);
        let r = self.insert_in_scope(s, &target);
        self.scopes.pop();
        r
    }

    fn insert_in_scope(&mut self, s: &InsertStmt, target: &ScopeItem) -> Walk {
        for col in &s.cols {
            if let Some(NodeEnum::ResTarget(r)) = col.node.as_ref() {
                self.nodes(&r.indirection, Use::Indirect)?;
            }
        }
        if let Some(oc) = &s.on_conflict_clause {
            if let Some(infer) = &oc.infer {
                self.nodes(&infer.index_elems, Use::Predicate)?;
                self.opt(&infer.where_clause, Use::Predicate)?;
            }
            self.set_list(&oc.target_list)?;
            self.opt(&oc.where_clause, Use::Predicate)?;
        }
        self.returning(&s.returning_clause, target)
    }

    /// `SET col = expr, (a, b) = (...)`: the values are written, so every
    /// column they use is used indirectly.
    fn set_list(&mut self, targets: &[Node]) -> Walk {
        for t in targets {
            match t.node.as_ref() {
                Some(NodeEnum::ResTarget(r)) => {
                    self.nodes(&r.indirection, Use::Indirect)?;
                    self.opt(&r.val, Use::Indirect)?;
                }
                _ => self.node(t, Use::Indirect)?,
            }
        }
        Ok(())
    }

    /// UPDATE.
    pub fn update(&mut self, s: &UpdateStmt) -> Walk {
        // Nothing bounds the rows a data-modifying statement reads.
        self.levels.push(None);
        let r = self
            .with_clause(&s.with_clause)
            .and_then(|_| self.update_body(s));
        self.ctes.pop();
        self.levels.pop();
        r
    }

    fn update_body(&mut self, s: &UpdateStmt) -> Walk {
        self.c.operations.insert(Operation::Update);
        let target = self.target(&s.relation, true)?;
        let mut scope = vec![target.clone()];
        for f in &s.from_clause {
            self.scan_from_node(f, &mut scope)?;
        }
        self.scopes.push(scope);
        let r = self
            .set_list(&s.target_list)
            .and_then(|_| self.filter(&s.where_clause, &target, &[Operation::Update]))
            .and_then(|_| self.returning(&s.returning_clause, &target));
        self.scopes.pop();
        r
    }

    /// DELETE.
    pub fn delete(&mut self, s: &DeleteStmt) -> Walk {
        // Nothing bounds the rows a data-modifying statement reads.
        self.levels.push(None);
        let r = self
            .with_clause(&s.with_clause)
            .and_then(|_| self.delete_body(s));
        self.ctes.pop();
        self.levels.pop();
        r
    }

    fn delete_body(&mut self, s: &DeleteStmt) -> Walk {
        self.c.operations.insert(Operation::Delete);
        let target = self.target(&s.relation, true)?;
        let mut scope = vec![target.clone()];
        for f in &s.using_clause {
            self.scan_from_node(f, &mut scope)?;
        }
        self.scopes.push(scope);
        let r = self
            .filter(&s.where_clause, &target, &[Operation::Delete])
            .and_then(|_| self.returning(&s.returning_clause, &target));
        self.scopes.pop();
        r
    }

    /// The WHERE of an UPDATE or DELETE (or a MERGE's join condition): the
    /// target is unfiltered unless the clause names a column of the target
    /// in the statement's own scope (or is `WHERE CURRENT OF`). Walking it
    /// notes which.
    fn filter(&mut self, w: &Option<Box<Node>>, target: &ScopeItem, ops: &[Operation]) -> Walk {
        let current_of = matches!(
            w.as_deref().and_then(|n| n.node.as_ref()),
            Some(NodeEnum::CurrentOfExpr(_))
        );
        let depth = self.scopes.len();
        let alone = self.scopes.last().is_some_and(|s| s.len() == 1);
        let mut filtered = current_of;
        for rel in &target.relations {
            let outer = self.filter.replace(super::walker::Filter {
                target: rel.clone(),
                depth,
                alone,
                seen: 0,
            });
            let r = self.opt(w, Use::Predicate);
            let seen = std::mem::replace(&mut self.filter, outer).map_or(0, |f| f.seen);
            r?;
            filtered |= seen > 0;
        }
        if target.relations.is_empty() {
            self.opt(w, Use::Predicate)?;
        }
        if !filtered {
            for rel in &target.relations {
                for op in ops {
                    self.c.unfiltered.insert((*op, rel.clone()));
                }
            }
        }
        Ok(())
    }

    /// MERGE.
    pub fn merge(&mut self, s: &MergeStmt) -> Walk {
        // Nothing bounds the rows a data-modifying statement reads.
        self.levels.push(None);
        let r = self
            .with_clause(&s.with_clause)
            .and_then(|_| self.merge_body(s));
        self.ctes.pop();
        self.levels.pop();
        r
    }

    fn merge_body(&mut self, s: &MergeStmt) -> Walk {
        self.c.operations.insert(Operation::Merge);
        let target = self.target(&s.relation, true)?;
        let mut scope = vec![target.clone()];
        match s.source_relation.as_deref().and_then(|n| n.node.as_ref()) {
            Some(src) => self.scan_from_item(src, &mut scope)?,
            None => return Err(super::classify::unsupported("MERGE without a source")),
        }
        self.scopes.push(scope);
        let r = self.merge_in_scope(s, &target);
        self.scopes.pop();
        r
    }

    fn merge_in_scope(&mut self, s: &MergeStmt, target: &ScopeItem) -> Walk {
        // MERGE ... ON true updates or deletes every row of the target.
        let mut acts = Vec::new();
        for w in &s.merge_when_clauses {
            if let Some(NodeEnum::MergeWhenClause(w)) = w.node.as_ref() {
                match pb::CmdType::try_from(w.command_type) {
                    Ok(pb::CmdType::CmdUpdate) => acts.push(Operation::Update),
                    Ok(pb::CmdType::CmdDelete) => acts.push(Operation::Delete),
                    _ => {}
                }
            }
        }
        self.filter(&s.join_condition, target, &acts)?;
        for w in &s.merge_when_clauses {
            let Some(NodeEnum::MergeWhenClause(w)) = w.node.as_ref() else {
                return Err(super::classify::unsupported("a MERGE clause"));
            };
            let op = match pb::CmdType::try_from(w.command_type) {
                Ok(pb::CmdType::CmdInsert) => Some(Operation::Insert),
                Ok(pb::CmdType::CmdUpdate) => Some(Operation::Update),
                Ok(pb::CmdType::CmdDelete) => Some(Operation::Delete),
                Ok(pb::CmdType::CmdNothing) => None,
                _ => return Err(super::classify::unsupported("this MERGE action")),
            };
            if let Some(op) = op {
                self.c.operations.insert(op);
            }
            self.opt(&w.condition, Use::Predicate)?;
            self.set_list(&w.target_list)?;
            self.nodes(&w.values, Use::Indirect)?;
        }
        self.returning(&s.returning_clause, target)
    }
}

/// A FROM item visible by `refname`.
fn item(refname: String, relations: Vec<Name>, renamed: bool) -> ScopeItem {
    ScopeItem {
        refname,
        relations,
        renamed,
        merged: Vec::new(),
        merged_relations: Vec::new(),
        visible: true,
    }
}

fn alias_name(a: &Option<pb::Alias>) -> String {
    a.as_ref().map(|a| a.aliasname.clone()).unwrap_or_default()
}

/// True for a `*` or `t.*` output item.
fn is_star_target(t: &Node) -> bool {
    match t.node.as_ref() {
        Some(NodeEnum::ResTarget(r)) => match r.val.as_deref().and_then(|v| v.node.as_ref()) {
            Some(NodeEnum::ColumnRef(c)) => c
                .fields
                .last()
                .is_some_and(|f| matches!(f.node, Some(NodeEnum::AStar(_)))),
            _ => false,
        },
        _ => false,
    }
}

/// A single unqualified name (`ORDER BY x`).
fn bare_name(n: &Node) -> Option<&str> {
    match n.node.as_ref()? {
        NodeEnum::ColumnRef(c) => match c.fields.as_slice() {
            [f] => string_of(f),
            _ => None,
        },
        _ => None,
    }
}
