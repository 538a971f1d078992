//! The data path of a live session: two pumps, client to upstream and upstream
//! to client, over split halves of both connections. Frames are found by their
//! headers and relayed as slices of the read buffer. The client pump hands
//! every statement to the session's guard and forwards it, replaces it with a
//! refusal, or drops it (after a refusal, until Sync); the server pump matches
//! replies to the pipeline of owed replies and hides those that answer
//! pgward's own messages. Each pump waits for its write before reading more,
//! so a slow reader holds back its peer instead of making pgward buffer.

use std::cell::{Cell, RefCell};
use std::io;
use std::ops::Range;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use futures_util::lock::Mutex;
use monoio::io::{OwnedReadHalf, OwnedWriteHalf};

use std::sync::Arc;

use super::approvals::HoldEnd;
use super::audit_trail::{unwritable, write_failed, Message, Seen, SessionAudit};
use super::buffer::{write_all, FrameReader};
use super::catalog::CatalogCache;
use super::denial::{raise_extended, raise_query, Raiser, EXTENDED_HIDDEN_REPLIES};
use super::guard::{Guard, Runs, Waiting};
use super::masker::{Masked, Masker};
use super::pipeline::{Event, Outcome, Owed, Pipeline, Route, Ticket};
use super::row_cap::{CapAction, RowCap};
use super::session_policy::SessionPolicy;
use super::stream::Stream;
use super::worker::WorkerContext;
use crate::admin::metrics::{Verdict as MetricVerdict, WorkerMetrics};
use crate::config::DatabaseConfig;
use crate::policy::approval::Mode;
use crate::policy::{Decision, Denial};
use crate::sql::cache::ClassificationCache;
use crate::wire::backend::ParameterStatus;
use crate::wire::error_response::{ErrorFields, PgError};
use crate::wire::frame::{next, Next, HEADER_LEN};
use crate::wire::frontend::{BindNames, BindParameters, Execute, Parse, Query, Target};
use crate::wire::WireError;

use super::session::ENCODING_HINT;
use super::startup_options::{is_supported_client_encoding, unsupported_encoding};

/// The client's writing half, shared by whoever must answer the client.
pub type ClientSink = Rc<Mutex<OwnedWriteHalf<Stream>>>;

/// Frames from the server at least this large are streamed through in pieces
/// instead of being buffered whole (only those pgward never inspects).
const STREAM_THROUGH: usize = 1 << 20;

/// The largest message PostgreSQL itself sends (1 GiB plus its header).
const MAX_BACKEND_MESSAGE: usize = (1 << 30) + 64;

/// How a session's relay ended.
#[derive(Debug)]
pub enum RelayEnd {
    /// The client sent Terminate.
    ClientTerminated,
    /// The client closed its connection or it failed.
    ClientGone(Option<io::Error>),
    /// The client sent a frame that is malformed or too large.
    ClientProtocol(WireError),
    /// The upstream closed its connection or it failed.
    UpstreamGone {
        error: Option<io::Error>,
        /// True when the server said why (a FATAL error) before closing.
        explained: bool,
    },
    /// The upstream sent bytes that are not a valid frame.
    UpstreamProtocol(WireError),
    /// The server's session changed in a way pgward cannot follow (a client
    /// encoding it cannot lex, say): the client is told why, nothing more is
    /// forwarded either way, and the upstream is closed.
    Halted(PgError),
}

/// What the two pumps share.
pub struct SessionState {
    /// Transaction status from the last ReadyForQuery (`I`, `T`, `E`).
    pub tx_status: Cell<u8>,
    /// True once the server sent a FATAL error.
    pub upstream_fatal: Cell<bool>,
    /// True once either pump has ended and the session is closing.
    pub closing: Cell<bool>,
    /// A FATAL error for the client, sent once the server has finished.
    pub pending_fatal: Cell<Option<PgError>>,
    /// True once pgward stopped trusting its view of the session: the client
    /// pump forwards nothing more.
    pub halted: Cell<bool>,
    /// Replies the server owes, in order.
    pub pipeline: RefCell<Pipeline>,
    /// The statement guard.
    pub guard: RefCell<Guard>,
    /// The roles' result cap.
    pub row_cap: RefCell<RowCap>,
    /// Result masking.
    pub masker: RefCell<Masker>,
    /// How the server raises refusals in this session.
    pub raiser: Cell<Raiser>,
    /// The audit trail, when the audit log is on.
    pub audit: RefCell<Option<SessionAudit>>,
    /// Audited statements the server finished while routing one message,
    /// recorded once the masker has seen that message too.
    audited: RefCell<Vec<(u64, Outcome, u8)>>,
    /// The session's place in the registry (what it does, for the admin).
    pub slot: Option<Arc<super::registry::Slot>>,
    /// The worker's metrics.
    pub metrics: Option<Rc<WorkerMetrics>>,
    /// When the oldest reply still owed was asked for (upstream time).
    sent_at: Cell<Option<std::time::Instant>>,
}

impl SessionState {
    /// Fresh state around a guard.
    pub fn new(guard: Guard, tx_status: u8, max_rows: Option<u64>, masker: Masker) -> Self {
        SessionState {
            tx_status: Cell::new(tx_status),
            upstream_fatal: Cell::new(false),
            closing: Cell::new(false),
            pending_fatal: Cell::new(None),
            halted: Cell::new(false),
            pipeline: RefCell::new(Pipeline::default()),
            guard: RefCell::new(guard),
            row_cap: RefCell::new(RowCap::new(max_rows)),
            masker: RefCell::new(masker),
            raiser: Cell::new(Raiser::DoBlock),
            audit: RefCell::new(None),
            audited: RefCell::new(Vec::new()),
            slot: None,
            metrics: None,
            sent_at: Cell::new(None),
        }
    }
}

/// What to send for one batch of frames read: ranges of the read buffer
/// (sent without copying when that is all there is), or, once anything is
/// inserted or rewritten, one joined buffer, so a batch is always one write.
#[derive(Debug, Default)]
struct Pieces {
    ranges: Vec<Range<usize>>,
    joined: Option<BytesMut>,
}

