//! What `show` and `replay` display: one record, or a `statement` record
//! joined with its `result` (same session and `n`), with owned fields so it
//! can wait for its result while the log is read on.

use super::reader::Parser;
use super::record::{Kind, Record, Verdict};

/// A record (and, for a statement, its result) as shown.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Event {
    /// Its time, as written.
    pub t: String,
    /// Its time, microseconds since the epoch (0 when unreadable).
    pub micros: u64,
    /// What it is.
    pub kind: Kind,
    /// The session.
    pub session: String,
    /// The statement's number in its session.
    pub n: Option<u64>,
    /// The user.
    pub user: String,
    /// The database.
    pub database: String,
    /// The client's address.
    pub client: String,
    /// How the client authenticated.
    pub auth: String,
    /// Whether the client used TLS.
    pub tls: Option<bool>,
    /// The user's roles.
    pub roles: Vec<String>,
    /// The protocol message that carried the statement.
    pub message: String,
    /// Allowed or denied.
    pub verdict: Option<Verdict>,
    /// The rule that decided.
    pub rule: String,
    /// Why it was refused, a login failed or a session ended.
    pub reason: String,
    /// The SQL text.
    pub sql: String,
    /// How the statement ended (from its result), or what happened to an
    /// approval request.
    pub outcome: String,
    /// The approval request it concerns, or that let it run.
    pub approval: String,
    /// Who approved.
    pub approver: String,
    /// Command tags (from its result).
    pub tags: Vec<String>,
    /// Rows returned or affected.
    pub rows: Option<u64>,
    /// The SQLSTATE of a failure or refusal.
    pub sqlstate: String,
    /// Microseconds the server took, or the session's length.
    pub duration_us: Option<u64>,
    /// Masked columns.
    pub masked: Vec<String>,
    /// Masked cells.
    pub masked_cells: Option<u64>,
    /// Statements a session sent (`disconnect`).
    pub statements: Option<u64>,
    /// Records that could not be written (`recovered`).
    pub lost: Option<u64>,
    /// Whether it is complete: its result was joined, or none will come.
    pub answered: bool,
    /// The lines it was made from, unchanged, for `--json`.
    pub lines: Vec<Vec<u8>>,
}

fn owned(s: &Option<std::borrow::Cow<'_, str>>) -> String {
    printable(s.as_deref().unwrap_or_default())
}

