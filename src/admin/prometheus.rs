//! A strict reader of the Prometheus text exposition format 0.0.4, so tests
//! can check what `/metrics` serves the way a scraper would read it.
//!
//! Beyond the grammar it checks what scrapers reject or silently mangle: a
//! family's TYPE before its samples, one HELP and TYPE per family, a family's
//! lines kept together, no repeated series, quantile and le labels where a
//! summary or histogram needs them, and no negative counters.

use std::collections::{BTreeMap, HashMap, HashSet};

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    /// The value of label `name`, if the sample has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }
}

/// Parses a whole exposition; errors name the line.
pub fn parse(text: &str) -> Result<Vec<Sample>, String> {
    let Some(body) = text.strip_suffix('\n') else {
        if text.is_empty() {
            return Ok(Vec::new());
        }
        return Err("the text does not end in a newline".into());
    };
    let mut reader = Reader::default();
    for (n, line) in body.split('\n').enumerate() {
        reader
            .line(line)
            .map_err(|e| format!("line {}: {e}", n + 1))?;
    }
    Ok(reader.samples)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Untyped,
}

#[derive(Default)]
struct Family {
    kind: Option<Kind>,
    help: bool,
    has_samples: bool,
}

#[derive(Default)]
struct Reader {
    families: HashMap<String, Family>,
    /// The family whose lines are being read.
    current: Option<String>,
    /// Families whose lines are over; they may not come back.
    closed: HashSet<String>,
    series: HashSet<(String, BTreeMap<String, String>)>,
    samples: Vec<Sample>,
}

const BLANK: [char; 2] = [' ', '\t'];

impl Reader {
    fn line(&mut self, line: &str) -> Result<(), String> {
        let line = line.trim_start_matches(BLANK);
        if line.is_empty() {
            return Ok(());
        }
        let Some(comment) = line.strip_prefix('#') else {
            return self.sample(line);
        };
        let (keyword, rest) = token(comment.trim_start_matches(BLANK));
        match keyword {
            "HELP" => {
                let (name, doc) = token(rest);
                self.help(name, doc)
            }
            "TYPE" => {
                let (name, rest) = token(rest);
                let (kind, rest) = token(rest);
                if !rest.is_empty() {
                    return Err(format!("unexpected {rest:?} after the type of {name}"));
                }
                self.kind(name, kind)
            }
            _ => Ok(()),
        }
    }

    /// The family entry for a HELP or TYPE line, which must precede its samples.
    fn declare(&mut self, name: &str, what: &str) -> Result<&mut Family, String> {
        metric_name(name)?;
        self.enter(name)?;
        let family = self.families.entry(name.to_owned()).or_default();
        if family.has_samples {
            return Err(format!("{what} line for {name} after its samples"));
        }
        Ok(family)
    }

    fn help(&mut self, name: &str, doc: &str) -> Result<(), String> {
        unescape(doc, &['\\', 'n']).map_err(|e| format!("HELP of {name}: {e}"))?;
        let family = self.declare(name, "HELP")?;
        if std::mem::replace(&mut family.help, true) {
            return Err(format!("a second HELP line for {name}"));
        }
        Ok(())
    }

    fn kind(&mut self, name: &str, kind: &str) -> Result<(), String> {
        let kind = match kind {
            "counter" => Kind::Counter,
            "gauge" => Kind::Gauge,
            "histogram" => Kind::Histogram,
            "summary" => Kind::Summary,
            "untyped" => Kind::Untyped,
            _ => return Err(format!("unknown type {kind:?} for {name}")),
        };
        let family = self.declare(name, "TYPE")?;
        match family.kind.replace(kind) {
            Some(_) => Err(format!("a second TYPE line for {name}")),
            None => Ok(()),
        }
    }

    /// Moves on to `family`'s lines, which must not have ended before.
    fn enter(&mut self, family: &str) -> Result<(), String> {
        if self.current.as_deref() == Some(family) {
            return Ok(());
        }
        if let Some(previous) = self.current.take() {
            self.closed.insert(previous);
        }
        if self.closed.contains(family) {
            return Err(format!("the lines of {family} are not together"));
        }
        self.current = Some(family.to_owned());
        Ok(())
    }

    /// The family a sample belongs to: its own name, or the name without a
    /// `_sum`, `_count` or `_bucket` suffix that its family's type allows.
    fn family_of(&self, name: &str) -> Option<(String, Kind, &'static str)> {
        let kind = |n: &str| self.families.get(n).and_then(|f| f.kind);
        if let Some(k) = kind(name) {
            return Some((name.to_owned(), k, ""));
        }
        [("_sum", false), ("_count", false), ("_bucket", true)]
            .into_iter()
            .find_map(|(suffix, histogram_only)| {
                let base = name.strip_suffix(suffix)?;
                match kind(base)? {
                    Kind::Histogram => Some((base.to_owned(), Kind::Histogram, suffix)),
                    Kind::Summary if !histogram_only => {
                        Some((base.to_owned(), Kind::Summary, suffix))
                    }
                    _ => None,
                }
            })
    }