impl Pieces {
    /// Sends `src[r]` on.
    fn keep(&mut self, r: Range<usize>, src: &[u8]) {
        if let Some(j) = &mut self.joined {
            j.extend_from_slice(&src[r]);
            return;
        }
        if let Some(last) = self.ranges.last_mut() {
            if last.end == r.start {
                last.end = r.end;
                return;
            }
        }
        self.ranges.push(r);
    }

    /// The joined buffer, switching to it (copying what was kept) if needed.
    fn joined(&mut self, src: &[u8]) -> &mut BytesMut {
        let ranges = &self.ranges;
        self.joined.get_or_insert_with(|| {
            let mut j = BytesMut::with_capacity(src.len() + 256);
            for r in ranges {
                j.extend_from_slice(&src[r.clone()]);
            }
            j
        })
    }

    /// Sends `b` at this point.
    fn insert(&mut self, b: &[u8], src: &[u8]) {
        self.joined(src).extend_from_slice(b);
    }

    fn is_empty(&self) -> bool {
        self.ranges.is_empty() && self.joined.is_none()
    }

    /// Sends the batch; `chunk` is the consumed part of the read buffer.
    async fn send(self, chunk: Bytes, out: &mut OwnedWriteHalf<Stream>) -> io::Result<()> {
        if let Some(j) = self.joined {
            return write_all(out, j.freeze()).await;
        }
        match self.ranges.as_slice() {
            [] => Ok(()),
            [r] if r.start == 0 && r.end == chunk.len() => write_all(out, chunk).await,
            ranges => {
                for r in ranges {
                    write_all(out, chunk.slice(r.clone())).await?;
                }
                Ok(())
            }
        }
    }
}

/// What the client pump does with one frame.
enum Action {
    Forward,
    Drop,
    Replace(BytesMut),
    /// Keep it (unread) until a reviewer decides on its request.
    Hold(Waiting),
}

/// What a held statement needs: the approval book, the session's place in
/// the registry, the client's socket (to notice it leave).
pub struct Holds {
    /// The process's approval book.
    pub book: Arc<crate::approval::Book>,
    /// The session's slot.
    pub slot: Arc<super::registry::Slot>,
    /// The client's socket.
    pub client_fd: std::os::fd::RawFd,
}

/// The bytes of bind parameter `$n` of a Bind body (`None` for NULL). A
/// text parameter's binary form is its text too (the server converts both
/// from the client encoding), and pgward checks at Parse that the parameters
/// it reads are text.
fn bind_parameter(body: &[u8], n: usize) -> Result<Option<Vec<u8>>, String> {
    let p = BindParameters::parse(body)
        .and_then(|p| p.get(n))
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("the Bind carries no parameter ${n}"))?;
    Ok(p.value.map(<[u8]>::to_vec))
}

/// Where the client pump gets catalog snapshots.
pub struct CatalogSource<'a> {
    /// The worker's snapshots.
    pub cache: &'a CatalogCache,
    /// The database name in the client's DSN.
    pub name: &'a str,
    /// Its upstream.
    pub db: &'a DatabaseConfig,
    /// Its upstream TLS.
    pub tls: Option<&'a Arc<rustls::ClientConfig>>,
}

/// Where the client pump learns of configuration reloads.
pub struct Reloads<'a> {
    /// The worker, which holds the configuration in force.
    pub ctx: &'a WorkerContext,
    /// The session's user.
    pub user: &'a str,
    /// The generation of the configuration the session's policy came from.
    pub generation: u64,
    /// For a token session: its token's issuer, and the roles the token
    /// gave (the user is not in `[[users]]`).
    pub token: Option<(String, Vec<String>)>,
}

/// The client pump's state.
pub struct ClientPump<'a> {
    state: &'a SessionState,
    cache: &'a RefCell<ClassificationCache>,
    catalog: CatalogSource<'a>,
    reloads: Reloads<'a>,
    /// The client's end, for refusals pgward answers itself.
    sink: &'a ClientSink,
    max_message: usize,
    /// After a refusal in the extended protocol: drop messages until Sync, as
    /// the server does after an error.
    skip_until_sync: bool,
    /// Where held statements wait, when approvals are on.
    holds: Option<Holds>,
    /// The held statement's refusal (denied, expired, withdrawn) and its
    /// request, for when it is judged again.
    refuse_next: Option<(Denial, String)>,
    /// The rule of the refusal the frame being judged got, if any.
    refused: Option<String>,
}

impl<'a> ClientPump<'a> {
    /// A pump over the session's state and the worker's cache.
    pub fn new(
        state: &'a SessionState,
        cache: &'a RefCell<ClassificationCache>,
        catalog: CatalogSource<'a>,
        reloads: Reloads<'a>,
        sink: &'a ClientSink,
        max_message: usize,
    ) -> Self {
        ClientPump {
            state,
            cache,
            catalog,
            reloads,
            sink,
            max_message,
            skip_until_sync: false,
            holds: None,
            refuse_next: None,
            refused: None,
        }
    }

    /// Lets statements that need approval wait in this session (hold mode).
    pub fn with_holds(mut self, holds: Holds) -> Self {
        self.holds = Some(holds);
        self
    }

    fn owe(&self, owed: Owed, visible: bool) {
        self.owe_ticket(owed, visible, None);
    }

    fn owe_ticket(&self, owed: Owed, visible: bool, ticket: Option<Ticket>) {
        self.owe_audited(owed, visible, ticket, None);
    }

    /// Owes a reply that ends audited statement `audit`.
    fn owe_audited(&self, owed: Owed, visible: bool, ticket: Option<Ticket>, audit: Option<u64>) {
        let query = owed == Owed::Query;
        self.owe_runs(owed, visible, ticket, query, audit);
    }