fn all(v: &[std::borrow::Cow<'_, str>]) -> Vec<String> {
    v.iter().map(|s| printable(s)).collect()
}

/// A field as it can be put on an operator's terminal: line breaks and
/// tabs as spaces; other control characters (escape sequences could
/// rewrite what the terminal shows), bidirectional overrides and Unicode
/// line separators as `\u{..}`.
pub fn printable(s: &str) -> String {
    let hostile = |c: char| {
        c.is_control()
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
    };
    if !s.chars().any(hostile) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' | '\r' | '\t' => out.push(' '),
            c if hostile(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

impl Event {
    /// Parses `line` (left unchanged) into an event; `Err` says why it is
    /// not a record.
    pub fn parse(line: &[u8], parser: &mut Parser, scratch: &mut Vec<u8>) -> Result<Event, String> {
        scratch.clear();
        scratch.extend_from_slice(line);
        let r = parser.record(scratch).map_err(|e| e.to_string())?;
        let mut e = Event::from_record(&r);
        e.lines.push(line.to_vec());
        Ok(e)
    }

    /// The event a record makes on its own.
    pub fn from_record(r: &Record<'_>) -> Event {
        Event {
            t: r.t.to_string(),
            micros: super::time::parse(&r.t).unwrap_or(0),
            kind: r.kind,
            session: owned(&r.session),
            n: r.n,
            user: owned(&r.user),
            database: owned(&r.database),
            client: owned(&r.client),
            auth: owned(&r.auth),
            tls: r.tls,
            roles: all(&r.roles),
            message: owned(&r.message),
            verdict: r.verdict,
            rule: owned(&r.rule),
            reason: owned(&r.reason),
            sql: owned(&r.sql),
            outcome: owned(&r.outcome),
            approval: owned(&r.approval),
            approver: owned(&r.approver),
            tags: all(&r.tags),
            rows: r.rows,
            sqlstate: owned(&r.sqlstate),
            duration_us: r.duration_us,
            masked: all(&r.masked),
            masked_cells: r.masked_cells,
            lost: r.lost,
            statements: r.statements,
            answered: false,
            lines: Vec::new(),
        }
    }

    /// Joins a statement with its result. A portal run in pieces (Executes
    /// with a row limit) has a `suspended` result per piece before its last:
    /// the statement stays open and the pieces add up.
    pub fn answer(&mut self, result: Event) {
        let more = self.outcome == "suspended";
        self.answered = result.outcome != "suspended";
        self.outcome = result.outcome;
        let sum = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) if more => Some(a + b),
            (a, b) if more => a.or(b),
            (_, b) => b,
        };
        self.rows = sum(self.rows, result.rows);
        self.duration_us = sum(self.duration_us, result.duration_us);
        self.masked_cells = sum(self.masked_cells, result.masked_cells);
        if more {
            self.tags.extend(result.tags);
            for m in result.masked {
                if !self.masked.contains(&m) {
                    self.masked.push(m);
                }
            }
        } else {
            self.tags = result.tags;
            self.masked = result.masked;
        }
        if !result.sqlstate.is_empty() {
            self.sqlstate = result.sqlstate;
        }
        if self.reason.is_empty() {
            self.reason = result.reason;
        }
        self.lines.extend(result.lines);
    }

    /// Whether a statement was allowed and its result masked something.
    pub fn is_masked(&self) -> bool {
        self.verdict == Some(Verdict::Allowed) && !self.masked.is_empty()
    }

    /// What the verdict column says: the verdict (`masked` for an allowed
    /// statement with masked columns), or the kind of record.
    pub fn verdict_text(&self) -> &'static str {
        match (self.kind, self.verdict) {
            (Kind::Statement, _) if self.is_masked() => "masked",
            (Kind::Statement, Some(Verdict::Allowed)) => "allowed",
            (Kind::Statement, Some(Verdict::Denied)) => "denied",
            (Kind::Statement, None) => "?",
            (Kind::Start, _) => "start",
            (Kind::Connect, _) => "connect",
            (Kind::LoginFailed, _) => "login_failed",
            (Kind::Result, _) => "result",
            (Kind::Disconnect, _) => "disconnect",
            (Kind::Recovered, _) => "recovered",
            (Kind::Approval, _) => "approval",
        }
    }

    /// Tags, or rows when there are none.
    pub fn rows_text(&self) -> String {
        match (self.tags.as_slice(), self.rows) {
            ([], Some(r)) => r.to_string(),
            ([], None) => String::new(),
            (tags, _) => tags.join(","),
        }
    }
}

/// A duration for people: `850us`, `12.3ms`, `4.20s`.
pub fn duration_text(us: Option<u64>) -> String {
    match us {
        None => String::new(),
        Some(us) if us < 1_000 => format!("{us}us"),
        Some(us) if us < 1_000_000 => format!("{:.1}ms", us as f64 / 1e3),
        Some(us) => format!("{:.2}s", us as f64 / 1e6),
    }
}

/// SQL on one line: runs of whitespace made one space, cut to `max` chars.
pub fn one_line(sql: &str, max: usize) -> String {
    let mut out = String::with_capacity(sql.len().min(max + 3));
    for (i, word) in sql.split_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(word);
        if out.chars().count() > max {
            let cut: String = out.chars().take(max).collect();
            return cut + "...";
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_controls_are_shown_escaped() {
        assert_eq!(
            printable("a\r\x1b[2K\u{202e}b\nc"),
            "a \\u{1b}[2K\\u{202e}b c"
        );
        assert_eq!(printable("plain é"), "plain é");
    }

    #[test]
    fn texts_for_people() {
        assert_eq!(one_line("SELECT *\n  FROM\tt ", 100), "SELECT * FROM t");
        assert_eq!(one_line("SELECT 123456", 8), "SELECT 1...");
        assert_eq!(one_line("é é é", 3), "é é...");
        assert_eq!(duration_text(Some(850)), "850us");
        assert_eq!(duration_text(Some(12_340)), "12.3ms");
        assert_eq!(duration_text(Some(4_200_000)), "4.20s");
    }
}
