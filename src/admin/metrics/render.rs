//! Writes merged metrics in the Prometheus text exposition format 0.0.4.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};

use super::timings::Timings;
use super::{lock, Metrics, Verdict};

/// Approval outcomes exported at zero before they first happen, so rates
/// over them exist from the start.
const APPROVAL_OUTCOMES: [&str; 6] = [
    "requested",
    "approved",
    "denied",
    "expired",
    "withdrawn",
    "granted_retry",
];

/// Quantiles exported for each latency summary.
const QUANTILES: [f64; 4] = [0.5, 0.9, 0.99, 0.999];

/// Merges every worker's shared metrics and writes them with `gauges`
/// (name without the `pgward_` prefix, help, value).
pub fn render(workers: &[Arc<Mutex<Metrics>>], gauges: &[(&str, &str, f64)]) -> String {
    let mut m = Metrics::new();
    for w in workers {
        m.merge(&lock(w));
    }
    let mut out = Exposition::default();
    for (name, help, count) in [
        (
            "sessions_opened_total",
            "Client sessions opened.",
            m.sessions_opened,
        ),
        (
            "sessions_closed_total",
            "Client sessions closed.",
            m.sessions_closed,
        ),
        (
            "login_failures_total",
            "Client logins refused.",
            m.login_failures,
        ),
        ("masked_cells_total", "Result cells masked.", m.masked_cells),
    ] {
        out.family(name, help, "counter");
        out.sample(name, &[], count as f64);
    }
    let statements = Verdict::ALL.map(|v| (v.name(), m.statements[v as usize]));
    out.counters(
        "statements_total",
        "Statements by verdict.",
        "verdict",
        statements,
    );
    let denials = m.denials.iter().map(|(rule, n)| (rule.as_str(), *n));
    out.counters(
        "denials_total",
        "Denied statements by rule.",
        "rule",
        denials,
    );
    let mut approvals: BTreeMap<&str, u64> = APPROVAL_OUTCOMES.map(|o| (o, 0)).into();
    approvals.extend(m.approvals.iter().map(|(o, n)| (o.as_str(), *n)));
    out.counters(
        "approvals_total",
        "Approval requests by outcome.",
        "outcome",
        approvals,
    );
    let cache = [("hit", m.cache_hits), ("miss", m.cache_misses)];
    out.counters(
        "decision_cache_total",
        "Decision cache lookups.",
        "result",
        cache,
    );
    let added = "Time pgward adds to a statement, by verdict.";
    out.summary("added_seconds", added, &m.pgward_seconds);
    let upstream = "Time the upstream server takes for a statement, by verdict.";
    out.summary("upstream_seconds", upstream, &m.upstream_seconds);
    for (name, help, value) in gauges {
        out.family(name, help, "gauge");
        out.sample(name, &[], *value);
    }
    out.text
}

/// Exposition text being written. Writing to a `String` cannot fail, so
/// `write!` results are ignored.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, help: &str, kind: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let name = metric_name(name);
        let _ = write!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text += &metric_name(name);
        for (i, (label, value)) in labels.iter().enumerate() {
            let open = if i == 0 { '{' } else { ',' };
            let _ = write!(self.text, "{open}{label}=\"{}\"", escape(value));
        }
        let close = if labels.is_empty() { "" } else { "}" };
        let _ = writeln!(self.text, "{close} {}", number(value));
    }

    /// A counter family with one sample per `(label value, count)`.
    fn counters<'a>(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        counts: impl IntoIterator<Item = (&'a str, u64)>,
    ) {
        self.family(name, help, "counter");
        for (value, count) in counts {
            self.sample(name, &[(label, value)], count as f64);
        }
    }

    /// A summary family by verdict; quantiles are NaN for a verdict that
    /// has no times yet.
    fn summary(&mut self, name: &str, help: &str, timings: &Timings) {
        self.family(name, help, "summary");
        for v in Verdict::ALL {
            let t = timings.get(v);
            for q in QUANTILES {
                let value = t.map_or(f64::NAN, |t| t.quantile_seconds(q));
                self.sample(
                    name,
                    &[("verdict", v.name()), ("quantile", &q.to_string())],
                    value,
                );
            }
            let (sum, count) = t.map_or((0.0, 0), |t| (t.sum_seconds(), t.count()));
            self.sample(&format!("{name}_sum"), &[("verdict", v.name())], sum);
            self.sample(
                &format!("{name}_count"),
                &[("verdict", v.name())],
                count as f64,
            );
        }
    }
}

/// `pgward_` and `name`, with any character a metric name cannot hold as `_`.
fn metric_name(name: &str) -> String {
    let keep = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let clean = name.chars().map(|c| if keep(c) { c } else { '_' });
    "pgward_".chars().chain(clean).collect()
}

