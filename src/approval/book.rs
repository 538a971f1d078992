//! The approval book: every request this gateway made, shared by the
//! workers (which ask) and the admin listener (where reviewers decide).
//! Touched only by statements that need approval and by reviewers, never on
//! the ordinary data path. Every change is written to the store before it
//! counts.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use super::request::{key, new_id, Request, State};
use super::store::Store;
use crate::policy::approval::Mode;

/// What a session asks for one statement.
#[derive(Debug, Clone)]
pub struct Ask {
    /// The pgward user.
    pub user: String,
    /// Its roles.
    pub roles: Vec<String>,
    /// The session, as the audit log names it.
    pub session: String,
    /// The database the client named.
    pub database: String,
    /// The client's address.
    pub client: String,
    /// The text as the server will read it.
    pub sql: String,
    /// How the server reads it beyond the text (string mode, parameter
    /// types and formats).
    pub context: String,
    /// Bind parameters (None for a simple Query).
    pub params: Option<Vec<Option<String>>>,
    /// Its fingerprint.
    pub fingerprint: String,
    /// The risks it matched.
    pub reasons: Vec<String>,
    /// How it waits.
    pub mode: Mode,
    /// How long a pending request lasts (the hold timeout, or for retry
    /// mode the grant lifetime).
    pub pending_for: Duration,
    /// How long an approval stays usable.
    pub grant_ttl: Duration,
}

/// The answer to an ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asked {
    /// An approval of this identical statement was there and is now used.
    Granted(Request),
    /// A new request waits for a reviewer.
    Made(Request),
    /// The request made before for the identical statement (retry mode)
    /// still waits.
    Pending(Request),
}

/// Why no request could be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AskError {
    /// The user has too many requests waiting, or the statement is too
    /// long to review.
    Quota(String),
    /// The store could not record it.
    Store(String),
}

/// Why a reviewer's decision was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecideError {
    /// No request has that id.
    NotFound,
    /// It was decided or ended already.
    NotPending(State),
    /// The reviewer is the user that asked.
    OwnRequest,
    /// The store could not record it.
    Store(String),
}

impl std::fmt::Display for DecideError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecideError::NotFound => f.write_str("no such request"),
            DecideError::NotPending(s) => write!(f, "the request is {} already", s.name()),
            DecideError::OwnRequest => f.write_str("a requester cannot decide its own request"),
            DecideError::Store(e) => write!(f, "the decision could not be stored: {e}"),
        }
    }
}

/// Final requests kept in memory (the store keeps them a day).
const KEEP_FINAL: usize = 1_000;

/// The longest text, and the most parameter bytes, a request may carry: a
/// reviewer reads them, and they are kept in memory and on disk.
pub const MAX_REVIEWED_BYTES: usize = 64 * 1024;

/// Bytes appended to the store after which it is rewritten.
const COMPACT_AFTER: u64 = 64 << 20;

/// Requests one user may have pending or approved and unused at once: an
/// agent cannot fill memory and disk with requests (or stall its worker
/// with their fsyncs).
pub const MAX_LIVE_PER_USER: usize = 100;

#[derive(Default)]
struct Inner {
    requests: BTreeMap<String, Request>,
    /// Ids not final yet.
    live: BTreeSet<String>,
    /// Final ids, oldest first.
    ended: std::collections::VecDeque<String>,
}

/// All requests, behind one lock.
pub struct Book {
    inner: Mutex<Inner>,
    store: Option<Mutex<Store>>,
    /// Told of every new request (the webhook).
    listener: Mutex<Option<Listener>>,
}

/// What is told of new requests.
pub type Listener = Box<dyn Fn(&Request) + Send + Sync>;

impl Book {
    /// A book kept in memory only (tests).
    pub fn in_memory() -> Book {
        Book {
            inner: Mutex::new(Inner::default()),
            store: None,
            listener: Mutex::new(None),
        }
    }

