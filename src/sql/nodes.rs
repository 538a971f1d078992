//! Every node kind of PostgreSQL's raw parse tree, handled explicitly. The
//! match below has no catch-all arm: a node kind added to the parser fails
//! the build until it is given a meaning here, and kinds that only appear in
//! analysed trees (or that pgward does not analyse) are refused. Statements
//! go to `queries` and `utility`; function calls to `functions`.

use pg_query::{Node, NodeEnum};

use super::census::Kind;
use super::classify::ClassifyError;
use super::walker::{Use, Walk, Walker};

/// The function name an older server reads JSON_EXISTS/QUERY/VALUE as.
fn json_function_name(op: i32) -> &'static str {
    use pg_query::protobuf::JsonExprOp as Op;
    match Op::try_from(op) {
        Ok(Op::JsonExistsOp) => "json_exists",
        Ok(Op::JsonQueryOp) => "json_query",
        Ok(Op::JsonValueOp) => "json_value",
        Ok(Op::JsonTableOp | Op::Undefined) | Err(_) => "json_table",
    }
}

fn unexpected(kind: &str) -> Walk {
    Err(ClassifyError::Unsupported(format!(
        "a {kind} node in a raw parse tree"
    )))
}

impl Walker<'_> {
    /// Walks an optional node.
    pub fn node(&mut self, n: &Node, how: Use) -> Walk {
        match n.node.as_ref() {
            Some(inner) => self.node_enum(inner, how),
            None => Ok(()),
        }
    }

    /// Walks an optional boxed node.
    pub fn opt(&mut self, n: &Option<Box<Node>>, how: Use) -> Walk {
        match n {
            Some(n) => self.node(n, how),
            None => Ok(()),
        }
    }

    /// Walks a list of nodes.
    pub fn nodes(&mut self, list: &[Node], how: Use) -> Walk {
        for n in list {
            self.node(n, how)?;
        }
        Ok(())
    }

    /// Walks one node of any kind. Statements reached here are nested ones
    /// (never the top-level statement of the text).
    pub fn node_enum(&mut self, n: &NodeEnum, how: Use) -> Walk {
        use NodeEnum as N;
        let inner = how.nested();
        match n {
            // ---- Statements.
            N::RawStmt(s) => self.opt(&s.stmt, how),
            N::SelectStmt(_)
            | N::InsertStmt(_)
            | N::UpdateStmt(_)
            | N::DeleteStmt(_)
            | N::MergeStmt(_)
            | N::CreateSchemaStmt(_)
            | N::AlterTableStmt(_)
            | N::ReplicaIdentityStmt(_)
            | N::AlterCollationStmt(_)
            | N::AlterDomainStmt(_)
            | N::GrantStmt(_)
            | N::GrantRoleStmt(_)
            | N::AlterDefaultPrivilegesStmt(_)
            | N::CopyStmt(_)
            | N::VariableSetStmt(_)
            | N::VariableShowStmt(_)
            | N::CreateStmt(_)
            | N::CreateTableSpaceStmt(_)
            | N::DropTableSpaceStmt(_)
            | N::AlterTableSpaceOptionsStmt(_)
            | N::AlterTableMoveAllStmt(_)
            | N::CreateExtensionStmt(_)
            | N::AlterExtensionStmt(_)
            | N::AlterExtensionContentsStmt(_)
            | N::CreateFdwStmt(_)
            | N::AlterFdwStmt(_)
            | N::CreateForeignServerStmt(_)
            | N::AlterForeignServerStmt(_)
            | N::CreateForeignTableStmt(_)
            | N::CreateUserMappingStmt(_)
            | N::AlterUserMappingStmt(_)
            | N::DropUserMappingStmt(_)
            | N::ImportForeignSchemaStmt(_)
            | N::CreatePolicyStmt(_)
            | N::AlterPolicyStmt(_)
            | N::CreateAmStmt(_)
            | N::CreateTrigStmt(_)
            | N::CreateEventTrigStmt(_)
            | N::AlterEventTrigStmt(_)
            | N::CreatePlangStmt(_)
            | N::CreateRoleStmt(_)
            | N::AlterRoleStmt(_)
            | N::AlterRoleSetStmt(_)
            | N::DropRoleStmt(_)
            | N::CreateSeqStmt(_)
            | N::AlterSeqStmt(_)
            | N::DefineStmt(_)
            | N::CreateDomainStmt(_)
            | N::CreateOpClassStmt(_)
            | N::CreateOpFamilyStmt(_)
            | N::AlterOpFamilyStmt(_)
            | N::DropStmt(_)
            | N::TruncateStmt(_)
            | N::CommentStmt(_)
            | N::SecLabelStmt(_)
            | N::DeclareCursorStmt(_)
            | N::ClosePortalStmt(_)
            | N::FetchStmt(_)
            | N::IndexStmt(_)
            | N::CreateStatsStmt(_)
            | N::AlterStatsStmt(_)
            | N::CreateFunctionStmt(_)
            | N::AlterFunctionStmt(_)
            | N::DoStmt(_)
            | N::CallStmt(_)
            | N::RenameStmt(_)
            | N::AlterObjectDependsStmt(_)
            | N::AlterObjectSchemaStmt(_)
            | N::AlterOwnerStmt(_)
            | N::AlterOperatorStmt(_)
            | N::AlterTypeStmt(_)
            | N::RuleStmt(_)
            | N::NotifyStmt(_)
            | N::ListenStmt(_)
            | N::UnlistenStmt(_)
            | N::TransactionStmt(_)
            | N::CompositeTypeStmt(_)
            | N::CreateEnumStmt(_)
            | N::CreateRangeStmt(_)
            | N::AlterEnumStmt(_)
            | N::ViewStmt(_)
            | N::LoadStmt(_)
            | N::CreatedbStmt(_)
            | N::AlterDatabaseStmt(_)
            | N::AlterDatabaseRefreshCollStmt(_)
            | N::AlterDatabaseSetStmt(_)
            | N::DropdbStmt(_)
            | N::AlterSystemStmt(_)
            | N::ClusterStmt(_)
            | N::VacuumStmt(_)
            | N::ExplainStmt(_)
            | N::CreateTableAsStmt(_)
            | N::RefreshMatViewStmt(_)
            | N::CheckPointStmt(_)
            | N::DiscardStmt(_)
            | N::LockStmt(_)
            | N::ConstraintsSetStmt(_)
            | N::ReindexStmt(_)
            | N::CreateConversionStmt(_)
            | N::CreateCastStmt(_)
            | N::CreateTransformStmt(_)
            | N::PrepareStmt(_)
            | N::ExecuteStmt(_)
            | N::DeallocateStmt(_)
            | N::DropOwnedStmt(_)
            | N::ReassignOwnedStmt(_)
            | N::AlterTsdictionaryStmt(_)
            | N::AlterTsconfigurationStmt(_)
            | N::CreatePublicationStmt(_)
            | N::AlterPublicationStmt(_)
            | N::CreateSubscriptionStmt(_)
            | N::AlterSubscriptionStmt(_)
            | N::DropSubscriptionStmt(_) => self.statement(n, false, how),

            N::ParamRef(p) => {
                self.saw(Kind::Parameter, p.location);
                self.parameters.push(p.number);
                Ok(())
            }

            // ---- Values and names that carry nothing to check.
            N::Integer(_)
            | N::Float(_)
            | N::Boolean(_)
            | N::String(_)
            | N::BitString(_)
            | N::AConst(_)
            | N::AStar(_)
            | N::SqlvalueFunction(_)
            | N::SetToDefault(_)
            | N::CurrentOfExpr(_)
            | N::RoleSpec(_)
            | N::Alias(_)
            | N::AccessPriv(_)
            | N::ReturningOption(_)
            | N::TriggerTransition(_)
            | N::AtalterConstraint(_) => Ok(()),
            N::TypeName(t) => self.type_name(t),
            N::List(l) => self.nodes(&l.items, how),

            // ---- Expressions.
            N::ColumnRef(c) => self.column_ref(c, how),
            N::AExpr(e) => self.operator(e, how),
            N::TypeCast(t) => self.type_cast(t, how),
            N::CollateClause(c) => self.opt(&c.arg, inner),
            N::FuncCall(f) => self.function_call(f, how),
            N::NamedArgExpr(a) => self.opt(&a.arg, inner),
            N::AIndices(i) => {
                self.opt(&i.lidx, inner)?;
                self.opt(&i.uidx, inner)
            }
            N::AIndirection(i) => {
                // `(expr).name` is `name(expr)` when expr is not composite.
                self.saw(Kind::Indirection, -1);
                for step in &i.indirection {
                    if let Some(NodeEnum::String(s)) = step.node.as_ref() {
                        if Walker::ARGUMENTS_READ.contains(&s.sval.as_str()) {
                            self.forbid(format!(
                                "(value).{} (a call of {}() on a value pgward cannot read)",
                                s.sval, s.sval
                            ));
                        }
                        self.c.field_selections.insert(s.sval.clone());
                    }
                }
                self.opt(&i.arg, inner)?;
                self.nodes(&i.indirection, inner)
            }
            N::AArrayExpr(a) => self.nodes(&a.elements, inner),
            N::ResTarget(r) => {
                self.nodes(&r.indirection, inner)?;
                self.opt(&r.val, how)
            }
            N::MultiAssignRef(m) => self.opt(&m.source, inner),
            N::SortBy(s) => {
                self.operator_names(&s.use_op)?;
                self.opt(&s.node, Use::Predicate)
            }
            N::WindowDef(w) => self.window(w),
            N::BoolExpr(b) => self.nodes(&b.args, inner),
            N::SubLink(s) => self.sublink(s, how),
            N::NullTest(t) => self.opt(&t.arg, inner),
            N::BooleanTest(t) => self.opt(&t.arg, inner),
            N::CaseExpr(c) => {
                self.opt(&c.arg, inner)?;
                self.nodes(&c.args, inner)?;
                self.opt(&c.defresult, inner)
            }
            N::CaseWhen(w) => {
                self.opt(&w.expr, inner)?;
                self.opt(&w.result, inner)
            }
            N::RowExpr(r) => self.nodes(&r.args, inner),
            N::CoalesceExpr(c) => self.nodes(&c.args, inner),
            N::MinMaxExpr(m) => self.nodes(&m.args, inner),
            N::XmlExpr(x) => {
                self.nodes(&x.named_args, inner)?;
                self.nodes(&x.args, inner)
            }
            N::XmlSerialize(x) => {
                self.opt(&x.expr, inner)?;
                self.opt_type(&x.type_name)
            }
            N::GroupingFunc(g) => self.nodes(&g.args, Use::Predicate),
            N::GroupingSet(g) => self.nodes(&g.content, Use::Predicate),

            // ---- SQL/JSON.
            N::JsonFormat(_) | N::JsonReturning(_) => Ok(()),
            N::JsonValueExpr(v) => {
                self.opt(&v.raw_expr, inner)?;
                self.opt(&v.formatted_expr, inner)
            }
            N::JsonIsPredicate(p) => self.opt(&p.expr, inner),
            N::JsonBehavior(b) => self.opt(&b.expr, inner),
            N::JsonOutput(o) => self.opt_type(&o.type_name),
            N::JsonArgument(a) => self.json_value(&a.val, inner),
            N::JsonFuncExpr(f) => {
                self.sql_json(json_function_name(f.op));
                self.json_value(&f.context_item, inner)?;
                self.opt(&f.pathspec, inner)?;
                self.nodes(&f.passing, inner)?;
                self.json_behavior(&f.on_empty, inner)?;
                self.json_behavior(&f.on_error, inner)
            }
            N::JsonTablePathSpec(p) => self.opt(&p.string, inner),
            N::JsonTableColumn(c) => {
                self.opt_type(&c.type_name)?;
                if let Some(p) = &c.pathspec {
                    self.opt(&p.string, inner)?;
                }
                self.nodes(&c.columns, inner)?;
                self.json_behavior(&c.on_empty, inner)?;
                self.json_behavior(&c.on_error, inner)
            }
            N::JsonKeyValue(kv) => {
                self.opt(&kv.key, inner)?;
                self.json_value(&kv.value, inner)
            }
            N::JsonParseExpr(p) => {
                self.sql_json("json");
                self.json_value(&p.expr, inner)
            }
            N::JsonScalarExpr(s) => {
                self.sql_json("json_scalar");
                self.opt(&s.expr, inner)
            }
            N::JsonSerializeExpr(s) => {
                self.sql_json("json_serialize");
                self.json_value(&s.expr, inner)
            }
            N::JsonObjectConstructor(o) => {
                self.sql_json("json_object");
                self.nodes(&o.exprs, inner)
            }
            N::JsonArrayConstructor(a) => {
                self.sql_json("json_array");
                self.nodes(&a.exprs, inner)
            }
            N::JsonArrayQueryConstructor(q) => {
                self.sql_json("json_array");
                self.subquery(q.query.as_deref(), inner)
            }
            N::JsonAggConstructor(a) => self.json_agg(a),
            N::JsonObjectAgg(a) => {
                self.sql_json("json_objectagg");
                if let Some(c) = &a.constructor {
                    self.json_agg(c)?;
                }
                if let Some(kv) = &a.arg {
                    self.opt(&kv.key, inner)?;
                    self.json_value(&kv.value, inner)?;
                }
                Ok(())
            }
            N::JsonArrayAgg(a) => {
                self.sql_json("json_arrayagg");
                if let Some(c) = &a.constructor {
                    self.json_agg(c)?;
                }
                self.json_value(&a.arg, inner)
            }

            // ---- FROM items reached outside a FROM list (DDL, LOCK, ...).
            N::RangeVar(r) => {
                self.relation(r);
                Ok(())
            }
            N::RangeSubselect(_)
            | N::RangeFunction(_)
            | N::RangeTableFunc(_)
            | N::RangeTableSample(_)
            | N::JoinExpr(_)
            | N::JsonTable(_) => {
                let mut scope = Vec::new();
                self.scan_from_item(n, &mut scope)
            }
            N::RangeTableFuncCol(c) => {
                self.opt_type(&c.type_name)?;
                self.opt(&c.colexpr, inner)?;
                self.opt(&c.coldefexpr, inner)
            }

            // ---- Parts of DDL.
            N::ColumnDef(c) => self.column_def(c),
            N::Constraint(c) => self.constraint(c),
            N::TableLikeClause(t) => {
                if let Some(r) = &t.relation {
                    self.relation(r);
                }
                Ok(())
            }
            N::IndexElem(e) => {
                self.opt(&e.expr, Use::Indirect)?;
                if !e.name.is_empty() {
                    self.attribute(None, &e.name, Use::Indirect);
                }
                Ok(())
            }
            N::DefElem(d) => self.opt(&d.arg, Use::Indirect),
            N::PartitionElem(p) => {
                self.opt(&p.expr, Use::Indirect)?;
                if !p.name.is_empty() {
                    self.attribute(None, &p.name, Use::Indirect);
                }
                Ok(())
            }
            N::PartitionSpec(p) => self.nodes(&p.part_params, Use::Indirect),
            N::PartitionBoundSpec(b) => {
                self.nodes(&b.listdatums, Use::Indirect)?;
                self.nodes(&b.lowerdatums, Use::Indirect)?;
                self.nodes(&b.upperdatums, Use::Indirect)
            }
            N::PartitionRangeDatum(d) => self.opt(&d.value, Use::Indirect),
            N::PartitionCmd(p) => {
                if let Some(r) = &p.name {
                    self.relation(r);
                }
                if let Some(b) = &p.bound {
                    self.nodes(&b.listdatums, Use::Indirect)?;
                    self.nodes(&b.lowerdatums, Use::Indirect)?;
                    self.nodes(&b.upperdatums, Use::Indirect)?;
                }
                Ok(())
            }
            N::AlterTableCmd(c) => self.alter_table_cmd(c),
            N::FunctionParameter(p) => {
                self.opt_type(&p.arg_type)?;
                self.opt(&p.defexpr, Use::Indirect)
            }
            N::ObjectWithArgs(o) => self.nodes(&o.objargs, Use::Indirect),
            N::StatsElem(s) => {
                self.opt(&s.expr, Use::Indirect)?;
                if !s.name.is_empty() {
                    self.attribute(None, &s.name, Use::Indirect);
                }
                Ok(())
            }
            N::VacuumRelation(v) => {
                if let Some(r) = &v.relation {
                    self.relation(r);
                }
                Ok(())
            }
            N::LockingClause(l) => self.locking(l),
            N::InferClause(i) => {
                self.nodes(&i.index_elems, Use::Predicate)?;
                self.opt(&i.where_clause, Use::Predicate)
            }
            N::CtesearchClause(_) => Ok(()),
            N::CtecycleClause(c) => {
                self.opt(&c.cycle_mark_value, Use::Indirect)?;
                self.opt(&c.cycle_mark_default, Use::Indirect)
            }

            // ---- Clauses only their statement walks; met alone, refused.
            N::WithClause(_) => unexpected("WITH clause"),
            N::OnConflictClause(_) => unexpected("ON CONFLICT clause"),
            N::CommonTableExpr(_) => unexpected("common table expression"),
            N::MergeWhenClause(_) => unexpected("MERGE WHEN clause"),
            N::ReturningClause(_) => unexpected("RETURNING clause"),
            N::IntoClause(_) => unexpected("INTO clause"),
            N::CreateOpClassItem(_) => unexpected("operator class item"),
            N::PublicationTable(_) => unexpected("publication table"),
            N::PublicationObjSpec(_) => unexpected("publication object"),
            N::InlineCodeBlock(_) => unexpected("inline code block"),
            N::CallContext(_) => unexpected("call context"),
            N::PlassignStmt(_) => unexpected("PL/pgSQL assignment"),
            N::ReturnStmt(_) => unexpected("RETURN statement"),
            N::SetOperationStmt(_) => unexpected("set operation"),

            // ---- Kinds that only exist after parse analysis or planning.
            N::Var(_) => unexpected("Var"),
            N::Param(_) => unexpected("Param"),
            N::Aggref(_) => unexpected("Aggref"),
            N::WindowFunc(_) => unexpected("WindowFunc"),
            N::WindowFuncRunCondition(_) => unexpected("WindowFuncRunCondition"),
            N::MergeSupportFunc(_) => unexpected("MergeSupportFunc"),
            N::SubscriptingRef(_) => unexpected("SubscriptingRef"),
            N::FuncExpr(_) => unexpected("FuncExpr"),
            N::OpExpr(_) => unexpected("OpExpr"),
            N::DistinctExpr(_) => unexpected("DistinctExpr"),
            N::NullIfExpr(_) => unexpected("NullIfExpr"),
            N::ScalarArrayOpExpr(_) => unexpected("ScalarArrayOpExpr"),
            N::SubPlan(_) => unexpected("SubPlan"),
            N::AlternativeSubPlan(_) => unexpected("AlternativeSubPlan"),
            N::FieldSelect(_) => unexpected("FieldSelect"),
            N::FieldStore(_) => unexpected("FieldStore"),
            N::RelabelType(_) => unexpected("RelabelType"),
            N::CoerceViaIo(_) => unexpected("CoerceViaIO"),
            N::ArrayCoerceExpr(_) => unexpected("ArrayCoerceExpr"),
            N::ConvertRowtypeExpr(_) => unexpected("ConvertRowtypeExpr"),
            N::CollateExpr(_) => unexpected("CollateExpr"),
            N::CaseTestExpr(_) => unexpected("CaseTestExpr"),
            N::ArrayExpr(_) => unexpected("ArrayExpr"),
            N::RowCompareExpr(_) => unexpected("RowCompareExpr"),
            N::JsonConstructorExpr(_) => unexpected("JsonConstructorExpr"),
            N::JsonExpr(_) => unexpected("JsonExpr"),
            N::JsonTablePath(_) => unexpected("JsonTablePath"),
            N::JsonTablePathScan(_) => unexpected("JsonTablePathScan"),
            N::JsonTableSiblingJoin(_) => unexpected("JsonTableSiblingJoin"),
            N::MergeAction(_) => unexpected("MergeAction"),
            N::CoerceToDomain(_) => unexpected("CoerceToDomain"),
            N::CoerceToDomainValue(_) => unexpected("CoerceToDomainValue"),
            N::NextValueExpr(_) => unexpected("NextValueExpr"),
            N::InferenceElem(_) => unexpected("InferenceElem"),
            N::ReturningExpr(_) => unexpected("ReturningExpr"),
            N::TargetEntry(_) => unexpected("TargetEntry"),
            N::RangeTblRef(_) => unexpected("RangeTblRef"),
            N::FromExpr(_) => unexpected("FromExpr"),
            N::OnConflictExpr(_) => unexpected("OnConflictExpr"),
            N::Query(_) => unexpected("Query"),
            N::RangeTblEntry(_) => unexpected("RangeTblEntry"),
            N::RtepermissionInfo(_) => unexpected("RTEPermissionInfo"),
            N::RangeTblFunction(_) => unexpected("RangeTblFunction"),
            N::TableSampleClause(_) => unexpected("TableSampleClause"),
            N::WithCheckOption(_) => unexpected("WithCheckOption"),
            N::SortGroupClause(_) => unexpected("SortGroupClause"),
            N::WindowClause(_) => unexpected("WindowClause"),
            N::RowMarkClause(_) => unexpected("RowMarkClause"),
            N::TableFunc(_) => unexpected("TableFunc"),
            N::IntList(_) => unexpected("IntList"),
            N::OidList(_) => unexpected("OidList"),
        }
    }

    /// SQL/JSON syntax (PostgreSQL 16 and later) that an older server reads
    /// as a call of a function of that name, found through the search path:
    /// checked as that function, so it needs a grant where it is not built in.
    fn sql_json(&mut self, name: &str) {
        self.c
            .functions
            .insert(super::classification::Name::bare(name));
    }

    /// A window definition: partitions and orderings are predicates.
    pub fn window(&mut self, w: &pg_query::protobuf::WindowDef) -> Walk {
        self.nodes(&w.partition_clause, Use::Predicate)?;
        self.nodes(&w.order_clause, Use::Predicate)?;
        self.opt(&w.start_offset, Use::Indirect)?;
        self.opt(&w.end_offset, Use::Indirect)
    }

    fn json_value(&mut self, v: &Option<Box<pg_query::protobuf::JsonValueExpr>>, how: Use) -> Walk {
        match v {
            Some(v) => {
                self.opt(&v.raw_expr, how)?;
                self.opt(&v.formatted_expr, how)
            }
            None => Ok(()),
        }
    }

    fn json_behavior(
        &mut self,
        b: &Option<Box<pg_query::protobuf::JsonBehavior>>,
        how: Use,
    ) -> Walk {
        match b {
            Some(b) => self.opt(&b.expr, how),
            None => Ok(()),
        }
    }

    fn json_agg(&mut self, a: &pg_query::protobuf::JsonAggConstructor) -> Walk {
        self.opt(&a.agg_filter, Use::Predicate)?;
        self.nodes(&a.agg_order, Use::Predicate)?;
        if let Some(w) = &a.over {
            self.window(w)?;
        }
        Ok(())
    }

    /// A type name: `%TYPE` references name a column.
    pub fn type_name(&mut self, t: &pg_query::protobuf::TypeName) -> Walk {
        self.nodes(&t.typmods, Use::Indirect)
    }

    /// An optional type name.
    pub fn opt_type(&mut self, t: &Option<pg_query::protobuf::TypeName>) -> Walk {
        match t {
            Some(t) => self.type_name(t),
            None => Ok(()),
        }
    }

    /// FOR UPDATE / FOR SHARE: the names refer to FROM items, not relations.
    fn locking(&mut self, l: &pg_query::protobuf::LockingClause) -> Walk {
        self.c.operations.insert(super::Operation::Lock);
        for r in &l.locked_rels {
            if let Some(NodeEnum::RangeVar(rv)) = r.node.as_ref() {
                self.saw(Kind::Relation, rv.location);
            } else {
                self.node(r, Use::Indirect)?;
            }
        }
        Ok(())
    }
}
