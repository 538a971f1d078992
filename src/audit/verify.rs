//! `pgward audit verify`: checks every stream of an audit directory from its
//! first record to its last, and names the first broken record of each
//! broken stream: its file, its line and why.
//!
//! A stream is intact when every line is a sealed record whose hash matches
//! its bytes, its seq is one more than the line before's and its prev is
//! that line's hash (across segment files), its first record is seq 1 with
//! the genesis prev, every segment's name gives its first record's seq,
//! every line is a JSON record, and the last line is complete. Every
//! stream a `start` record announces must exist. What cannot be seen from
//! the log alone: records cut off the end of a stream. Only a head hash
//! kept elsewhere (which this command prints) shows that.
//!
//! Streams are independent, so they are checked on parallel threads.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::chain::{self, hex, Chain, Link, LinkError};
use super::reader::{self, Parser, ReadError, Stream, StreamReader};
use super::record::Kind;

/// Why a record breaks its stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// It is not a sealed record, or its hash does not match (edited).
    Link(LinkError),
    /// It is sealed but is not a JSON audit record.
    NotJson(String),
    /// Records with seq `after + 1` to `before - 1` are not in the stream.
    Missing {
        /// The last seq present before the gap (0: the stream's start).
        after: u64,
        /// The seq found where `after + 1` was expected.
        before: u64,
    },
    /// It comes before a record with a lower seq found later.
    OutOfOrder {
        /// Its seq.
        seq: u64,
        /// The seq that should have come first.
        expected: u64,
        /// Where that record is: file and line.
        found: (PathBuf, u64),
    },
    /// A record with a seq already seen: inserted (or copied) into the
    /// stream.
    Inserted {
        /// Its seq.
        seq: u64,
        /// The last seq before it.
        after: u64,
    },
    /// Its seq is right but its prev is not the hash of the record before
    /// it: one of them was replaced by a record sealed anew.
    Unlinked {
        /// Its seq.
        seq: u64,
    },
    /// The segment's file name gives another first seq than its first
    /// record has (a renamed file).
    Name {
        /// What the name says.
        named: u64,
        /// What the first record has.
        first: u64,
    },
    /// A `start` record in this stream says it belongs to another stream.
    WrongStream {
        /// What the record says.
        says: u32,
    },
    /// The last line has no newline: a write that never completed.
    Unfinished,
    /// A `start` record in a stream that stream 0 does not announce: every
    /// start of pgward writes its start record in stream 0 too, with how
    /// many streams it writes (an added stream, forged whole).
    Unannounced {
        /// The stream.
        stream: u32,
    },
    /// A stream that a `start` record announces has no segment at all.
    MissingStream {
        /// The missing stream.
        stream: u32,
        /// How many streams the start record announces.
        streams: u32,
    },
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::Link(e) => write!(f, "{e}"),
            Why::NotJson(e) => write!(f, "not JSON: it is sealed but is not an audit record ({e})"),
            Why::Missing { after: 0, before } => write!(
                f,
                "missing records: the stream starts at seq {before}, not 1 (records 1 to {} are gone: its first segment was deleted?)",
                before - 1
            ),
            Why::Missing { after, before } => write!(
                f,
                "missing records between seq {after} and {before} (deleted lines or a deleted segment)"
            ),
            Why::OutOfOrder {
                seq,
                expected,
                found,
            } => write!(
                f,
                "out of order: seq {seq} comes before seq {expected}, which is at {} line {}",
                found.0.display(),
                found.1
            ),
            Why::Inserted { seq, after } => write!(
                f,
                "inserted: a record with seq {seq} after seq {after}, which the chain does not continue from"
            ),
            Why::Unlinked { seq } => write!(
                f,
                "its prev is not the hash of the record before it (seq {}): one of the two was replaced",
                seq.saturating_sub(1)
            ),
            Why::Name { named, first } => write!(
                f,
                "the file name says its first record is seq {named}, but it is seq {first} (a renamed segment)"
            ),
            Why::WrongStream { says } => write!(
                f,
                "its start record says it is stream {says} (a segment moved from another stream)"
            ),
            Why::Unfinished => write!(
                f,
                "unfinished record: the last line has no newline (a write that never completed)"
            ),
            Why::Unannounced { stream } => write!(
                f,
                "stream {stream} was not written by pgward: no start record in stream 0 announces it (an added stream)"
            ),
            Why::MissingStream { stream, streams } => write!(
                f,
                "stream {stream} is missing: this start record announces {streams} stream(s) and no w{stream}-*.jsonl exists"
            ),
        }
    }
}

