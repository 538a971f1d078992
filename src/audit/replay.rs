//! `pgward audit replay`: one session's timeline, from its connect to its
//! disconnect: each statement in order with its verdict, rule, timing,
//! rows and tags, masked columns and SQLSTATE, and the time since the
//! session began on each line.

use std::io::{self, Write};
use std::path::Path;

use super::event::{duration_text, one_line, Event};
use super::merge::{self, Merge};
use super::reader::Parser;
use super::record::{Kind, Verdict};
use super::show::ShowError;

/// A session's events in time order, each statement joined with its
/// result. Empty when the session is not in the log.
pub fn timeline(dir: &Path, session: &str) -> Result<Vec<Event>, ShowError> {
    let mut merge = Merge::open(dir, false, Some(merge::session_needle(session)))?;
    let mut parser = Parser::default();
    let mut scratch = Vec::new();
    let mut events: Vec<Event> = Vec::new();
    while let Some(entry) = merge.next_entry()? {
        let Ok(e) = Event::parse(&entry.line, &mut parser, &mut scratch) else {
            continue;
        };
        // The needle can match inside another field; the parsed field decides.
        if e.session != session {
            continue;
        }
        if e.kind == Kind::Result {
            let statement = events
                .iter_mut()
                .rev()
                .find(|s| s.kind == Kind::Statement && s.n == e.n && !s.answered);
            if let Some(s) = statement {
                s.answer(e);
                continue;
            }
        }
        events.push(e);
    }
    Ok(events)
}

/// Writes a timeline for people.
pub fn write(events: &[Event], out: &mut impl Write) -> io::Result<()> {
    let Some(first) = events.first() else {
        return Ok(());
    };
    let begin = first.micros;
    let who = events.iter().find(|e| !e.user.is_empty());
    writeln!(
        out,
        "session {}: user {}, database {}, began {}",
        first.session,
        who.map_or("?", |e| e.user.as_str()),
        who.map_or("?", |e| if e.database.is_empty() {
            "?"
        } else {
            e.database.as_str()
        }),
        first.t
    )?;
    for e in events {
        let gap = e.micros.saturating_sub(begin) as f64 / 1e6;
        write!(out, "+{gap:>12.6}s  ")?;
        match e.kind {
            Kind::Connect => writeln!(
                out,
                "connect: user {}, database {}, client {}, auth {}, tls {}, roles {}",
                e.user,
                e.database,
                e.client,
                e.auth,
                if e.tls == Some(true) { "yes" } else { "no" },
                e.roles.join(",")
            )?,
            Kind::LoginFailed => writeln!(out, "login failed: user {}: {}", e.user, e.reason)?,
            Kind::Disconnect => writeln!(
                out,
                "disconnect: {} statement(s) in {}{}{}",
                e.statements.unwrap_or(0),
                duration_text(e.duration_us),
                if e.reason.is_empty() { "" } else { ": " },
                e.reason
            )?,
            Kind::Statement => {
                writeln!(
                    out,
                    "#{} {} {}{}: {}",
                    e.n.map_or(String::from("?"), |n| n.to_string()),
                    e.verdict_text(),
                    if e.message.is_empty() { "" } else { "via " },
                    e.message,
                    one_line(&e.sql, 200)
                )?;
                write_facts(e, out)?;
            }
            Kind::Result => {
                writeln!(
                    out,
                    "result of #{} (its statement is not in the log)",
                    e.n.map_or(String::from("?"), |n| n.to_string())
                )?;
                write_facts(e, out)?;
            }
            Kind::Start => writeln!(out, "pgward started")?,
            Kind::Approval => writeln!(
                out,
                "approval {}: {}{}{}{}",
                e.approval,
                e.outcome,
                if e.approver.is_empty() { "" } else { " by " },
                e.approver,
                if e.reason.is_empty() {
                    String::new()
                } else {
                    format!(": {}", e.reason)
                }
            )?,
            Kind::Recovered => writeln!(
                out,
                "audit log writable again; {} record(s) were lost: {}",
                e.lost.unwrap_or(0),
                e.reason
            )?,
        }
    }
    Ok(())
}

