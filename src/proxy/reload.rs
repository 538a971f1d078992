//! Process-wide configuration reloads (SIGHUP): the latest validated
//! blueprint and its generation. Workers look at the generation (one atomic
//! load) when a session starts or reads a statement, and rebuild their
//! context from the blueprint only when it moved; nothing else is shared.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::worker::Blueprint;

static GENERATION: AtomicU64 = AtomicU64::new(0);
static LATEST: Mutex<Option<(u64, Blueprint)>> = Mutex::new(None);

/// The generation of the configuration in force: 0 for the one the process
/// started with, one more for every reload.
pub fn generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

/// Puts a validated blueprint in force for new sessions and for the next
/// statement of existing ones.
pub fn publish(blueprint: Blueprint) -> u64 {
    let mut latest = LATEST.lock().unwrap_or_else(|e| e.into_inner());
    let generation = GENERATION.load(Ordering::Acquire) + 1;
    *latest = Some((generation, blueprint));
    GENERATION.store(generation, Ordering::Release);
    generation
}

/// The latest published blueprint and its generation, if any was published.
pub fn latest() -> Option<(u64, Blueprint)> {
    LATEST.lock().unwrap_or_else(|e| e.into_inner()).clone()
}
