//! A session's side of approvals: its approver, which asks the process's
//! approval book on the session's behalf, and the hold, where a statement
//! waits for its reviewer while the rest of the worker runs on.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::guard::{Answer, Approver, Waiting};
use super::registry::{Activity, Slot};
use crate::admin::metrics::WorkerMetrics;
use crate::approval::{Ask, AskError, Asked, Book, State};
use crate::audit::time::now_micros;
use crate::policy::approval::{Approval, Mode};
use crate::policy::Denial;
use crate::sql::fingerprint::{Fingerprint, Strings};
use crate::wire::error_response::PgError;

/// Who asks: the session's identity as requests record it.
#[derive(Debug, Clone)]
pub struct Requester {
    /// The pgward user.
    pub user: String,
    /// Its roles.
    pub roles: Vec<String>,
    /// The session's id.
    pub session: String,
    /// The database the client named.
    pub database: String,
    /// The client's address.
    pub client: String,
}

/// Asks the book for one session.
pub struct SessionApprover {
    book: Arc<Book>,
    who: Requester,
    metrics: Rc<WorkerMetrics>,
}

impl SessionApprover {
    /// An approver for `who`, counting in `metrics`.
    pub fn new(book: Arc<Book>, who: Requester, metrics: Rc<WorkerMetrics>) -> Rc<SessionApprover> {
        Rc::new(SessionApprover { book, who, metrics })
    }
}

impl Approver for SessionApprover {
    fn ask(
        &self,
        rules: &Approval,
        sql: &str,
        params: Option<Vec<Option<String>>>,
        reasons: &[String],
        context: &str,
    ) -> Answer {
        let w = &self.who;
        let ask = Ask {
            user: w.user.clone(),
            roles: w.roles.clone(),
            session: w.session.clone(),
            database: w.database.clone(),
            client: w.client.clone(),
            sql: sql.to_string(),
            context: context.to_string(),
            params,
            fingerprint: super::audit_trail::fingerprint_hex(
                sql.as_bytes(),
                Strings::Standard,
                &mut Fingerprint::default(),
            )
            .unwrap_or_default(),
            reasons: reasons.to_vec(),
            mode: rules.mode,
            pending_for: match rules.mode {
                Mode::Hold => rules.hold_timeout,
                Mode::Retry => rules.grant_ttl,
            },
            grant_ttl: rules.grant_ttl,
        };
        match self.book.ask(ask, now_micros()) {
            Ok(Asked::Granted(r)) => {
                if rules.mode == Mode::Retry {
                    self.metrics.approval("granted_retry");
                }
                Answer::Granted {
                    id: r.id,
                    by: r.decided_by,
                }
            }
            Ok(Asked::Made(r)) => {
                self.metrics.approval("requested");
                tracing::info!(request = %r.id, mode = rules.mode.name(), reasons = %reasons.join(","), "approval requested");
                Answer::Wait {
                    id: r.id,
                    new: true,
                }
            }
            Ok(Asked::Pending(r)) => Answer::Wait {
                id: r.id,
                new: false,
            },
            Err(AskError::Quota(why)) => Answer::Refused(Denial {
                code: "53400",
                message: "pgward: no approval request can be made for this statement".into(),
                detail: format!("rule: approval; {why}"),
                hint: "wait for reviewers to decide, cancel statements you no longer need, or send a shorter statement"
                    .into(),
            }),
            Err(AskError::Store(e)) => {
                tracing::error!(error = %e, "approval request could not be stored");
                Answer::Refused(Denial {
                    code: "58030",
                    message: "pgward: the approval request could not be stored".into(),
                    detail: "rule: approval; requests are written to disk before they count".into(),
                    hint: "the operator finds why in pgward's log".into(),
                })
            }
        }
    }
}

/// How a hold ended.
#[derive(Debug)]
pub enum HoldEnd {
    /// Approved: judge the statement again (the approval is there for it).
    Approved,
    /// Refused, denied, expired or withdrawn: refuse it with this.
    Refused(Denial),
    /// The client went away.
    ClientGone,
    /// An operator terminated the session.
    Terminated,
}

/// How often a held statement looks for its decision.
const POLL: Duration = Duration::from_millis(25);

/// The notice the client gets when its statement is held.
pub fn held_notice(w: &Waiting) -> PgError {
    PgError::notice(
        "PW002",
        format!("pgward: statement held for approval (request {})", w.id),
    )
    .with_detail(format!(
        "a reviewer approves it with: pgward approvals approve {id}; or denies it with: pgward approvals deny {id} --reason ...",
        id = w.id
    ))
    .with_hint(format!(
        "waiting up to {} s; cancel the statement to withdraw the request",
        w.timeout.as_secs()
    ))
}

/// True when the client's socket was closed by its peer.
fn client_hung_up(fd: std::os::fd::RawFd) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one pollfd, no wait.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n > 0 && p.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
}

/// Waits for the decision on a held request: a reviewer's, the timeout, a
/// CancelRequest, the client leaving, or an operator ending the session.
/// Only this session waits; the worker runs the others meanwhile.
pub async fn wait(book: &Book, w: &Waiting, slot: &Slot, client_fd: std::os::fd::RawFd) -> HoldEnd {
    let cancels = slot.cancels();
    let deadline = Instant::now() + w.timeout;
    slot.set_activity(Activity::Held);
    loop {
        monoio::time::sleep(POLL).await;
        let now = now_micros();
        if slot.is_terminated() {
            book.end(&w.id, State::Withdrawn, "the session was terminated", now);
            return HoldEnd::Terminated;
        }
        if slot.cancels() != cancels {
            book.end(
                &w.id,
                State::Withdrawn,
                "the client cancelled the statement",
                now,
            );
            return HoldEnd::Refused(Denial {
                code: "57014",
                message: "canceling statement due to user request".into(),
                detail: format!("rule: approval; pgward withdrew approval request {}", w.id),
                hint: String::new(),
            });
        }
        if client_hung_up(client_fd) {
            book.end(&w.id, State::Withdrawn, "the client went away", now);
            return HoldEnd::ClientGone;
        }
        if Instant::now() >= deadline {
            book.end(&w.id, State::Expired, "no reviewer decided in time", now);
        }
        let Some(r) = book.get(&w.id, now) else {
            return HoldEnd::Refused(refused(&w.id, "it is no longer known"));
        };
        match r.state {
            State::Pending => continue,
            State::Approved => return HoldEnd::Approved,
            State::Denied => {
                let by = r.decided_by.unwrap_or_default();
                let why = r.reason.map(|w| format!(": {w}")).unwrap_or_default();
                return HoldEnd::Refused(refused(&w.id, &format!("{by} denied it{why}")));
            }
            State::Expired => {
                return HoldEnd::Refused(refused(
                    &w.id,
                    &format!("no reviewer decided within {} s", w.timeout.as_secs()),
                ))
            }
            other => return HoldEnd::Refused(refused(&w.id, &format!("it was {}", other.name()))),
        }
    }
}

fn refused(id: &str, why: &str) -> Denial {
    Denial {
        code: "42501",
        message: format!("pgward: approval request {id} was not granted: {why}"),
        detail: "rule: approval; the statement did not run".into(),
        hint: "the session goes on; ask a reviewer, or change the statement".into(),
    }
}