    /// Owes a reply; `runs` says whether the message may run client code
    /// (pgward's own refusal does not: it only raises).
    fn owe_runs(
        &self,
        owed: Owed,
        visible: bool,
        ticket: Option<Ticket>,
        runs: bool,
        audit: Option<u64>,
    ) {
        if self.state.pipeline.borrow().is_skipping()
            && !matches!(owed, Owed::Sync | Owed::Synthetic(_))
        {
            // The server skips this message (an earlier one failed and the
            // client's Sync has not come yet): no reply will come for it.
            if let Some(t) = ticket {
                self.state.guard.borrow_mut().settle(t, Outcome::Skipped);
            }
            if let (Some(n), Some(a)) = (audit, &mut *self.state.audit.borrow_mut()) {
                a.not_forwarded(n);
            }
            return;
        }
        let query = runs;
        let mut pipeline = self.state.pipeline.borrow_mut();
        let ready = pipeline.push_ticket(owed, visible, ticket);
        if let Some(n) = audit {
            pipeline.audit_last(n);
        }
        drop(pipeline);
        if ready {
            self.state.guard.borrow_mut().owe_ready(query);
        }
    }

    /// Records a statement in the audit trail (when it is on); the number
    /// an allowed one's result will carry.
    fn record(&self, guard: &Guard, seen: Seen) -> Option<u64> {
        let mut audit = self.state.audit.borrow_mut();
        let a = audit.as_mut()?;
        Some(a.statement(&seen, guard.strings(), guard.client_encoding()))
    }

    /// True when pgward can answer a refusal itself: the server is idle
    /// outside a transaction block with nothing in flight, so there is no
    /// transaction for the error to abort and no reply to wait behind. The
    /// server then never sees the refused statement (nor logs an error).
    fn refuses_alone(&self) -> bool {
        self.state.tx_status.get() == b'I' && self.state.pipeline.borrow().is_idle()
    }

    /// Replaces a refused message with its refusal. When the server is idle
    /// (`refuses_alone`) pgward answers it: ErrorResponse, and for a Query
    /// ReadyForQuery. Otherwise the server raises it, in place: a simple
    /// Query for Query and FunctionCall; in the extended protocol hidden
    /// Close, Parse and Bind plus a visible Execute. Either way, in the
    /// extended protocol, messages are then dropped until Sync.
    fn refuse(&mut self, d: &Denial, simple: bool) -> Action {
        tracing::info!(message = %d.message, "statement refused");
        self.refused = Some(super::audit_trail::rule_of(&d.detail).to_string());
        if self.refuses_alone() {
            // In the client's encoding as far as pgward can write it.
            let encoding = self.state.guard.borrow().client_encoding();
            let mut out = PgError::error(d.code, encoding.outgoing(&d.message))
                .with_detail(encoding.outgoing(&d.detail))
                .with_hint(encoding.outgoing(&d.hint))
                .to_frame();
            if simple {
                crate::wire::build::ready_for_query(&mut out, b'I');
            } else {
                self.skip_until_sync = true;
            }
            self.state
                .pipeline
                .borrow_mut()
                .push(Owed::Synthetic(out.freeze()), true);
            return Action::Drop;
        }
        let mut out = BytesMut::new();
        if simple {
            self.owe_runs(Owed::Query, true, None, false, None);
            raise_query(d, self.state.raiser.get(), &mut out);
        } else {
            for _ in 0..EXTENDED_HIDDEN_REPLIES {
                self.owe(Owed::One, false);
            }
            self.owe(Owed::Execute, true);
            self.skip_until_sync = true;
            raise_extended(d, self.state.raiser.get(), &mut out);
        }
        Action::Replace(out)
    }

    /// The approval a statement the guard just judged concerns (its request
    /// and approver, for the audit log), or the request to hold it for.
    /// `held`: the request of a held statement refused now.
    #[allow(clippy::type_complexity)]
    fn approval_of(
        &self,
        guard: &mut Guard,
        held: Option<String>,
    ) -> Result<(Option<String>, Option<String>), Waiting> {
        if let Some(w) = guard.take_waiting() {
            if w.mode == Mode::Hold && self.holds.is_some() {
                return Err(w);
            }
            return Ok((Some(w.id), None));
        }
        Ok(match guard.take_granted() {
            Some((id, by)) => (Some(id), by),
            None => (held, None),
        })
    }

    /// Judges one frame, counting statements by verdict and the time pgward
    /// took to decide.
    fn judge(&mut self, tag: u8, body: &[u8]) -> Result<Action, WireError> {
        let Some(metrics) = self.state.metrics.clone() else {
            return self.judge_frame(tag, body);
        };
        if !matches!(tag, b'Q' | b'P' | b'B' | b'E' | b'D' | b'F') {
            return self.judge_frame(tag, body);
        }
        let started = std::time::Instant::now();
        self.refused = None;
        let action = self.judge_frame(tag, body);
        let verdict = match (&action, &self.refused) {
            (Ok(Action::Hold(_)), _) => MetricVerdict::Held,
            (_, Some(_)) => MetricVerdict::Denied,
            _ => MetricVerdict::Allowed,
        };
        // Statements are Queries and Binds (and any refusal); a Parse,
        // Describe or Execute allowed is part of one.
        if matches!(tag, b'Q' | b'B' | b'F') || verdict != MetricVerdict::Allowed {
            metrics.statement(verdict, self.refused.as_deref());
            metrics.pgward_time(verdict, started.elapsed());
        }
        action
    }

