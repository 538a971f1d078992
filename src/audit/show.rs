//! `pgward audit show`: the audit log as a table for people, one row per
//! statement (joined with its result) and per session event, or as the
//! matching JSON lines unchanged. Streams are merged in time order; with
//! `--follow` new records are printed as they are appended.
//!
//! A statement row waits for its result, so rows come out in statement
//! order once answered; with `--follow` a row comes out as soon as it is
//! complete, so a long statement does not hold back the others.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

use super::event::{duration_text, one_line, Event};
use super::merge::{self, Merge};
use super::reader::{Parser, ReadError};
use super::record::{Kind, Verdict};

/// Which statements `--verdict` keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerdictFilter {
    /// Allowed (masked ones included).
    Allowed,
    /// Denied.
    Denied,
    /// Allowed, with columns masked in the result.
    Masked,
}

impl std::str::FromStr for VerdictFilter {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "allowed" => Ok(VerdictFilter::Allowed),
            "denied" => Ok(VerdictFilter::Denied),
            "masked" => Ok(VerdictFilter::Masked),
            _ => Err(format!("{s:?} is not a verdict: allowed, denied or masked")),
        }
    }
}

/// What to show.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this session.
    pub session: Option<String>,
    /// Only this user.
    pub user: Option<String>,
    /// Only statements with this verdict.
    pub verdict: Option<VerdictFilter>,
    /// Only records at or after this time (microseconds since the epoch).
    pub since: Option<u64>,
}

impl Filter {
    /// Whether `e` can match before its result is known.
    fn may_match(&self, e: &Event) -> bool {
        let is = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        let narrowed = self.session.is_some() || self.user.is_some() || self.verdict.is_some();
        if e.kind == Kind::Start && narrowed {
            return false;
        }
        if !is(&self.session, &e.session) || !is(&self.user, &e.user) {
            return false;
        }
        match self.verdict {
            None => true,
            Some(_) if e.kind != Kind::Statement => false,
            Some(VerdictFilter::Denied) => e.verdict == Some(Verdict::Denied),
            Some(_) => e.verdict == Some(Verdict::Allowed),
        }
    }

    /// Whether a complete `e` matches.
    fn matches(&self, e: &Event) -> bool {
        self.may_match(e) && (self.verdict != Some(VerdictFilter::Masked) || e.is_masked())
    }
}

/// What `pgward audit show` was asked.
#[derive(Debug, Clone)]
pub struct Options {
    /// The audit directory.
    pub dir: PathBuf,
    /// What to keep.
    pub filter: Filter,
    /// Print the matching records' lines unchanged.
    pub json: bool,
    /// Keep printing new records until interrupted.
    pub follow: bool,
}

/// How often `--follow` looks for new records.
const POLL: Duration = Duration::from_millis(200);

/// Joins statements with their results and prints rows in order.
struct Table<'w, W: Write> {
    filter: Filter,
    json: bool,
    follow: bool,
    out: &'w mut W,
    /// Rows not printed yet, by arrival.
    rows: BTreeMap<u64, Event>,
    next_id: u64,
    /// Statements waiting for their result: (session, n) -> row id.
    waiting: HashMap<(String, u64), u64>,
    /// Each open session's user and database, for rows that lack them.
    sessions: HashMap<String, (String, String)>,
    parser: Parser,
    scratch: Vec<u8>,
    header: bool,
}