    fn sample(&mut self, line: &str) -> Result<(), String> {
        let end = line.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'));
        let (name, mut rest) = line.split_at(end.unwrap_or(line.len()));
        metric_name(name)?;
        let mut labels = BTreeMap::new();
        if let Some(after) = rest.strip_prefix('{') {
            (labels, rest) = label_set(after).map_err(|e| format!("{name}: {e}"))?;
        }
        let (value, rest) = match rest.strip_prefix(BLANK) {
            Some(r) => token(r.trim_start_matches(BLANK)),
            None => {
                return Err(format!(
                    "{name}: expected a blank and a value, found {rest:?}"
                ))
            }
        };
        let value: f64 = value
            .parse()
            .map_err(|_| format!("{name}: {value:?} is not a number"))?;
        let (timestamp, rest) = token(rest);
        if !timestamp.is_empty() && timestamp.parse::<i64>().is_err() {
            return Err(format!("{name}: timestamp {timestamp:?} is not an integer"));
        }
        if !rest.is_empty() {
            return Err(format!("{name}: unexpected {rest:?} after the value"));
        }
        let Some((family, kind, suffix)) = self.family_of(name) else {
            return Err(format!("{name} has no TYPE line before it"));
        };
        check_kind(name, kind, suffix, &labels, value)?;
        self.enter(&family)?;
        if let Some(f) = self.families.get_mut(&family) {
            f.has_samples = true;
        }
        if !self.series.insert((name.to_owned(), labels.clone())) {
            return Err(format!("{name}{labels:?} appears twice"));
        }
        self.samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
        Ok(())
    }
}

/// What a sample's family type asks of its labels and value.
fn check_kind(
    name: &str,
    kind: Kind,
    suffix: &str,
    labels: &BTreeMap<String, String>,
    value: f64,
) -> Result<(), String> {
    let number = |label: &str| match labels.get(label).map(|v| v.parse::<f64>()) {
        Some(Ok(_)) => Ok(()),
        Some(Err(_)) => Err(format!("{name}: label {label} is not a number")),
        None => Err(format!("{name}: needs a {label} label")),
    };
    match (kind, suffix) {
        (Kind::Summary, "") => number("quantile")?,
        (Kind::Histogram, "_bucket") => number("le")?,
        (Kind::Histogram, "") => {
            return Err(format!(
                "{name}: a histogram has only _bucket, _sum and _count samples"
            ))
        }
        _ => {}
    }
    let counts = kind == Kind::Counter || suffix == "_count" || suffix == "_bucket";
    if counts && value < 0.0 {
        return Err(format!("{name}: a count cannot be negative ({value})"));
    }
    Ok(())
}

/// The text up to the first blank, and what follows the blanks after it.
fn token(s: &str) -> (&str, &str) {
    let (head, tail) = s.split_at(s.find(BLANK).unwrap_or(s.len()));
    (head, tail.trim_start_matches(BLANK))
}

/// `name="value",...}` after the opening brace; gives the labels and the
/// text after the closing brace.
fn label_set(mut s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    loop {
        s = s.trim_start_matches(BLANK);
        if let Some(rest) = s.strip_prefix('}') {
            return Ok((labels, rest));
        }
        let end = s
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(s.len());
        let name = &s[..end];
        if name.is_empty()
            || name.starts_with(|c: char| c.is_ascii_digit())
            || name.starts_with("__")
        {
            return Err(format!("bad label name at {s:?}"));
        }
        s = s[end..].trim_start_matches(BLANK);
        let Some(quoted) = s
            .strip_prefix('=')
            .map(|r| r.trim_start_matches(BLANK))
            .and_then(|r| r.strip_prefix('"'))
        else {
            return Err(format!("label {name} needs =\"value\""));
        };
        let (value, rest) = quoted_value(quoted).map_err(|e| format!("label {name}: {e}"))?;
        if labels.insert(name.to_owned(), value).is_some() {
            return Err(format!("label {name} appears twice"));
        }
        s = rest.trim_start_matches(BLANK);
        if let Some(rest) = s.strip_prefix(',') {
            s = rest;
        } else if !s.starts_with('}') {
            return Err(format!("expected , or }} after label {name}"));
        }
    }
}

/// A label value up to its closing quote, unescaped, and the text after it.
fn quoted_value(s: &str) -> Result<(String, &str), String> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match (escaped, c) {
            (false, '"') => return Ok((unescape(&s[..i], &['\\', '"', 'n'])?, &s[i + 1..])),
            (false, '\\') => escaped = true,
            _ => escaped = false,
        }
    }
    Err("the value has no closing quote".into())
}

