//! Settings a client asks for in its startup packet, directly (`name=value`
//! parameters) or through `options` (`-c name=value`, `--name=value`), so
//! the policy sees them before the upstream session exists, with the values
//! the server will end up applying.

/// Every setting the startup parameters set, names lowercased, in the order
/// the server applies them: `options` first (its switches left to right),
/// then the other parameters. A name may appear more than once.
/// The name `startup_settings` gives a switch in `options` that is not
/// `-c name=value` or `--name=value`; its value is the switch. Always refused.
pub const INVALID_SWITCH: &str = "(switch)";

fn applied_in_order(params: &[(String, String)]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (_, v) in params.iter().filter(|(k, _)| k == "options") {
        parse_options(v, &mut out);
    }
    for (k, v) in params.iter().filter(|(k, _)| k != "options") {
        out.push((k.to_lowercase(), v.clone()));
    }
    out
}

/// Every setting the startup parameters set, each once with the value the
/// server ends up with (a plain parameter overrides the same setting in
/// `options`; within `options` the last switch wins), names lowercased.
/// `application_name` and `client_encoding` are left out: any role may set
/// the first, and the second is checked by [`client_encoding_refusal`].
pub fn startup_settings(params: &[(String, String)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in applied_in_order(params) {
        if matches!(k.as_str(), "application_name" | "client_encoding") {
            continue;
        }
        match out.iter_mut().find(|(name, _)| *name == k) {
            Some(slot) => slot.1 = v,
            None => out.push((k, v)),
        }
    }
    out
}

/// True for the client encodings pgward reads statements in as the server
/// does, under any name PostgreSQL accepts for them (see `sql::encoding`).
pub fn is_supported_client_encoding(name: &str) -> bool {
    crate::sql::encoding::client_encoding(name).is_some()
}

/// Why the startup parameters' client encoding cannot be used, if it cannot.
/// Every occurrence counts, even one a later one overrides.
pub fn client_encoding_refusal(params: &[(String, String)]) -> Option<String> {
    applied_in_order(params)
        .into_iter()
        .find(|(k, v)| k == "client_encoding" && !is_supported_client_encoding(v))
        .map(|(_, v)| unsupported_encoding(&v))
}

/// The message for a client encoding pgward cannot lex as the server does.
pub fn unsupported_encoding(value: &str) -> String {
    format!("pgward: client_encoding \"{value}\" is not supported; UTF8, SQL_ASCII, LATIN1 and LATIN9 are, and the other server encodings for plain-ASCII statements")
}

/// Splits `options` as the server does: whitespace separates arguments and a
/// backslash makes the next character literal.
fn split_args(options: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut chars = options.chars();
    let mut any = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                    any = true;
                }
            }
            c if c.is_whitespace() => {
                if any {
                    args.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        args.push(cur);
    }
    args
}

fn parse_options(options: &str, out: &mut Vec<(String, String)>) {
    let args = split_args(options);
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        let setting = if a == "-c" {
            i += 1;
            match args.get(i) {
                Some(next) => Some(next.clone()),
                None => {
                    out.push((INVALID_SWITCH.to_string(), a.clone()));
                    None
                }
            }
        } else if let Some(rest) = a.strip_prefix("-c") {
            Some(rest.to_string())
        } else if let Some(rest) = a.strip_prefix("--") {
            Some(rest.to_string())
        } else {
            // Any other switch (-n, -O, -D, grouped ones such as -ncX=Y,
            // whose letters the server reads one by one and whose arguments
            // swallow the next word) is refused as it is: pgward reads only
            // -c and --name=value the way the server does.
            out.push((INVALID_SWITCH.to_string(), a.clone()));
            i += 1;
            continue;
        };
        if let Some(s) = setting {
            let (k, v) = s.split_once('=').unwrap_or((s.as_str(), ""));
            out.push((k.replace('-', "_").to_lowercase(), v.to_string()));
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn finds_settings_in_all_their_forms() {
        let got = startup_settings(&p(&[
            ("application_name", "x"),
            (
                "options",
                "-c search_path=internal,public --statement-timeout=5s -crole=admin -c a\\ b=c",
            ),
            ("DateStyle", "ISO"),
        ]));
        assert_eq!(
            got,
            p(&[
                ("search_path", "internal,public"),
                ("statement_timeout", "5s"),
                ("role", "admin"),
                ("a b", "c"),
                ("datestyle", "ISO"),
            ])
        );
    }

    #[test]
    fn values_are_the_ones_the_server_applies() {
        let search_path = |params: &[(&str, &str)]| {
            startup_settings(&p(params))
                .into_iter()
                .filter(|(k, _)| k == "search_path")
                .map(|(_, v)| v)
                .collect::<Vec<_>>()
        };
        // A plain parameter wins over options, wherever options sits.
        for params in [
            [
                ("options", "-c search_path=internal"),
                ("search_path", "public"),
            ],
            [
                ("search_path", "public"),
                ("options", "-c search_path=internal"),
            ],
        ] {
            assert_eq!(search_path(&params), ["public"], "{params:?}");
        }
        // Within options, the last switch wins; case and dashes do not matter.
        assert_eq!(
            search_path(&[(
                "options",
                "-c search_path=public --search-path=internal -c SEARCH_PATH=x"
            )]),
            ["x"]
        );
        assert_eq!(
            search_path(&[("options", "-c search_path=x"), ("Search_Path", "y")]),
            ["y"]
        );
    }

    #[test]
    fn client_only_encodings_are_refused() {
        for ok in [
            "UTF8",
            "utf8",
            "UTF-8",
            "utf_8",
            "Unicode",
            "SQL_ASCII",
            "sql-ascii",
        ] {
            assert!(is_supported_client_encoding(ok), "{ok}");
            assert_eq!(
                client_encoding_refusal(&p(&[("client_encoding", ok)])),
                None,
                "{ok}"
            );
        }
        for bad in [
            "SJIS", "sjis", "BIG5", "GBK", "GB18030", "UHC", "JOHAB", "auto", "", "utf16",
        ] {
            assert!(!is_supported_client_encoding(bad), "{bad}");
        }
        for params in [
            vec![("client_encoding", "SJIS")],
            vec![("options", "-c client_encoding=BIG5")],
            vec![("options", "--client-encoding=gbk")],
            vec![("options", "-cclient_encoding=auto")],
            // Overridden later, but applied first: refused all the same.
            vec![
                ("options", "-c client_encoding=SJIS"),
                ("client_encoding", "UTF8"),
            ],
        ] {
            let why = client_encoding_refusal(&p(&params));
            assert!(
                why.as_deref()
                    .is_some_and(|m| m.starts_with("pgward: client_encoding")),
                "{params:?}: {why:?}"
            );
        }
    }
}
