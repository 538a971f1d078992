//! Names and constants as PostgreSQL's parser leaves them: identifier lists
//! (already case-folded and unescaped by the server's own lexer), relation
//! names from RangeVar, and the values of literal constants.

use pg_query::protobuf::{a_const, AConst, RangeVar, TypeCast};
use pg_query::{Node, NodeEnum};

use super::classification::Name;

/// The text of a `String` node.
pub fn string_of(n: &Node) -> Option<&str> {
    match n.node.as_ref()? {
        NodeEnum::String(s) => Some(&s.sval),
        _ => None,
    }
}

/// The parts of a qualified name (`schema.name`), each a `String` node.
pub fn parts(list: &[Node]) -> Option<Vec<&str>> {
    list.iter().map(string_of).collect()
}

/// A one-, two- or three-part name.
pub fn name_of_parts(parts: &[&str]) -> Option<Name> {
    match parts {
        [name] => Some(Name::bare(name)),
        [schema, name] => Some(Name::qualified(schema, name)),
        [catalog, schema, name] => Some(Name {
            catalog: Some(catalog.to_string()),
            ..Name::qualified(schema, name)
        }),
        _ => None,
    }
}

/// A name written as a list of `String` nodes.
pub fn name_of_list(list: &[Node]) -> Option<Name> {
    name_of_parts(&parts(list)?)
}

/// The relation a RangeVar names.
pub fn range_var_name(r: &RangeVar) -> Name {
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
    Name {
        catalog: opt(&r.catalogname),
        schema: opt(&r.schemaname),
        name: r.relname.clone(),
    }
}

/// The name a RangeVar is referred to by in its query: its alias, or its
/// relation name.
pub fn range_var_refname(r: &RangeVar) -> String {
    match &r.alias {
        Some(a) => a.aliasname.clone(),
        None => r.relname.clone(),
    }
}

/// A constant's value as text, as a function receiving it would see it
/// (strings as written after unescaping; numbers in their written form).
pub fn const_text(c: &AConst) -> Option<String> {
    if c.isnull {
        return None;
    }
    match c.val.as_ref()? {
        a_const::Val::Sval(s) => Some(s.sval.clone()),
        a_const::Val::Ival(i) => Some(i.ival.to_string()),
        a_const::Val::Fval(f) => Some(f.fval.clone()),
        a_const::Val::Boolval(b) => Some(if b.boolval { "true" } else { "false" }.into()),
        a_const::Val::Bsval(b) => Some(b.bsval.clone()),
    }
}

/// A string constant, looking through parentheses (which the parser leaves
/// no trace of) and casts that keep its text as it is (`::text`,
/// `::varchar`). A cast that may change the text is not looked through:
/// `::char(n)` pads or truncates, `::bpchar` drops trailing spaces on its way
/// back to text, `::name` truncates, `::regclass` prints a name its own way.
pub fn string_constant(n: &Node) -> Option<String> {
    match n.node.as_ref()? {
        NodeEnum::AConst(c) => match c.val.as_ref()? {
            a_const::Val::Sval(s) if !c.isnull => Some(s.sval.clone()),
            _ => None,
        },
        NodeEnum::TypeCast(t) if casts_to(t, &["text", "varchar"]) => {
            string_constant(t.arg.as_deref()?)
        }
        _ => None,
    }
}

/// The text a `regclass` argument names: a string constant, or one cast to
/// regclass (`nextval('s'::regclass)`).
pub fn regclass_constant(n: &Node) -> Option<String> {
    match n.node.as_ref()? {
        NodeEnum::TypeCast(t) if casts_to(t, &["regclass"]) => string_constant(t.arg.as_deref()?),
        _ => string_constant(n),
    }
}

/// The number of a bind parameter (`$1` is 1), looking through casts that
/// keep text as it is.
pub fn parameter_number(n: &Node) -> Option<usize> {
    match n.node.as_ref()? {
        NodeEnum::ParamRef(p) if p.number >= 1 => Some(p.number as usize),
        NodeEnum::TypeCast(t) if casts_to(t, &["text", "varchar"]) => {
            parameter_number(t.arg.as_deref()?)
        }
        _ => None,
    }
}

/// True when `t` casts to one of the built-in `types`, plainly (no type
/// modifier, array or `%TYPE`).
fn casts_to(t: &TypeCast, types: &[&str]) -> bool {
    let Some(ty) = &t.type_name else {
        return false;
    };
    let plain = ty.typmods.is_empty() && ty.array_bounds.is_empty() && !ty.setof && !ty.pct_type;
    plain
        && match parts(&ty.names).as_deref() {
            Some([name]) | Some(["pg_catalog", name]) => types.contains(name),
            _ => false,
        }
}

/// An integer constant (`ORDER BY 2`).
pub fn integer_constant(n: &Node) -> Option<i32> {
    match n.node.as_ref()? {
        NodeEnum::AConst(c) if !c.isnull => match c.val.as_ref()? {
            a_const::Val::Ival(i) => Some(i.ival),
            _ => None,
        },
        _ => None,
    }
}

/// Parses `'schema.name'` as regclass input and nextval() do: dots separate
/// parts, double quotes keep case and dots, unquoted parts are folded.
pub fn parse_qualified_text(text: &str) -> Option<Name> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = text.trim().chars().peekable();
    let mut quoted_part = false;
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted_part = true;
                loop {
                    match chars.next()? {
                        '"' if chars.peek() == Some(&'"') => {
                            chars.next();
                            cur.push('"');
                        }
                        '"' => break,
                        other => cur.push(other),
                    }
                }
            }
            '.' => {
                if cur.is_empty() && !quoted_part {
                    return None;
                }
                parts.push(std::mem::take(&mut cur));
                quoted_part = false;
            }
            c if c.is_whitespace() => return None,
            c => cur.push(c.to_ascii_lowercase()),
        }
    }
    if cur.is_empty() && !quoted_part {
        return None;
    }
    parts.push(cur);
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    name_of_parts(&refs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_text_follows_regclass_input() {
        assert_eq!(
            parse_qualified_text("Public.API_keys"),
            Some(Name::qualified("public", "api_keys"))
        );
        assert_eq!(
            parse_qualified_text("\"My.Schema\".\"T\"\"x\""),
            Some(Name::qualified("My.Schema", "T\"x"))
        );
        assert_eq!(parse_qualified_text("a..b"), None);
        assert_eq!(parse_qualified_text("a b"), None);
        assert_eq!(parse_qualified_text("\"open"), None);
        assert_eq!(parse_qualified_text(""), None);
    }
}