    fn judge_frame(&mut self, tag: u8, body: &[u8]) -> Result<Action, WireError> {
        if self.state.halted.get() {
            return Ok(Action::Drop);
        }
        let extended = matches!(tag, b'P' | b'B' | b'E' | b'D' | b'C' | b'H' | b'Q' | b'F');
        if self.skip_until_sync && extended {
            return Ok(Action::Drop);
        }
        let refused = |d: Decision| match d {
            Decision::Allow { .. } => None,
            Decision::Deny(d) => Some(d),
        };
        let statement = matches!(tag, b'Q' | b'P' | b'B' | b'E' | b'D' | b'F');
        let audit_down = statement
            && self
                .state
                .audit
                .borrow()
                .as_ref()
                .is_some_and(|a| !a.is_healthy());
        if audit_down {
            // Fail closed; recording the refusal tries the disk again. (A
            // held statement's own refusal is replaced by this one.)
            self.refuse_next = None;
            let d = unwritable();
            self.record(
                &self.state.guard.borrow(),
                Seen {
                    denial: Some(&d),
                    ..Seen::new(Message::Query)
                },
            );
            return Ok(self.refuse(&d, matches!(tag, b'Q' | b'F')));
        }
        let mut guard = self.state.guard.borrow_mut();
        // The statement's number in the audit trail, when it is forwarded.
        let mut audit = None;
        // Each message: what the server will owe for it, the guard's change
        // that waits for that reply, and whether it is refused.
        let (owed, ticket, refusal) = match tag {
            b'Q' => {
                let q = Query::parse(body)?;
                let (d, ticket, held) = match self.refuse_next.take() {
                    Some((d, id)) => (Decision::Deny(d), None, Some(id)),
                    None => {
                        let (d, t) = guard.on_query(&mut self.cache.borrow_mut(), q.sql);
                        (d, t, None)
                    }
                };
                let approval = match self.approval_of(&mut guard, held) {
                    Ok(a) => a,
                    Err(w) => return Ok(Action::Hold(w)),
                };
                let refusal = refused(d);
                if let (Some(slot), None) = (&self.state.slot, &refusal) {
                    slot.set_statement(q.sql);
                }
                audit = self.record(
                    &guard,
                    Seen {
                        sent: Some(q.sql),
                        denial: refusal.as_ref(),
                        runs_code: guard.last_runs_code(),
                        approval: approval.0.as_deref(),
                        approver: approval.1.as_deref(),
                        ..Seen::new(Message::Query)
                    },
                );
                (Owed::Query, ticket, refusal)
            }
            b'P' => {
                let p = Parse::parse(body)?;
                let param_type = |n| p.param_type(n);
                match guard.on_parse(&mut self.cache.borrow_mut(), p.name, p.sql, &param_type) {
                    Ok(t) => {
                        if guard.last_needs_approval() {
                            guard.note_parse_types(t, p.param_types().collect());
                        }
                        (Owed::One, Some(t), None)
                    }
                    Err(d) => {
                        self.record(
                            &guard,
                            Seen {
                                sent: Some(p.sql),
                                statement: Some(p.name),
                                denial: Some(&d),
                                ..Seen::new(Message::Parse)
                            },
                        );
                        (Owed::One, None, Some(d))
                    }
                }
            }
            b'B' => {
                let b = BindNames::parse(body)?;
                let parameter = |n| bind_parameter(body, n);
                // Each value's bytes, and whether it is binary.
                let parameters = || {
                    BindParameters::parse(body)
                        .map(|p| {
                            p.values()
                                .map(|v| (v.format == 1, v.value.map(<[u8]>::to_vec)))
                                .collect()
                        })
                        .unwrap_or_default()
                };
                let (bound, held) = match self.refuse_next.take() {
                    Some((d, id)) => (Err(d), Some(id)),
                    None => {
                        let r = guard.on_bind(
                            &mut self.cache.borrow_mut(),
                            b.portal,
                            b.statement,
                            &parameter,
                            &parameters,
                        );
                        (r, None)
                    }
                };
                let approval = match self.approval_of(&mut guard, held) {
                    Ok(a) => a,
                    Err(w) => return Ok(Action::Hold(w)),
                };
                match bound {
                    Ok((t, runs)) => {
                        // Planning at Bind may already call functions: the
                        // Bind is the portal's statement record.
                        let params = self
                            .state
                            .audit
                            .borrow()
                            .as_ref()
                            .is_some_and(|a| a.records_params())
                            .then(|| {
                                BindParameters::parse(body)
                                    .map(|p| p.values().collect())
                                    .unwrap_or_default()
                            });
                        audit = self.record(
                            &guard,
                            Seen {
                                prepared: runs.texts.as_deref().unwrap_or(&[]),
                                statement: Some(b.statement),
                                portal: Some(b.portal),
                                params,
                                runs_code: runs.runs_code,
                                approval: approval.0.as_deref(),
                                approver: approval.1.as_deref(),
                                ..Seen::new(Message::Bind)
                            },
                        );
                        if let Some(n) = audit {
                            guard.note_bind_record(t, n);
                        }
                        let text = runs.texts.as_deref().and_then(|t| t.first());
                        if let (Some(slot), Some(text)) = (&self.state.slot, text) {
                            slot.set_statement(text);
                        }
                        (Owed::One, Some(t), None)
                    }
                    Err(d) => {
                        self.record(
                            &guard,
                            Seen {
                                statement: Some(b.statement),
                                portal: Some(b.portal),
                                denial: Some(&d),
                                approval: approval.0.as_deref(),
                                ..Seen::new(Message::Bind)
                            },
                        );
                        (Owed::One, None, Some(d))
                    }
                }
            }
            b'E' => {
                let e = Execute::parse(body)?;
                // Asked before the Execute is noted: running a CLOSE forgets
                // the portals it closes.
                // Every Execute when masks or scans apply: a portal's rows are
                // planned from the description the server gives, whatever
                // pgward's record of the portal says (a portal reads a masked
                // column only where masks exist, so no lookup is needed).
                let masked = self.state.masker.borrow().is_enabled();
                let (ticket, runs, refusal) = match guard.on_execute(e.portal) {
                    Ok((t, runs)) => (t, runs, None),
                    Err(d) => (None, Runs::default(), Some(d)),
                };
                // An Execute of a portal whose Bind was recorded reports
                // under that record; any other gets a record of its own.
                let bound = match (&refusal, &mut *self.state.audit.borrow_mut()) {
                    (None, Some(a)) => a.execute(runs.bound, e.max_rows.max(0) as u64),
                    _ => None,
                };
                audit = match bound {
                    Some(n) => Some(n),
                    None => {
                        let note = self
                            .state
                            .audit
                            .borrow()
                            .as_ref()
                            .and_then(|a| a.reopened_note(runs.bound));
                        self.record(
                            &guard,
                            Seen {
                                prepared: runs.texts.as_deref().unwrap_or(&[]),
                                portal: Some(e.portal),
                                denial: refusal.as_ref(),
                                runs_code: runs.runs_code,
                                note,
                                max_rows: e.max_rows.max(0) as u64,
                                ..Seen::new(Message::Execute)
                            },
                        )
                    }
                };
                if refusal.is_none() && masked {
                    // The rows must be masked or scanned, so pgward needs the
                    // portal's description even if the client never asked for it.
                    drop(guard);
                    self.owe(Owed::DescribePortal, false);
                    self.owe_audited(Owed::Execute, true, ticket, audit);
                    let mut out = BytesMut::new();
                    crate::wire::build::message(&mut out, b'D', |b| {
                        bytes::BufMut::put_u8(b, b'P');
                        crate::wire::build::cstr(b, e.portal);
                    });
                    crate::wire::build::message(&mut out, b'E', |b| {
                        bytes::BufMut::put_slice(b, body)
                    });
                    return Ok(Action::Replace(out));
                }
                (Owed::Execute, ticket, refusal)
            }
            b'D' => {
                let t = Target::parse(body, "Describe")?;
                let owed = if t.kind == b'S' {
                    Owed::DescribeStatement
                } else {
                    Owed::DescribePortal
                };
                let refusal = guard.on_describe(&mut self.cache.borrow_mut(), t.kind, t.name);
                if let Some(d) = &refusal {
                    let named = Some(t.name);
                    self.record(
                        &guard,
                        Seen {
                            statement: named.filter(|_| t.kind == b'S'),
                            portal: named.filter(|_| t.kind != b'S'),
                            denial: Some(d),
                            ..Seen::new(Message::Describe)
                        },
                    );
                }
                (owed, None, refusal)
            }
            b'C' => {
                let t = Target::parse(body, "Close")?;
                (Owed::One, guard.on_close(t.kind, t.name), None)
            }
            b'S' => {
                self.skip_until_sync = false;
                (Owed::Sync, None, None)
            }
            // CopyDone, CopyFail: the server takes Syncs again.
            b'c' | b'f' => (Owed::CopyEnd, None, None),
            // A fast-path function call names a function by OID with no SQL
            // to analyse: refused like any unanalysable statement.
            b'F' => (
                Owed::Query,
                None,
                Some(Denial {
                    code: "42501",
                    message: "pgward: fast-path function calls are never allowed".into(),
                    detail: "rule: built-in; a FunctionCall message carries no SQL to analyse"
                        .into(),
                    hint: "call the function from a SELECT".into(),
                }),
            ),
            _ => return Ok(Action::Forward),
        };
        if tag == b'F' {
            self.record(
                &guard,
                Seen {
                    denial: refusal.as_ref(),
                    ..Seen::new(Message::FunctionCall)
                },
            );
        }
        drop(guard);
        Ok(match refusal {
            None => {
                if let (Some(slot), b'Q' | b'B' | b'E') = (&self.state.slot, tag) {
                    slot.set_activity(super::registry::Activity::Active);
                }
                self.owe_audited(owed, true, ticket, audit);
                Action::Forward
            }
            Some(d) => self.refuse(&d, owed == Owed::Query),
        })
    }