/// A label value with backslash, double quote and newline escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A sample value as the format spells it.
fn number(v: f64) -> String {
    match v {
        f64::INFINITY => "+Inf".into(),
        f64::NEG_INFINITY => "-Inf".into(),
        v if v.is_nan() => "NaN".into(),
        v => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::admin::metrics::WorkerMetrics;
    use crate::admin::prometheus::{self, Sample};

    fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut found = samples
            .iter()
            .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(*v)));
        let sample = found
            .next()
            .unwrap_or_else(|| panic!("no {name}{labels:?}"));
        assert!(found.next().is_none(), "more than one {name}{labels:?}");
        sample.value
    }

    #[test]
    fn merges_workers_and_reads_back() {
        let (a, b) = (WorkerMetrics::new(), WorkerMetrics::new());
        a.session_opened();
        a.session_opened();
        b.session_opened();
        b.session_closed();
        b.login_failed();
        a.statement(Verdict::Allowed, None);
        b.statement(Verdict::Allowed, None);
        b.statement(Verdict::Denied, Some("operations"));
        a.statement(Verdict::Denied, Some("say \"no\"\\\nplease"));
        a.masked(5);
        b.masked(2);
        a.approval("requested");
        b.approval("requested");
        b.approval("custom");
        a.cache(true);
        a.cache(false);
        b.cache(true);
        for ms in 1..=100 {
            a.pgward_time(Verdict::Allowed, Duration::from_millis(ms));
        }
        b.upstream_time(Verdict::Held, Duration::from_secs(2));
        a.fold();
        b.fold();
        let gauges = [
            ("workers", "Worker threads.", 2.0),
            ("odd name", "a\\b\nc", f64::INFINITY),
        ];

        let text = render(&[a.shared(), b.shared()], &gauges);
        let samples = prometheus::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let get = |name, labels: &[(&str, &str)]| value(&samples, name, labels);
        assert_eq!(get("pgward_sessions_opened_total", &[]), 3.0);
        assert_eq!(get("pgward_sessions_closed_total", &[]), 1.0);
        assert_eq!(get("pgward_login_failures_total", &[]), 1.0);
        for (verdict, n) in [
            ("allowed", 2.0),
            ("masked", 0.0),
            ("denied", 2.0),
            ("held", 0.0),
        ] {
            assert_eq!(
                get("pgward_statements_total", &[("verdict", verdict)]),
                n,
                "{verdict}"
            );
        }
        assert_eq!(get("pgward_denials_total", &[("rule", "operations")]), 1.0);
        assert_eq!(
            get("pgward_denials_total", &[("rule", "say \"no\"\\\nplease")]),
            1.0
        );
        assert!(text.contains(r#"pgward_denials_total{rule="say \"no\"\\\nplease"} 1"#));
        assert_eq!(get("pgward_masked_cells_total", &[]), 7.0);
        assert_eq!(
            get("pgward_approvals_total", &[("outcome", "requested")]),
            2.0
        );
        assert_eq!(get("pgward_approvals_total", &[("outcome", "custom")]), 1.0);
        assert_eq!(
            get("pgward_approvals_total", &[("outcome", "granted_retry")]),
            0.0
        );
        assert_eq!(
            get("pgward_decision_cache_total", &[("result", "hit")]),
            2.0
        );
        assert_eq!(
            get("pgward_decision_cache_total", &[("result", "miss")]),
            1.0
        );

        let added = |q| {
            get(
                "pgward_added_seconds",
                &[("verdict", "allowed"), ("quantile", q)],
            )
        };
        assert!((added("0.5") - 0.050).abs() < 0.0001, "{}", added("0.5"));
        assert!((added("0.99") - 0.099).abs() < 0.0001);
        assert!((get("pgward_added_seconds_sum", &[("verdict", "allowed")]) - 5.05).abs() < 1e-9);
        assert_eq!(
            get("pgward_added_seconds_count", &[("verdict", "allowed")]),
            100.0
        );
        assert!(get(
            "pgward_added_seconds",
            &[("verdict", "held"), ("quantile", "0.5")]
        )
        .is_nan());
        assert_eq!(
            get("pgward_added_seconds_count", &[("verdict", "held")]),
            0.0
        );
        let held = get(
            "pgward_upstream_seconds",
            &[("verdict", "held"), ("quantile", "0.999")],
        );
        assert!((held - 2.0).abs() < 0.002);
        assert_eq!(get("pgward_workers", &[]), 2.0);
        assert_eq!(get("pgward_odd_name", &[]), f64::INFINITY);
        assert!(text.contains("# HELP pgward_odd_name a\\\\b\\nc\n# TYPE pgward_odd_name gauge\n"));
        assert!(text.contains("# TYPE pgward_added_seconds summary\n"));
        let statements = "# HELP pgward_statements_total Statements by verdict.\n\
            # TYPE pgward_statements_total counter\n\
            pgward_statements_total{verdict=\"allowed\"} 2\n";
        assert!(text.contains(statements), "{text}");
    }

    #[test]
    fn nothing_counted_still_renders_every_family() {
        let text = render(&[], &[]);
        let samples = prometheus::parse(&text).unwrap();
        assert_eq!(
            samples
                .iter()
                .filter(|s| s.name == "pgward_statements_total")
                .count(),
            4
        );
        assert_eq!(
            samples
                .iter()
                .filter(|s| s.name == "pgward_upstream_seconds")
                .count(),
            16
        );
        assert!(samples.iter().all(|s| s.value == 0.0 || s.value.is_nan()));
        for family in [
            "pgward_denials_total",
            "pgward_approvals_total",
            "pgward_decision_cache_total",
        ] {
            assert!(
                text.contains(&format!("# TYPE {family} counter\n")),
                "{family}"
            );
        }
    }

    #[test]
    fn values_and_names() {
        assert_eq!(number(f64::NEG_INFINITY), "-Inf");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(3.0), "3");
        assert_eq!(metric_name("a-b:c"), "pgward_a_b:c");
    }
}
