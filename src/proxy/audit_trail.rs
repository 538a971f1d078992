//! A session's audit trail: the records of one session (its start, each
//! statement with its verdict, each result, its end), built from what the
//! relay sees and appended to the worker's audit stream. The relay asks it
//! which record a batch must wait for before anything is forwarded.
//!
//! Statement texts are recorded as the server reads them; a text that
//! mentions a password, secret, credential or token has its string
//! literals replaced first, so passwords set by SQL never reach the log.
//! Masked values never do either: results are recorded as tags, row counts
//! and masked column names, errors as their SQLSTATE only.

use std::borrow::Cow;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

use crate::audit::record::{param_text, param_text_binary, Kind, Record, Verdict};
use crate::audit::time::{format, now_micros};
use crate::audit::writer::{AuditStream, Durability, Level, Ticket, WriteFailed};
use crate::policy::Denial;
use crate::sql::fingerprint::{fingerprint, tokens, Fingerprint, Kind as TokenKind, Strings};
use crate::wire::frontend::Parameter;

use super::masker::MaskedResult;
use super::pipeline::Outcome;

/// Who a session is, as every record of it says.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The session id, unique across restarts.
    pub session: String,
    /// The authenticated user.
    pub user: String,
    /// The user's roles.
    pub roles: Vec<String>,
    /// The client's address.
    pub client: String,
    /// The database name the client asked for.
    pub database: String,
}

/// The session id of worker-local session number `id`: a random prefix
/// drawn once per process, so ids never repeat across restarts.
pub fn session_id(id: u64) -> String {
    static BOOT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let boot = BOOT.get_or_init(|| {
        let mut out = Vec::new();
        crate::audit::chain::push_hex(&mut out, &crate::auth::scram::random_bytes::<4>());
        String::from_utf8(out).unwrap_or_default()
    });
    format!("{boot}-{id}")
}

/// The protocol message a statement came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    Query,
    Parse,
    Bind,
    Describe,
    Execute,
    FunctionCall,
}

impl Message {
    fn name(self) -> &'static str {
        match self {
            Message::Query => "query",
            Message::Parse => "parse",
            Message::Bind => "bind",
            Message::Describe => "describe",
            Message::Execute => "execute",
            Message::FunctionCall => "function_call",
        }
    }
}

/// One statement as the relay saw it.
pub struct Seen<'a> {
    /// The message it came in.
    pub message: Message,
    /// The SQL texts it may run (the first is recorded as `sql`).
    pub texts: &'a [&'a [u8]],
    /// The prepared statement named.
    pub statement: Option<&'a [u8]>,
    /// The portal named.
    pub portal: Option<&'a [u8]>,
    /// The refusal, when refused.
    pub denial: Option<&'a Denial>,
}

/// A forwarded statement waiting for its result.
struct Running {
    forwarded: Instant,
    tags: Vec<String>,
    rows: u64,
    sqlstate: Option<String>,
}

/// The trail of one session.
pub struct SessionAudit {
    stream: Rc<AuditStream>,
    durability: Durability,
    record_params: bool,
    who: Identity,
    policy: String,
    started: Instant,
    /// Statements recorded so far (the last one's number).
    statements: u64,
    running: HashMap<u64, Running>,
    /// Each portal's parameters at its last Bind (with record_params).
    params: HashMap<Vec<u8>, Vec<Option<String>>>,
    /// The last record a statement forwarded in this batch needs on disk.
    wait_for: Option<Ticket>,
    scratch: Fingerprint,
}

impl SessionAudit {
    /// A trail for one session, writing to the worker's stream.
    pub fn new(
        stream: Rc<AuditStream>,
        durability: Durability,
        record_params: bool,
        who: Identity,
        policy: String,
    ) -> Self {
        SessionAudit {
            stream,
            durability,
            record_params,
            who,
            policy,
            started: Instant::now(),
            statements: 0,
            running: HashMap::new(),
            params: HashMap::new(),
            wait_for: None,
            scratch: Fingerprint::default(),
        }
    }