    /// Brings the guard's catalog snapshot up to date (usually at once).
    async fn refresh_catalog(&self) {
        let c = &self.catalog;
        if self.state.masker.borrow().take_unknown_table() {
            c.cache.invalidate(c.name);
        }
        match c.cache.get(c.name, c.db, c.tls).await {
            Ok(snapshot) => {
                self.state.masker.borrow_mut().set_catalog(snapshot.clone());
                self.state.guard.borrow_mut().set_catalog(snapshot)
            }
            Err(e) => self.state.guard.borrow_mut().catalog_unavailable(e),
        }
    }

    /// Takes up the policy of a reloaded configuration, once per reload,
    /// before the next statement: the user's roles and masks as they are now
    /// (prepared statements are judged again, portals bound before are
    /// forgotten). A user no longer configured is told so and the session
    /// ends.
    fn follow_reload(&mut self) -> Option<PgError> {
        let r = &mut self.reloads;
        if super::reload::generation() == r.generation {
            return None;
        }
        let live = r.ctx.live();
        r.generation = live.generation;
        let configured = live.config.users.get(r.user).map(|u| u.roles.clone());
        if let Some((issuer, _)) = &r.token {
            // A token whose issuer the operator removed no longer counts.
            let trusted = live
                .config
                .auth
                .iter()
                .flat_map(|a| &a.issuers)
                .any(|i| &i.issuer == issuer);
            if !trusted {
                return Some(
                    PgError::fatal(
                        "28000",
                        format!("pgward: the token's issuer \"{issuer}\" is no longer trusted"),
                    )
                    .with_detail("the configuration was reloaded")
                    .with_hint("log in again with a token of a configured issuer"),
                );
            }
        }
        let token_roles = r.token.as_ref().map(|t| t.1.clone());
        let Some(roles) = token_roles.or(configured) else {
            return Some(
                PgError::fatal(
                    "28000",
                    format!("pgward: user \"{}\" is no longer configured", r.user),
                )
                .with_detail("the configuration was reloaded")
                .with_hint("ask the operator for a user, then reconnect"),
            );
        };
        let policy = SessionPolicy::of(&live.config, &live.masks, &roles);
        if let Some(a) = &mut *self.state.audit.borrow_mut() {
            a.set_policy(live.config.version.clone());
        }
        tracing::info!(
            generation = live.generation,
            "session follows the reloaded configuration"
        );
        self.state.row_cap.borrow_mut().set_cap(policy.max_rows);
        self.state
            .masker
            .borrow_mut()
            .set_policy(policy.masks.clone(), policy.unmask, policy.scan);
        self.state
            .guard
            .borrow_mut()
            .set_policy(policy.roles, policy.masks);
        None
    }

    /// Sends the replies pgward owes the client itself once they are next in
    /// line (with nothing before them, no server message would carry them).
    /// The client's end is taken first, so the server pump, which also sends
    /// them when they come before a server reply, cannot write in between.
    async fn answer_alone(&self) -> io::Result<()> {
        if !self.state.pipeline.borrow().synthetic_next() {
            return Ok(());
        }
        let mut w = self.sink.lock().await;
        let mut replies = Vec::new();
        self.state
            .pipeline
            .borrow_mut()
            .take_synthetic(&mut replies);
        for r in replies {
            write_all(&mut *w, r).await?;
        }
        Ok(())
    }