/// The first broken record of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// The stream.
    pub stream: u32,
    /// The segment file.
    pub path: PathBuf,
    /// The line in that file, from 1.
    pub line: u64,
    /// Why.
    pub why: Why,
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} line {}: {}",
            self.path.display(),
            self.line,
            self.why
        )
    }
}

/// What was read of one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The stream.
    pub stream: u32,
    /// Its segment files.
    pub segments: usize,
    /// Intact records read (up to the break, if any).
    pub records: u64,
    /// The last intact record's seq and hash (the stream's head when it is
    /// intact).
    pub head: Chain,
    /// How long reading it took.
    pub elapsed: Duration,
    /// Its first break.
    pub broken: Option<Break>,
}

/// The outcome of verifying a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Each stream, by number.
    pub streams: Vec<Summary>,
    /// Streams announced by a `start` record that do not exist.
    pub missing: Vec<Break>,
    /// Wall time.
    pub elapsed: Duration,
}

impl Report {
    /// Whether every stream is intact and every announced stream exists.
    pub fn intact(&self) -> bool {
        self.missing.is_empty() && self.streams.iter().all(|s| s.broken.is_none())
    }

    /// Every break, stream by stream.
    pub fn breaks(&self) -> impl Iterator<Item = &Break> {
        self.streams
            .iter()
            .filter_map(|s| s.broken.as_ref())
            .chain(&self.missing)
    }

    /// Records read in all streams.
    pub fn records(&self) -> u64 {
        self.streams.iter().map(|s| s.records).sum()
    }
}

/// Verifies every stream of `dir`. `Err` only when something cannot be
/// read; a damaged log is an `Ok` report with breaks.
pub fn verify(dir: &Path) -> Result<Report, ReadError> {
    let started = Instant::now();
    let streams = reader::streams(dir)?;
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(streams.len())
        .max(1);
    if threads == 1 {
        // No thread to start for one stream.
        return finish(
            started,
            streams
                .into_iter()
                .enumerate()
                .map(|(i, s)| (i, verify_stream(s)))
                .collect(),
        );
    }
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(stream) = streams.get(i) else { break };
                let outcome = verify_stream(stream.clone());
                if let Ok(mut r) = results.lock() {
                    r.push((i, outcome));
                }
            });
        }
    });
    finish(started, results.into_inner().unwrap_or_default())
}

/// What each stream's check gave: (stream index, outcome).
type Outcomes = Vec<(usize, Result<(Summary, Vec<Announced>), ReadError>)>;

/// Puts the streams' outcomes together and looks for announced streams
/// that are missing.
fn finish(started: Instant, mut results: Outcomes) -> Result<Report, ReadError> {
    results.sort_by_key(|(i, _)| *i);
    let mut summaries = Vec::with_capacity(results.len());
    let mut announced = Vec::new();
    for (_, outcome) in results {
        let (summary, starts) = outcome?;
        summaries.push(summary);
        announced.extend(starts);
    }
    let mut missing: Vec<Break> = Vec::new();
    // Stream 0 speaks for every start: a start record elsewhere must match
    // one of stream 0's (same boot), which must count that stream.
    let zero: Vec<&Announced> = announced.iter().filter(|a| a.stream == 0).collect();
    for a in announced.iter().filter(|a| a.stream != 0) {
        let vouched = zero
            .iter()
            .any(|z| z.streams > a.stream && (a.boot.is_none() || z.boot == a.boot));
        if !vouched && !missing.iter().any(|b| b.stream == a.stream) {
            missing.push(Break {
                stream: a.stream,
                path: a.path.clone(),
                line: a.line,
                why: Why::Unannounced { stream: a.stream },
            });
        }
    }
    for Announced {
        streams,
        path,
        line,
        ..
    } in announced
    {
        for stream in 0..streams {
            let exists = summaries.iter().any(|s| s.stream == stream);
            let told = missing.iter().any(|b| b.stream == stream);
            if !exists && !told {
                missing.push(Break {
                    stream,
                    path: path.clone(),
                    line,
                    why: Why::MissingStream { stream, streams },
                });
            }
        }
    }
    Ok(Report {
        streams: summaries,
        missing,
        elapsed: started.elapsed(),
    })
}

