//! SQL spelling of names and strings for the provisioning script: an
//! identifier is left bare only when PostgreSQL would read it back unchanged,
//! which depends on the server's keyword list (fetched with the catalog).

use std::collections::BTreeSet;

/// Quotes identifiers the way `quote_ident` does, for one server.
#[derive(Debug, Clone, Default)]
pub struct Quoter {
    /// Keywords that are not unreserved (`pg_get_keywords()` catcode <> 'U').
    keywords: BTreeSet<String>,
}

impl Quoter {
    /// A quoter that treats `keywords` as needing quotes.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(keywords: I) -> Quoter {
        Quoter {
            keywords: keywords.into_iter().map(Into::into).collect(),
        }
    }

    /// `name` as an SQL identifier: bare when it is made of lower-case ASCII
    /// letters, digits and underscores, starts with a letter or underscore,
    /// and is not a keyword; double-quoted otherwise (as `quote_ident`).
    pub fn ident(&self, name: &str) -> String {
        let mut chars = name.chars();
        let simple = chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && !self.keywords.contains(name);
        if simple {
            name.to_string()
        } else {
            format!("\"{}\"", name.replace('"', "\"\""))
        }
    }

    /// `schema.name`, each part quoted as needed.
    pub fn qualified(&self, schema: &str, name: &str) -> String {
        format!("{}.{}", self.ident(schema), self.ident(name))
    }
}

/// `text` as an SQL string literal, read the same whatever
/// `standard_conforming_strings` is.
pub fn literal(text: &str) -> String {
    if text.contains('\\') {
        format!("E'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
    } else {
        format!("'{}'", text.replace('\'', "''"))
    }
}

/// A dollar-quote tag that does not occur in `body`.
pub fn dollar_tag(body: &str) -> String {
    let mut tag = "$pgward$".to_string();
    let mut n = 0;
    while body.contains(&tag) {
        n += 1;
        tag = format!("$pgward{n}$");
    }
    tag
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_only_when_needed() {
        let q = Quoter::new(["select", "user", "order"]);
        for (name, spelled) in [
            ("orders", "orders"),
            ("_x1", "_x1"),
            ("a$", "\"a$\""),
            ("Orders", "\"Orders\""),
            ("user", "\"user\""),
            ("1st", "\"1st\""),
            ("a b", "\"a b\""),
            ("say \"hi\"", "\"say \"\"hi\"\"\""),
            ("", "\"\""),
            ("é", "\"é\""),
        ] {
            assert_eq!(q.ident(name), spelled, "{name}");
        }
        assert_eq!(q.qualified("public", "order"), "public.\"order\"");
    }

    #[test]
    fn literals_survive_either_string_mode() {
        assert_eq!(literal("shop_reader"), "'shop_reader'");
        assert_eq!(literal("o'brien"), "'o''brien'");
        assert_eq!(literal("a\\b'"), "E'a\\\\b'''");
        assert_eq!(dollar_tag("x"), "$pgward$");
        assert_eq!(dollar_tag("a $pgward$ b"), "$pgward1$");
    }
}
