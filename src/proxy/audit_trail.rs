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
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::time::Instant;

use crate::audit::chain::sha256_hex;
use crate::audit::record::{param_text, param_text_binary, Kind, Record, Verdict};
use crate::audit::time::{format, now_micros};
use crate::audit::writer::{AuditStream, Durability, Level, Ticket, WriteFailed};
use crate::policy::Denial;
use crate::sql::encoding::ClientEncoding;
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
    format!("{}-{id}", crate::audit::writer::boot_id())
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
    /// Its text as the client sent it, in the client encoding (Query, Parse).
    pub sent: Option<&'a [u8]>,
    /// The prepared texts it may run, in UTF-8 as pgward keeps them (Bind,
    /// Execute; the first is recorded as `sql`, the others as `other_sql`).
    pub prepared: &'a [Rc<[u8]>],
    /// The prepared statement named.
    pub statement: Option<&'a [u8]>,
    /// The portal named.
    pub portal: Option<&'a [u8]>,
    /// The refusal, when refused.
    pub denial: Option<&'a Denial>,
    /// The Bind's parameters (only asked for with `record_params`).
    pub params: Option<Vec<Parameter<'a>>>,
    /// It may run code, which may reopen portals under any name.
    pub runs_code: bool,
    /// A note on what pgward cannot vouch for.
    pub note: Option<String>,
    /// An Execute's row limit (0: none).
    pub max_rows: u64,
    /// The approval request that lets it run, or that it waits for.
    pub approval: Option<&'a str>,
    /// Who approved it.
    pub approver: Option<&'a str>,
}

impl<'a> Seen<'a> {
    /// A statement of `message` with nothing else known yet.
    pub fn new(message: Message) -> Self {
        Seen {
            message,
            sent: None,
            prepared: &[],
            statement: None,
            portal: None,
            denial: None,
            params: None,
            runs_code: false,
            note: None,
            max_rows: 0,
            approval: None,
            approver: None,
        }
    }
}

/// Prepared texts longer than this are recorded in full once per session;
/// later records of the same text carry its start and its hash, so a client
/// cannot make pgward write a long text again for every short Execute.
const LONG_TEXT: usize = 4096;

/// How many prepared texts' fingerprints a session remembers.
const FINGERPRINTS_KEPT: usize = 16;

/// How many long texts a session remembers having recorded.
const LONG_TEXTS_KEPT: usize = 64;

/// A forwarded statement waiting for its result.
struct Running {
    forwarded: Instant,
    /// The Execute's row limit: a piece that stops there returned that many.
    max_rows: u64,
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
    /// Forwarded runs waiting for their results, by statement: a portal
    /// run in pieces (Executes with a row limit) has one per Execute, and
    /// the server answers them in order.
    running: HashMap<u64, VecDeque<Running>>,
    /// The last statement forwarded that may run code (which may reopen
    /// portals under any name).
    code_n: u64,
    /// Long prepared texts recorded in full (kept alive, so their address
    /// identifies them), with the record that holds each and its hash.
    long_texts: Vec<(Rc<[u8]>, u64, String)>,
    /// Fingerprints of the prepared texts recorded last (kept alive, so
    /// their address identifies them).
    fingerprints: Vec<(Rc<[u8]>, Option<String>)>,
    /// The last record a statement forwarded in this batch needs on disk.
    wait_for: Option<Ticket>,
    /// The statements forwarded in this batch.
    batch: Vec<u64>,
    /// Those of the batch waiting for their records.
    waiting: Vec<u64>,
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
            code_n: 0,
            long_texts: Vec::new(),
            fingerprints: Vec::new(),
            wait_for: None,
            batch: Vec::new(),
            waiting: Vec::new(),
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

