//! The catalog snapshot pgward would read from the sample database, built
//! from examples/shop.sql with PostgreSQL's own parser, so pure tests decide
//! with the catalog production uses (views expanded, names resolved only
//! where they exist, attribute notation checked) without a server.

use pg_query::protobuf::RangeVar;
use pg_query::NodeEnum;
use pgward::policy::catalog::Catalog;

fn qualified(r: &RangeVar) -> (String, String) {
    let schema = if r.schemaname.is_empty() {
        "public".to_string()
    } else {
        r.schemaname.clone()
    };
    (schema, r.relname.clone())
}

/// The sample database's relations, views (with their definitions) and columns.
pub fn shop_catalog() -> Catalog {
    let sql = include_str!("../../examples/shop.sql");
    let tree = pg_query::parse(sql, 0).expect("shop.sql parses").protobuf;
    let mut rows: Vec<(String, String, u8, Option<String>)> = Vec::new();
    let mut columns: Vec<(String, Vec<String>)> = Vec::new();
    let mut functions: Vec<String> = Vec::new();
    for raw in &tree.stmts {
        let Some(node) = raw.stmt.as_ref().and_then(|n| n.node.as_ref()) else {
            continue;
        };
        match node {
            NodeEnum::CreateStmt(c) => {
                let Some(rel) = &c.relation else { continue };
                let (schema, name) = qualified(rel);
                let cols = c
                    .table_elts
                    .iter()
                    .filter_map(|e| match e.node.as_ref() {
                        Some(NodeEnum::ColumnDef(d)) => Some(d.colname.clone()),
                        _ => None,
                    })
                    .collect();
                columns.push((format!("{schema}.{name}"), cols));
                rows.push((schema, name, b'r', None));
            }
            NodeEnum::ViewStmt(v) => {
                let (Some(rel), Some(query)) = (&v.view, &v.query) else {
                    continue;
                };
                let (schema, name) = qualified(rel);
                let def = query
                    .node
                    .as_ref()
                    .and_then(|q| q.deparse(Default::default()).ok())
                    .expect("view definition deparses");
                let cols = view_columns(query.node.as_ref(), &columns);
                columns.push((format!("{schema}.{name}"), cols));
                rows.push((schema, name, b'v', Some(def)));
            }
            NodeEnum::CreateFunctionStmt(f) => {
                let parts: Vec<&str> = f
                    .funcname
                    .iter()
                    .filter_map(|n| match n.node.as_ref() {
                        Some(NodeEnum::String(s)) => Some(s.sval.as_str()),
                        _ => None,
                    })
                    .collect();
                match parts.as_slice() {
                    [name] => functions.push(format!("public.{name}")),
                    [schema, name] => functions.push(format!("{schema}.{name}")),
                    _ => {}
                }
            }
            NodeEnum::CreateSeqStmt(s) => {
                if let Some(rel) = &s.sequence {
                    let (schema, name) = qualified(rel);
                    rows.push((schema, name, b'S', None));
                }
            }
            _ => {}
        }
    }
    let mut catalog = Catalog::from_rows(
        rows.iter()
            .map(|(s, n, k, d)| (s.as_str(), n.as_str(), *k, d.as_deref())),
        1,
    );
    let mut attributes = Vec::new();
    for (i, (table, cols)) in columns.iter().enumerate() {
        for (j, c) in cols.iter().enumerate() {
            attributes.push((16384 + i as u32, table.as_str(), j as i16 + 1, c.as_str()));
        }
    }
    catalog.add_attributes(attributes);
    catalog.add_functions(functions.iter().map(String::as_str));
    catalog
}

/// A view's column names: output names, or the columns a `*` expands to.
fn view_columns(query: Option<&NodeEnum>, known: &[(String, Vec<String>)]) -> Vec<String> {
    let Some(NodeEnum::SelectStmt(s)) = query else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for t in &s.target_list {
        let Some(NodeEnum::ResTarget(r)) = t.node.as_ref() else {
            continue;
        };
        if !r.name.is_empty() {
            out.push(r.name.clone());
            continue;
        }
        let Some(NodeEnum::ColumnRef(c)) = r.val.as_ref().and_then(|v| v.node.as_ref()) else {
            out.push("?column?".into());
            continue;
        };
        match c.fields.last().and_then(|f| f.node.as_ref()) {
            Some(NodeEnum::String(name)) => out.push(name.sval.clone()),
            Some(NodeEnum::AStar(_)) => {
                // `*` over the one table of the FROM list.
                if let Some(NodeEnum::RangeVar(rv)) =
                    s.from_clause.first().and_then(|f| f.node.as_ref())
                {
                    let (schema, name) = qualified(rv);
                    if let Some((_, cols)) =
                        known.iter().find(|(t, _)| *t == format!("{schema}.{name}"))
                    {
                        out.extend(cols.iter().cloned());
                    }
                }
            }
            _ => out.push("?column?".into()),
        }
    }
    out
}
