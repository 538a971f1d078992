//! Process-wide shutdown state: whether the gateway is draining after SIGTERM,
//! until when, and how many sessions are still open. Touched at accept and
//! session end only.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

static DRAINING: AtomicBool = AtomicBool::new(false);
static DEADLINE_MS: AtomicU64 = AtomicU64::new(u64::MAX);
static ACTIVE: AtomicUsize = AtomicUsize::new(0);
static FAILED: AtomicBool = AtomicBool::new(false);
static READY: AtomicUsize = AtomicUsize::new(0);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Stops accepting; sessions may run for `grace` more.
pub fn begin_drain(grace: Duration) {
    DEADLINE_MS.store(now_ms() + grace.as_millis() as u64, Ordering::SeqCst);
    DRAINING.store(true, Ordering::SeqCst);
}

/// True once draining started.
pub fn is_draining() -> bool {
    DRAINING.load(Ordering::Relaxed)
}

/// True once the drain's grace period is over.
pub fn drain_expired() -> bool {
    is_draining() && now_ms() >= DEADLINE_MS.load(Ordering::Relaxed)
}

/// Resolves when draining starts (polls; used beside accept).
pub async fn draining() {
    while !is_draining() {
        monoio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Marks the process as failed to start (a worker could not run).
pub fn fail() {
    FAILED.store(true, Ordering::SeqCst);
}

/// True if a worker failed to start.
pub fn failed() -> bool {
    FAILED.load(Ordering::SeqCst)
}

/// Marks one worker as running.
pub fn worker_ready() {
    READY.fetch_add(1, Ordering::SeqCst);
}

/// Waits until `workers` workers run or one fails; false on failure or timeout.
pub fn wait_for_workers(workers: usize, timeout: Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if failed() {
            return false;
        }
        if READY.load(Ordering::SeqCst) >= workers {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// Sessions currently open across all workers.
pub fn active_sessions() -> usize {
    ACTIVE.load(Ordering::SeqCst)
}

/// Counts one open session while it lives.
pub struct SessionGuard(());

impl SessionGuard {
    /// Counts a new session.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        ACTIVE.fetch_add(1, Ordering::SeqCst);
        SessionGuard(())
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        ACTIVE.fetch_sub(1, Ordering::SeqCst);
    }
}
