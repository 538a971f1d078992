//! Relation patterns: `schema.name` with `*` wildcards, and `!` for exclusions.
//! A name matches a list when some inclusion matches it and no exclusion does.

/// One pattern list from the policy file, compiled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Patterns {
    include: Vec<String>,
    exclude: Vec<String>,
}

impl Patterns {
    /// Compiles a list such as `["public.*", "!public.api_keys"]`.
    pub fn new(list: &[String]) -> Result<Patterns, String> {
        let mut p = Patterns::default();
        for item in list {
            let (neg, pat) = match item.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, item.as_str()),
            };
            // Exactly `schema.name`: a bare `api_keys` would match nothing,
            // so `!api_keys` would exclude nothing.
            let parts: Vec<&str> = pat.split('.').collect();
            if parts.len() != 2 || parts.iter().any(|p| p.is_empty()) {
                return Err(format!(
                    "{item:?} is not a pattern like \"schema.table\" or \"schema.*\""
                ));
            }
            let pat = pat.to_string();
            if neg {
                p.exclude.push(pat);
            } else {
                p.include.push(pat);
            }
        }
        Ok(p)
    }

    /// True when `qualified` (`schema.name`) is granted by this list.
    pub fn matches(&self, qualified: &str) -> bool {
        self.include.iter().any(|p| glob(p, qualified)) && !self.excludes(qualified)
    }

    /// Exclusions ignore ASCII case (`!public.API_Keys` still excludes the
    /// folded `public.api_keys`): a mistaken case never widens a grant.
    fn excludes(&self, qualified: &str) -> bool {
        let lower = qualified.to_ascii_lowercase();
        self.exclude
            .iter()
            .any(|p| glob(&p.to_ascii_lowercase(), &lower))
    }

    /// True when `qualified` is named without wildcards by an inclusion.
    pub fn names_exactly(&self, qualified: &str) -> bool {
        self.include.iter().any(|p| p == qualified) && !self.excludes(qualified)
    }

    /// True when every relation is granted (`*.*`, nothing excluded).
    pub fn grants_everything(&self) -> bool {
        self.include.iter().any(|p| p == "*.*") && self.exclude.is_empty()
    }

    /// True when nothing is granted.
    pub fn is_empty(&self) -> bool {
        self.include.is_empty()
    }

    /// The inclusions and exclusions, for messages.
    pub fn describe(&self) -> String {
        if self.include.is_empty() {
            return "nothing".into();
        }
        let mut parts = self.include.clone();
        parts.extend(self.exclude.iter().map(|e| format!("!{e}")));
        parts.join(", ")
    }
}

/// Matches `text` against `pattern`, where `*` matches any run of characters.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_and_exclusions() {
        assert!(glob("public.*", "public.orders"));
        assert!(!glob("public.*", "internal.orders"));
        assert!(glob("*.orders", "internal.orders"));
        assert!(glob("public.order*", "public.order_items"));
        let p = Patterns::new(&["public.*".into(), "!public.api_keys".into()]).unwrap();
        assert!(p.matches("public.orders"));
        assert!(!p.matches("public.api_keys"));
        assert!(!p.matches("internal.customers"));
        assert!(Patterns::new(&["a.b.c.d".into()]).is_err());
        assert!(Patterns::new(&["!".into()]).is_err());
    }
}

#[cfg(test)]
mod pattern_form {
    use super::*;

    #[test]
    fn patterns_name_a_schema_and_exclusions_ignore_case() {
        for bad in ["api_keys", "!api_keys", "a.b.c", ".x", "x.", ""] {
            assert!(Patterns::new(&[bad.to_string()]).is_err(), "{bad}");
        }
        let p = Patterns::new(&["public.*".to_string(), "!Public.API_Keys".to_string()]).unwrap();
        assert!(!p.matches("public.api_keys"));
        assert!(p.matches("public.orders"));
    }
}