    /// Holds a statement until its request is decided: the client is told
    /// (a NoticeResponse naming the request), then the statement waits, the
    /// session's other work done; on approval it is judged again and runs,
    /// otherwise it is refused and the session goes on.
    async fn hold(&mut self, w: Waiting) -> Result<(), RelayEnd> {
        let Some(h) = &self.holds else {
            return Ok(());
        };
        let (book, slot, fd) = (h.book.clone(), h.slot.clone(), h.client_fd);
        let notice = super::approvals::held_notice(&w).to_frame().freeze();
        self.state
            .pipeline
            .borrow_mut()
            .push(Owed::Synthetic(notice), true);
        self.answer_alone()
            .await
            .map_err(|e| RelayEnd::ClientGone(Some(e)))?;
        if let Some(r) = book.get(&w.id, crate::audit::time::now_micros()) {
            slot.set_statement(r.sql.as_bytes());
        }
        if let Some(a) = &mut *self.state.audit.borrow_mut() {
            let why = if w.new { "requested" } else { "asked again" };
            a.approval(&w.id, "held", None, why);
        }
        let end = super::approvals::wait(&book, &w, &slot, fd).await;
        if let (Some(m), HoldEnd::Refused(_) | HoldEnd::ClientGone | HoldEnd::Terminated) =
            (&self.state.metrics, &end)
        {
            // (Reviewers' decisions are counted where they are made.)
            let state = book
                .get(&w.id, crate::audit::time::now_micros())
                .map(|r| r.state);
            if let Some(s @ (crate::approval::State::Expired | crate::approval::State::Withdrawn)) =
                state
            {
                m.approval(s.name());
            }
        }
        slot.set_activity(super::registry::Activity::Active);
        let outcome = book.get(&w.id, crate::audit::time::now_micros());
        if let (Some(a), Some(r)) = (&mut *self.state.audit.borrow_mut(), &outcome) {
            a.approval(
                &w.id,
                r.state.name(),
                r.decided_by.as_deref(),
                r.reason.as_deref().unwrap_or_default(),
            );
        }
        match end {
            HoldEnd::Approved => Ok(()),
            HoldEnd::Refused(d) => {
                self.refuse_next = Some((d, w.id));
                Ok(())
            }
            HoldEnd::ClientGone | HoldEnd::Terminated => Err(RelayEnd::ClientGone(None)),
        }
    }

    /// Relays client frames to the upstream until one side ends.
    pub async fn run(
        &mut self,
        client: &mut FrameReader<OwnedReadHalf<Stream>>,
        upstream: &mut OwnedWriteHalf<Stream>,
    ) -> RelayEnd {
        loop {
            if !client.buf.is_empty() {
                if let Some(e) = self.follow_reload() {
                    self.state.halted.set(true);
                    return RelayEnd::Halted(e);
                }
                self.refresh_catalog().await;
                // After a failed write, try the disk again before judging:
                // statements are refused only while it still fails.
                let failing = self.state.audit.borrow().as_ref().and_then(|a| a.failing());
                if let Some(stream) = failing {
                    stream.recover().await;
                }
            }
            let mut end = 0;
            let mut terminate = false;
            let mut need = HEADER_LEN;
            let mut bad = None;
            let mut hold = None;
            let mut pieces = Pieces::default();
            while end < client.buf.len() {
                let rest = &client.buf[end..];
                match next(rest, self.max_message) {
                    Next::Frame(h) => {
                        let range = end..end + h.total;
                        end += h.total;
                        if h.tag == b'X' {
                            pieces.keep(range, &client.buf);
                            terminate = true;
                            break;
                        }
                        let action = self.judge(h.tag, &rest[HEADER_LEN..h.total]);
                        match action {
                            Ok(Action::Forward) => pieces.keep(range, &client.buf),
                            Ok(Action::Drop) => {}
                            Ok(Action::Replace(b)) => pieces.insert(&b, &client.buf),
                            Ok(Action::Hold(w)) => {
                                // Unread until decided; what came before goes now.
                                end -= h.total;
                                hold = Some(w);
                                break;
                            }
                            Err(e) => {
                                end -= h.total;
                                bad = Some(e);
                                break;
                            }
                        }
                    }
                    Next::Need(n, _) => {
                        need = n;
                        break;
                    }
                    Next::Invalid(e) => {
                        bad = Some(e);
                        break;
                    }
                }
            }
            if self.state.guard.borrow_mut().take_ddl_allowed() {
                self.catalog.cache.invalidate(self.catalog.name);
            }
            let wait = match &mut *self.state.audit.borrow_mut() {
                Some(a) => a.take_wait().map(|(t, level)| (a.stream(), t, level)),
                None => None,
            };
            if let Some((stream, t, level)) = wait {
                // Nothing of this batch reaches the server before its
                // records are written (or synced, when strict).
                if let Err(e) = stream.reached(t, level).await {
                    if let Some(a) = &mut *self.state.audit.borrow_mut() {
                        a.batch_failed();
                    }
                    self.state.halted.set(true);
                    return RelayEnd::Halted(write_failed(&e));
                }
            }
            // The server keeps replies to what came before a held statement
            // until a Sync or a Flush: ask for them now.
            let flush = hold.is_some() && !self.state.pipeline.borrow().is_idle();
            if flush {
                let mut f = BytesMut::new();
                crate::wire::build::message(&mut f, b'H', |_| {});
                pieces.insert(&f, &client.buf);
            }
            if end > 0 || flush {
                let chunk = client.take(end).freeze();
                if let Err(e) = pieces.send(chunk, upstream).await {
                    return RelayEnd::UpstreamGone {
                        error: Some(e),
                        explained: false,
                    };
                }
                if self.state.sent_at.get().is_none() {
                    self.state.sent_at.set(Some(std::time::Instant::now()));
                }
            }
            if let Err(e) = self.answer_alone().await {
                return RelayEnd::ClientGone(Some(e));
            }
            if let Some(w) = hold {
                if let Err(end) = self.hold(w).await {
                    return end;
                }
                // Judged again: it runs under its approval, or is refused.
                continue;
            }
            if terminate {
                return RelayEnd::ClientTerminated;
            }
            if let Some(e) = bad {
                return RelayEnd::ClientProtocol(e);
            }
            match client.fill(need).await {
                Ok(0) => return RelayEnd::ClientGone(None),
                Ok(_) => {}
                Err(e) => return RelayEnd::ClientGone(Some(e)),
            }
        }
    }
}