/// Resolves backslash escapes, allowing only those in `allowed`.
fn unescape(s: &str, allowed: &[char]) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') if allowed.contains(&'n') => out.push('\n'),
            Some(e) if e != 'n' && allowed.contains(&e) => out.push(e),
            Some(e) => return Err(format!("escape \\{e} is not allowed")),
            None => return Err("a lone backslash at the end".into()),
        }
    }
    Ok(out)
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn metric_name(name: &str) -> Result<(), String> {
    let ok = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    if !ok {
        return Err(format!("{name:?} is not a metric name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_value_form_and_label_escape() {
        let text = "# A comment\n\n# HELP up Is it \\\\ up?\\n Yes.\n# TYPE up gauge\nup 1\n\
            up{a=\"x\\\"y\\\\z\\nw\", b = \"\" ,} -2.5e3 1700000000000\n\
            # TYPE lat summary\nlat{quantile=\"0.5\"} NaN\nlat{quantile=\"0.9\"} +Inf\nlat_sum -Inf\nlat_count 0\n\
            # TYPE h histogram\nh_bucket{le=\"+Inf\"} 3\nh_sum 1\nh_count 3\n\t  \nother_untyped_is_typed_below 1\n";
        let err = parse(text).unwrap_err();
        assert_eq!(
            err,
            "line 17: other_untyped_is_typed_below has no TYPE line before it"
        );
        let text = text.replace("other_untyped_is_typed_below", "# TYPE u untyped\nu");
        let samples = parse(&text).unwrap_or_else(|e| panic!("{e}"));
        let values: Vec<_> = samples.iter().map(|s| (s.name.as_str(), s.value)).collect();
        assert_eq!(values[..2], [("up", 1.0), ("up", -2500.0)]);
        assert_eq!(samples[1].label("a"), Some("x\"y\\z\nw"));
        assert_eq!(samples[1].label("b"), Some(""));
        assert!(samples[2].value.is_nan());
        assert_eq!(
            (samples[3].value, samples[4].value),
            (f64::INFINITY, f64::NEG_INFINITY)
        );
        assert_eq!(samples.len(), 10);
    }

    #[test]
    fn refusals() {
        let g = "# TYPE g gauge\n";
        for (text, why) in [
            (format!("{g}g 1"), "does not end in a newline"),
            (format!("{g}g 1\r\n"), "\"1\\r\" is not a number"),
            (format!("{g}g\n"), "expected a blank"),
            (format!("{g}g x\n"), "\"x\" is not a number"),
            (format!("{g}g 1 2.5\n"), "timestamp"),
            (format!("{g}g 1 2 3\n"), "unexpected"),
            (format!("{g}g{{}}1\n"), "expected a blank"),
            (format!("{g}g{{a=\"1\",a=\"2\"}} 1\n"), "appears twice"),
            (format!("{g}g{{a=\"1\"b=\"2\"}} 1\n"), "expected , or }"),
            (format!("{g}g{{a=1}} 1\n"), "needs ="),
            (format!("{g}g{{a=\"1}} 1\n"), "no closing quote"),
            (format!("{g}g{{a=\"\\t\"}} 1\n"), "escape \\t"),
            (format!("{g}g{{,}} 1\n"), "bad label name"),
            (format!("{g}g{{1a=\"\"}} 1\n"), "bad label name"),
            (format!("{g}g{{__name__=\"\"}} 1\n"), "bad label name"),
            (format!("{g}g 1\ng 2\n"), "appears twice"),
            (
                format!("{g}g 1\n# TYPE h gauge\nh 1\ng{{a=\"b\"}} 1\n"),
                "not together",
            ),
            (format!("{g}g 1\n# HELP g late\n"), "after its samples"),
            (format!("{g}# TYPE g counter\n"), "a second TYPE"),
            ("# HELP g a\n# HELP g b\n".into(), "a second HELP"),
            ("# HELP g a\\t\n".into(), "escape \\t"),
            ("# TYPE g meter\n".into(), "unknown type"),
            ("# TYPE g gauge extra\n".into(), "unexpected"),
            ("# TYPE 1g gauge\n".into(), "not a metric name"),
            ("g 1\n".into(), "no TYPE line"),
            ("# TYPE c counter\nc -1\n".into(), "cannot be negative"),
            ("# TYPE s summary\ns 1\n".into(), "needs a quantile label"),
            (
                "# TYPE s summary\ns{quantile=\"x\"} 1\n".into(),
                "not a number",
            ),
            (
                "# TYPE s summary\ns_bucket{le=\"1\"} 1\n".into(),
                "no TYPE line",
            ),
            ("# TYPE h histogram\nh 1\n".into(), "only _bucket"),
            (
                "# TYPE h histogram\nh_bucket 1\n".into(),
                "needs a le label",
            ),
            ("# TYPE g gauge\n{a=\"b\"} 1\n".into(), "not a metric name"),
        ] {
            match parse(&text) {
                Ok(s) => panic!("{text:?} parsed as {s:?}"),
                Err(e) => assert!(e.contains(why), "{text:?}: {e}"),
            }
        }
    }

    #[test]
    fn empty_text_has_no_samples() {
        assert_eq!(parse(""), Ok(Vec::new()));
        assert_eq!(parse("# HELP x y\n"), Ok(Vec::new()));
    }
}
