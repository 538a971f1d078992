//! The process-wide list of live sessions, for the admin API: who, from
//! where, on which database, doing what since when; and the two things an
//! operator may do to one from outside its worker: cancel a held statement
//! and terminate the session. Sessions join and leave under one lock;
//! their activity is their own (atomics and a lock only the admin shares).

use std::collections::HashMap;
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use serde::Serialize;

/// What a session is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Activity {
    /// Waiting for the client, outside a transaction.
    Idle = 0,
    /// Waiting for the client inside a transaction.
    IdleInTransaction = 1,
    /// Waiting for the client inside a failed transaction.
    IdleInFailedTransaction = 2,
    /// Statements sent, results not all back.
    Active = 3,
    /// A statement waits for a reviewer.
    Held = 4,
}

impl Activity {
    /// The name shown (as pg_stat_activity's `state`, plus `held`).
    pub fn name(self) -> &'static str {
        match self {
            Activity::Idle => "idle",
            Activity::IdleInTransaction => "idle in transaction",
            Activity::IdleInFailedTransaction => "idle in transaction (aborted)",
            Activity::Active => "active",
            Activity::Held => "held",
        }
    }

    fn from_u8(v: u8) -> Activity {
        match v {
            1 => Activity::IdleInTransaction,
            2 => Activity::IdleInFailedTransaction,
            3 => Activity::Active,
            4 => Activity::Held,
            _ => Activity::Idle,
        }
    }

    /// The idle state a ReadyForQuery status byte means.
    pub fn idle(status: u8) -> Activity {
        match status {
            b'T' => Activity::IdleInTransaction,
            b'E' => Activity::IdleInFailedTransaction,
            _ => Activity::Idle,
        }
    }
}

/// The most of a statement's text a session shows.
const SHOWN_TEXT: usize = 1024;

/// One live session as others see it.
pub struct Slot {
    /// The session's id (as in the audit log).
    pub id: String,
    /// The pgward user.
    pub user: String,
    /// The database the client named.
    pub database: String,
    /// The client's address.
    pub client: String,
    /// When it started (microseconds since the epoch).
    pub started_us: u64,
    /// The upstream backend's process id.
    pub backend_pid: u32,
    /// The process id pgward gave the client (its cancel key).
    cancel_pid: u32,
    activity: AtomicU8,
    /// When the activity last changed.
    since_us: AtomicU64,
    /// The last statement's text (the start of it).
    statement: Mutex<String>,
    /// Counts CancelRequests for this session.
    cancels: AtomicU64,
    /// Why the session is being ended from outside: 0 not, 1 an operator
    /// terminated it, 2 its token expired.
    ending: AtomicU8,
    /// The client's and the upstream's sockets, while the session owns them.
    fds: Mutex<Option<(RawFd, RawFd)>>,
}

/// What `GET /v1/sessions` shows of one session.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SessionInfo {
    /// Its id.
    pub id: String,
    /// The pgward user.
    pub user: String,
    /// The database.
    pub database: String,
    /// The client's address.
    pub client: String,
    /// `idle`, `active`, `held`, ...
    pub state: String,
    /// The last statement (its first 1024 bytes).
    pub statement: String,
    /// When the session started (RFC 3339).
    pub started: String,
    /// Since when it is in its state (RFC 3339).
    pub since: String,
    /// The upstream backend's pid.
    pub backend_pid: u32,
}

fn registry() -> &'static Mutex<HashMap<String, Arc<Slot>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Arc<Slot>>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A session's place in the registry; leaves it when dropped.
pub struct Registered(pub Arc<Slot>);

impl Drop for Registered {
    fn drop(&mut self) {
        *lock(&self.0.fds) = None;
        lock(registry()).remove(&self.0.id);
    }
}

/// Who a session is, for `register`.
pub struct Entry {
    /// Its id.
    pub id: String,
    /// The pgward user.
    pub user: String,
    /// The database.
    pub database: String,
    /// The client's address.
    pub client: String,
    /// The upstream backend's pid.
    pub backend_pid: u32,
    /// The process id pgward gave the client.
    pub cancel_pid: u32,
    /// The client's and the upstream's sockets.
    pub fds: (RawFd, RawFd),
}

/// Lists a session.
pub fn register(e: Entry) -> Registered {
    let now = crate::audit::time::now_micros();
    let slot = Arc::new(Slot {
        id: e.id,
        user: e.user,
        database: e.database,
        client: e.client,
        started_us: now,
        backend_pid: e.backend_pid,
        cancel_pid: e.cancel_pid,
        activity: AtomicU8::new(Activity::Idle as u8),
        since_us: AtomicU64::new(now),
        statement: Mutex::new(String::new()),
        cancels: AtomicU64::new(0),
        ending: AtomicU8::new(0),
        fds: Mutex::new(Some(e.fds)),
    });
    lock(registry()).insert(slot.id.clone(), slot.clone());
    Registered(slot)
}

