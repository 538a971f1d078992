//! Settings: SET, RESET, SHOW and set_config. Settings that change who the
//! session is are never allowed, the client encoding may only be one pgward
//! lexes as the server does (UTF8 or SQL_ASCII), and search_path changes are
//! recorded schema by schema, exactly as the server will read them.

use pg_query::protobuf::{VariableSetKind, VariableSetStmt};

use super::classification::{
    BoundSetting, Classification, Operation, SettingArgument, SettingValue,
};
use super::names::string_constant;
use super::walker::{Walk, Walker};

/// Settings that change who the session is: never allowed through pgward.
const IDENTITY_SETTINGS: &[&str] = &["role", "session_authorization", "session authorization"];

/// True for a client encoding pgward reads statements in as the server does
/// (see `encoding`).
pub fn is_supported_encoding(name: &str) -> bool {
    super::encoding::client_encoding(name).is_some()
}

/// The whitespace PostgreSQL 15's scanner_isspace knows.
fn is_server_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c')
}

/// Whitespace other readers may take for a separator where PostgreSQL 15
/// reads part of a name (`\v`, which later servers count as space, and
/// Unicode spaces): refused rather than guessed.
fn is_doubtful_space(c: char) -> bool {
    c.is_whitespace() && !is_server_space(c)
}

/// The longest identifier PostgreSQL keeps (NAMEDATALEN - 1 bytes); longer
/// ones are truncated at a character boundary.
const IDENTIFIER_MAX: usize = 63;

fn truncate_identifier(mut name: String) -> String {
    if name.len() > IDENTIFIER_MAX {
        let mut end = IDENTIFIER_MAX;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name.truncate(end);
    }
    name
}

/// Splits a list setting's text as the server does (SplitIdentifierString):
/// commas separate, whitespace around names is dropped, double quotes keep
/// case and commas, unquoted names are folded (ASCII only, as in a UTF8
/// database), every name is truncated to 63 bytes. `None` when malformed,
/// or when it holds whitespace the server would not read as whitespace.
pub fn split_identifier_list(text: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|&c| is_server_space(c)) {
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
                if c == ',' || is_server_space(c) || c == '"' {
                    break;
                }
                if is_doubtful_space(c) {
                    return None;
                }
                name.push(c.to_ascii_lowercase());
                chars.next();
            }
            if name.is_empty() {
                return None;
            }
        }
        out.push(truncate_identifier(name));
        while chars.peek().is_some_and(|&c| is_server_space(c)) {
            chars.next();
        }
        match chars.next() {
            None => return Some(out),
            Some(',') => continue,
            Some(_) => return None,
        }
    }
}

impl Classification {
    /// Records a change of `name` to `value`.
    pub fn change_setting(&mut self, name: &str, value: SettingValue) {
        self.setting_values.push((name.to_string(), value));
        if IDENTITY_SETTINGS.contains(&name) {
            self.forbidden
                .push(format!("setting {name} changes the session's identity"));
        }
        self.operations.insert(Operation::Set);
        self.settings.insert(name.to_string());
    }

    /// Records `set_config(name, value)`: the value is text the setting
    /// parses itself (`None`: not known).
    pub fn change_setting_text(&mut self, name: &str, value: Option<&str>) {
        match name {
            "search_path" => match value.and_then(split_identifier_list) {
                Some(schemas) => self.search_path.extend(schemas),
                None => self.forbidden.push(
                    "set_config of search_path to a value that is not a plain literal".into(),
                ),
            },
            "client_encoding" => self.require_encoding(value),
            _ => {}
        }
        let value = match value {
            Some(v) => SettingValue::Literal(v.to_string()),
            None => SettingValue::Unknown,
        };
        self.change_setting(name, value);
    }

    fn require_encoding(&mut self, value: Option<&str>) {
        if !value.is_some_and(is_supported_encoding) {
            self.forbidden.push(
                "a client encoding pgward cannot read statements in as the server does (SJIS, BIG5, GBK, GB18030, UHC, JOHAB, or a value that is not a literal)"
                    .into(),
            );
        }
    }

    /// The bind parameters that name settings or give them values.
    pub fn setting_parameters(&self) -> Vec<usize> {
        let mut out = Vec::new();
        for b in &self.bound_settings {
            match b {
                BoundSetting::Read(n) => out.push(*n),
                BoundSetting::Change { name, value } => {
                    for a in [name, value] {
                        if let SettingArgument::Parameter(n) = a {
                            out.push(*n);
                        }
                    }
                }
            }
        }
        out
    }