impl<W: Write> Table<'_, W> {
    fn add(&mut self, line: &[u8]) -> io::Result<()> {
        let mut e = match Event::parse(line, &mut self.parser, &mut self.scratch) {
            Ok(e) => e,
            Err(why) => {
                eprintln!("pgward: passing over a line that is not a record ({why})");
                return Ok(());
            }
        };
        if let Some((user, database)) = self.sessions.get(&e.session) {
            if e.user.is_empty() {
                e.user.clone_from(user);
            }
            if e.database.is_empty() {
                e.database.clone_from(database);
            }
        }
        match e.kind {
            Kind::Connect => {
                self.sessions
                    .insert(e.session.clone(), (e.user.clone(), e.database.clone()));
            }
            Kind::Disconnect => {
                self.sessions.remove(&e.session);
                // Statements the session never saw answered are complete.
                let session = e.session.clone();
                let ids: Vec<u64> = self
                    .waiting
                    .iter()
                    .filter(|((s, _), _)| *s == session)
                    .map(|(_, id)| *id)
                    .collect();
                self.waiting.retain(|(s, _), _| *s != session);
                for id in ids {
                    self.complete(id)?;
                }
            }
            Kind::Result => {
                let key = (e.session.clone(), e.n.unwrap_or(0));
                if let Some(id) = self.waiting.remove(&key) {
                    let mut done = true;
                    if let Some(row) = self.rows.get_mut(&id) {
                        row.answer(e);
                        done = row.answered;
                    }
                    if done {
                        self.complete(id)?;
                    } else {
                        // A piece of a portal run in pieces: more follow.
                        self.waiting.insert(key, id);
                    }
                }
                // A result without its statement (before --since, or
                // filtered out) shows nothing.
                return self.flush();
            }
            _ => {}
        }
        if self.filter.since.is_some_and(|s| e.micros < s) || !self.filter.may_match(&e) {
            return self.flush();
        }
        if e.kind == Kind::Start && !self.json {
            return Ok(());
        }
        let id = self.next_id;
        self.next_id += 1;
        let waits = e.kind == Kind::Statement && e.verdict == Some(Verdict::Allowed);
        if waits {
            self.waiting
                .insert((e.session.clone(), e.n.unwrap_or(0)), id);
        }
        self.rows.insert(id, e);
        if !waits {
            self.complete(id)?;
        }
        self.flush()
    }

    /// Marks row `id` complete; with `--follow` prints it at once.
    fn complete(&mut self, id: u64) -> io::Result<()> {
        if let Some(row) = self.rows.get_mut(&id) {
            row.answered = true;
        }
        if self.follow {
            if let Some(row) = self.rows.remove(&id) {
                self.print(&row)?;
            }
        }
        Ok(())
    }

    /// Prints the complete rows at the front.
    fn flush(&mut self) -> io::Result<()> {
        while let Some(entry) = self.rows.first_entry() {
            if !entry.get().answered && entry.get().kind == Kind::Statement {
                break;
            }
            let row = entry.remove();
            self.print(&row)?;
        }
        Ok(())
    }

    /// Prints every row left (the end of the log).
    fn finish(&mut self) -> io::Result<()> {
        while let Some((_, row)) = self.rows.pop_first() {
            self.print(&row)?;
        }
        self.out.flush()
    }

    fn print(&mut self, e: &Event) -> io::Result<()> {
        if !self.filter.matches(e) {
            return Ok(());
        }
        if self.json {
            for line in &e.lines {
                self.out.write_all(line)?;
                self.out.write_all(b"\n")?;
            }
            return Ok(());
        }
        if !self.header {
            self.header = true;
            writeln!(
                self.out,
                "{:<27} {:<16} {:<12} {:<12} {:<12} {:<10} {:<12} {:>9} {:<5} SQL",
                "TIME",
                "SESSION",
                "USER",
                "DATABASE",
                "VERDICT",
                "RULE",
                "ROWS/TAG",
                "DURATION",
                "STATE"
            )?;
        }
        let text = match e.kind {
            Kind::Statement => one_line(&e.sql, 100),
            Kind::Connect => {
                let mut parts = Vec::new();
                if !e.client.is_empty() {
                    parts.push(format!("client {}", e.client));
                }
                if !e.auth.is_empty() {
                    parts.push(format!("auth {}", e.auth));
                }
                if e.tls == Some(true) {
                    parts.push("tls".into());
                }
                parts.join(" ")
            }
            Kind::Disconnect => format!(
                "{} statement(s){}{}",
                e.statements.unwrap_or(0),
                if e.reason.is_empty() { "" } else { ": " },
                e.reason
            ),
            Kind::Recovered => format!(
                "audit log writable again; {} record(s) lost: {}",
                e.lost.unwrap_or(0),
                e.reason
            ),
            Kind::Approval => format!(
                "request {} {}{}{}: {}",
                e.approval,
                e.outcome,
                if e.approver.is_empty() { "" } else { " by " },
                e.approver,
                e.reason
            ),
            _ => e.reason.clone(),
        };
        writeln!(
            self.out,
            "{:<27} {:<16} {:<12} {:<12} {:<12} {:<10} {:<12} {:>9} {:<5} {}",
            e.t.replacen('T', " ", 1),
            e.session,
            e.user,
            e.database,
            e.verdict_text(),
            e.rule,
            e.rows_text(),
            duration_text(e.duration_us),
            e.sqlstate,
            text
        )
    }
}