    /// Records what happened to an approval request this session made:
    /// `outcome` is `held`, `approved`, `denied`, `expired`, `withdrawn`.
    pub fn approval(&mut self, id: &str, outcome: &str, approver: Option<&str>, reason: &str) {
        let mut r = self.base(Kind::Approval);
        r.approval = Some(id.into());
        r.outcome = Some(outcome.into());
        r.approver = approver.map(Cow::Borrowed);
        r.reason = Some(reason.into());
        self.stream.append(&r);
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
    pub fn connect(
        &mut self,
        auth: &str,
        tls: bool,
        token: Option<&crate::auth::token::TokenIdentity>,
    ) {
        let mut r = self.base(Kind::Connect);
        r.auth = Some(auth.into());
        if let Some(t) = token {
            r.issuer = Some(t.issuer.as_str().into());
            r.jti = t.jti.as_deref().map(Cow::Borrowed);
        }
        r.tls = Some(tls);
        r.policy = Some(self.policy.as_str().into());
        self.stream.append(&r);
    }

    /// Records a statement; returns its number. An allowed Query or
    /// Execute waits for its result under that number; an allowed Bind is
    /// the statement record of the portal it makes (planning may already
    /// run functions), whose Executes report their results under it (the
    /// guard keeps the number with its record of the portal); the Bind
    /// itself reports only a failure.
    pub fn statement(&mut self, seen: &Seen, strings: Strings, encoding: ClientEncoding) -> u64 {
        self.statements += 1;
        let n = self.statements;
        let sent = seen.sent.map(|t| match encoding.decode(t) {
            Ok(text) => text,
            Err(_) => String::from_utf8_lossy(t),
        });
        let fp = match (&sent, seen.prepared.first()) {
            (Some(t), _) => self.fingerprint(t.as_bytes(), strings),
            (None, Some(t)) => self.prepared_fingerprint(t, strings),
            (None, None) => None,
        };
        let prepared: Vec<(String, Option<(String, u64)>)> =
            seen.prepared.iter().map(|t| self.long_text(t, n)).collect();
        let mut r = self.base(Kind::Statement);
        r.n = Some(n);
        r.message = Some(seen.message.name().into());
        r.statement = seen.statement.map(|s| String::from_utf8_lossy(s));
        r.portal = seen.portal.map(|s| String::from_utf8_lossy(s));
        let mut redacted = false;
        let mut text = |t: &str| {
            let out = redact(t, strings);
            redacted |= matches!(out, Cow::Owned(_));
            Cow::Owned(out.into_owned())
        };
        if let Some(t) = &sent {
            r.sql = Some(text(t));
        }
        for (i, (shown, long)) in prepared.into_iter().enumerate() {
            let shown = text(&shown);
            if i == 0 && r.sql.is_none() {
                r.sql = Some(shown);
                if let Some((hash, at)) = long {
                    r.sql_sha256 = Some(hash.into());
                    r.sql_in = Some(at);
                }
            } else {
                r.other_sql.push(shown);
            }
        }
        r.fingerprint = fp.map(Cow::Owned);
        r.params = match (self.record_params, &seen.params) {
            (true, Some(ps)) => Some(
                ps.iter()
                    .map(|p| {
                        p.value.map(|b| match p.format {
                            0 => param_text(b),
                            _ => Cow::Owned(param_text_binary(b)),
                        })
                    })
                    .collect(),
            ),
            _ => None,
        };
        r.policy = Some(self.policy.as_str().into());
        r.approval = seen.approval.map(Cow::Borrowed);
        r.approver = seen.approver.map(Cow::Borrowed);
        match seen.denial {
            None => {
                r.verdict = Some(Verdict::Allowed);
                r.reason = seen.note.as_deref().map(Cow::Borrowed);
            }
            Some(d) => {
                r.verdict = Some(Verdict::Denied);
                r.rule = Some(rule_of(&d.detail).into());
                // A refusal's message can quote the text (a syntax error
                // quotes the token it stopped at).
                r.reason = Some(if redacted {
                    Cow::Owned(redact_quoted(&d.message))
                } else {
                    Cow::Borrowed(d.message.as_str())
                });
                r.sqlstate = Some(d.code.into());
            }
        }
        let ticket = self.stream.append(&r);
        if seen.denial.is_none() {
            self.wait_for = Some(ticket);
            self.batch.push(n);
            if seen.runs_code {
                self.code_n = n;
            }
            self.run(n, seen.max_rows);
        }
        n
    }

    /// An Execute forwarded of a portal the Bind recorded as `bound` made:
    /// that number, when pgward can vouch that the portal is still what the
    /// Bind made (no code ran since that could have reopened it).
    pub fn execute(&mut self, bound: Option<u64>, max_rows: u64) -> Option<u64> {
        let n = bound?;
        if self.code_n > n {
            return None;
        }
        self.run(n, max_rows);
        Some(n)
    }

    /// The note for an Execute whose portal may have been reopened.
    pub fn reopened_note(&self, bound: Option<u64>) -> Option<String> {
        let n = bound?;
        (self.code_n > n).then(|| {
            format!(
                "its Bind is #{n}; statement #{} ran code since, which may have reopened the portal with other SQL",
                self.code_n
            )
        })
    }

    /// Statement `n` is running: its result will follow.
    fn run(&mut self, n: u64, max_rows: u64) {
        self.running.entry(n).or_default().push_back(Running {
            forwarded: Instant::now(),
            max_rows,
            tags: Vec::new(),
            rows: 0,
            sqlstate: None,
        });
    }

    /// The oldest run of statement `n` waiting for its result.
    fn take_run(&mut self, n: u64) -> Option<Running> {
        let queue = self.running.get_mut(&n)?;
        let run = queue.pop_front();
        if queue.is_empty() {
            self.running.remove(&n);
        }
        run
    }

    /// A prepared text as the record shows it: in full the first time in
    /// the session; a long one after that as its start, with its hash and
    /// the record holding it.
    fn long_text(&mut self, t: &Rc<[u8]>, n: u64) -> (String, Option<(String, u64)>) {
        if t.len() <= LONG_TEXT {
            return (String::from_utf8_lossy(t).into_owned(), None);
        }
        if let Some((_, at, hash)) = self.long_texts.iter().find(|(k, _, _)| Rc::ptr_eq(k, t)) {
            // Stored texts are UTF-8: back up to a character's first byte.
            let mut end = 256;
            while end > 0 && t[end] & 0xC0 == 0x80 {
                end -= 1;
            }
            let start = String::from_utf8_lossy(&t[..end]).into_owned() + "...";
            return (start, Some((hash.clone(), *at)));
        }
        if self.long_texts.len() == LONG_TEXTS_KEPT {
            self.long_texts.remove(0);
        }
        self.long_texts.push((t.clone(), n, sha256_hex(t, 32)));
        (String::from_utf8_lossy(t).into_owned(), None)
    }

    /// The batch's records could not be written: its statements never
    /// reached the server, so no result will be recorded for them.
    pub fn batch_failed(&mut self) {
        for n in self.waiting.drain(..) {
            self.running.remove(&n);
        }
    }

    /// The statement was recorded as allowed but is not forwarded after
    /// all (the server skips it): its result says so at once.
    pub fn not_forwarded(&mut self, n: u64) {
        self.finish(n, Outcome::Skipped, 0, Vec::new());
    }

    /// A CommandComplete for statement `n`.
    pub fn on_complete(&mut self, n: u64, body: &[u8]) {
        if let Some(r) = self.running.get_mut(&n).and_then(|q| q.front_mut()) {
            let tag = String::from_utf8_lossy(body.strip_suffix(&[0]).unwrap_or(body));
            if let Some(count) = tag.rsplit(' ').next().and_then(|c| c.parse::<u64>().ok()) {
                r.rows += count;
            }
            r.tags.push(tag.into_owned());
        }
    }

    /// An ErrorResponse for statement `n`.
    pub fn on_error(&mut self, n: u64, sqlstate: Option<&str>) {
        if let Some(r) = self.running.get_mut(&n).and_then(|q| q.front_mut()) {
            r.sqlstate = sqlstate.map(str::to_string);
        }
    }

    /// Statement `n` is done: its result record.
    pub fn finish(&mut self, n: u64, outcome: Outcome, tag: u8, masked: Vec<MaskedResult>) {
        if (outcome, tag) == (Outcome::Done, b'2') {
            // BindComplete: the portal's Executes report its results.
            self.take_run(n);
            return;
        }
        let Some(run) = self.take_run(n) else {
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
        r.rows = match (outcome, tag) {
            (Outcome::Done, b's') => Some(run.max_rows),
            _ => (!run.tags.is_empty()).then_some(run.rows),
        };
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
        self.waiting = std::mem::take(&mut self.batch);
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
            while let Some(run) = self.take_run(n) {
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
        fingerprint_hex(text, strings, &mut self.scratch)
    }

    /// The fingerprint of a prepared text, worked out once per text (a
    /// prepared statement bound again and again is the same `Rc`).
    fn prepared_fingerprint(&mut self, text: &Rc<[u8]>, strings: Strings) -> Option<String> {
        if let Some((_, fp)) = self.fingerprints.iter().find(|(t, _)| Rc::ptr_eq(t, text)) {
            return fp.clone();
        }
        let fp = self.fingerprint(text, strings);
        if self.fingerprints.len() == FINGERPRINTS_KEPT {
            self.fingerprints.remove(0);
        }
        self.fingerprints.push((text.clone(), fp.clone()));
        fp
    }
}

/// A text's fingerprint as records and approval requests show it: the
/// first 16 hex digits of the SHA-256 of its normalized form (`scratch`
/// is reused); `None` when it does not lex.
pub fn fingerprint_hex(text: &[u8], strings: Strings, scratch: &mut Fingerprint) -> Option<String> {
    fingerprint(text, strings, scratch).ok()?;
    Some(sha256_hex(&scratch.key, 8))
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

/// A message with every double-quoted part replaced by `"***"`.
fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut parts = message.split('"');
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    for (i, part) in parts.enumerate() {
        out.push('"');
        out.push_str(if i % 2 == 0 { "***" } else { part });
    }
    out
}

/// The rule a refusal's detail names (`rule: operations; ...`).
pub fn rule_of(detail: &str) -> &str {
    detail
        .strip_prefix("rule: ")
        .map(|r| r.split([';', ' ']).next().unwrap_or(r))
        .unwrap_or("built-in")
}

/// Words that mark a text as possibly carrying a secret in its literals:
/// names of secrets, functions that take keys or connection strings, URLs
/// with credentials (`://`), and `u&` (a Unicode-escaped name can spell any
/// of them).
const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "secret",
    "credential",
    "token",
    "key",
    "auth",
    "crypt",
    "pgp_",
    "dblink",
    "conninfo",
    "://",
    "u&",
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
    // In SET, the value may be a bare word: everything after `=` or TO.
    let (mut at_start, mut set, mut value) = (true, false, false);
    for t in tokens(b, strings) {
        // Unlexable: nothing of it can be shown safely.
        let Ok(t) = t else {
            return Cow::Owned("(not recorded: it mentions a secret and cannot be lexed)".into());
        };
        let word = &text[t.start..t.end];
        if at_start {
            set = word.eq_ignore_ascii_case("set");
            value = false;
        }
        at_start = word == ";";
        if !out.is_empty() {
            out.push(' ');
        }
        let first = b[t.start];
        let string = t.kind == TokenKind::Literal && !first.is_ascii_digit() && first != b'.';
        if string || (value && !at_start) {
            out.push_str("'***'");
        } else {
            out.push_str(word);
        }
        if set && (word == "=" || word.eq_ignore_ascii_case("to")) {
            value = true;
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
        assert_eq!(
            redact(
                "CREATE USER MAPPING FOR x SERVER s OPTIONS (U&\"p\\0061sswd\" 'y')",
                s
            ),
            "CREATE USER MAPPING FOR x SERVER s OPTIONS ( U&\"p\\0061sswd\" '***' )"
        );
        assert_eq!(
            redact("SELECT dblink_connect('postgresql://u:hunter2@h/db')", s),
            "SELECT dblink_connect ( '***' )"
        );
        assert_eq!(
            redact("SET app.secret_token = hunter2abc; SELECT 1", s),
            "SET app . secret_token = '***' ; SELECT 1"
        );
        assert_eq!(
            redact_quoted(r#"pgward: syntax error at or near "'hunter2'" here"#),
            r#"pgward: syntax error at or near "***" here"#
        );
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
