//! What pgward counts: sessions, statements by verdict, denials by rule,
//! masked cells, approvals, decision cache lookups and latencies. Each worker
//! writes its own copy without locking (`worker`), folds it into a shared one
//! now and then, and a scrape merges the shared copies (`render`).

mod render;
mod timings;
mod worker;

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

pub use render::render;
pub use worker::WorkerMetrics;

use timings::Timings;

/// What pgward did with a statement.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Verdict {
    Allowed,
    Masked,
    Denied,
    Held,
}

impl Verdict {
    /// Every verdict, in exposition order.
    pub const ALL: [Verdict; 4] = [
        Verdict::Allowed,
        Verdict::Masked,
        Verdict::Denied,
        Verdict::Held,
    ];

    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::Masked => "masked",
            Verdict::Denied => "denied",
            Verdict::Held => "held",
        }
    }
}

/// Everything one worker counts.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    sessions_opened: u64,
    sessions_closed: u64,
    login_failures: u64,
    /// By `Verdict as usize`.
    statements: [u64; 4],
    denials: BTreeMap<String, u64>,
    masked_cells: u64,
    approvals: BTreeMap<String, u64>,
    cache_hits: u64,
    cache_misses: u64,
    pgward_seconds: Timings,
    upstream_seconds: Timings,
}

impl Metrics {
    /// Nothing counted yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A statement got `verdict`; `rule` names the rule that denied it.
    pub fn statement(&mut self, verdict: Verdict, rule: Option<&str>) {
        self.statements[verdict as usize] += 1;
        if let Some(rule) = rule {
            bump(&mut self.denials, rule, 1);
        }
    }

    /// The time pgward itself added to a statement.
    pub fn pgward_time(&mut self, verdict: Verdict, took: Duration) {
        self.pgward_seconds.record(verdict, took);
    }

    /// The time the upstream server took for a statement.
    pub fn upstream_time(&mut self, verdict: Verdict, took: Duration) {
        self.upstream_seconds.record(verdict, took);
    }

    /// `cells` values were masked.
    pub fn masked(&mut self, cells: u64) {
        self.masked_cells += cells;
    }

    /// An approval request reached `outcome` ("requested", "approved", ...).
    pub fn approval(&mut self, outcome: &str) {
        bump(&mut self.approvals, outcome, 1);
    }

    /// A decision cache lookup.
    pub fn cache_counts(&mut self, hits: u64, misses: u64) {
        self.cache_hits += hits;
        self.cache_misses += misses;
    }

    /// Counts one decision-cache lookup.
    pub fn cache(&mut self, hit: bool) {
        if hit {
            self.cache_hits += 1;
        } else {
            self.cache_misses += 1;
        }
    }

    /// A client session began.
    pub fn session_opened(&mut self) {
        self.sessions_opened += 1;
    }

    /// A client session ended.
    pub fn session_closed(&mut self) {
        self.sessions_closed += 1;
    }

    /// A client failed to log in.
    pub fn login_failed(&mut self) {
        self.login_failures += 1;
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &Metrics) {
        self.sessions_opened += other.sessions_opened;
        self.sessions_closed += other.sessions_closed;
        self.login_failures += other.login_failures;
        for (mine, theirs) in self.statements.iter_mut().zip(other.statements) {
            *mine += theirs;
        }
        for (rule, n) in &other.denials {
            bump(&mut self.denials, rule, *n);
        }
        self.masked_cells += other.masked_cells;
        for (outcome, n) in &other.approvals {
            bump(&mut self.approvals, outcome, *n);
        }
        self.cache_hits += other.cache_hits;
        self.cache_misses += other.cache_misses;
        self.pgward_seconds.merge(&other.pgward_seconds);
        self.upstream_seconds.merge(&other.upstream_seconds);
    }

    /// Whether nothing has been counted since creation or the last `clear`.
    pub fn is_empty(&self) -> bool {
        let counters = [
            self.sessions_opened,
            self.sessions_closed,
            self.login_failures,
            self.masked_cells,
            self.cache_hits,
            self.cache_misses,
        ];
        counters.iter().chain(&self.statements).all(|&n| n == 0)
            && self.denials.is_empty()
            && self.approvals.is_empty()
            && self.pgward_seconds.is_empty()
            && self.upstream_seconds.is_empty()
    }

    /// Forgets every count; the histograms keep their memory for reuse.
    pub fn clear(&mut self) {
        let mut pgward_seconds = std::mem::take(&mut self.pgward_seconds);
        let mut upstream_seconds = std::mem::take(&mut self.upstream_seconds);
        pgward_seconds.clear();
        upstream_seconds.clear();
        *self = Metrics {
            pgward_seconds,
            upstream_seconds,
            ..Metrics::default()
        };
    }
}

fn bump(map: &mut BTreeMap<String, u64>, key: &str, n: u64) {
    match map.get_mut(key) {
        Some(count) => *count += n,
        None => {
            map.insert(key.to_owned(), n);
        }
    }
}

/// Locks shared metrics; a writer that panicked while holding the lock left
/// counts that are still valid, so poisoning is ignored.
fn lock(m: &Mutex<Metrics>) -> MutexGuard<'_, Metrics> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let names: Vec<_> = Verdict::ALL.iter().map(|v| v.name()).collect();
        assert_eq!(names, ["allowed", "masked", "denied", "held"]);
    }

    #[test]
    fn each_count_makes_it_non_empty_and_clear_empties_it() {
        let mut m = Metrics::new();
        assert!(m.is_empty());
        let touches: [fn(&mut Metrics); 11] = [
            |m| m.session_opened(),
            |m| m.session_closed(),
            |m| m.login_failed(),
            |m| m.statement(Verdict::Held, None),
            |m| m.statement(Verdict::Denied, Some("r")),
            |m| m.masked(1),
            |m| m.approval("expired"),
            |m| m.cache(true),
            |m| m.cache(false),
            |m| m.pgward_time(Verdict::Allowed, Duration::ZERO),
            |m| m.upstream_time(Verdict::Denied, Duration::from_nanos(1)),
        ];
        for (i, touch) in touches.iter().enumerate() {
            touch(&mut m);
            assert!(!m.is_empty(), "{i}");
            m.clear();
            assert!(m.is_empty(), "{i}");
        }
    }

    #[test]
    fn merge_adds_every_count() {
        let mut a = Metrics::new();
        a.statement(Verdict::Denied, Some("operations"));
        a.approval("approved");
        a.cache(true);
        let mut b = a.clone();
        b.statement(Verdict::Denied, Some("tables"));
        b.masked(3);
        b.session_opened();
        b.upstream_time(Verdict::Denied, Duration::from_millis(4));
        a.merge(&b);
        assert_eq!(a.statements, [0, 0, 3, 0]);
        let denials: Vec<_> = a.denials.iter().map(|(r, n)| (r.as_str(), *n)).collect();
        assert_eq!(denials, [("operations", 2), ("tables", 1)]);
        assert_eq!(
            (a.approvals["approved"], a.cache_hits, a.cache_misses),
            (2, 2, 0)
        );
        assert_eq!((a.masked_cells, a.sessions_opened), (3, 1));
        assert_eq!(
            a.upstream_seconds.get(Verdict::Denied).map(|t| t.count()),
            Some(1)
        );
    }
}