/// Where a line is, to read on from it.
#[derive(Debug, Clone)]
struct Pos {
    path: PathBuf,
    index: usize,
    line: u64,
    /// The offset of the line after it.
    next_offset: u64,
}

/// What a `start` record says: its stream, the start of pgward it comes
/// from, how many streams that start writes; and where it is.
#[derive(Debug, Clone)]
struct Announced {
    stream: u32,
    boot: Option<String>,
    streams: u32,
    path: PathBuf,
    line: u64,
}

/// Verifies one stream, stopping at its first break.
fn verify_stream(stream: Stream) -> Result<(Summary, Vec<Announced>), ReadError> {
    let started = Instant::now();
    let mut summary = Summary {
        stream: stream.stream,
        segments: stream.segments.len(),
        records: 0,
        head: Chain {
            seq: 0,
            prev: chain::GENESIS,
        },
        elapsed: Duration::ZERO,
        broken: None,
    };
    let mut announced = Vec::new();
    let mut expect = Chain::default();
    let mut last: Option<(Pos, Link)> = None;
    let mut parser = Parser::default();
    let mut lines = StreamReader::new(stream.clone());
    while let Some(l) = lines.next_line(true)? {
        let pos = Pos {
            path: l.segment.path.clone(),
            index: l.index,
            line: l.line.number,
            next_offset: l.line.offset + l.line.bytes.len() as u64 + 1,
        };
        let broken = |why| {
            Some(Break {
                stream: stream.stream,
                path: pos.path.clone(),
                line: pos.line,
                why,
            })
        };
        if !l.line.complete {
            summary.broken = broken(Why::Unfinished);
            break;
        }
        let link = match chain::open(l.line.bytes) {
            Ok(link) => link,
            Err(e) => {
                summary.broken = broken(Why::Link(e));
                break;
            }
        };
        if link.seq != expect.seq || link.prev != expect.prev {
            summary.broken = Some(diagnose(&stream, &pos, link, expect, last.as_ref())?);
            break;
        }
        if l.line.number == 1 && l.segment.first_seq != link.seq {
            summary.broken = broken(Why::Name {
                named: l.segment.first_seq,
                first: link.seq,
            });
            break;
        }
        match parser.record(l.line.bytes) {
            Ok(r) if r.kind == Kind::Start => {
                if let Some(says) = r.stream.filter(|s| *s != stream.stream) {
                    summary.broken = broken(Why::WrongStream { says });
                    break;
                }
                if let Some(n) = r.streams {
                    announced.push(Announced {
                        stream: stream.stream,
                        boot: r.boot.as_deref().map(str::to_string),
                        streams: n,
                        path: pos.path.clone(),
                        line: pos.line,
                    });
                }
            }
            Ok(_) => {}
            Err(e) => {
                summary.broken = broken(Why::NotJson(e.to_string()));
                break;
            }
        }
        expect = Chain {
            seq: link.seq + 1,
            prev: link.hash,
        };
        summary.records += 1;
        summary.head = Chain {
            seq: link.seq,
            prev: link.hash,
        };
        last = Some((pos, link));
    }
    summary.elapsed = started.elapsed();
    Ok((summary, announced))
}