impl Slot {
    /// Notes what the session does now (a cheap store when unchanged).
    pub fn set_activity(&self, a: Activity) {
        if self.activity.swap(a as u8, Ordering::Relaxed) != a as u8 {
            self.since_us
                .store(crate::audit::time::now_micros(), Ordering::Relaxed);
        }
    }

    /// Notes the statement the session runs.
    pub fn set_statement(&self, text: &[u8]) {
        let mut end = text.len().min(SHOWN_TEXT);
        while end > 0 && end < text.len() && (text[end] & 0xc0) == 0x80 {
            end -= 1;
        }
        let mut s = lock(&self.statement);
        s.clear();
        s.push_str(&String::from_utf8_lossy(&text[..end]));
    }

    /// How many CancelRequests came for this session.
    pub fn cancels(&self) -> u64 {
        self.cancels.load(Ordering::Acquire)
    }

    /// True once an operator terminated the session or its token expired.
    pub fn is_terminated(&self) -> bool {
        self.ending.load(Ordering::Acquire) != 0
    }

    /// True once the session's token expired.
    pub fn is_expired(&self) -> bool {
        self.ending.load(Ordering::Acquire) == 2
    }

    /// Marks the session as ending (`how`: 1 terminated, 2 expired) and
    /// stops its client socket reading, so the session ends as if the
    /// client had left, and then tells the client why.
    fn end(&self, how: u8) {
        let _ = self
            .ending
            .compare_exchange(0, how, Ordering::AcqRel, Ordering::Acquire);
        // Under the lock the session clears before it closes its sockets,
        // so this one is still its own.
        if let Some((client, _)) = *lock(&self.fds) {
            // SAFETY: the session owns the socket until it clears `fds`.
            let borrowed = unsafe { BorrowedFd::borrow_raw(client) };
            let _ = socket2::SockRef::from(&borrowed).shutdown(std::net::Shutdown::Read);
        }
    }

    /// Whether the session still owns its sockets (it has not ended).
    pub fn is_open(&self) -> bool {
        lock(&self.fds).is_some()
    }

    /// Ends the session because its token expired.
    pub fn expire(&self) {
        self.end(2);
    }

    fn info(&self) -> SessionInfo {
        use crate::audit::time::format;
        SessionInfo {
            id: self.id.clone(),
            user: self.user.clone(),
            database: self.database.clone(),
            client: self.client.clone(),
            state: Activity::from_u8(self.activity.load(Ordering::Relaxed))
                .name()
                .into(),
            statement: lock(&self.statement).clone(),
            started: format(self.started_us),
            since: format(self.since_us.load(Ordering::Relaxed)),
            backend_pid: self.backend_pid,
        }
    }
}

/// Every live session, oldest first.
pub fn list() -> Vec<SessionInfo> {
    let slots: Vec<Arc<Slot>> = lock(registry()).values().cloned().collect();
    let mut out: Vec<SessionInfo> = slots.iter().map(|s| s.info()).collect();
    out.sort_by(|a, b| a.started.cmp(&b.started).then(a.id.cmp(&b.id)));
    out
}

/// Notes a CancelRequest for the session pgward gave process id `pid`.
pub fn cancelled(pid: u32) {
    let slots: Vec<Arc<Slot>> = lock(registry()).values().cloned().collect();
    for s in slots.iter().filter(|s| s.cancel_pid == pid) {
        s.cancels.fetch_add(1, Ordering::AcqRel);
    }
}

/// Terminates a session: it is marked, and its client socket stops
/// reading, so the session ends (telling the client why, and cancelling
/// what the server still runs for it).
/// False when no such session is live.
pub fn terminate(id: &str) -> bool {
    let Some(slot) = lock(registry()).get(id).cloned() else {
        return false;
    };
    slot.end(1);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_listed_while_registered() {
        let r = register(Entry {
            id: "test-registry-1".into(),
            user: "agent".into(),
            database: "app".into(),
            client: "127.0.0.1:9".into(),
            backend_pid: 1,
            cancel_pid: 777_001,
            fds: (-1, -1),
        });
        r.0.set_statement("SELECT 'é'".repeat(200).as_bytes());
        r.0.set_activity(Activity::Held);
        let mine = || list().into_iter().find(|s| s.id == "test-registry-1");
        let s = mine().unwrap();
        assert_eq!(s.state, "held");
        assert!(s.statement.len() <= SHOWN_TEXT && s.statement.starts_with("SELECT 'é'"));
        assert_eq!(r.0.cancels(), 0);
        cancelled(777_001);
        assert_eq!(r.0.cancels(), 1);
        drop(r);
        assert!(mine().is_none());
        assert!(!terminate("test-registry-1"));
    }
}