/// Writes what `opts` asks for to `out`; returns when the log is read
/// (never, with `follow`, unless reading or writing fails).
pub fn show(opts: &Options, out: &mut impl Write) -> Result<(), ShowError> {
    let needle = opts.filter.session.as_deref().map(merge::session_needle);
    let mut merge = Merge::open(&opts.dir, opts.follow, needle)?;
    let mut table = Table {
        filter: opts.filter.clone(),
        json: opts.json,
        follow: opts.follow,
        out,
        rows: BTreeMap::new(),
        next_id: 0,
        waiting: HashMap::new(),
        sessions: HashMap::new(),
        parser: Parser::default(),
        scratch: Vec::new(),
        header: false,
    };
    loop {
        while let Some(entry) = merge.next_entry()? {
            table.add(&entry.line)?;
        }
        if !opts.follow {
            break;
        }
        table.out.flush()?;
        std::thread::sleep(POLL);
        merge.refresh()?;
    }
    for path in &merge.unfinished {
        eprintln!(
            "pgward: {}: its last line is unfinished and was passed over",
            path.display()
        );
    }
    Ok(table.finish()?)
}

/// Why `show` or `replay` stopped.
#[derive(Debug)]
pub enum ShowError {
    /// The audit directory could not be read.
    Read(ReadError),
    /// The output could not be written.
    Write(io::Error),
}

impl From<ReadError> for ShowError {
    fn from(e: ReadError) -> Self {
        ShowError::Read(e)
    }
}

impl From<io::Error> for ShowError {
    fn from(e: io::Error) -> Self {
        ShowError::Write(e)
    }
}

impl std::fmt::Display for ShowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShowError::Read(e) => write!(f, "{e}"),
            ShowError::Write(e) => write!(f, "cannot write the output: {e}"),
        }
    }
}

impl std::error::Error for ShowError {}