/// Says why the record at `pos` does not follow on from the one before:
/// looks further along the stream to tell a gap from a reordering, and
/// which of two records with one seq was inserted.
fn diagnose(
    stream: &Stream,
    pos: &Pos,
    link: Link,
    expect: Chain,
    last: Option<&(Pos, Link)>,
) -> Result<Break, ReadError> {
    let at = |p: &Pos, why| Break {
        stream: stream.stream,
        path: p.path.clone(),
        line: p.line,
        why,
    };
    let mut after = StreamReader::at(stream.clone(), pos.index, pos.next_offset, pos.line + 1)?;
    if link.seq > expect.seq {
        while let Some(l) = after.next_line(true)? {
            if let Some(seq) = seq_of(l.line.bytes).filter(|s| (expect.seq..link.seq).contains(s)) {
                let found = (l.segment.path.clone(), l.line.number);
                return Ok(at(
                    pos,
                    Why::OutOfOrder {
                        seq: link.seq,
                        expected: seq,
                        found,
                    },
                ));
            }
        }
        return Ok(at(
            pos,
            Why::Missing {
                after: expect.seq - 1,
                before: link.seq,
            },
        ));
    }
    if link.seq == expect.seq {
        return Ok(at(pos, Why::Unlinked { seq: link.seq }));
    }
    // A seq already seen. When it repeats the last one and both claim the
    // same predecessor, the one the next record links to is the original.
    if let Some((last_pos, last_link)) = last {
        if link.seq == last_link.seq && link.prev == last_link.prev {
            let continues_here = after
                .next_line(true)?
                .and_then(|l| chain::open(l.line.bytes).ok())
                .is_some_and(|next| next.prev == link.hash);
            let why = Why::Inserted {
                seq: link.seq,
                after: link.seq.saturating_sub(1),
            };
            return Ok(at(if continues_here { last_pos } else { pos }, why));
        }
    }
    Ok(at(
        pos,
        Why::Inserted {
            seq: link.seq,
            after: expect.seq - 1,
        },
    ))
}

/// The seq a line starts with, whatever the rest of it holds.
fn seq_of(line: &[u8]) -> Option<u64> {
    let rest = line.strip_prefix(b"{\"seq\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(rest.get(..digits)?).ok()?.parse().ok()
}

/// Runs `pgward audit verify`: prints each stream's head or first break.
/// Exit status 0 when intact, 1 when broken, 2 when unreadable.
pub fn run(dir: &Path) -> ExitCode {
    let report = match verify(dir) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pgward: {e}");
            return ExitCode::from(2);
        }
    };
    if report.streams.is_empty() {
        eprintln!(
            "pgward: {}: no audit segments (w<stream>-<seq>.jsonl) found; is this the audit directory?",
            dir.display()
        );
        return ExitCode::from(2);
    }
    for s in &report.streams {
        let rate = per_second(s.records, s.elapsed);
        match &s.broken {
            None => println!(
                "stream {}: intact, {} record(s) in {} segment(s), last seq {}, head {} ({rate:.0} records/s)",
                s.stream,
                s.records,
                s.segments,
                s.head.seq,
                hex(&s.head.prev)
            ),
            Some(b) => println!(
                "stream {}: BROKEN after {} intact record(s): {b}",
                s.stream, s.records
            ),
        }
    }
    for b in &report.missing {
        println!("stream {}: MISSING: {b}", b.stream);
    }
    let rate = per_second(report.records(), report.elapsed);
    if report.intact() {
        println!(
            "intact: {} stream(s), {} record(s) in {:.3} s ({rate:.0} records/s)",
            report.streams.len(),
            report.records(),
            report.elapsed.as_secs_f64()
        );
        println!(
            "keep the head hashes somewhere else: records cut off the end of a stream can only be detected against a head recorded earlier"
        );
        ExitCode::SUCCESS
    } else {
        println!(
            "broken: {} of {} stream(s) damaged or missing",
            report.breaks().count(),
            report.streams.len() + report.missing.len()
        );
        ExitCode::from(1)
    }
}