    /// A record with this session's identity filled in.
    fn base(&self, kind: Kind) -> Record<'_> {
        Record {
            t: format(now_micros()).into(),
            kind,
            session: Some(self.who.session.as_str().into()),
            user: Some(self.who.user.as_str().into()),
            roles: self.who.roles.iter().map(|r| r.as_str().into()).collect(),
            client: Some(self.who.client.as_str().into()),
            database: Some(self.who.database.as_str().into()),
            ..Record::default()
        }
    }

    /// The configuration's version changed (a reload).
    pub fn set_policy(&mut self, policy: String) {
        self.policy = policy;
    }

    /// False while the stream cannot write: statements must be refused.
    pub fn is_healthy(&self) -> bool {
        self.stream.is_healthy()
    }

    /// The stream, when its last batch failed (to try it again).
    pub fn failing(&self) -> Option<Rc<AuditStream>> {
        (!self.stream.is_healthy()).then(|| self.stream.clone())
    }

    /// Whether Bind parameters are recorded.
    pub fn records_params(&self) -> bool {
        self.record_params
    }

    /// Records the session's start.
    pub fn connect(&mut self, auth: &str, tls: bool) {
        let mut r = self.base(Kind::Connect);
        r.auth = Some(auth.into());
        r.tls = Some(tls);
        r.policy = Some(self.policy.as_str().into());
        self.stream.append(&r);
    }

    /// Records the parameters of a Bind forwarded for `portal`: text ones
    /// as text, binary ones in hex.
    pub fn bound(&mut self, portal: &[u8], params: Vec<Parameter>) {
        let texts = params
            .into_iter()
            .map(|p| {
                p.value.map(|b| match p.format {
                    0 => param_text(b).into_owned(),
                    _ => param_text_binary(b),
                })
            })
            .collect();
        self.params.insert(portal.to_vec(), texts);
    }

    /// Records a statement; returns its number, which an allowed one's
    /// result will carry. `strings` is how the server lexes it.
    pub fn statement(&mut self, seen: &Seen, strings: Strings) -> u64 {
        self.statements += 1;
        let n = self.statements;
        let fp = seen
            .texts
            .first()
            .and_then(|t| self.fingerprint(t, strings));
        let params = match (self.record_params, seen.message, seen.portal) {
            (true, Message::Execute, Some(p)) => self.params.get(p).cloned(),
            _ => None,
        };
        let text = |t: &[u8]| redact(&String::from_utf8_lossy(t), strings).into_owned();
        let mut texts = seen.texts.iter().map(|t| Cow::Owned(text(t)));
        let mut r = self.base(Kind::Statement);
        r.n = Some(n);
        r.message = Some(seen.message.name().into());
        r.statement = seen.statement.map(|s| String::from_utf8_lossy(s));
        r.portal = seen.portal.map(|s| String::from_utf8_lossy(s));
        r.sql = texts.next();
        r.other_sql = texts.collect();
        r.fingerprint = fp.map(Cow::Owned);
        r.params = params.map(|ps| ps.into_iter().map(|p| p.map(Cow::Owned)).collect());
        r.policy = Some(self.policy.as_str().into());
        match seen.denial {
            None => r.verdict = Some(Verdict::Allowed),
            Some(d) => {
                r.verdict = Some(Verdict::Denied);
                r.rule = Some(rule_of(&d.detail).into());
                r.reason = Some(d.message.as_str().into());
                r.sqlstate = Some(d.code.into());
            }
        }
        let ticket = self.stream.append(&r);
        if seen.denial.is_none() {
            self.wait_for = Some(ticket);
            self.running.insert(
                n,
                Running {
                    forwarded: Instant::now(),
                    tags: Vec::new(),
                    rows: 0,
                    sqlstate: None,
                },
            );
        }
        n
    }

    /// The statement was recorded as allowed but is not forwarded after
    /// all (the server skips it): its result says so at once.
    pub fn not_forwarded(&mut self, n: u64) {
        self.finish(n, Outcome::Skipped, 0, Vec::new());
    }

    /// A CommandComplete for statement `n`.
    pub fn on_complete(&mut self, n: u64, body: &[u8]) {
        if let Some(r) = self.running.get_mut(&n) {
            let tag = String::from_utf8_lossy(body.strip_suffix(&[0]).unwrap_or(body));
            if let Some(count) = tag.rsplit(' ').next().and_then(|c| c.parse::<u64>().ok()) {
                r.rows += count;
            }
            r.tags.push(tag.into_owned());
        }
    }

    /// An ErrorResponse for statement `n`.
    pub fn on_error(&mut self, n: u64, sqlstate: Option<&str>) {
        if let Some(r) = self.running.get_mut(&n) {
            r.sqlstate = sqlstate.map(str::to_string);
        }
    }

    /// Statement `n` is done: its result record.
    pub fn finish(&mut self, n: u64, outcome: Outcome, tag: u8, masked: Vec<MaskedResult>) {
        let Some(run) = self.running.remove(&n) else {
            return;
        };
        let mut r = self.base(Kind::Result);
        r.n = Some(n);
        r.outcome = Some(
            match (outcome, tag) {
                (Outcome::Skipped, _) => "skipped",
                (Outcome::Failed, _) => "error",
                (Outcome::Done, b's') => "suspended",
                (Outcome::Done, _) => "ok",
            }
            .into(),
        );
        r.duration_us = Some(run.forwarded.elapsed().as_micros() as u64);
        r.rows = (!run.tags.is_empty()).then_some(run.rows);
        r.tags = run.tags.into_iter().map(Cow::Owned).collect();
        r.sqlstate = run.sqlstate.map(Cow::Owned);
        let mut columns: Vec<String> = Vec::new();
        let mut cells = 0;
        for m in masked {
            cells += m.cells;
            for c in m.columns {
                if !columns.contains(&c) {
                    columns.push(c);
                }
            }
        }
        if !columns.is_empty() {
            r.masked = columns.into_iter().map(Cow::Owned).collect();
            r.masked_cells = Some(cells);
        }
        self.stream.append(&r);
    }

    /// The record this batch must see synced (strict) or written (written;
    /// async only when the stream is behind) before it is forwarded.
    pub fn take_wait(&mut self) -> Option<(Ticket, Level)> {
        let t = self.wait_for.take()?;
        match self.durability {
            Durability::Strict => Some((t, Level::Synced)),
            Durability::Written => Some((t, Level::Written)),
            Durability::Async => self.stream.is_backlogged().then_some((t, Level::Written)),
        }
    }

    /// The stream, to wait on.
    pub fn stream(&self) -> Rc<AuditStream> {
        self.stream.clone()
    }

    /// Records the session's end: statements still unanswered first.
    pub fn disconnect(&mut self, reason: &str) {
        let mut open: Vec<u64> = self.running.keys().copied().collect();
        open.sort_unstable();
        for n in open {
            if let Some(run) = self.running.remove(&n) {
                let mut r = self.base(Kind::Result);
                r.n = Some(n);
                r.outcome = Some("unanswered".into());
                r.duration_us = Some(run.forwarded.elapsed().as_micros() as u64);
                self.stream.append(&r);
            }
        }
        let mut r = self.base(Kind::Disconnect);
        r.duration_us = Some(self.started.elapsed().as_micros() as u64);
        r.statements = Some(self.statements);
        r.reason = Some(reason.into());
        self.stream.append(&r);
    }

    /// First 16 hex digits of the SHA-256 of the text's normalized form.
    fn fingerprint(&mut self, text: &[u8], strings: Strings) -> Option<String> {
        fingerprint(text, strings, &mut self.scratch).ok()?;
        let d = ring::digest::digest(&ring::digest::SHA256, &self.scratch.key);
        let mut out = Vec::with_capacity(16);
        crate::audit::chain::push_hex(&mut out, &d.as_ref()[..8]);
        String::from_utf8(out).ok()
    }
}