/// What the client gets for one server message.
enum Delivery {
    Forward,
    Hide,
    Instead(Bytes),
    /// A row to rewrite under the masking plan.
    Rewrite,
}

/// Why the server pump stops early.
enum Stop {
    /// The server broke the protocol.
    Protocol(WireError),
    /// The session can no longer be judged: end it with this FATAL error.
    Halt(PgError),
}

impl From<WireError> for Stop {
    fn from(e: WireError) -> Self {
        Stop::Protocol(e)
    }
}

/// Notes what a server message tells the session (status, fatal errors,
/// string rules), and decides what the client gets for it.
fn observe(state: &SessionState, tag: u8, body: &[u8]) -> Result<Delivery, Stop> {
    let route = note(state, tag, body)?;
    // The masker sees hidden RowDescriptions too (pgward's own Describes).
    let masked = match state.masker.borrow_mut().on_message(tag, body)? {
        // pgward's own refusal, raised by the server: without its context.
        Masked::Keep if tag == b'E' => match super::denial::clean_refusal(body) {
            Some(clean) => Masked::Replace(clean),
            None => Masked::Keep,
        },
        other => other,
    };
    finish_audited(state);
    let cap = state.row_cap.borrow_mut().on_message(tag);
    Ok(match (route, cap, masked) {
        (Route::Hide, _, _) => Delivery::Hide,
        (Route::Forward, CapAction::Pass, Masked::Keep) => Delivery::Forward,
        (Route::Forward, CapAction::Pass, Masked::Replace(b)) => Delivery::Instead(b),
        (Route::Forward, CapAction::Pass, Masked::Rewrite) => Delivery::Rewrite,
        (Route::Forward, CapAction::Drop, _) => Delivery::Hide,
        (Route::Forward, CapAction::Refuse(e), _) => Delivery::Instead(e),
    })
}

/// Writes the result records of the statements the last message finished,
/// with what the masker did to their results.
fn finish_audited(state: &SessionState) {
    let mut finished = state.audited.borrow_mut();
    if finished.is_empty() {
        return;
    }
    let mut audit = state.audit.borrow_mut();
    let Some(a) = audit.as_mut() else {
        finished.clear();
        return;
    };
    for (n, outcome, tag) in finished.drain(..) {
        let masked = state.masker.borrow_mut().results.drain(..).collect();
        a.finish(n, outcome, tag, masked);
    }
}

/// Tells the audit trail what a reply says about the statement it answers.
fn note_audited(state: &SessionState, tag: u8, body: &[u8]) {
    if !matches!(tag, b'C' | b'E') {
        return;
    }
    let mut audit = state.audit.borrow_mut();
    let Some(a) = audit.as_mut() else { return };
    let Some(n) = state.pipeline.borrow().head_audit() else {
        return;
    };
    if tag == b'C' {
        a.on_complete(n, body);
    } else {
        let fields = ErrorFields::parse(body).ok();
        a.on_error(n, fields.as_ref().and_then(|f| f.code()));
    }
}

fn note(state: &SessionState, tag: u8, body: &[u8]) -> Result<Route, Stop> {
    note_audited(state, tag, body);
    match tag {
        b'Z' => {
            if let Some(&s) = body.first() {
                state.tx_status.set(s);
                state.guard.borrow_mut().on_ready_for_query(s);
                if let Some(slot) = &state.slot {
                    slot.set_activity(super::registry::Activity::idle(s));
                }
                if let (Some(m), Some(at)) = (&state.metrics, state.sent_at.take()) {
                    m.upstream_time(MetricVerdict::Allowed, at.elapsed());
                }
            }
        }
        b'E' if ErrorFields::parse(body).is_ok_and(|f| f.is_fatal()) => {
            state.upstream_fatal.set(true);
        }
        b'S' => {
            // An unreadable report might be one pgward must follow.
            let p = ParameterStatus::parse(body)?;
            match p.name {
                "standard_conforming_strings" => {
                    state
                        .guard
                        .borrow_mut()
                        .set_standard_conforming_strings(p.value == b"on");
                }
                "client_encoding"
                    if !is_supported_client_encoding(&String::from_utf8_lossy(p.value)) =>
                {
                    return Err(halt(
                        state,
                        PgError::fatal("0A000", unsupported_encoding(&String::from_utf8_lossy(p.value)))
                            .with_detail(
                                "the server reported this client_encoding during the session; pgward cannot read statements as the server would, so the session is closed",
                            )
                            .with_hint(ENCODING_HINT),
                    ));
                }
                "client_encoding" => state
                    .guard
                    .borrow_mut()
                    .set_client_encoding(&String::from_utf8_lossy(p.value)),
                _ => {}
            }
        }
        _ => {}
    }
    let mut guard = state.guard.borrow_mut();
    let mut lost = false;
    let route = state.pipeline.borrow_mut().route(tag, |e| match e {
        Event::Settled(ticket, outcome) => guard.settle(ticket, outcome),
        Event::SyncIgnored => guard.sync_ignored(),
        Event::QuerySkipped => guard.query_skipped(),
        Event::LostTrack => lost = true,
        Event::Audited(n, outcome, tag) => state.audited.borrow_mut().push((n, outcome, tag)),
    });
    drop(guard);
    if lost {
        return Err(halt(
            state,
            PgError::fatal(
                "08P01",
                "pgward: lost track of the server's replies after a COPY that failed while the client sent Sync during it",
            )
            .with_hint("reconnect; send Sync only after CopyDone or CopyFail"),
        ));
    }
    Ok(route)
}

