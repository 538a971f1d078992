//! Column masks as the config states them (`[masks]`), compiled: which
//! columns are masked, how, and whether predicates on them are allowed.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::mask::Strategy;

/// One `[masks]` entry as written: a strategy name, or a table of options.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum MaskSpec {
    /// `"email"`, `"redact"`, `"null"`, `"hash"`, `"partial"`.
    Name(String),
    /// `{ strategy = "partial", keep_last = 4, allow_predicates = false }`.
    Table {
        /// The strategy name.
        strategy: String,
        /// For `partial`: trailing letters and digits left visible (default 4).
        keep_last: Option<usize>,
        /// Allow WHERE, ORDER BY, GROUP BY and JOIN on the column (they leak by
        /// inference; off by default).
        #[serde(default)]
        allow_predicates: bool,
    },
}

/// A compiled mask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskRule {
    /// How values are masked.
    pub strategy: Strategy,
    /// Whether predicates on the column are allowed.
    pub allow_predicates: bool,
}

/// Every masked column, by `schema.table` and column name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Masks {
    /// Rules by (`schema.table`, column).
    pub rules: BTreeMap<(String, String), MaskRule>,
}

impl Masks {
    /// Compiles `[masks]`; an error names the key.
    pub fn compile(raw: &BTreeMap<String, MaskSpec>) -> Result<Masks, (String, String)> {
        let mut rules = BTreeMap::new();
        for (column, spec) in raw {
            let key = format!("masks.\"{column}\"");
            let parts: Vec<&str> = column.split('.').collect();
            let [schema, table, col] = parts.as_slice() else {
                return Err((key, "must name a column as \"schema.table.column\"".into()));
            };
            let (name, keep_last, allow_predicates) = match spec {
                MaskSpec::Name(n) => (n.as_str(), None, false),
                MaskSpec::Table {
                    strategy,
                    keep_last,
                    allow_predicates,
                } => (strategy.as_str(), *keep_last, *allow_predicates),
            };
            let strategy = match name {
                "email" => Strategy::Email,
                "redact" => Strategy::Redact,
                "null" => Strategy::Null,
                "hash" => Strategy::Hash,
                "partial" => Strategy::Partial {
                    keep_last: keep_last.unwrap_or(4),
                },
                other => {
                    return Err((
                        key,
                        format!(
                        "unknown strategy {other:?}; expected email, partial, redact, null or hash"
                    ),
                    ))
                }
            };
            rules.insert(
                (
                    format!(
                        "{}.{}",
                        schema.to_ascii_lowercase(),
                        table.to_ascii_lowercase()
                    ),
                    col.to_ascii_lowercase(),
                ),
                MaskRule {
                    strategy,
                    allow_predicates,
                },
            );
        }
        Ok(Masks { rules })
    }

    /// Compiles the `[masks]` table of a TOML text (other tables ignored).
    pub fn from_toml(text: &str) -> Result<Masks, String> {
        #[derive(Deserialize)]
        struct Only {
            #[serde(default)]
            masks: BTreeMap<String, MaskSpec>,
        }
        let table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        let only: Only = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| e.to_string())?;
        Masks::compile(&only.masks).map_err(|(k, m)| format!("{k}: {m}"))
    }

    /// The rule for a column, if it is masked.
    pub fn rule(&self, table: &str, column: &str) -> Option<&MaskRule> {
        // Keys are kept in ASCII lower case; so is the lookup (see
        // decide::same: case never unmasks a column).
        self.rules
            .get(&(table.to_ascii_lowercase(), column.to_ascii_lowercase()))
    }

    /// True when any column is masked.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// True when any rule uses the hash strategy (which needs a key).
    pub fn needs_key(&self) -> bool {
        self.rules.values().any(|r| r.strategy == Strategy::Hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_names_and_tables() {
        let raw: BTreeMap<String, MaskSpec> = toml::from_str(
            r#"
"public.customers.email" = "email"
"public.customers.phone" = { strategy = "partial", keep_last = 4 }
"public.customers.ssn" = { strategy = "redact", allow_predicates = true }
"#,
        )
        .unwrap();
        let m = Masks::compile(&raw).unwrap();
        assert_eq!(
            m.rule("public.customers", "email").unwrap().strategy,
            Strategy::Email
        );
        assert_eq!(
            m.rule("public.customers", "phone").unwrap().strategy,
            Strategy::Partial { keep_last: 4 }
        );
        assert!(m.rule("public.customers", "ssn").unwrap().allow_predicates);
        assert!(m.rule("public.customers", "city").is_none());
        let bad: BTreeMap<String, MaskSpec> =
            toml::from_str("\"customers.email\" = \"email\"").unwrap();
        assert!(Masks::compile(&bad).is_err());
        let bad: BTreeMap<String, MaskSpec> = toml::from_str("\"a.b.c\" = \"blur\"").unwrap();
        assert!(Masks::compile(&bad)
            .unwrap_err()
            .1
            .contains("unknown strategy"));
    }
}