fn per_second(records: u64, elapsed: Duration) -> f64 {
    records as f64 / elapsed.as_secs_f64().max(1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::sample;
    use crate::audit::segment::name;

    const T: u64 = 1_796_000_000_000_000;

    /// One stream of 31 lines in segments of 10: w0-1, w0-11, w0-21, w0-31.
    fn log() -> (tempfile::TempDir, Vec<Vec<u8>>) {
        let dir = tempfile::tempdir().unwrap();
        let lines = sample::stream_lines(0, 1, T, 3, 4);
        assert_eq!(lines.len(), 31);
        sample::write_stream(dir.path(), 0, &lines, 10).unwrap();
        (dir, lines)
    }

    fn file(dir: &tempfile::TempDir, first: u64) -> PathBuf {
        dir.path().join(name(0, first))
    }

    /// Rewrites a segment's lines.
    fn edit(path: &Path, f: impl FnOnce(&mut Vec<Vec<u8>>)) {
        let bytes = std::fs::read(path).unwrap();
        let mut lines: Vec<Vec<u8>> = bytes
            .split_inclusive(|b| *b == b'\n')
            .map(<[u8]>::to_vec)
            .collect();
        f(&mut lines);
        std::fs::write(path, lines.concat()).unwrap();
    }

    /// The only break, as (file, line, why).
    fn only_break(dir: &tempfile::TempDir) -> (PathBuf, u64, Why) {
        let report = verify(dir.path()).unwrap();
        assert!(!report.intact());
        let breaks: Vec<&Break> = report.breaks().collect();
        assert_eq!(breaks.len(), 1, "{breaks:?}");
        (
            breaks[0].path.clone(),
            breaks[0].line,
            breaks[0].why.clone(),
        )
    }

    #[test]
    fn an_intact_log_passes_with_its_head() {
        let (dir, lines) = log();
        let report = verify(dir.path()).unwrap();
        assert!(report.intact(), "{:?}", report.breaks().collect::<Vec<_>>());
        assert_eq!(report.records(), 31);
        let s = &report.streams[0];
        assert_eq!((s.segments, s.head.seq), (4, 31));
        let last = chain::open(lines[30].strip_suffix(b"\n").unwrap()).unwrap();
        assert_eq!(s.head.prev, last.hash);
    }

    #[test]
    fn a_stream_added_whole_is_not_one_pgward_wrote() {
        let (dir, _) = log();
        // A self-sealed chain claiming to be stream 1 of a start that wrote
        // two streams; stream 0's start says one.
        let forged = sample::stream_lines(1, 2, T, 1, 1);
        sample::write_stream(dir.path(), 1, &forged, 10).unwrap();
        assert_eq!(
            only_break(&dir),
            (
                dir.path().join(name(1, 1)),
                1,
                Why::Unannounced { stream: 1 }
            )
        );
        // With stream 0 announcing two streams, stream 1 is pgward's.
        let dir2 = tempfile::tempdir().unwrap();
        for s in 0..2 {
            let lines = sample::stream_lines(s, 2, T, 1, 1);
            sample::write_stream(dir2.path(), s, &lines, 10).unwrap();
        }
        assert!(verify(dir2.path()).unwrap().intact());
    }

    #[test]
    fn an_edited_byte_is_caught_at_its_line() {
        let (dir, _) = log();
        edit(&file(&dir, 11), |l| l[4][120] ^= 0x01);
        assert_eq!(
            only_break(&dir),
            (file(&dir, 11), 5, Why::Link(LinkError::Hash))
        );
    }

    #[test]
    fn a_deleted_line_is_a_gap() {
        let (dir, _) = log();
        edit(&file(&dir, 11), |l| {
            l.remove(4);
        });
        assert_eq!(
            only_break(&dir),
            (
                file(&dir, 11),
                5,
                Why::Missing {
                    after: 14,
                    before: 16
                }
            )
        );
    }

    #[test]
    fn swapped_lines_are_out_of_order() {
        let (dir, _) = log();
        edit(&file(&dir, 11), |l| l.swap(4, 5));
        assert_eq!(
            only_break(&dir),
            (
                file(&dir, 11),
                5,
                Why::OutOfOrder {
                    seq: 16,
                    expected: 15,
                    found: (file(&dir, 11), 6)
                }
            )
        );
    }

    #[test]
    fn inserted_lines_are_named() {
        // A record forged in the right place, sealed anew: the chain goes on
        // from the original, so the forgery is the break.
        let (dir, lines) = log();
        let before = chain::open(lines[13].strip_suffix(b"\n").unwrap()).unwrap();
        let mut forged = Vec::new();
        Chain {
            seq: 15,
            prev: before.hash,
        }
        .seal(
            br#"{"t":"2026-12-01T00:00:00.000000Z","kind":"connect"}"#,
            &mut forged,
        );
        edit(&file(&dir, 11), |l| l.insert(4, forged.clone()));
        assert_eq!(
            only_break(&dir),
            (file(&dir, 11), 5, Why::Inserted { seq: 15, after: 14 })
        );
        // The same forgery after the original.
        let (dir, _) = log();
        edit(&file(&dir, 11), |l| l.insert(5, forged.clone()));
        assert_eq!(
            only_break(&dir),
            (file(&dir, 11), 6, Why::Inserted { seq: 15, after: 14 })
        );
        // A copy of an earlier record.
        let (dir, lines) = log();
        edit(&file(&dir, 11), |l| l.insert(5, lines[2].clone()));
        assert_eq!(
            only_break(&dir),
            (file(&dir, 11), 6, Why::Inserted { seq: 3, after: 15 })
        );
        // A line that is no record at all.
        let (dir, _) = log();
        edit(&file(&dir, 11), |l| {
            l.insert(5, b"{\"kind\":\"connect\"}\n".to_vec())
        });
        let (path, line, why) = only_break(&dir);
        assert_eq!((path, line), (file(&dir, 11), 6));
        assert!(matches!(why, Why::Link(LinkError::Shape(_))), "{why}");
    }

    #[test]
    fn deleted_segments_are_gaps() {
        let (dir, _) = log();
        std::fs::remove_file(file(&dir, 11)).unwrap();
        assert_eq!(
            only_break(&dir),
            (
                file(&dir, 21),
                1,
                Why::Missing {
                    after: 10,
                    before: 21
                }
            )
        );
        let (dir, _) = log();
        std::fs::remove_file(file(&dir, 1)).unwrap();
        let (path, line, why) = only_break(&dir);
        assert_eq!(
            (path, line, why.clone()),
            (
                file(&dir, 11),
                1,
                Why::Missing {
                    after: 0,
                    before: 11
                }
            )
        );
        assert!(why.to_string().contains("starts at seq 11"), "{why}");
    }

    #[test]
    fn a_truncated_last_line_is_unfinished() {
        let (dir, _) = log();
        edit(&file(&dir, 31), |l| l[0].truncate(50));
        assert_eq!(only_break(&dir), (file(&dir, 31), 1, Why::Unfinished));
        // Truncated at a newline, the log is intact: only an anchor shows it.
        let (dir, _) = log();
        std::fs::remove_file(file(&dir, 31)).unwrap();
        let report = verify(dir.path()).unwrap();
        assert!(report.intact());
        assert_eq!(report.streams[0].head.seq, 30);
    }

    #[test]
    fn a_renamed_segment_is_caught() {
        let (dir, _) = log();
        std::fs::rename(file(&dir, 31), file(&dir, 32)).unwrap();
        assert_eq!(
            only_break(&dir),
            (
                file(&dir, 32),
                1,
                Why::Name {
                    named: 32,
                    first: 31
                }
            )
        );
    }

    #[test]
    fn sealed_lines_that_are_not_records_and_missing_streams() {
        let dir = tempfile::tempdir().unwrap();
        let mut chain = Chain::default();
        let mut lines = sample::seal(&[sample::start(T, 0, 3)], &mut chain);
        let mut bad = Vec::new();
        chain.seal(br#"{"kind":"nope","x":1}"#, &mut bad);
        lines.push(bad);
        sample::write_stream(dir.path(), 0, &lines, 10).unwrap();
        let report = verify(dir.path()).unwrap();
        let breaks: Vec<&Break> = report.breaks().collect();
        assert_eq!(breaks.len(), 3, "{breaks:?}");
        assert_eq!((breaks[0].line, breaks[0].stream), (2, 0));
        assert!(matches!(breaks[0].why, Why::NotJson(_)), "{}", breaks[0]);
        for (b, stream) in breaks[1..].iter().zip([1, 2]) {
            assert_eq!(b.why, Why::MissingStream { stream, streams: 3 });
            assert_eq!((b.path.clone(), b.line), (dir.path().join(name(0, 1)), 1));
        }
    }

    #[test]
    fn streams_are_checked_each_on_their_own() {
        let dir = tempfile::tempdir().unwrap();
        for stream in 0..3 {
            let lines = sample::stream_lines(stream, 3, T, 2, 3);
            sample::write_stream(dir.path(), stream, &lines, 7).unwrap();
        }
        let report = verify(dir.path()).unwrap();
        assert!(report.intact());
        assert_eq!(report.streams.len(), 3);
        // A start record copied into another stream's place.
        let w2 = dir.path().join(name(2, 1));
        let w1 = std::fs::read(dir.path().join(name(1, 1))).unwrap();
        let first_of_w1 = w1.split_inclusive(|b| *b == b'\n').next().unwrap().to_vec();
        edit(&w2, |l| l[0] = first_of_w1);
        let (path, line, why) = only_break(&dir);
        assert_eq!((path, line), (w2, 1));
        assert_eq!(why, Why::WrongStream { says: 1 });
        assert!(verify(&dir.path().join("nonexistent")).is_err());
    }
}