/// Records a refused login or session start (no session trail exists yet).
pub fn login_failed(
    stream: &AuditStream,
    client: &str,
    user: Option<&str>,
    database: Option<&str>,
    reason: &str,
) {
    let r = Record {
        t: format(now_micros()).into(),
        kind: Kind::LoginFailed,
        client: Some(client.into()),
        user: user.map(Into::into),
        database: database.map(Into::into),
        reason: Some(reason.into()),
        ..Record::default()
    };
    stream.append(&r);
}

/// The refusal for a statement while the audit log cannot be written.
pub fn unwritable() -> Denial {
    Denial {
        code: "58030",
        message: "pgward: the audit log cannot be written, so no statement runs".into(),
        detail: "rule: audit; every statement must be recorded before it runs".into(),
        hint: "ask the operator to free space in the audit directory; statements run again once it can be written".into(),
    }
}

/// The FATAL error for a session whose batch could not be recorded.
pub fn write_failed(e: &WriteFailed) -> crate::wire::error_response::PgError {
    crate::wire::error_response::PgError::fatal(
        "58030",
        "pgward: the audit log cannot be written; the statements sent were not run",
    )
    .with_detail(format!("rule: audit; {}", e.0))
    .with_hint("reconnect once the operator has freed space in the audit directory")
}

