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
                    if let Some(row) = self.rows.get_mut(&id) {
                        row.answer(e);
                    }
                    self.complete(id)?;
                }
                // A result without its statement (before --since, or
                // filtered out) shows nothing.
                return self.flush();
            }
            _ => {}
        }
        if !self.filter.since.is_none_or(|s| e.micros >= s) || !self.filter.may_match(&e) {
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
                "{:<26} {:<16} {:<12} {:<12} {:<12} {:<10} {:<12} {:>9} {:<5} SQL",
                "TIME", "SESSION", "USER", "DATABASE", "VERDICT", "RULE", "ROWS/TAG", "DURATION", "STATE"
            )?;
        }
        let text = match e.kind {
            Kind::Statement => one_line(&e.sql, 100),
            Kind::Connect => format!(
                "client {} auth {}{}",
                e.client,
                e.auth,
                if e.tls == Some(true) { " tls" } else { "" }
            ),
            Kind::Disconnect => format!(
                "{} statement(s){}{}",
                e.statements.unwrap_or(0),
                if e.reason.is_empty() { "" } else { ": " },
                e.reason
            ),
            _ => e.reason.clone(),
        };
        writeln!(
            self.out,
            "{:<26} {:<16} {:<12} {:<12} {:<12} {:<10} {:<12} {:>9} {:<5} {}",
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