/// Runs `pgward audit show`: exit status 0, or 2 when the directory cannot
/// be read.
pub fn run(opts: &Options) -> std::process::ExitCode {
    let stdout = io::stdout();
    match show(opts, &mut io::BufWriter::new(stdout.lock())) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pgward: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{chain, sample, time};

    const T: u64 = 1_796_000_000_000_000;

    /// Two streams of two sessions of 5 statements each (#3 masked, #5
    /// denied), the streams' sessions interleaved in time.
    fn log() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for stream in 0..2 {
            let lines = sample::stream_lines(stream, 2, T + u64::from(stream) * 500, 2, 5);
            sample::write_stream(dir.path(), stream, &lines, 6).unwrap();
        }
        dir
    }

    fn show_text(dir: &tempfile::TempDir, filter: Filter, json: bool) -> String {
        let opts = Options {
            dir: dir.path().to_path_buf(),
            filter,
            json,
            follow: false,
        };
        let mut out = Vec::new();
        show(&opts, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_table_joins_results_and_merges_streams_in_time_order() {
        let dir = log();
        let text = show_text(&dir, Filter::default(), false);
        let rows: Vec<&str> = text.lines().skip(1).collect();
        // Per session: connect, 5 statements, disconnect; 4 sessions.
        assert_eq!(rows.len(), 28, "{text}");
        let times: Vec<&str> = rows.iter().map(|r| &r[..27]).collect();
        let sorted = {
            let mut s = times.clone();
            s.sort();
            s
        };
        assert_eq!(times, sorted, "{text}");
        let masked = rows.iter().find(|r| r.contains(" masked ")).unwrap();
        assert!(
            masked.contains("SELECT 1") && masked.contains("w0-s0"),
            "{masked}"
        );
        let denied = rows.iter().find(|r| r.contains(" denied ")).unwrap();
        assert!(
            denied.contains("operations")
                && denied.contains("42501")
                && denied.contains("DELETE FROM"),
            "{denied}"
        );
        // A statement's row carries its result's duration.
        let allowed = rows.iter().find(|r| r.contains(" allowed ")).unwrap();
        assert!(
            allowed.contains("us ") && allowed.contains("agent"),
            "{allowed}"
        );
        assert!(rows
            .iter()
            .any(|r| r.contains(" connect ") && r.contains("client 10.0.0.7")));
        assert!(rows
            .iter()
            .any(|r| r.contains(" disconnect ") && r.contains("5 statement(s)")));
    }

    #[test]
    fn filters_narrow_the_rows() {
        let dir = log();
        let only = |filter: Filter| {
            let text = show_text(&dir, filter, false);
            text.lines().skip(1).map(String::from).collect::<Vec<_>>()
        };
        let rows = only(Filter {
            session: Some("w1-s0".into()),
            ..Filter::default()
        });
        assert_eq!(rows.len(), 7);
        assert!(rows.iter().all(|r| r.contains("w1-s0")));
        for (verdict, word, count) in [
            (VerdictFilter::Denied, " denied ", 4),
            (VerdictFilter::Masked, " masked ", 4),
            (VerdictFilter::Allowed, "", 16),
        ] {
            let rows = only(Filter {
                verdict: Some(verdict),
                ..Filter::default()
            });
            assert_eq!(rows.len(), count, "{verdict:?}: {rows:?}");
            assert!(rows.iter().all(|r| r.contains(word)), "{rows:?}");
        }
        assert_eq!(
            only(Filter {
                user: Some("nobody".into()),
                ..Filter::default()
            })
            .len(),
            0
        );
        // Since the second session of each stream began.
        let since = T + 1_000 + 7_000;
        let rows = only(Filter {
            since: Some(since),
            ..Filter::default()
        });
        assert_eq!(rows.len(), 14, "{rows:?}");
        assert!(rows.iter().all(|r| r.contains("-s1")), "{rows:?}");
        assert!(rows[0].starts_with(&time::format(since).replacen('T', " ", 1)));
    }

    #[test]
    fn json_prints_the_matching_lines_unchanged() {
        let dir = log();
        let all = show_text(&dir, Filter::default(), true);
        // 2 streams x (start + 2 x (connect + 5 statements + 4 results + disconnect)).
        assert_eq!(all.lines().count(), 2 * (1 + 2 * 11));
        let masked = show_text(
            &dir,
            Filter {
                verdict: Some(VerdictFilter::Masked),
                ..Filter::default()
            },
            true,
        );
        let lines: Vec<&str> = masked.lines().collect();
        assert_eq!(lines.len(), 8, "{masked}");
        for pair in lines.chunks(2) {
            assert!(pair[0].contains(r#""kind":"statement""#), "{}", pair[0]);
            assert!(pair[1].contains(r#""kind":"result""#) && pair[1].contains("masked"));
            for line in pair {
                chain::open(line.as_bytes()).unwrap();
            }
        }
    }
}
