//! Settings a client asks for in its startup packet, directly (`name=value`
//! parameters) or through `options` (`-c name=value`, `--name=value`), so
//! the policy sees them before the upstream session exists.

/// Every setting the startup parameters set, names lowercased.
pub fn startup_settings(params: &[(String, String)]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (k, v) in params {
        match k.as_str() {
            "options" => parse_options(v, &mut out),
            "application_name" | "client_encoding" => {}
            _ => out.push((k.to_lowercase(), v.clone())),
        }
    }
    out
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
            args.get(i).cloned()
        } else if let Some(rest) = a.strip_prefix("-c") {
            Some(rest.to_string())
        } else if let Some(rest) = a.strip_prefix("--") {
            Some(rest.to_string())
        } else {
            // Other switches (-d, -e, ...) are the server's to refuse; name them
            // so the policy treats them as unknown settings.
            Some(format!("{a}="))
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
}
