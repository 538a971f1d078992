//! What the policy knows of the upstream catalog: which relations exist, and
//! what each view reads. Reading a view needs the view granted and everything
//! beneath it readable, so an exclusion cannot be dodged through a view; and
//! an unqualified name is only checked against schemas where it exists.
//! Built from rows the proxy fetches; pure logic here.

use std::collections::HashMap;

use crate::sql::{classify, Name};

/// One view's definition, as the policy needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewDef {
    /// Relations the definition reads, `schema.name`.
    pub reads: Vec<String>,
    /// Functions the definition calls.
    pub functions: Vec<Name>,
    /// Why the definition could not be analysed, if it could not.
    pub unanalysable: Option<String>,
    /// The definition's full classification (for column rules).
    pub classification: Option<crate::sql::Classification>,
}

/// A snapshot of the upstream catalog for one database.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    relations: HashMap<String, u8>,
    views: HashMap<String, ViewDef>,
    by_oid: HashMap<u32, String>,
    oid_by_name: HashMap<String, u32>,
    column_names: std::collections::HashSet<(String, String)>,
    parents: HashMap<String, Vec<String>>,
    schemas: Option<std::collections::HashSet<String>>,
    functions: std::collections::HashSet<String>,
    attributes: HashMap<(u32, i16), String>,
    /// Changes whenever a new snapshot replaces an old one.
    pub version: u64,
}

impl Catalog {
    /// Builds a snapshot from (schema, name, relkind, view definition) rows.
    /// View definitions must come from `pg_get_viewdef` run with an empty
    /// search_path, so every name in them is qualified except pg_catalog's.
    pub fn from_rows<'a>(
        rows: impl IntoIterator<Item = (&'a str, &'a str, u8, Option<&'a str>)>,
        version: u64,
    ) -> Catalog {
        let mut relations = HashMap::new();
        let mut views = HashMap::new();
        for (schema, name, kind, def) in rows {
            let key = format!("{schema}.{name}");
            if let Some(def) = def {
                views.insert(key.clone(), analyse_view(def));
            }
            relations.insert(key, kind);
        }
        Catalog {
            relations,
            views,
            by_oid: HashMap::new(),
            oid_by_name: HashMap::new(),
            column_names: std::collections::HashSet::new(),
            parents: HashMap::new(),
            schemas: None,
            functions: std::collections::HashSet::new(),
            attributes: HashMap::new(),
            version,
        }
    }

