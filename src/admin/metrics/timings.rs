//! Latency histograms by verdict, in microseconds from 1 µs to an hour at
//! three significant digits, with an exact sum beside each.

use std::time::Duration;

use hdrhistogram::Histogram;

use super::Verdict;

/// Largest recorded time: one hour, in microseconds; longer ones count as this.
const MAX_MICROS: u64 = 3_600_000_000;

/// Latencies of one kind for one verdict.
#[derive(Clone, Debug)]
pub(super) struct Timing {
    micros: Histogram<u64>,
    /// Exact, unlike the histogram's buckets.
    sum_micros: u64,
}

impl Timing {
    fn new() -> Self {
        let micros = Histogram::new_with_bounds(1, MAX_MICROS, 3)
            .unwrap_or_else(|e| unreachable!("constant histogram bounds are valid: {e}"));
        Timing {
            micros,
            sum_micros: 0,
        }
    }

    /// The time at quantile `q` (0 to 1), in seconds.
    pub(super) fn quantile_seconds(&self, q: f64) -> f64 {
        seconds(self.micros.value_at_quantile(q))
    }

    /// The exact total of the recorded times, in seconds.
    pub(super) fn sum_seconds(&self) -> f64 {
        seconds(self.sum_micros)
    }

    /// How many times were recorded.
    pub(super) fn count(&self) -> u64 {
        self.micros.len()
    }
}

fn seconds(micros: u64) -> f64 {
    micros as f64 / 1e6
}

/// One latency family, by verdict. Histograms are made on first use: each
/// holds about 190 KiB of counts and most workers never see every verdict.
#[derive(Clone, Debug, Default)]
pub(super) struct Timings([Option<Timing>; 4]);

impl Timings {
    /// Records `took`; times past an hour count as an hour, and none panics.
    pub(super) fn record(&mut self, verdict: Verdict, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let t = self.0[verdict as usize].get_or_insert_with(Timing::new);
        t.micros.saturating_record(micros);
        t.sum_micros = t.sum_micros.saturating_add(micros);
    }

    /// The times recorded for `verdict`, if any were.
    pub(super) fn get(&self, verdict: Verdict) -> Option<&Timing> {
        self.0[verdict as usize]
            .as_ref()
            .filter(|t| !t.micros.is_empty())
    }

    pub(super) fn merge(&mut self, other: &Timings) {
        for v in Verdict::ALL {
            if let Some(theirs) = other.get(v) {
                let mine = self.0[v as usize].get_or_insert_with(Timing::new);
                // Every histogram has the same bounds, so adding cannot fail.
                if let Err(e) = mine.micros.add(&theirs.micros) {
                    debug_assert!(false, "histograms with equal bounds: {e}");
                }
                mine.sum_micros = mine.sum_micros.saturating_add(theirs.sum_micros);
            }
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        Verdict::ALL.iter().all(|v| self.get(*v).is_none())
    }

    /// Forgets the times, keeping the histograms' memory for the next round.
    pub(super) fn clear(&mut self) {
        for t in self.0.iter_mut().flatten() {
            t.micros.reset();
            t.sum_micros = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_sum_and_count() {
        let mut t = Timings::default();
        for ms in 1..=100 {
            t.record(Verdict::Allowed, Duration::from_millis(ms));
        }
        let allowed = t.get(Verdict::Allowed).unwrap();
        for (q, want) in [(0.5, 0.050), (0.9, 0.090), (0.999, 0.100)] {
            let got = allowed.quantile_seconds(q);
            assert!((got - want).abs() < want / 500.0, "{q}: {got}");
        }
        assert!((allowed.sum_seconds() - 5.05).abs() < 1e-9);
        assert_eq!(allowed.count(), 100);
        assert!(t.get(Verdict::Held).is_none());
    }

    #[test]
    fn extreme_durations_saturate() {
        let mut t = Timings::default();
        t.record(Verdict::Denied, Duration::MAX);
        t.record(Verdict::Denied, Duration::from_secs(7200));
        t.record(Verdict::Denied, Duration::ZERO);
        let denied = t.get(Verdict::Denied).unwrap();
        assert_eq!(denied.count(), 3);
        assert!((denied.quantile_seconds(1.0) - 3600.0).abs() < 3600.0 / 500.0);
        assert_eq!(denied.sum_micros, u64::MAX);
    }

    #[test]
    fn merge_and_clear() {
        let (mut a, mut b) = (Timings::default(), Timings::default());
        a.record(Verdict::Held, Duration::from_secs(1));
        b.record(Verdict::Held, Duration::from_secs(3));
        b.record(Verdict::Masked, Duration::from_micros(7));
        a.merge(&b);
        let held = a.get(Verdict::Held).unwrap();
        assert_eq!((held.count(), held.sum_seconds()), (2, 4.0));
        assert_eq!(a.get(Verdict::Masked).unwrap().count(), 1);
        a.clear();
        assert!(a.is_empty() && a.get(Verdict::Held).is_none());
        assert!(
            a.0[Verdict::Held as usize].is_some(),
            "the histogram is kept"
        );
        assert!(!b.is_empty());
    }
}
