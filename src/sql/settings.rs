//! Settings: SET, RESET, SHOW and set_config. Settings that change who the
//! session is are never allowed, the client encoding may only be one pgward
//! lexes as the server does (UTF8 or SQL_ASCII), and search_path changes are
//! recorded schema by schema, exactly as the server will read them.

use pg_query::protobuf::{VariableSetKind, VariableSetStmt};

use super::classification::{Operation, SettingValue};
use super::names::string_constant;
use super::walker::{Walk, Walker};

/// Settings that change who the session is: never allowed through pgward.
const IDENTITY_SETTINGS: &[&str] = &["role", "session_authorization", "session authorization"];

/// True for a client encoding name PostgreSQL reads as UTF8 or SQL_ASCII
/// (it ignores case and punctuation in encoding names).
pub fn is_supported_encoding(name: &str) -> bool {
    let folded: String = name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    matches!(folded.as_str(), "utf8" | "unicode" | "sqlascii")
}

/// Splits a list setting's text as the server does (SplitIdentifierString):
/// commas separate, whitespace around names is dropped, double quotes keep
/// case and commas, unquoted names are folded. `None` when malformed.
pub fn split_identifier_list(text: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            // An empty list is fine; a trailing comma is not.
            return if out.is_empty() { Some(out) } else { None };
        }
        let mut name = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        name.push('"');
                    }
                    '"' => break,
                    c => name.push(c),
                }
            }
            if name.is_empty() {
                return None;
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_whitespace() || c == '"' {
                    break;
                }
                name.push(c.to_ascii_lowercase());
                chars.next();
            }
            if name.is_empty() {
                return None;
            }
        }
        out.push(name);
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.next() {
            None => return Some(out),
            Some(',') => continue,
            Some(_) => return None,
        }
    }
}

impl Walker<'_> {
    /// Records a change of `name` to `value`.
    pub fn setting(&mut self, name: &str, value: SettingValue) {
        self.c.setting_values.push((name.to_string(), value));
        if IDENTITY_SETTINGS.contains(&name) {
            self.forbid(format!("setting {name} changes the session's identity"));
        }
        self.c.operations.insert(Operation::Set);
        self.c.settings.insert(name.to_string());
    }

    /// Records `set_config(name, value)`: the value is text the setting
    /// parses itself.
    pub fn setting_with_text(&mut self, name: &str, value: Option<&str>) {
        match name {
            "search_path" => match value.and_then(split_identifier_list) {
                Some(schemas) => self.c.search_path.extend(schemas),
                None => {
                    self.forbid("set_config of search_path to a value that is not a plain literal")
                }
            },
            "client_encoding" => self.encoding(value),
            _ => {}
        }
        let value = match value {
            Some(v) => SettingValue::Literal(v.to_string()),
            None => SettingValue::Unknown,
        };
        self.setting(name, value);
    }

    fn encoding(&mut self, value: Option<&str>) {
        if !value.is_some_and(is_supported_encoding) {
            self.forbid(
                "a client_encoding other than UTF8 (pgward must read statements as the server does)",
            );
        }
    }

    /// SET, SET LOCAL, RESET, RESET ALL, SET TRANSACTION.
    pub fn variable_set(&mut self, s: &VariableSetStmt) -> Walk {
        self.c.literal_sensitive = true;
        let kind = VariableSetKind::try_from(s.kind).unwrap_or(VariableSetKind::Undefined);
        let name = s.name.to_lowercase();
        match kind {
            VariableSetKind::VarSetValue => {
                let values: Option<Vec<String>> =
                    s.args.iter().map(string_constant_or_number).collect();
                match name.as_str() {
                    // Each value is one schema name, already folded by the parser.
                    "search_path" => match &values {
                        Some(v) => self.c.search_path.extend(v.iter().cloned()),
                        None => self.forbid("SET search_path to something other than schema names"),
                    },
                    "client_encoding" => match values.as_deref() {
                        Some([one]) => self.encoding(Some(one)),
                        _ => self.encoding(None),
                    },
                    _ => {}
                }
                let value = match values {
                    Some(v) => SettingValue::Literal(v.join(", ")),
                    None => SettingValue::Unknown,
                };
                self.setting(&name, value);
            }
            VariableSetKind::VarSetDefault | VariableSetKind::VarReset => {
                self.setting(&name, SettingValue::Reset)
            }
            VariableSetKind::VarSetCurrent => self.setting(&name, SettingValue::Unknown),
            VariableSetKind::VarResetAll => self.setting("all", SettingValue::Reset),
            VariableSetKind::VarSetMulti => match name.as_str() {
                "transaction" => {
                    self.c.operations.insert(Operation::Transaction);
                    self.transaction_options(&s.args, "");
                }
                "session characteristics" => {
                    self.c.operations.insert(Operation::Transaction);
                    self.transaction_options(&s.args, "default_");
                }
                "transaction snapshot" => {
                    self.c.operations.insert(Operation::Transaction);
                }
                _ => return Err(super::classify::unsupported(&format!("SET {name}"))),
            },
            VariableSetKind::Undefined => {
                return Err(super::classify::unsupported("this SET form"))
            }
        }
        Ok(())
    }
}