/// The rule a refusal's detail names (`rule: operations; ...`).
fn rule_of(detail: &str) -> &str {
    detail
        .strip_prefix("rule: ")
        .map(|r| r.split([';', ' ']).next().unwrap_or(r))
        .unwrap_or("built-in")
}

/// Words that mark a text as possibly carrying a secret in its literals.
const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "credential",
    "token",
    "api_key",
    "apikey",
];

/// When the text mentions a secret (in any case, anywhere, literals and
/// comments included): its tokens joined by spaces, string literals
/// replaced by `'***'` and comments left out. Otherwise the text itself.
pub fn redact(text: &str, strings: Strings) -> Cow<'_, str> {
    let lower = text.to_ascii_lowercase();
    if !SECRET_WORDS.iter().any(|w| lower.contains(w)) {
        return Cow::Borrowed(text);
    }
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    for t in tokens(b, strings) {
        // Unlexable: nothing of it can be shown safely.
        let Ok(t) = t else {
            return Cow::Owned("(not recorded: it mentions a secret and cannot be lexed)".into());
        };
        if !out.is_empty() {
            out.push(' ');
        }
        let first = b[t.start];
        if t.kind == TokenKind::Literal && !first.is_ascii_digit() && first != b'.' {
            out.push_str("'***'");
        } else {
            out.push_str(&text[t.start..t.end]);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_literals_are_replaced() {
        let s = Strings::Standard;
        assert_eq!(
            redact("ALTER ROLE bob PASSWORD 'hunter2'", s),
            "ALTER ROLE bob PASSWORD '***'"
        );
        assert_eq!(
            redact("SELECT dblink_connect($$host=x password=y$$), 1 -- pw", s),
            "SELECT dblink_connect ( '***' ) , 1"
        );
        assert_eq!(
            redact("SELECT E'a\\'b' AS token, x FROM t", s),
            "SELECT '***' AS token , x FROM t"
        );
        assert_eq!(
            redact("SELECT 'bob' FROM users", s),
            "SELECT 'bob' FROM users"
        );
        assert!(redact("SELECT 'password", s).starts_with("(not recorded"));
    }

    #[test]
    fn rules_come_from_the_detail() {
        assert_eq!(
            rule_of("rule: operations; delete is not granted"),
            "operations"
        );
        assert_eq!(rule_of("rule: catalog = false"), "catalog");
        assert_eq!(rule_of("something else"), "built-in");
    }
}