    /// Adds relation OIDs and their columns: (oid, `schema.name`, attnum, column).
    pub fn add_attributes<'a>(
        &mut self,
        rows: impl IntoIterator<Item = (u32, &'a str, i16, &'a str)>,
    ) {
        for (oid, qualified, attnum, column) in rows {
            self.by_oid
                .entry(oid)
                .or_insert_with(|| qualified.to_string());
            self.oid_by_name.entry(qualified.to_string()).or_insert(oid);
            self.column_names
                .insert((qualified.to_string(), column.to_string()));
            self.attributes.insert((oid, attnum), column.to_string());
        }
    }

    /// The base `schema.name` and column a view column shows as it is, through
    /// nested views; `None` when it is an expression or unknown.
    pub fn view_base(&self, view: &str, attnum: i16) -> Option<(String, String)> {
        let mut current = (view.to_string(), attnum);
        for _ in 0..16 {
            let def = self.views.get(&current.0)?;
            let outputs = def.classification.as_ref()?.outputs.as_ref()?;
            let (rel, col) = outputs
                .get(usize::try_from(current.1).ok()?.checked_sub(1)?)?
                .as_ref()?;
            let base = match &rel.schema {
                Some(s) => format!("{s}.{}", rel.name),
                None => format!("pg_catalog.{}", rel.name),
            };
            if !self.views.contains_key(&base) {
                return Some((base, col.clone()));
            }
            // A view over a view: find the column's position in the inner view.
            let inner_oid = *self.oid_by_name.get(&base)?;
            let inner_attnum = self
                .attributes
                .iter()
                .find(|((o, _), name)| *o == inner_oid && *name == col)
                .map(|((_, a), _)| *a)?;
            current = (base, inner_attnum);
        }
        None
    }

    /// Adds inheritance and partitioning: (child, parent), both `schema.name`.
    pub fn add_parents<'a>(&mut self, rows: impl IntoIterator<Item = (&'a str, &'a str)>) {
        for (child, parent) in rows {
            self.parents
                .entry(child.to_string())
                .or_default()
                .push(parent.to_string());
        }
    }

    /// Records the functions of every schema, pg_catalog included (`schema.name`).
    pub fn add_functions<'a>(&mut self, names: impl IntoIterator<Item = &'a str>) {
        self.functions.extend(names.into_iter().map(str::to_string));
    }

    /// Whether a schema has a function `schema.name`.
    pub fn has_function(&self, qualified: &str) -> bool {
        self.functions.contains(qualified)
    }

    /// Records the schemas that exist.
    pub fn add_schemas<'a>(&mut self, names: impl IntoIterator<Item = &'a str>) {
        self.schemas
            .get_or_insert_with(Default::default)
            .extend(names.into_iter().map(str::to_string));
    }

    /// Whether a schema exists (true when the snapshot has no schema list).
    pub fn has_schema(&self, schema: &str) -> bool {
        self.schemas.as_ref().is_none_or(|s| s.contains(schema))
    }

    /// Every table `schema.name` inherits from or is a partition of,
    /// transitively: its rows are theirs, and so are their rules.
    pub fn ancestors(&self, qualified: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut todo = vec![qualified.to_string()];
        while let Some(t) = todo.pop() {
            for p in self.parents.get(&t).into_iter().flatten() {
                if !out.contains(p) && p != qualified {
                    out.push(p.clone());
                    todo.push(p.clone());
                }
            }
        }
        out
    }

    /// Every table that inherits from or is a partition of `schema.name`,
    /// transitively: reading it reads their rows too.
    pub fn descendants(&self, qualified: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut todo = vec![qualified.to_string()];
        while let Some(t) = todo.pop() {
            for (child, parents) in &self.parents {
                if parents.contains(&t) && !out.contains(child) && child != qualified {
                    out.push(child.clone());
                    todo.push(child.clone());
                }
            }
        }
        out
    }

    /// Whether the snapshot knows the columns of `schema.name`.
    pub fn knows_columns(&self, qualified: &str) -> bool {
        self.oid_by_name.contains_key(qualified)
    }

    /// Whether `schema.name` has a column `column`.
    pub fn has_column(&self, qualified: &str, column: &str) -> bool {
        const SYSTEM_COLUMNS: &[&str] =
            &["oid", "tableoid", "xmin", "cmin", "xmax", "cmax", "ctid"];
        SYSTEM_COLUMNS.contains(&column)
            || self
                .column_names
                .contains(&(qualified.to_string(), column.to_string()))
    }

    /// For a view: each of its columns that shows a base column as it is,
    /// as (view column, base `schema.name`, base column).
    pub fn view_column_bases(&self, view: &str) -> Vec<(String, String, String)> {
        let Some(oid) = self.oid_by_name.get(view) else {
            return Vec::new();
        };
        if !self.views.contains_key(view) {
            return Vec::new();
        }
        let mut out = Vec::new();
        for ((o, attnum), name) in &self.attributes {
            if o == oid {
                if let Some((table, column)) = self.view_base(view, *attnum) {
                    out.push((name.clone(), table, column));
                }
            }
        }
        out
    }

    /// The `schema.name` and column behind a RowDescription field's
    /// (table OID, attribute number).
    pub fn column(&self, oid: u32, attnum: i16) -> Option<(&str, &str)> {
        let table = self.by_oid.get(&oid)?;
        let column = self.attributes.get(&(oid, attnum))?;
        Some((table, column))
    }

    /// True when `schema.name` exists.
    pub fn exists(&self, qualified: &str) -> bool {
        self.relations.contains_key(qualified)
    }

    /// The definition of a view or materialized view.
    pub fn view(&self, qualified: &str) -> Option<&ViewDef> {
        self.views.get(qualified)
    }

    /// How many relations the snapshot knows.
    pub fn len(&self) -> usize {
        self.relations.len()
    }

    /// True when the snapshot is empty.
    pub fn is_empty(&self) -> bool {
        self.relations.is_empty()
    }
}

fn analyse_view(def: &str) -> ViewDef {
    match classify(def) {
        Ok(c) => ViewDef {
            reads: c
                .reads
                .iter()
                .map(|n| match &n.schema {
                    Some(s) => format!("{s}.{}", n.name),
                    // With an empty search_path only pg_catalog is visible.
                    None => format!("pg_catalog.{}", n.name),
                })
                .collect(),
            functions: c.functions.iter().cloned().collect(),
            unanalysable: (!c.forbidden.is_empty()).then(|| c.forbidden.join("; ")),
            classification: Some(c),
        },
        Err(e) => ViewDef {
            unanalysable: Some(e.to_string()),
            ..ViewDef::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_are_analysed_once_with_qualified_names() {
        let c = Catalog::from_rows(
            [
                ("public", "api_keys", b'r', None),
                (
                    "public",
                    "key_inventory",
                    b'v',
                    Some(" SELECT k.service, upper(k.key_value) FROM public.api_keys k;"),
                ),
                ("public", "weird", b'v', Some("garbage (")),
            ],
            1,
        );
        assert!(c.exists("public.api_keys"));
        assert!(!c.exists("public.nope"));
        let v = c.view("public.key_inventory").unwrap();
        assert_eq!(v.reads, vec!["public.api_keys".to_string()]);
        assert_eq!(v.functions, vec![Name::bare("upper")]);
        assert!(c.view("public.weird").unwrap().unanalysable.is_some());
        assert!(c.view("public.api_keys").is_none());
        let mut c = c;
        c.add_attributes([(16390, "public.customers", 3, "email")]);
        assert_eq!(c.column(16390, 3), Some(("public.customers", "email")));
        assert_eq!(c.column(16390, 4), None);
    }
}