    /// Opens the book stored at `store` (its requests as they were; held
    /// ones are abandoned, since their sessions died with the gateway).
    pub fn open(mut store: Store, now_us: u64) -> Result<Book, String> {
        let mut inner = Inner::default();
        for mut r in store.load()? {
            if r.mode == Mode::Hold.name() && !r.state.is_final() {
                end(
                    &mut r,
                    State::Abandoned,
                    "pgward",
                    "the gateway restarted while the statement was held",
                    now_us,
                );
            }
            inner.insert(r);
        }
        store.compact(inner.requests.values(), now_us)?;
        Ok(Book {
            inner: Mutex::new(inner),
            store: Some(Mutex::new(store)),
            listener: Mutex::new(None),
        })
    }

    /// Tells `listener` of every new request from now on.
    pub fn set_listener(&self, listener: Listener) {
        *self.listener.lock().unwrap_or_else(|p| p.into_inner()) = Some(listener);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Rewrites the store with what is worth keeping once it has grown
    /// large (requests made and ended in a loop would grow it otherwise).
    fn compact_if_large(&self, inner: &Inner, now_us: u64) {
        let Some(s) = &self.store else { return };
        let mut store = s.lock().unwrap_or_else(|p| p.into_inner());
        if store.appended() < COMPACT_AFTER {
            return;
        }
        if let Err(e) = store.compact(inner.requests.values(), now_us) {
            tracing::error!(error = %e, "approval store compaction failed");
        }
    }

    /// Writes a request's new state to the store.
    fn save(&self, r: &Request) -> Result<(), String> {
        match &self.store {
            Some(s) => s.lock().unwrap_or_else(|p| p.into_inner()).append(r),
            None => Ok(()),
        }
    }

    /// Answers a statement that needs approval: an unused approval of the
    /// identical statement is taken; otherwise a request is made (in retry
    /// mode the one already pending for it, if any, is named again).
    pub fn ask(&self, a: Ask, now_us: u64) -> Result<Asked, AskError> {
        let param_bytes: usize = a.params.iter().flatten().flatten().map(String::len).sum();
        if a.sql.len() > MAX_REVIEWED_BYTES || param_bytes > MAX_REVIEWED_BYTES {
            return Err(AskError::Quota(format!(
                "the statement ({} bytes) or its parameters ({param_bytes} bytes) are longer than a request may carry ({MAX_REVIEWED_BYTES} bytes each)",
                a.sql.len()
            )));
        }
        let k = key(
            &a.user,
            &a.database,
            &a.sql,
            &a.context,
            a.params.as_deref(),
        );
        let mut inner = self.lock();
        inner.expire(now_us, |r| self.save(r));
        // A hold's approval is for the session that holds the statement.
        let approved = inner.find_live(&k, State::Approved, |r| {
            r.mode != Mode::Hold.name() || r.session == a.session
        });
        if let Some(id) = approved {
            let mut r = inner.requests[&id].clone();
            r.state = State::Used;
            self.save(&r).map_err(AskError::Store)?;
            inner.insert(r.clone());
            return Ok(Asked::Granted(r));
        }
        if a.mode == Mode::Retry {
            if let Some(id) = inner.find_live(&k, State::Pending, |r| r.mode == Mode::Retry.name())
            {
                return Ok(Asked::Pending(inner.requests[&id].clone()));
            }
        }
        let waiting = inner
            .live
            .iter()
            .filter(|id| inner.requests.get(*id).is_some_and(|r| r.user == a.user))
            .count();
        if waiting >= MAX_LIVE_PER_USER {
            return Err(AskError::Quota(format!(
                "user {} has {waiting} approval requests waiting already (at most {MAX_LIVE_PER_USER})",
                a.user
            )));
        }
        let r = Request {
            id: new_id(),
            state: State::Pending,
            mode: a.mode.name().into(),
            created: crate::audit::time::format(now_us),
            created_us: now_us,
            expires_us: now_us.saturating_add(micros(a.pending_for)),
            grant_ttl_ms: u64::try_from(a.grant_ttl.as_millis()).unwrap_or(u64::MAX),
            user: a.user,
            roles: a.roles,
            session: a.session,
            database: a.database,
            client: a.client,
            sql: a.sql,
            context: a.context,
            params: a.params,
            fingerprint: a.fingerprint,
            reasons: a.reasons,
            decided_by: None,
            decided: None,
            reason: None,
            key: k,
        };
        self.save(&r).map_err(AskError::Store)?;
        inner.insert(r.clone());
        self.compact_if_large(&inner, now_us);
        drop(inner);
        if let Some(tell) = &*self.listener.lock().unwrap_or_else(|p| p.into_inner()) {
            tell(&r);
        }
        Ok(Asked::Made(r))
    }

    /// A reviewer's decision on a pending request.
    pub fn decide(
        &self,
        id: &str,
        approve: bool,
        reviewer: &str,
        reason: Option<&str>,
        now_us: u64,
    ) -> Result<Request, DecideError> {
        let mut inner = self.lock();
        inner.expire(now_us, |r| self.save(r));
        let Some(r) = inner.requests.get(id) else {
            return Err(DecideError::NotFound);
        };
        if r.state != State::Pending {
            return Err(DecideError::NotPending(r.state));
        }
        if r.user == reviewer {
            return Err(DecideError::OwnRequest);
        }
        let mut r = r.clone();
        r.decided_by = Some(reviewer.to_string());
        r.decided = Some(crate::audit::time::format(now_us));
        r.reason = reason.map(str::to_string);
        if approve {
            r.state = State::Approved;
            // (A held statement runs as soon as its session sees this.)
            r.expires_us = now_us.saturating_add(r.grant_ttl_ms.saturating_mul(1000));
        } else {
            r.state = State::Denied;
        }
        self.save(&r).map_err(DecideError::Store)?;
        inner.insert(r.clone());
        Ok(r)
    }

    /// Ends a pending (or approved, unused) request: withdrawn by its
    /// client, expired, abandoned. Nothing when it ended already.
    pub fn end(&self, id: &str, state: State, why: &str, now_us: u64) -> Option<Request> {
        let mut inner = self.lock();
        let mut r = inner
            .requests
            .get(id)
            .filter(|r| !r.state.is_final())?
            .clone();
        end(&mut r, state, "pgward", why, now_us);
        // (A request that cannot be stored ends in memory all the same: it
        // is never usable again either way.)
        if let Err(e) = self.save(&r) {
            tracing::error!(request = id, error = %e, "approval store write failed");
        }
        inner.insert(r.clone());
        Some(r)
    }

    /// One request as it stands now.
    pub fn get(&self, id: &str, now_us: u64) -> Option<Request> {
        let mut inner = self.lock();
        inner.expire(now_us, |r| self.save(r));
        inner.requests.get(id).cloned()
    }

    /// Requests as they stand now, newest first: the live ones (pending or
    /// approved and unused), or all kept.
    pub fn list(&self, all: bool, now_us: u64) -> Vec<Request> {
        let mut inner = self.lock();
        inner.expire(now_us, |r| self.save(r));
        let mut out: Vec<Request> = inner
            .requests
            .values()
            .filter(|r| all || !r.state.is_final())
            .cloned()
            .collect();
        out.sort_by(|a, b| b.created_us.cmp(&a.created_us).then(a.id.cmp(&b.id)));
        out
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn end(r: &mut Request, state: State, by: &str, why: &str, now_us: u64) {
    r.state = state;
    r.decided_by.get_or_insert_with(|| by.to_string());
    r.decided = Some(crate::audit::time::format(now_us));
    r.reason = Some(why.to_string());
}

impl Inner {
    fn insert(&mut self, r: Request) {
        let id = r.id.clone();
        if r.state.is_final() {
            self.live.remove(&id);
            if !self.ended.contains(&id) {
                self.ended.push_back(id.clone());
            }
            while self.ended.len() > KEEP_FINAL {
                if let Some(old) = self.ended.pop_front() {
                    self.requests.remove(&old);
                }
            }
        } else {
            self.live.insert(id.clone());
        }
        self.requests.insert(id, r);
    }

    /// The oldest live request for `key` in `state` that `fits`.
    fn find_live(
        &self,
        key: &str,
        state: State,
        fits: impl Fn(&Request) -> bool,
    ) -> Option<String> {
        self.live
            .iter()
            .filter_map(|id| self.requests.get(id))
            .filter(|r| r.key == key && r.state == state && fits(r))
            .min_by_key(|r| r.created_us)
            .map(|r| r.id.clone())
    }

    /// Ends what expired by `now_us`.
    fn expire(&mut self, now_us: u64, mut save: impl FnMut(&Request) -> Result<(), String>) {
        let due: Vec<String> = self
            .live
            .iter()
            .filter(|id| {
                self.requests
                    .get(*id)
                    .is_some_and(|r| r.expires_us <= now_us)
            })
            .cloned()
            .collect();
        for id in due {
            let Some(mut r) = self.requests.get(&id).cloned() else {
                continue;
            };
            let why = if r.state == State::Approved {
                "the approval was not used in time"
            } else {
                "no reviewer decided in time"
            };
            end(&mut r, State::Expired, "pgward", why, now_us);
            if let Err(e) = save(&r) {
                tracing::error!(request = %id, error = %e, "approval store write failed");
            }
            self.insert(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(mode: Mode, sql: &str, params: Option<Vec<Option<String>>>) -> Ask {
        Ask {
            user: "agent".into(),
            roles: vec!["writer".into()],
            session: "s1".into(),
            database: "app".into(),
            client: "127.0.0.1:1".into(),
            sql: sql.into(),
            context: "strings standard".into(),
            params,
            fingerprint: "f".into(),
            reasons: vec!["truncate".into()],
            mode,
            pending_for: Duration::from_secs(60),
            grant_ttl: Duration::from_secs(600),
        }
    }

    fn pending(a: Asked) -> Request {
        match a {
            Asked::Pending(r) | Asked::Made(r) => r,
            other => panic!("expected a pending request, got {other:?}"),
        }
    }

    const S: u64 = 1_000_000;

    #[test]
    fn retry_mode_grants_the_identical_statement_once() {
        let book = Book::in_memory();
        let r = pending(book.ask(ask(Mode::Retry, "TRUNCATE t", None), S).unwrap());
        // Asking again names the same request.
        let again = pending(
            book.ask(ask(Mode::Retry, "TRUNCATE t", None), 2 * S)
                .unwrap(),
        );
        assert_eq!(r.id, again.id);
        assert_eq!(
            book.decide(&r.id, true, "agent", None, 3 * S),
            Err(DecideError::OwnRequest)
        );
        let d = book.decide(&r.id, true, "dba", Some("ok"), 3 * S).unwrap();
        assert_eq!(
            (d.state, d.decided_by.as_deref()),
            (State::Approved, Some("dba"))
        );
        assert_eq!(
            book.decide(&r.id, false, "dba", None, 3 * S),
            Err(DecideError::NotPending(State::Approved))
        );
        // Other text or parameters are not granted.
        let other = pending(
            book.ask(ask(Mode::Retry, "TRUNCATE u", None), 4 * S)
                .unwrap(),
        );
        assert_ne!(other.id, r.id);
        let bound = ask(Mode::Retry, "TRUNCATE t", Some(vec![Some("1".into())]));
        assert!(matches!(book.ask(bound, 4 * S).unwrap(), Asked::Made(_)));
        // The identical one runs, once.
        match book
            .ask(ask(Mode::Retry, "TRUNCATE t", None), 5 * S)
            .unwrap()
        {
            Asked::Granted(g) => assert_eq!((g.id, g.state), (r.id.clone(), State::Used)),
            other => panic!("expected the grant, got {other:?}"),
        }
        let next = pending(
            book.ask(ask(Mode::Retry, "TRUNCATE t", None), 6 * S)
                .unwrap(),
        );
        assert_ne!(next.id, r.id);
    }

    #[test]
    fn requests_and_approvals_expire() {
        let book = Book::in_memory();
        let r = pending(book.ask(ask(Mode::Hold, "TRUNCATE t", None), S).unwrap());
        assert_eq!(book.get(&r.id, 62 * S).unwrap().state, State::Expired);
        assert_eq!(
            book.decide(&r.id, true, "dba", None, 62 * S),
            Err(DecideError::NotPending(State::Expired))
        );
        let r = pending(
            book.ask(ask(Mode::Retry, "TRUNCATE t", None), 100 * S)
                .unwrap(),
        );
        book.decide(&r.id, true, "dba", None, 101 * S).unwrap();
        // Unused for longer than grant_ttl: gone.
        assert!(matches!(
            book.ask(ask(Mode::Retry, "TRUNCATE t", None), 702 * S).unwrap(),
            Asked::Made(p) if p.id != r.id
        ));
        assert_eq!(book.get(&r.id, 702 * S).unwrap().state, State::Expired);
        // Hold mode never shares a pending request.
        let a = pending(book.ask(ask(Mode::Hold, "TRUNCATE v", None), S).unwrap());
        let b = pending(book.ask(ask(Mode::Hold, "TRUNCATE v", None), S).unwrap());
        assert_ne!(a.id, b.id);
        assert_eq!(
            book.end(&a.id, State::Withdrawn, "cancelled", 2 * S)
                .unwrap()
                .state,
            State::Withdrawn
        );
        assert!(book.end(&a.id, State::Expired, "late", 3 * S).is_none());
        // Live: b, and the retry request made at 702 s.
        let live: Vec<String> = book
            .list(false, 703 * S - 1)
            .into_iter()
            .map(|r| r.sql)
            .collect();
        assert_eq!(live, ["TRUNCATE t"], "b expired at 61 s");
        assert_eq!(book.list(true, 703 * S).len(), 5);
    }

    #[test]
    fn a_holds_approval_is_for_its_own_session_and_users_have_a_quota() {
        let book = Book::in_memory();
        let held = pending(book.ask(ask(Mode::Hold, "TRUNCATE t", None), S).unwrap());
        book.decide(&held.id, true, "dba", None, 2 * S).unwrap();
        let mut other = ask(Mode::Hold, "TRUNCATE t", None);
        other.session = "s2".into();
        assert!(matches!(book.ask(other, 3 * S).unwrap(), Asked::Made(_)));
        assert!(matches!(
            book.ask(ask(Mode::Hold, "TRUNCATE t", None), 3 * S).unwrap(),
            Asked::Granted(g) if g.id == held.id
        ));
        let many = Book::in_memory();
        for i in 0..MAX_LIVE_PER_USER {
            many.ask(ask(Mode::Retry, &format!("TRUNCATE t{i}"), None), S)
                .unwrap();
        }
        let long = ask(
            Mode::Retry,
            &format!("SELECT 1 -- {}", "x".repeat(MAX_REVIEWED_BYTES)),
            None,
        );
        assert!(matches!(
            Book::in_memory().ask(long, S),
            Err(AskError::Quota(_))
        ));
        let e = many
            .ask(ask(Mode::Retry, "TRUNCATE x", None), S)
            .unwrap_err();
        assert!(
            matches!(&e, AskError::Quota(why) if why.contains("at most")),
            "{e:?}"
        );
        // The same statement again still names its request.
        assert!(matches!(
            many.ask(ask(Mode::Retry, "TRUNCATE t0", None), S).unwrap(),
            Asked::Pending(_)
        ));
    }

    #[test]
    fn the_store_keeps_requests_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (held, waiting) = {
            let book = Book::open(Store::open(dir.path()).unwrap(), S).unwrap();
            let held = pending(book.ask(ask(Mode::Hold, "TRUNCATE t", None), S).unwrap());
            let waiting = pending(book.ask(ask(Mode::Retry, "TRUNCATE u", None), S).unwrap());
            (held, waiting)
        };
        // A torn last line is dropped.
        let path = dir.path().join(super::super::store::FILE_NAME);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut f, b"{\"id\":\"unfin").unwrap();
        let book = Book::open(Store::open(dir.path()).unwrap(), 2 * S).unwrap();
        assert_eq!(book.get(&held.id, 2 * S).unwrap().state, State::Abandoned);
        assert_eq!(book.get(&waiting.id, 2 * S).unwrap().state, State::Pending);
        book.decide(&waiting.id, true, "dba", None, 3 * S).unwrap();
        drop(book);
        let book = Book::open(Store::open(dir.path()).unwrap(), 4 * S).unwrap();
        assert!(matches!(
            book.ask(ask(Mode::Retry, "TRUNCATE u", None), 5 * S).unwrap(),
            Asked::Granted(g) if g.id == waiting.id
        ));
        // A line broken in the middle stops the start, naming the line.
        drop(book);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("garbage\n{text}")).unwrap();
        let e = Book::open(Store::open(dir.path()).unwrap(), 6 * S)
            .err()
            .unwrap();
        assert!(e.contains("line 1"), "{e}");
    }
}