    /// Refuses a parameter that names a setting (or gives one a value) and
    /// is used elsewhere in the text too: another use may give it a type
    /// (`bpchar`, `name`) whose conversion to text changes the value on the
    /// way, so the server would see another name than pgward reads.
    /// `all` holds the number of every parameter reference in the text.
    pub fn check_setting_parameters(&mut self, all: &[i32]) {
        let settings = self.setting_parameters();
        for &n in &settings {
            let uses = all.iter().filter(|&&a| a as usize == n).count();
            if uses != settings.iter().filter(|&&s| s == n).count() {
                self.forbidden.push(format!(
                    "bind parameter ${n} names a setting and is used elsewhere in the statement too"
                ));
                return;
            }
        }
    }

    /// This classification once the bind parameters are known: the settings
    /// they name or set are recorded as if written as literals. `parameter`
    /// gives `$n` as text (`None` for NULL), or why it cannot be read.
    pub fn with_parameters(
        &self,
        parameter: &dyn Fn(usize) -> Result<Option<String>, String>,
    ) -> Result<Classification, String> {
        let mut c = self.clone();
        for b in std::mem::take(&mut c.bound_settings) {
            match b {
                BoundSetting::Read(n) => {
                    // current_setting(NULL) is NULL.
                    if let Some(name) = parameter(n)? {
                        c.settings_read.insert(parameter_setting_name(n, &name)?);
                    }
                }
                BoundSetting::Change { name, value } => {
                    let name = match name {
                        SettingArgument::Literal(s) => s.to_ascii_lowercase(),
                        SettingArgument::Parameter(n) => match parameter(n)? {
                            Some(s) => parameter_setting_name(n, &s)?,
                            // The server refuses a NULL name.
                            None => continue,
                        },
                        SettingArgument::Unknown => {
                            return Err("a setting name pgward cannot read".into())
                        }
                    };
                    let value = match value {
                        SettingArgument::Literal(v) => Some(v),
                        // NULL resets the setting: a value pgward does not know.
                        SettingArgument::Parameter(n) => parameter(n)?,
                        SettingArgument::Unknown => None,
                    };
                    c.change_setting_text(&name, value.as_deref());
                }
            }
        }
        Ok(c)
    }
}

/// A setting name given as parameter `$n`: plain ASCII letters, digits,
/// `_` and `.` only, at most 63 bytes (so no conversion on the server's side
/// could read it differently), folded as the server folds setting names.
fn parameter_setting_name(n: usize, text: &str) -> Result<String, String> {
    let plain = !text.is_empty()
        && text.len() <= IDENTIFIER_MAX
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
    if plain {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(format!(
            "bind parameter ${n} names a setting with characters other than letters, digits, _ and ."
        ))
    }
}

impl Walker<'_> {
    /// Records a change of `name` to `value`.
    pub fn setting(&mut self, name: &str, value: SettingValue) {
        self.c.change_setting(name, value);
    }

    fn encoding(&mut self, value: Option<&str>) {
        self.c.require_encoding(value);
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
                    // (Strings are truncated like identifiers when the
                    // server splits the list it makes of them.)
                    "search_path" => match &values {
                        Some(v) => self
                            .c
                            .search_path
                            .extend(v.iter().cloned().map(truncate_identifier)),
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
        // Only the server's own whitespace separates.
        assert_eq!(split_identifier_list("\u{a0}evil"), None);
        assert_eq!(split_identifier_list("a,\u{b}b"), None);
        assert_eq!(split_identifier_list("\ta,\x0cb\n").unwrap(), ["a", "b"]);
        // Names are truncated as identifiers are.
        let long = "x".repeat(70);
        assert_eq!(split_identifier_list(&long).unwrap(), ["x".repeat(63)]);
        let wide = format!("\"{}\"", "é".repeat(40));
        assert_eq!(split_identifier_list(&wide).unwrap(), ["é".repeat(31)]);
    }

    #[test]
    fn encodings() {
        for ok in [
            "UTF8",
            "utf-8",
            "Unicode",
            "SQL_ASCII",
            "latin1",
            "LATIN9",
            "euc_jp",
        ] {
            assert!(is_supported_encoding(ok), "{ok}");
        }
        for bad in ["SJIS", "big5", "GBK", "", "auto"] {
            assert!(!is_supported_encoding(bad), "{bad}");
        }
    }
}