/// A statement's second line: rule, reason, outcome, timing, rows, tags,
/// masks and SQLSTATE, those it has.
fn write_facts(e: &Event, out: &mut impl Write) -> io::Result<()> {
    let mut facts = Vec::new();
    if !e.rule.is_empty() {
        facts.push(format!("rule {}", e.rule));
    }
    if !e.reason.is_empty() {
        facts.push(e.reason.clone());
    }
    if !e.outcome.is_empty() {
        facts.push(e.outcome.clone());
    }
    if e.duration_us.is_some() {
        facts.push(format!("took {}", duration_text(e.duration_us)));
    }
    if let Some(rows) = e.rows {
        facts.push(format!("{rows} row(s)"));
    }
    if !e.tags.is_empty() {
        facts.push(format!("tags {}", e.tags.join(",")));
    }
    if !e.masked.is_empty() {
        facts.push(format!(
            "masked {} ({} cell(s))",
            e.masked.join(","),
            e.masked_cells.unwrap_or(0)
        ));
    }
    if !e.sqlstate.is_empty() {
        facts.push(format!("SQLSTATE {}", e.sqlstate));
    }
    if e.kind == Kind::Statement && e.verdict == Some(Verdict::Allowed) && !e.answered {
        facts.push("no result recorded".into());
    }
    if facts.is_empty() {
        return Ok(());
    }
    writeln!(out, "{:16}{}", "", facts.join(", "))
}

/// Runs `pgward audit replay`: exit status 0, 1 when the session is not
/// in the log, 2 when the directory cannot be read.
pub fn run(dir: &Path, session: &str) -> std::process::ExitCode {
    let events = match timeline(dir, session) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("pgward: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    if events.is_empty() {
        eprintln!(
            "pgward: session {session:?} is not in {}; `pgward audit show` lists the sessions",
            dir.display()
        );
        return std::process::ExitCode::from(1);
    }
    let stdout = io::stdout();
    match write(&events, &mut stdout.lock()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pgward: cannot write the output: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::sample;

    #[test]
    fn a_session_reads_from_connect_to_disconnect() {
        let dir = tempfile::tempdir().unwrap();
        for stream in 0..2 {
            let lines = sample::stream_lines(stream, 2, 1_796_000_000_000_000, 2, 5);
            sample::write_stream(dir.path(), stream, &lines, 4).unwrap();
        }
        let events = timeline(dir.path(), "w1-s1").unwrap();
        assert_eq!(events.len(), 7);
        let mut out = Vec::new();
        write(&events, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("session w1-s1: user agent, database shop"),
            "{text}"
        );
        assert!(
            lines[1].starts_with("+    0.000000s  connect: user agent, database shop"),
            "{text}"
        );
        assert!(
            lines[2].starts_with("+    0.001000s  #1 allowed via query: SELECT o.id"),
            "{text}"
        );
        assert!(
            lines[3].contains("ok, took 351us, 1 row(s), tags SELECT 1"),
            "{text}"
        );
        let masked = lines.iter().position(|l| l.contains("#3 masked")).unwrap();
        assert!(
            lines[masked + 1].contains("masked public.customers.email (1 cell(s))"),
            "{text}"
        );
        let denied = lines.iter().position(|l| l.contains("#5 denied")).unwrap();
        assert!(
            lines[denied].contains("DELETE FROM public.orders"),
            "{text}"
        );
        assert!(
            lines[denied + 1].contains("rule operations")
                && lines[denied + 1].contains("SQLSTATE 42501"),
            "{text}"
        );
        assert!(
            lines
                .last()
                .unwrap()
                .starts_with("+    0.006000s  disconnect: 5 statement(s) in 6.0ms"),
            "{text}"
        );
        assert!(timeline(dir.path(), "w1-s").unwrap().is_empty());
    }
}
