//! Every statement kind: queries and DML go to `queries`; the rest (COPY,
//! SET, transaction control, DDL, maintenance, ...) is classified here. DDL
//! writes every object it names; statements that administer the server, its
//! roles or its extensions are never allowed; statements that create code
//! running later need the `code` operation.

use pg_query::protobuf::{self as pb, ObjectType};
use pg_query::{Node, NodeEnum};

use super::census::Kind;
use super::classification::{CursorChange, Name, Operation};
use super::names::{name_of_list, range_var_name, string_of};
use super::walker::{Use, Walk, Walker};

/// DECLARE ... WITH HOLD (PostgreSQL's CURSOR_OPT_HOLD).
const CURSOR_OPT_HOLD: i32 = 0x0020;

impl Walker<'_> {
    /// Walks a statement. `top` is true for a top-level statement of the
    /// text; `how` is how a nested statement's output is used.
    pub fn statement(&mut self, n: &NodeEnum, top: bool, how: Use) -> Walk {
        use NodeEnum as N;
        match n {
            N::SelectStmt(s) => {
                self.c.operations.insert(Operation::Select);
                self.select(s, top, how)
            }
            N::InsertStmt(s) => self.insert(s),
            N::UpdateStmt(s) => self.update(s),
            N::DeleteStmt(s) => self.delete(s),
            N::MergeStmt(s) => self.merge(s),
            N::ExplainStmt(e) => {
                // EXPLAIN ANALYZE runs the statement; plain EXPLAIN is judged alike.
                self.nodes(&e.options, Use::Indirect)?;
                self.nested_statement(&e.query, top, how)
            }
            N::DeclareCursorStmt(d) => {
                // FETCH returns the query's rows as a SELECT would.
                self.c.operations.insert(Operation::Cursor);
                self.c.cursors.push(CursorChange::Declare {
                    name: d.portalname.clone(),
                    hold: d.options & CURSOR_OPT_HOLD != 0,
                });
                self.nested_statement(&d.query, top, how)
            }
            N::ClosePortalStmt(c) => {
                self.c.operations.insert(Operation::Cursor);
                // CLOSE ALL has no name.
                let name = (!c.portalname.is_empty()).then(|| c.portalname.clone());
                self.c.cursors.push(CursorChange::Close(name));
                Ok(())
            }
            N::FetchStmt(_) => {
                self.c.operations.insert(Operation::Cursor);
                Ok(())
            }
            N::PrepareStmt(p) => {
                self.c.operations.insert(Operation::Prepare);
                self.c.prepared.push(p.name.clone());
                self.nodes(&p.argtypes, Use::Indirect)?;
                self.nested_statement(&p.query, false, Use::Indirect)
            }
            N::DeallocateStmt(d) => {
                self.c.operations.insert(Operation::Prepare);
                let name = (!d.isall && !d.name.is_empty()).then(|| d.name.clone());
                self.c.deallocated.push(name);
                Ok(())
            }
            N::ExecuteStmt(_) => {
                self.forbid("EXECUTE of an SQL-level prepared statement is not analysed");
                Ok(())
            }
            N::CopyStmt(c) => self.copy(c),
            N::VariableSetStmt(s) => self.variable_set(s),
            N::VariableShowStmt(s) => {
                self.c.operations.insert(Operation::Show);
                self.c.settings_read.insert(s.name.to_lowercase());
                Ok(())
            }
            N::TransactionStmt(t) => {
                use pb::TransactionStmtKind as K;
                match K::try_from(t.kind) {
                    Ok(
                        K::TransStmtPrepare
                        | K::TransStmtCommitPrepared
                        | K::TransStmtRollbackPrepared,
                    ) => self.c.unsupported.push(
                        "two-phase commit (a prepared transaction outlives the session)".into(),
                    ),
                    _ => {
                        self.c.operations.insert(Operation::Transaction);
                    }
                }
                self.transaction_options(&t.options, "");
                self.nodes(&t.options, Use::Indirect)
            }
            N::ConstraintsSetStmt(s) => {
                self.c.operations.insert(Operation::Transaction);
                // The names are constraints, not relations.
                for c in &s.constraints {
                    if let Some(NodeEnum::RangeVar(r)) = c.node.as_ref() {
                        self.saw(Kind::Relation, r.location);
                    }
                }
                Ok(())
            }
            N::DiscardStmt(d) => {
                self.c.operations.insert(Operation::Discard);
                // Only DISCARD ALL drops prepared statements and cursors
                // (PLANS, SEQUENCES and TEMP keep them).
                if d.target == pb::DiscardMode::DiscardAll as i32 {
                    self.c.deallocated.push(None);
                    self.c.cursors.push(CursorChange::Close(None));
                }
                Ok(())
            }
            N::NotifyStmt(_) => {
                self.c.operations.insert(Operation::Notify);
                Ok(())
            }
            N::ListenStmt(_) | N::UnlistenStmt(_) => {
                self.c.operations.insert(Operation::Listen);
                Ok(())
            }
            N::LockStmt(l) => {
                self.c.operations.insert(Operation::Lock);
                self.nodes(&l.relations, Use::Indirect)
            }
            N::CallStmt(c) => match &c.funccall {
                Some(f) => self.function_call(f, Use::Indirect),
                None => Err(super::classify::unsupported("CALL without a procedure")),
            },
            N::DoStmt(d) => {
                self.c.operations.insert(Operation::Code);
                self.nodes(&d.args, Use::Indirect)
            }
            N::TruncateStmt(t) => {
                self.c.operations.insert(Operation::Truncate);
                self.cascade(t.behavior);
                self.ddl_walk(|w| w.nodes(&t.relations, Use::Indirect))
            }
            N::VacuumStmt(v) => {
                self.c.operations.insert(Operation::Maintenance);
                self.nodes(&v.options, Use::Indirect)?;
                self.ddl_walk(|w| w.nodes(&v.rels, Use::Indirect))
            }
            N::ClusterStmt(c) => self.maintain(c.relation.as_ref(), "CLUSTER of every table"),
            N::ReindexStmt(r) => self.maintain(
                r.relation.as_ref(),
                "REINDEX of a schema, database or system",
            ),
            N::RefreshMatViewStmt(r) => match &r.relation {
                Some(_) => self.maintain(r.relation.as_ref(), ""),
                None => Err(super::classify::unsupported("REFRESH without a view")),
            },
            N::CreateTableAsStmt(c) => {
                self.c.operations.insert(Operation::Ddl);
                if let Some(into) = &c.into {
                    if let Some(rel) = &into.rel {
                        self.saw(Kind::Relation, rel.location);
                        self.write(range_var_name(rel));
                    }
                    self.nodes(&into.options, Use::Indirect)?;
                }
                // The new table holds the rows unmasked: every use is indirect.
                self.nested_statement(&c.query, false, Use::Indirect)
            }
            N::ViewStmt(v) => {
                self.c.operations.insert(Operation::Ddl);
                if let Some(rel) = &v.view {
                    self.saw(Kind::Relation, rel.location);
                    self.write(range_var_name(rel));
                }
                self.nodes(&v.options, Use::Indirect)?;
                self.nested_statement(&v.query, false, Use::Indirect)
            }
            N::CreateStmt(s) => self.ddl(|w| {
                if let Some(r) = &s.relation {
                    w.relation(r);
                }
                w.nodes(&s.table_elts, Use::Indirect)?;
                w.nodes(&s.inh_relations, Use::Indirect)?;
                if let Some(b) = &s.partbound {
                    w.node_enum(&NodeEnum::PartitionBoundSpec(b.clone()), Use::Indirect)?;
                }
                if let Some(p) = &s.partspec {
                    w.nodes(&p.part_params, Use::Indirect)?;
                }
                w.opt_type(&s.of_typename)?;
                w.nodes(&s.constraints, Use::Indirect)?;
                w.nodes(&s.nnconstraints, Use::Indirect)?;
                w.nodes(&s.options, Use::Indirect)
            }),
            N::AlterTableStmt(s) => self.ddl(|w| {
                if let Some(r) = &s.relation {
                    w.relation(r);
                }
                w.with_table_scope(s.relation.as_ref(), |w| w.nodes(&s.cmds, Use::Indirect))
            }),
            N::IndexStmt(s) => self.ddl(|w| {
                if let Some(r) = &s.relation {
                    w.relation(r);
                }
                w.with_table_scope(s.relation.as_ref(), |w| {
                    w.nodes(&s.index_params, Use::Indirect)?;
                    w.nodes(&s.index_including_params, Use::Indirect)?;
                    w.nodes(&s.options, Use::Indirect)?;
                    w.opt(&s.where_clause, Use::Predicate)
                })
            }),
            N::CreateSeqStmt(s) => self.ddl(|w| {
                if let Some(r) = &s.sequence {
                    w.relation(r);
                }
                w.nodes(&s.options, Use::Indirect)
            }),
            N::AlterSeqStmt(s) => self.ddl(|w| {
                if let Some(r) = &s.sequence {
                    w.relation(r);
                }
                w.nodes(&s.options, Use::Indirect)
            }),
            N::CreateSchemaStmt(s) => {
                if s.authrole.is_some() {
                    self.forbid("CREATE SCHEMA AUTHORIZATION (a schema owned by another role)");
                    return Ok(());
                }
                self.ddl(|w| {
                    w.write(Name::qualified(&s.schemaname, "*"));
                    for e in &s.schema_elts {
                        if let Some(inner) = e.node.as_ref() {
                            w.statement(inner, false, Use::Indirect)?;
                        }
                    }
                    Ok(())
                })
            }
            N::CreateDomainStmt(s) => self.ddl(|w| {
                w.c.types_created.extend(name_of_list(&s.domainname));
                w.write_list(&s.domainname)?;
                w.opt_type(&s.type_name)?;
                w.nodes(&s.constraints, Use::Indirect)
            }),
            N::AlterDomainStmt(s) => self.ddl(|w| {
                w.cascade(s.behavior);
                w.write_list(&s.type_name)?;
                w.opt(&s.def, Use::Indirect)
            }),
            N::CompositeTypeStmt(s) => self.ddl(|w| {
                if let Some(r) = &s.typevar {
                    w.c.types_created.insert(range_var_name(r));
                    w.saw(Kind::Relation, r.location);
                    w.write(range_var_name(r));
                }
                w.nodes(&s.coldeflist, Use::Indirect)
            }),
            N::CreateEnumStmt(s) => self.ddl(|w| {
                w.c.types_created.extend(name_of_list(&s.type_name));
                w.write_list(&s.type_name)
            }),
            N::AlterEnumStmt(s) => self.ddl(|w| w.write_list(&s.type_name)),
            N::AlterTypeStmt(s) => self.ddl(|w| {
                w.write_list(&s.type_name)?;
                w.nodes(&s.options, Use::Indirect)
            }),
            N::AlterCollationStmt(s) => self.ddl(|w| w.write_list(&s.collname)),
            N::AlterTsdictionaryStmt(s) => self.ddl(|w| {
                w.write_list(&s.dictname)?;
                w.nodes(&s.options, Use::Indirect)
            }),
            N::AlterTsconfigurationStmt(s) => self.ddl(|w| {
                w.write_list(&s.cfgname)?;
                for d in &s.dicts {
                    if let Some(NodeEnum::List(l)) = d.node.as_ref() {
                        w.c.reads.extend(name_of_list(&l.items));
                    }
                }
                Ok(())
            }),
            N::CreateStatsStmt(s) => self.ddl(|w| {
                if !s.defnames.is_empty() {
                    w.write_list(&s.defnames)?;
                }
                w.nodes(&s.relations, Use::Indirect)?;
                w.nodes(&s.exprs, Use::Indirect)
            }),
            N::AlterStatsStmt(s) => self.ddl(|w| {
                w.write_list(&s.defnames)?;
                w.opt(&s.stxstattarget, Use::Indirect)
            }),
            N::CreatePolicyStmt(s) => self.ddl(|w| {
                if let Some(t) = &s.table {
                    w.relation(t);
                }
                w.with_table_scope(s.table.as_ref(), |w| {
                    w.opt(&s.qual, Use::Predicate)?;
                    w.opt(&s.with_check, Use::Predicate)
                })
            }),
            N::AlterPolicyStmt(s) => self.ddl(|w| {
                if let Some(t) = &s.table {
                    w.relation(t);
                }
                w.with_table_scope(s.table.as_ref(), |w| {
                    w.opt(&s.qual, Use::Predicate)?;
                    w.opt(&s.with_check, Use::Predicate)
                })
            }),
            N::CommentStmt(s) => self.ddl(|w| {
                let objtype = ObjectType::try_from(s.objtype).unwrap_or(ObjectType::Undefined);
                match s.object.as_deref() {
                    Some(o) => w.write_object(objtype, o),
                    None => Err(super::classify::unsupported("COMMENT without an object")),
                }
            }),
            N::DropStmt(s) => self.ddl(|w| {
                w.cascade(s.behavior);
                let objtype = ObjectType::try_from(s.remove_type).unwrap_or(ObjectType::Undefined);
                for o in &s.objects {
                    w.write_object(objtype, o)?;
                }
                Ok(())
            }),
            N::RenameStmt(s) => self.ddl(|w| {
                w.cascade(s.behavior);
                w.rename(s)
            }),
            N::AlterObjectSchemaStmt(s) => self.ddl(|w| {
                let objtype = ObjectType::try_from(s.object_type).unwrap_or(ObjectType::Undefined);
                if let Some(r) = &s.relation {
                    w.relation(r);
                }
                if let Some(o) = s.object.as_deref() {
                    w.write_object(objtype, o)?;
                }
                // Moving an object into a schema writes that schema.
                w.write(Name::qualified(&s.newschema, "*"));
                Ok(())
            }),
            N::GrantStmt(s) => self.grant(s),

            // Code that runs later, or now, unseen.
            N::CreateFunctionStmt(s) => self.code(|w| {
                w.write_list(&s.funcname)?;
                w.c.routines_created.extend(name_of_list(&s.funcname));
                w.nodes(&s.parameters, Use::Indirect)?;
                w.opt_type(&s.return_type)?;
                w.nodes(&s.options, Use::Indirect)?;
                // A BEGIN ATOMIC body is SQL the server parsed now: judged
                // as if it ran now (it runs later, with the caller's rights).
                match &s.sql_body {
                    Some(body) => w.function_body(body),
                    None => Ok(()),
                }
            }),
            N::AlterFunctionStmt(s) => self.code(|w| {
                if let Some(f) = &s.func {
                    w.write_list(&f.objname)?;
                }
                w.nodes(&s.actions, Use::Indirect)
            }),
            N::CreateTrigStmt(s) => self.code(|w| {
                if let Some(r) = &s.relation {
                    w.relation(r);
                }
                if let Some(r) = &s.constrrel {
                    w.relation(r);
                }
                // The trigger function runs on every matching row: it must be granted.
                match name_of_list(&s.funcname) {
                    Some(f) => {
                        w.c.functions.insert(f);
                    }
                    None => return Err(super::classify::unsupported("this trigger function")),
                }
                w.with_table_scope(s.relation.as_ref(), |w| {
                    w.opt(&s.when_clause, Use::Predicate)
                })
            }),
            N::RuleStmt(s) => self.code(|w| {
                if let Some(r) = &s.relation {
                    w.relation(r);
                }
                w.with_table_scope(s.relation.as_ref(), |w| {
                    w.opt(&s.where_clause, Use::Predicate)?;
                    for a in &s.actions {
                        if let Some(inner) = a.node.as_ref() {
                            w.statement(inner, false, Use::Indirect)?;
                        }
                    }
                    Ok(())
                })
            }),
            N::DefineStmt(s) => {
                let kind = ObjectType::try_from(s.kind).unwrap_or(ObjectType::Undefined);
                match kind {
                    ObjectType::ObjectCollation
                    | ObjectType::ObjectTsconfiguration
                    | ObjectType::ObjectTsdictionary => self.ddl(|w| {
                        w.write_list(&s.defnames)?;
                        w.nodes(&s.definition, Use::Indirect)
                    }),
                    ObjectType::ObjectAggregate
                    | ObjectType::ObjectOperator
                    | ObjectType::ObjectType => self.code(|w| {
                        w.write_list(&s.defnames)?;
                        if kind == ObjectType::ObjectAggregate {
                            w.c.routines_created.extend(name_of_list(&s.defnames));
                        }
                        if kind == ObjectType::ObjectType {
                            w.c.types_created.extend(name_of_list(&s.defnames));
                        }
                        w.define_functions(&s.definition)?;
                        w.nodes(&s.args, Use::Indirect)?;
                        w.nodes(&s.definition, Use::Indirect)
                    }),
                    _ => {
                        self.forbid("this CREATE statement needs a superuser");
                        Ok(())
                    }
                }
            }
            N::CreateRangeStmt(s) => self.code(|w| {
                w.c.types_created.extend(name_of_list(&s.type_name));
                w.write_list(&s.type_name)?;
                w.define_functions(&s.params)?;
                w.nodes(&s.params, Use::Indirect)
            }),
            N::AlterOperatorStmt(s) => self.code(|w| {
                if let Some(o) = &s.opername {
                    w.write_list(&o.objname)?;
                }
                w.define_functions(&s.options)?;
                w.nodes(&s.options, Use::Indirect)
            }),
            N::CreateCastStmt(s) => self.code(|w| {
                if let Some(f) = &s.func {
                    match name_of_list(&f.objname) {
                        Some(n) => {
                            w.c.functions.insert(n);
                        }
                        None => return Err(super::classify::unsupported("this cast function")),
                    }
                }
                Ok(())
            }),

            // An extension's objects come from scripts installed on the
            // server: allowed by name (`extensions`), with `ddl`.
            N::CreateExtensionStmt(e) => {
                self.c.operations.insert(Operation::Ddl);
                for o in &e.options {
                    match o.node.as_ref() {
                        Some(NodeEnum::DefElem(d)) if d.defname == "new_version" => {}
                        _ => self.forbid(
                            "CREATE EXTENSION with SCHEMA or CASCADE (objects pgward cannot name)",
                        ),
                    }
                }
                self.c.extensions.push(e.extname.clone());
                Ok(())
            }

            // The server's own administration: roles, databases, extensions,
            // foreign servers, replication, ownership, server files.
            N::GrantRoleStmt(_)
            | N::AlterDefaultPrivilegesStmt(_)
            | N::CreateTableSpaceStmt(_)
            | N::DropTableSpaceStmt(_)
            | N::AlterTableSpaceOptionsStmt(_)
            | N::AlterTableMoveAllStmt(_)
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
            | N::CreateAmStmt(_)
            | N::CreateEventTrigStmt(_)
            | N::AlterEventTrigStmt(_)
            | N::CreatePlangStmt(_)
            | N::CreateRoleStmt(_)
            | N::AlterRoleStmt(_)
            | N::AlterRoleSetStmt(_)
            | N::DropRoleStmt(_)
            | N::CreateOpClassStmt(_)
            | N::CreateOpFamilyStmt(_)
            | N::AlterOpFamilyStmt(_)
            | N::SecLabelStmt(_)
            | N::AlterObjectDependsStmt(_)
            | N::AlterOwnerStmt(_)
            | N::LoadStmt(_)
            | N::CreatedbStmt(_)
            | N::AlterDatabaseStmt(_)
            | N::AlterDatabaseRefreshCollStmt(_)
            | N::AlterDatabaseSetStmt(_)
            | N::DropdbStmt(_)
            | N::AlterSystemStmt(_)
            | N::CheckPointStmt(_)
            | N::CreateConversionStmt(_)
            | N::CreateTransformStmt(_)
            | N::DropOwnedStmt(_)
            | N::ReassignOwnedStmt(_)
            | N::CreatePublicationStmt(_)
            | N::AlterPublicationStmt(_)
            | N::CreateSubscriptionStmt(_)
            | N::AlterSubscriptionStmt(_)
            | N::DropSubscriptionStmt(_)
            | N::ReplicaIdentityStmt(_) => {
                self.forbid(format!(
                    "{} (it administers the database: its owner or a superuser runs it)",
                    statement_name(n)
                ));
                Ok(())
            }
            // Not a statement kind: walk it as the node it is.
            other => self.node_enum(other, how),
        }
    }

    fn function_body(&mut self, body: &Node) -> Walk {
        match body.node.as_ref() {
            Some(NodeEnum::List(l)) => {
                for item in &l.items {
                    self.function_body(item)?;
                }
                Ok(())
            }
            Some(NodeEnum::ReturnStmt(r)) => self.opt(&r.returnval, Use::Indirect),
            Some(inner) => self.statement(inner, false, Use::Indirect),
            None => Ok(()),
        }
    }

    /// CLUSTER, REINDEX, REFRESH: maintenance that writes its relation; one
    /// without a relation (every table, a whole schema) is refused as `whole`.
    fn maintain(&mut self, relation: Option<&pb::RangeVar>, whole: &str) -> Walk {
        self.c.operations.insert(Operation::Maintenance);
        match relation {
            Some(r) => self.ddl_walk(|w| {
                w.relation(r);
                Ok(())
            }),
            None => {
                self.forbid(whole);
                Ok(())
            }
        }
    }

    fn nested_statement(&mut self, n: &Option<Box<Node>>, top: bool, how: Use) -> Walk {
        match n.as_deref().and_then(|n| n.node.as_ref()) {
            Some(inner) => self.statement(inner, top, how),
            None => Ok(()),
        }
    }

    /// A relation named outside a FROM list: read, and written under DDL.
    pub fn relation(&mut self, r: &pb::RangeVar) {
        self.saw(Kind::Relation, r.location);
        let name = range_var_name(r);
        if !self.is_cte(&name) {
            self.read(name);
        }
    }

    /// Walks DDL: every relation named is written.
    fn ddl_walk(&mut self, f: impl FnOnce(&mut Self) -> Walk) -> Walk {
        let was = std::mem::replace(&mut self.ddl, true);
        let r = f(self);
        self.ddl = was;
        r
    }

    /// A DDL statement.
    fn ddl(&mut self, f: impl FnOnce(&mut Self) -> Walk) -> Walk {
        self.c.operations.insert(Operation::Ddl);
        self.ddl_walk(f)
    }

    /// A statement that creates or changes code: DDL that also needs `code`.
    fn code(&mut self, f: impl FnOnce(&mut Self) -> Walk) -> Walk {
        self.c.operations.insert(Operation::Code);
        self.ddl(f)
    }

    /// Runs `f` with the table's columns in scope (CHECK, USING, WHEN, ...).
    fn with_table_scope(
        &mut self,
        table: Option<&pb::RangeVar>,
        f: impl FnOnce(&mut Self) -> Walk,
    ) -> Walk {
        let items = table
            .map(|r| {
                let name = range_var_name(r);
                let refs = ["new", "old", r.relname.as_str()];
                refs.iter()
                    .map(|n| super::walker::ScopeItem {
                        refname: n.to_string(),
                        relations: vec![name.clone()],
                        renamed: false,
                        merged: Vec::new(),
                        merged_relations: Vec::new(),
                        visible: true,
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.scopes.push(items);
        let r = f(self);
        self.scopes.pop();
        r
    }

    /// Records a schema object named by a list of strings as written.
    fn write_list(&mut self, list: &[Node]) -> Walk {
        match name_of_list(list) {
            Some(n) => {
                self.write(n);
                Ok(())
            }
            None => Err(super::classify::unsupported("this object name")),
        }
    }

    /// Functions an object definition names (`FUNCTION = f`, `SUBTYPE_DIFF = f`, ...).
    fn define_functions(&mut self, definition: &[Node]) -> Walk {
        const FUNCTION_KEYS: &[&str] = &[
            "function",
            "procedure",
            "sfunc",
            "finalfunc",
            "combinefunc",
            "serialfunc",
            "deserialfunc",
            "msfunc",
            "minvfunc",
            "mfinalfunc",
            "restrict",
            "join",
            "input",
            "output",
            "receive",
            "send",
            "typmod_in",
            "typmod_out",
            "analyze",
            "subscript",
            "subtype_diff",
            "canonical",
            "multirange_type_name",
        ];
        for d in definition {
            if let Some(NodeEnum::DefElem(e)) = d.node.as_ref() {
                if FUNCTION_KEYS.contains(&e.defname.as_str()) {
                    let name = e.arg.as_deref().and_then(|a| match a.node.as_ref() {
                        Some(NodeEnum::TypeName(t)) => name_of_list(&t.names),
                        Some(NodeEnum::List(l)) => name_of_list(&l.items),
                        Some(NodeEnum::String(s)) => Some(Name::bare(&s.sval)),
                        _ => None,
                    });
                    match name {
                        Some(n) => {
                            self.c.functions.insert(n);
                        }
                        None => {
                            return Err(super::classify::unsupported(&format!(
                                "the {} of this definition",
                                e.defname
                            )))
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Records the object a DROP, COMMENT or ALTER ... SET SCHEMA names.
    fn write_object(&mut self, objtype: ObjectType, o: &Node) -> Walk {
        use ObjectType as O;
        let name = match (objtype, o.node.as_ref()) {
            (O::ObjectSchema, Some(NodeEnum::String(s))) => {
                // Dropping a schema drops everything in it.
                Some(Name::qualified(&s.sval, "*"))
            }
            (
                O::ObjectTable
                | O::ObjectView
                | O::ObjectMatview
                | O::ObjectIndex
                | O::ObjectSequence
                | O::ObjectForeignTable
                | O::ObjectCollation
                | O::ObjectStatisticExt
                | O::ObjectTsconfiguration
                | O::ObjectTsdictionary
                | O::ObjectType
                | O::ObjectDomain,
                Some(NodeEnum::List(l)),
            ) => name_of_list(&l.items),
            (O::ObjectType | O::ObjectDomain, Some(NodeEnum::TypeName(t))) => {
                name_of_list(&t.names)
            }
            (
                O::ObjectFunction
                | O::ObjectProcedure
                | O::ObjectRoutine
                | O::ObjectAggregate
                | O::ObjectOperator,
                Some(NodeEnum::ObjectWithArgs(f)),
            ) => name_of_list(&f.objname),
            (
                O::ObjectColumn
                | O::ObjectTrigger
                | O::ObjectRule
                | O::ObjectPolicy
                | O::ObjectTabconstraint,
                Some(NodeEnum::List(l)),
            ) => {
                // `table.column`, `table.trigger`: the table is written.
                l.items
                    .split_last()
                    .and_then(|(_, table)| name_of_list(table))
            }
            _ => None,
        };
        match name {
            Some(n) => {
                self.write(n);
                Ok(())
            }
            None => {
                self.forbid(format!("DDL on this kind of object ({objtype:?})"));
                Ok(())
            }
        }
    }

    fn rename(&mut self, s: &pb::RenameStmt) -> Walk {
        use ObjectType as O;
        let rename_type = O::try_from(s.rename_type).unwrap_or(O::Undefined);
        if let Some(r) = &s.relation {
            self.relation(r);
            // The new name is in the same schema.
            let mut renamed = range_var_name(r);
            if matches!(
                rename_type,
                O::ObjectTable
                    | O::ObjectView
                    | O::ObjectMatview
                    | O::ObjectIndex
                    | O::ObjectSequence
                    | O::ObjectForeignTable
            ) {
                renamed.name = s.newname.clone();
                self.write(renamed);
            }
            return Ok(());
        }
        match (rename_type, s.object.as_deref()) {
            (O::ObjectSchema, _) => {
                self.write(Name::qualified(&s.subname, "*"));
                self.write(Name::qualified(&s.newname, "*"));
                Ok(())
            }
            (_, Some(o)) => {
                self.write_object(rename_type, o)?;
                if let Some(NodeEnum::List(l)) = o.node.as_ref() {
                    if let Some(mut n) = name_of_list(&l.items) {
                        n.name = s.newname.clone();
                        if matches!(rename_type, O::ObjectType | O::ObjectDomain) {
                            self.c.types_created.insert(n.clone());
                        }
                        self.write(n);
                    }
                }
                Ok(())
            }
            _ => {
                self.forbid(format!("renaming this kind of object ({rename_type:?})"));
                Ok(())
            }
        }
    }

    /// CASCADE drops, truncates or revokes objects the statement does not
    /// name (tables with foreign keys to it, views on a column, columns of
    /// a type): none of them is judged, so the policy allows it only to a
    /// role that may write everything.
    fn cascade(&mut self, behavior: i32) {
        if pb::DropBehavior::try_from(behavior) == Ok(pb::DropBehavior::DropCascade) {
            self.c.cascade = true;
        }
    }

    fn grant(&mut self, s: &pb::GrantStmt) -> Walk {
        self.cascade(s.behavior);
        use pb::GrantTargetType as T;
        use ObjectType as O;
        let objtype = O::try_from(s.objtype).unwrap_or(O::Undefined);
        let target = T::try_from(s.targtype).unwrap_or(T::Undefined);
        self.ddl(|w| match (target, objtype) {
            (T::AclTargetObject, O::ObjectTable | O::ObjectSequence) => {
                w.nodes(&s.objects, Use::Indirect)
            }
            (T::AclTargetAllInSchema, O::ObjectTable | O::ObjectSequence) => {
                for o in &s.objects {
                    match string_of(o) {
                        Some(schema) => w.write(Name::qualified(schema, "*")),
                        None => return Err(super::classify::unsupported("this GRANT target")),
                    }
                }
                Ok(())
            }
            _ => {
                w.forbid(format!(
                    "GRANT or REVOKE on this kind of object ({objtype:?})"
                ));
                Ok(())
            }
        })
    }

    /// ALTER TABLE subcommands: expressions (defaults, USING, constraints) are walked.
    pub fn alter_table_cmd(&mut self, c: &pb::AlterTableCmd) -> Walk {
        self.cascade(c.behavior);
        if c.newowner.is_some() {
            self.forbid("changing an owner");
            return Ok(());
        }
        self.opt(&c.def, Use::Indirect)
    }

    /// A column definition: its default and constraints are expressions.
    pub fn column_def(&mut self, c: &pb::ColumnDef) -> Walk {
        self.opt_type(&c.type_name)?;
        self.opt(&c.raw_default, Use::Indirect)?;
        self.opt(&c.cooked_default, Use::Indirect)?;
        if let Some(r) = &c.identity_sequence {
            self.relation(r);
        }
        if let Some(cc) = &c.coll_clause {
            self.opt(&cc.arg, Use::Indirect)?;
        }
        self.nodes(&c.constraints, Use::Indirect)?;
        self.nodes(&c.fdwoptions, Use::Indirect)
    }

    /// A table constraint: CHECK expressions, and the referenced table of a
    /// foreign key (which gains triggers: written).
    pub fn constraint(&mut self, c: &pb::Constraint) -> Walk {
        self.opt(&c.raw_expr, Use::Indirect)?;
        self.opt(&c.where_clause, Use::Predicate)?;
        if let Some(r) = &c.pktable {
            self.relation(r);
        }
        self.nodes(&c.exclusions, Use::Indirect)?;
        self.nodes(&c.options, Use::Indirect)
    }

    /// COPY: to and from the client only; a table's rows are not masked in
    /// place, so copying out a table uses every column indirectly.
    fn copy(&mut self, c: &pb::CopyStmt) -> Walk {
        if c.is_program || !c.filename.is_empty() {
            self.forbid("COPY to or from a server file or program");
        }
        self.c.operations.insert(if c.is_from {
            Operation::CopyIn
        } else {
            Operation::CopyOut
        });
        self.nodes(&c.options, Use::Indirect)?;
        if let Some(r) = &c.relation {
            self.saw(Kind::Relation, r.location);
            let name = range_var_name(r);
            if c.is_from {
                self.write(name.clone());
                let item = super::walker::ScopeItem {
                    refname: r.relname.clone(),
                    relations: vec![name],
                    renamed: false,
                    merged: Vec::new(),
                    merged_relations: Vec::new(),
                    visible: true,
                };
                self.scopes.push(vec![item]);
                let res = self.opt(&c.where_clause, Use::Predicate);
                self.scopes.pop();
                res?;
            } else {
                self.c.reads.insert(name.clone());
                self.c.wildcard = true;
                self.column_use(&name, "*", Use::Indirect);
            }
        }
        // COPY (query) TO: the rows leave unmasked.
        self.nested_statement(&c.query, false, Use::Indirect)
    }
}

/// A statement's kind for messages (`CREATE ROLE`, `ALTER SYSTEM`, ...).
/// A statement kind as SQL spells it (`CreateExtensionStmt`: `CREATE EXTENSION`).
fn statement_name(n: &NodeEnum) -> String {
    let debug = format!("{n:?}");
    let kind = debug.split('(').next().unwrap_or("this statement");
    let mut out = String::new();
    for c in kind.trim_end_matches("Stmt").chars() {
        if c.is_ascii_uppercase() && !out.is_empty() {
            out.push(' ');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}
