//! Function calls, operators and casts. Every FuncCall node, wherever the
//! walk meets it (select list, FROM, LATERAL, ROWS FROM, defaults, triggers,
//! aggregates, window functions, CALL), comes here and is recorded with the
//! same rules for literal arguments: the functions that take a setting or
//! relation name as text are judged on that text, which must be a literal.

use pg_query::protobuf::{AExpr, FuncCall, TypeCast};
use pg_query::{Node, NodeEnum};

use super::census::Kind;
use super::classification::{BoundSetting, SettingArgument};
use super::classification::{Name, Operation};
use super::names::{
    name_of_list, parameter_number, parse_qualified_text, parts, regclass_constant, string_constant,
};
use super::walker::{Use, Walk, Walker};

/// Casts that turn a name given as text into an object reference.
const NAME_LOOKUP_TYPES: &[&str] = &[
    "regclass",
    "regproc",
    "regprocedure",
    "regoper",
    "regoperator",
    "regtype",
    "regnamespace",
    "regrole",
    "regconfig",
    "regdictionary",
    "regcollation",
];

/// The argument at `position`, or the one named `name` (named notation).
fn argument<'a>(f: &'a FuncCall, position: usize, name: &str) -> Option<&'a Node> {
    let named = f
        .args
        .iter()
        .any(|a| matches!(a.node, Some(NodeEnum::NamedArgExpr(_))));
    if !named {
        return f.args.get(position);
    }
    // Positional arguments may precede named ones.
    if let Some(a) = f.args.get(position) {
        if !matches!(a.node, Some(NodeEnum::NamedArgExpr(_))) {
            return Some(a);
        }
    }
    f.args.iter().find_map(|a| match a.node.as_ref() {
        Some(NodeEnum::NamedArgExpr(n)) if n.name == name => n.arg.as_deref(),
        _ => None,
    })
}

/// A setting function's argument: a literal, a bind parameter, or unknown.
fn setting_argument(n: Option<&Node>) -> SettingArgument {
    let Some(n) = n else {
        return SettingArgument::Unknown;
    };
    if let Some(s) = string_constant(n) {
        return SettingArgument::Literal(s);
    }
    match parameter_number(n) {
        Some(p) => SettingArgument::Parameter(p),
        None => SettingArgument::Unknown,
    }
}

impl Walker<'_> {
    /// A function call.
    pub fn function_call(&mut self, f: &FuncCall, how: Use) -> Walk {
        self.saw(Kind::Function, f.location);
        self.calls += 1;
        let Some(name) = name_of_list(&f.funcname) else {
            return Err(super::classify::unsupported("this function name"));
        };
        // A database part must name the current database (the server and
        // the policy check that); it changes nothing else.
        if name.schema.as_deref().is_none_or(|s| s == "pg_catalog") {
            self.builtin_with_names(&name.name, f);
        }
        self.c.functions.insert(name);
        let inner = how.nested();
        self.nodes(&f.args, inner)?;
        self.nodes(&f.agg_order, Use::Predicate)?;
        self.opt(&f.agg_filter, Use::Predicate)?;
        if let Some(w) = &f.over {
            self.window(w)?;
        }
        Ok(())
    }

    /// Built-ins whose text arguments name settings or relations (their
    /// verdict depends on what the arguments say).
    pub const ARGUMENTS_READ: &'static [&'static str] = &[
        "set_config",
        "current_setting",
        "nextval",
        "setval",
        "currval",
        "pg_notify",
    ];

    /// Built-ins whose text arguments name settings or relations.
    fn builtin_with_names(&mut self, name: &str, f: &FuncCall) {
        match name {
            "set_config" => {
                self.c.literal_sensitive = true;
                let name = setting_argument(argument(f, 0, "setting_name"));
                let value = setting_argument(argument(f, 1, "new_value"));
                match (name, value) {
                    (SettingArgument::Unknown, _) => self.forbid(
                        "set_config with a setting name that is neither a literal nor a bind parameter",
                    ),
                    (SettingArgument::Literal(s), SettingArgument::Literal(v)) => {
                        self.c.change_setting_text(&s.to_ascii_lowercase(), Some(&v))
                    }
                    (SettingArgument::Literal(s), SettingArgument::Unknown) => {
                        self.c.change_setting_text(&s.to_ascii_lowercase(), None)
                    }
                    // Decided at Bind, once the parameters are known.
                    (name, value) => self.c.bound_settings.push(BoundSetting::Change { name, value }),
                }
            }
            "current_setting" => {
                self.c.literal_sensitive = true;
                match setting_argument(argument(f, 0, "setting_name")) {
                    SettingArgument::Literal(s) => {
                        self.c.settings_read.insert(s.to_ascii_lowercase());
                    }
                    SettingArgument::Parameter(n) => {
                        self.c.bound_settings.push(BoundSetting::Read(n));
                    }
                    SettingArgument::Unknown => self.forbid(
                        "current_setting with a setting name that is neither a literal nor a bind parameter",
                    ),
                }
            }
            "nextval" | "setval" | "currval" => {
                self.c.literal_sensitive = true;
                match argument(f, 0, "regclass")
                    .and_then(regclass_constant)
                    .and_then(|s| parse_qualified_text(&s))
                {
                    Some(seq) => {
                        if name != "currval" {
                            self.c.writes.insert(seq.clone());
                        }
                        self.c.reads.insert(seq);
                    }
                    None => self.forbid(format!("{name} with a sequence that is not a literal")),
                }
            }
            "pg_notify" => {
                self.c.operations.insert(Operation::Notify);
            }
            _ => {}
        }
    }

    /// An operator expression: operators written with a schema are recorded.
    pub fn operator(&mut self, e: &AExpr, how: Use) -> Walk {
        self.saw(Kind::Operator, e.location);
        self.operator_names(&e.name)?;
        let inner = how.nested();
        self.opt(&e.lexpr, inner)?;
        self.opt(&e.rexpr, inner)
    }

    /// Records an operator name given as a list (`OPERATOR(schema.op)`).
    pub fn operator_names(&mut self, name: &[Node]) -> Walk {
        let Some(p) = parts(name) else {
            return Err(super::classify::unsupported("this operator name"));
        };
        match p.as_slice() {
            [] | [_] => Ok(()),
            [schema, op] => {
                if *schema != "pg_catalog" {
                    self.c.operators.insert(Name::qualified(schema, op));
                }
                Ok(())
            }
            _ => Err(super::classify::unsupported("this operator name")),
        }
    }

    /// A cast. Casting a literal to `regclass` names a relation, which is
    /// then checked as read.
    pub fn type_cast(&mut self, t: &TypeCast, how: Use) -> Walk {
        self.opt(&t.arg, how.nested())?;
        let Some(ty) = &t.type_name else {
            return Ok(());
        };
        self.type_name(ty)?;
        let last = ty.names.last().and_then(super::names::string_of);
        let Some(last) = last.filter(|l| NAME_LOOKUP_TYPES.contains(l)) else {
            return Ok(());
        };
        if last != "regclass" || !ty.array_bounds.is_empty() {
            return Ok(());
        }
        self.c.literal_sensitive = true;
        let Some(text) = t.arg.as_deref().and_then(string_constant) else {
            return Ok(());
        };
        // A numeric OID names no relation pgward could check, and the cast
        // only turns it into a name (psql's \d does this).
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(());
        }
        match parse_qualified_text(&text) {
            Some(rel) => {
                self.c.reads.insert(rel);
            }
            None => self.forbid("a regclass literal pgward cannot read"),
        }
        Ok(())
    }
}