impl Walker<'_> {
    /// The options of BEGIN, START TRANSACTION, SET TRANSACTION and SET
    /// SESSION CHARACTERISTICS (`READ WRITE`, `DEFERRABLE`, ...), recorded as
    /// the settings they change (`prefix` is `default_` for the session's).
    pub fn transaction_options(&mut self, options: &[pg_query::Node], prefix: &str) {
        for o in options {
            let Some(pg_query::NodeEnum::DefElem(d)) = o.node.as_ref() else {
                continue;
            };
            let value = match d.arg.as_deref().and_then(|a| a.node.as_ref()) {
                Some(pg_query::NodeEnum::AConst(c)) => match super::names::const_text(c) {
                    Some(v) if v == "1" => SettingValue::Literal("on".into()),
                    Some(v) if v == "0" => SettingValue::Literal("off".into()),
                    Some(v) => SettingValue::Literal(v),
                    None => SettingValue::Unknown,
                },
                Some(pg_query::NodeEnum::Integer(i)) => {
                    SettingValue::Literal(if i.ival != 0 { "on" } else { "off" }.into())
                }
                Some(pg_query::NodeEnum::String(s)) => SettingValue::Literal(s.sval.clone()),
                _ => SettingValue::Unknown,
            };
            self.c
                .setting_values
                .push((format!("{prefix}{}", d.defname), value));
        }
    }
}

/// A SET value: a string, an identifier (the parser makes it a string) or a number.
fn string_constant_or_number(n: &pg_query::Node) -> Option<String> {
    string_constant(n).or_else(|| match n.node.as_ref()? {
        pg_query::NodeEnum::AConst(c) => super::names::const_text(c),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifier_lists_split_as_the_server_does() {
        assert_eq!(
            split_identifier_list(" a , \"B,c\" ,D").unwrap(),
            ["a", "B,c", "d"]
        );
        assert_eq!(
            split_identifier_list("\"$user\", public").unwrap(),
            ["$user", "public"]
        );
        assert_eq!(split_identifier_list("").unwrap(), Vec::<String>::new());
        assert_eq!(split_identifier_list("a,"), None);
        assert_eq!(split_identifier_list("a b"), None);
        assert_eq!(split_identifier_list("\"\""), None);
        assert_eq!(split_identifier_list("\"open"), None);
    }

    #[test]
    fn encodings() {
        for ok in ["UTF8", "utf-8", "Unicode", "SQL_ASCII"] {
            assert!(is_supported_encoding(ok), "{ok}");
        }
        for bad in ["SJIS", "big5", "GBK", "latin1", "", "auto"] {
            assert!(!is_supported_encoding(bad), "{bad}");
        }
    }
}