/// Stops the session: the client pump forwards nothing more from now on.
fn halt(state: &SessionState, e: PgError) -> Stop {
    tracing::warn!(reason = %e.message, "session halted");
    state.halted.set(true);
    Stop::Halt(e)
}

/// Relays server frames to the client until one side ends.
pub async fn upstream_to_client(
    upstream: &mut FrameReader<OwnedReadHalf<Stream>>,
    client: &ClientSink,
    state: &SessionState,
) -> RelayEnd {
    let mut synthetic = Vec::new();
    loop {
        let mut end = 0;
        let mut need = HEADER_LEN;
        let mut stream_through = None;
        let mut bad = None;
        let mut halted = None;
        let mut pieces = Pieces::default();
        while end < upstream.buf.len() {
            state.pipeline.borrow_mut().take_synthetic(&mut synthetic);
            for b in synthetic.drain(..) {
                pieces.insert(&b, &upstream.buf);
            }
            let rest = &upstream.buf[end..];
            match next(rest, MAX_BACKEND_MESSAGE) {
                Next::Frame(h) => {
                    let range = end..end + h.total;
                    end += h.total;
                    let body = &rest[HEADER_LEN..h.total];
                    let delivered = match observe(state, h.tag, body) {
                        Ok(Delivery::Forward) => {
                            pieces.keep(range, &upstream.buf);
                            Ok(())
                        }
                        Ok(Delivery::Hide) => Ok(()),
                        Ok(Delivery::Instead(b)) => {
                            pieces.insert(&b, &upstream.buf);
                            Ok(())
                        }
                        Ok(Delivery::Rewrite) => {
                            let out = pieces.joined(&upstream.buf);
                            state
                                .masker
                                .borrow_mut()
                                .rewrite(body, out)
                                .map_err(Stop::from)
                        }
                        Err(e) => Err(e),
                    };
                    match delivered {
                        Ok(()) => {}
                        Err(Stop::Protocol(e)) => {
                            end -= h.total;
                            bad = Some(e);
                            break;
                        }
                        Err(Stop::Halt(e)) => {
                            // Neither this message nor anything after it
                            // reaches the client.
                            end -= h.total;
                            halted = Some(e);
                            break;
                        }
                    }
                }
                Next::Need(n, Some(h)) => {
                    // A row being masked must be whole to be rewritten.
                    let masking = h.tag == b'D' && state.masker.borrow().is_active();
                    if h.total >= STREAM_THROUGH && matches!(h.tag, b'D' | b'd') && !masking {
                        // Unmasked rows carry nothing `observe` needs beyond the tag.
                        let route = match observe(state, h.tag, &[]) {
                            Ok(Delivery::Forward) => Route::Forward,
                            Ok(Delivery::Instead(b)) => {
                                pieces.insert(&b, &upstream.buf);
                                Route::Hide
                            }
                            Ok(Delivery::Hide | Delivery::Rewrite) | Err(_) => Route::Hide,
                        };
                        stream_through = Some((h.total, route));
                    }
                    need = n;
                    break;
                }
                Next::Need(n, None) => {
                    need = n;
                    break;
                }
                Next::Invalid(e) => {
                    bad = Some(e);
                    break;
                }
            }
        }
        if let Some((total, route)) = stream_through {
            // Send everything before the large frame, then relay (or drop) the
            // frame itself as it arrives.
            let have = upstream.buf.len() - end;
            if route == Route::Forward {
                pieces.keep(end..upstream.buf.len(), &upstream.buf);
            }
            let len = upstream.buf.len();
            if let Err(e) = forward(client, upstream.take(len).freeze(), pieces).await {
                return RelayEnd::ClientGone(Some(e));
            }
            if let Err(end) = pass_through(upstream, client, total - have, route).await {
                return end;
            }
            continue;
        }
        state.pipeline.borrow_mut().take_synthetic(&mut synthetic);
        for b in synthetic.drain(..) {
            pieces.insert(&b, &upstream.buf);
        }
        if end > 0 || !pieces.is_empty() {
            if let Err(e) = forward(client, upstream.take(end).freeze(), pieces).await {
                return RelayEnd::ClientGone(Some(e));
            }
        }
        if let Some(e) = halted {
            return RelayEnd::Halted(e);
        }
        if let Some(e) = bad {
            return RelayEnd::UpstreamProtocol(e);
        }
        match upstream.fill(need).await {
            Ok(0) => {
                return RelayEnd::UpstreamGone {
                    error: None,
                    explained: state.upstream_fatal.get(),
                }
            }
            Ok(_) => {}
            Err(e) => {
                return RelayEnd::UpstreamGone {
                    error: Some(e),
                    explained: state.upstream_fatal.get(),
                }
            }
        }
    }
}

async fn forward(client: &ClientSink, chunk: Bytes, pieces: Pieces) -> io::Result<()> {
    let mut w = client.lock().await;
    pieces.send(chunk, &mut w).await
}

/// Relays (or drops) exactly `remaining` more bytes of one frame.
async fn pass_through(
    upstream: &mut FrameReader<OwnedReadHalf<Stream>>,
    client: &ClientSink,
    mut remaining: usize,
    route: Route,
) -> Result<(), RelayEnd> {
    while remaining > 0 {
        match upstream.fill(1).await {
            Ok(0) => {
                return Err(RelayEnd::UpstreamGone {
                    error: None,
                    explained: false,
                })
            }
            Ok(_) => {}
            Err(e) => {
                return Err(RelayEnd::UpstreamGone {
                    error: Some(e),
                    explained: false,
                })
            }
        }
        let n = upstream.buf.len().min(remaining);
        remaining -= n;
        let piece = upstream.take(n).freeze();
        if route == Route::Forward {
            let mut pieces = Pieces::default();
            pieces.keep(0..n, &piece);
            if let Err(e) = forward(client, piece, pieces).await {
                return Err(RelayEnd::ClientGone(Some(e)));
            }
        }
    }
    Ok(())
}
