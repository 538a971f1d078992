//! One worker thread's metrics: counted locally with no lock on the data
//! path, and folded into a shared copy that scrapes read.

use std::cell::RefCell;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{lock, Metrics, Verdict};

/// A worker's local metrics and the shared copy they are folded into.
#[derive(Debug, Default)]
pub struct WorkerMetrics {
    local: RefCell<Metrics>,
    shared: Arc<Mutex<Metrics>>,
}

impl WorkerMetrics {
    /// Empty local and shared metrics.
    pub fn new() -> Self {
        Self::default()
    }

    /// See [`Metrics::statement`].
    pub fn statement(&self, verdict: Verdict, rule: Option<&str>) {
        self.local.borrow_mut().statement(verdict, rule);
    }

    /// See [`Metrics::pgward_time`].
    pub fn pgward_time(&self, verdict: Verdict, took: Duration) {
        self.local.borrow_mut().pgward_time(verdict, took);
    }

    /// See [`Metrics::upstream_time`].
    pub fn upstream_time(&self, verdict: Verdict, took: Duration) {
        self.local.borrow_mut().upstream_time(verdict, took);
    }

    /// See [`Metrics::masked`].
    pub fn masked(&self, cells: u64) {
        self.local.borrow_mut().masked(cells);
    }

    /// See [`Metrics::approval`].
    pub fn approval(&self, outcome: &str) {
        self.local.borrow_mut().approval(outcome);
    }

    /// See [`Metrics::cache`].
    pub fn cache(&self, hit: bool) {
        self.local.borrow_mut().cache(hit);
    }

    /// See [`Metrics::cache_counts`].
    pub fn cache_counts(&self, hits: u64, misses: u64) {
        self.local.borrow_mut().cache_counts(hits, misses);
    }

    /// See [`Metrics::session_opened`].
    pub fn session_opened(&self) {
        self.local.borrow_mut().session_opened();
    }

    /// See [`Metrics::session_closed`].
    pub fn session_closed(&self) {
        self.local.borrow_mut().session_closed();
    }

    /// See [`Metrics::login_failed`].
    pub fn login_failed(&self) {
        self.local.borrow_mut().login_failed();
    }

    /// Moves what was counted locally into the shared copy: one lock, and
    /// none at all when nothing was counted.
    pub fn fold(&self) {
        let mut local = self.local.borrow_mut();
        if local.is_empty() {
            return;
        }
        lock(&self.shared).merge(&local);
        local.clear();
    }

    /// The shared copy, for the scraper.
    pub fn shared(&self) -> Arc<Mutex<Metrics>> {
        self.shared.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_moves_local_counts_once() {
        let w = WorkerMetrics::new();
        w.statement(Verdict::Masked, None);
        w.pgward_time(Verdict::Masked, Duration::from_micros(10));
        assert!(lock(&w.shared).is_empty(), "nothing shared before a fold");
        w.fold();
        assert!(w.local.borrow().is_empty());
        w.fold();
        w.masked(2);
        w.fold();
        let shared = w.shared();
        let m = lock(&shared);
        assert_eq!((m.statements, m.masked_cells), ([0, 1, 0, 0], 2));
        assert_eq!(
            m.pgward_seconds.get(Verdict::Masked).map(|t| t.count()),
            Some(1)
        );
    }

    #[test]
    fn an_empty_fold_does_not_lock() {
        let w = WorkerMetrics::new();
        let shared = w.shared();
        let held = lock(&shared);
        let (tx, rx) = std::sync::mpsc::channel();
        let folder = std::thread::spawn(move || {
            w.fold();
            let _ = tx.send(());
        });
        let folded = rx.recv_timeout(Duration::from_secs(5));
        drop(held);
        folder.join().unwrap();
        assert!(folded.is_ok(), "an empty fold waited for the lock");
    }
}
