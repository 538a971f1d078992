//! A worker's audit stream. Sessions append record bodies; the worker's
//! writer task seals everything appended since its last write into the
//! chain and appends it to the current segment in one write; its syncer
//! task group-commits: one fsync covers every record written before it
//! started, and the next starts as soon as it ends. Sessions wait for their
//! records to be written (async durability: safe from pgward being killed)
//! or synced (strict: safe from the machine losing power). Nothing is
//! shared between workers, so nothing on the data path takes a lock, and a
//! slow disk holds back only the sessions that wait for it.
//!
//! When a write fails, the batch is cut back off the segment, the chain is
//! left where it was, the waiting sessions learn that their records were
//! not written, and the stream reports itself unhealthy until a later batch
//! is written. A failed fsync fails the records it covered the same way.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::future::poll_fn;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::task::{Poll, Waker};

use super::chain::Chain;
use super::record::{Kind, Record};
use super::segment::{self, Resume};

/// This start of pgward: 8 hex digits drawn once per process, written in
/// every stream's `start` record and prefixed to session ids.
pub fn boot_id() -> &'static str {
    static BOOT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BOOT.get_or_init(|| {
        let mut out = Vec::new();
        super::chain::push_hex(&mut out, &crate::auth::scram::random_bytes::<4>());
        String::from_utf8(out).unwrap_or_default()
    })
}

/// Names one appended record until it is written.
pub type Ticket = u64;

/// How long a statement waits for its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// A statement is forwarded only once its record is on disk (fsynced).
    Strict,
    /// A statement is forwarded once its record is written to the segment
    /// (the kernel holds it: it survives pgward being killed, not the
    /// machine losing power); fsyncs follow every sync interval.
    Written,
    /// Statements are forwarded at once; records follow within a few
    /// milliseconds and fsyncs every sync interval.
    Async,
}

/// What a worker's stream is opened with.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// The audit directory.
    pub dir: PathBuf,
    /// The stream (worker) number.
    pub stream: u32,
    /// How many streams this pgward writes.
    pub streams: u32,
    /// Rotate to a new segment once the current one is this large.
    pub segment_size: u64,
    /// The configuration's hash, for the start record.
    pub policy: String,
    /// What sessions wait for.
    pub durability: Durability,
    /// How long the syncer waits after one fsync before the next, unless
    /// strict (sessions wait for the fsync: it starts at once).
    pub sync_interval: std::time::Duration,
}

/// A stream opened before the worker starts: the segment to write and
/// where the chain continues.
pub struct OpenedStream {
    settings: StreamSettings,
    resume: Resume,
}

/// Takes the directory for this process: an exclusive lock on the
/// directory itself (not on a file in it, which could be deleted from under
/// the lock), held as long as the returned handle is open. Two pgward
/// processes writing one stream would break its chain.
pub fn lock_dir(dir: &Path) -> Result<std::fs::File, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let f = std::fs::File::open(dir).map_err(|e| format!("cannot open {}: {e}", dir.display()))?;
    // SAFETY: flock on a descriptor this function owns.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(format!(
            "{} is in use by another pgward (its lock file is held)",
            dir.display()
        ));
    }
    Ok(f)
}

/// Finds where a stream continues (cutting an unfinished last record), so
/// a bad directory fails the start, before any worker runs.
pub fn open_stream(settings: StreamSettings) -> Result<OpenedStream, String> {
    let resume = segment::resume(&settings.dir, settings.stream).map_err(|e| e.to_string())?;
    if resume.cut > 0 {
        tracing::warn!(
            stream = settings.stream,
            bytes = resume.cut,
            "audit: cut an unfinished last record (its write never completed, so its statement never ran)"
        );
    }
    Ok(OpenedStream { settings, resume })
}

/// Why a record could not be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteFailed(pub String);

/// How far a record must have gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Written to the segment (the kernel has it).
    Written,
    /// Written and fsynced.
    Synced,
}

impl Durability {
    /// How far a statement's record must go before the statement is sent.
    pub fn level(self) -> Level {
        match self {
            Durability::Strict => Level::Synced,
            Durability::Written | Durability::Async => Level::Written,
        }
    }
}

/// One worker's audit stream.
pub struct AuditStream {
    settings: StreamSettings,
    state: RefCell<State>,
    healthy: Cell<bool>,
    /// Records not written since the last successful batch, and why.
    lost: RefCell<(u64, String)>,
}

struct State {
    /// Bodies appended and not yet taken by the writer, each a JSON object.
    bodies: Vec<u8>,
    ends: Vec<usize>,
    /// The ticket of the next record appended.
    next: Ticket,
    /// Every ticket up to this one has been written or has failed.
    written: Ticket,
    /// Every ticket up to this one has been synced or has failed.
    synced: Ticket,
    /// Tickets that failed, as inclusive ranges, newest last.
    failed: VecDeque<(Ticket, Ticket, String)>,
    waiters: Vec<Waker>,
    writer: Option<Waker>,
    syncer: Option<Waker>,
    /// The segment being written, for the syncer.
    file: Option<Rc<monoio::fs::File>>,
    /// A session asks for a write attempt (the stream is unhealthy).
    retry: bool,
    /// The segment was found deleted: the next batch starts a new one.
    rotate: bool,
    /// Write attempts made (each batch, written or failed).
    attempts: u64,
    closing: bool,
    /// The writer has stopped.
    closed: bool,
}

impl State {
    fn wake_all(&mut self) {
        for w in self.waiters.drain(..) {
            w.wake();
        }
    }
}

/// Appended bytes not yet taken by the writer beyond which sessions wait.
const BACKLOG: usize = 8 << 20;

/// With async durability, how long the writer lets records gather before
/// writing them (nobody waits for them).
const ASYNC_GATHER: std::time::Duration = std::time::Duration::from_millis(2);

/// How many failed ranges are remembered for late waiters.
const FAILED_KEPT: usize = 256;

impl AuditStream {
    /// The stream, ready for its writer and syncer tasks (`run`).
    pub fn new(opened: OpenedStream) -> (Rc<AuditStream>, StreamWriter) {
        let stream = Rc::new(AuditStream {
            settings: opened.settings,
            state: RefCell::new(State {
                bodies: Vec::new(),
                ends: Vec::new(),
                next: 1,
                written: 0,
                synced: 0,
                failed: VecDeque::new(),
                waiters: Vec::new(),
                writer: None,
                syncer: None,
                file: None,
                retry: false,
                rotate: false,
                attempts: 0,
                closing: false,
                closed: false,
            }),
            healthy: Cell::new(true),
            lost: RefCell::new((0, String::new())),
        });
        let writer = StreamWriter {
            stream: stream.clone(),
            chain: opened.resume.chain,
            file: None,
            offset: 0,
            segment_first: 0,
        };
        (stream, writer)
    }

    /// False after a batch failed, until one is written again.
    pub fn is_healthy(&self) -> bool {
        self.healthy.get()
    }

    /// Tries the disk again when the last batch failed: asks the writer
    /// for a write attempt (with nothing else to write, just the
    /// `recovered` record it writes first after failures) and waits for it.
    /// True when the stream writes again.
    pub async fn recover(&self) -> bool {
        if self.healthy.get() {
            return true;
        }
        let seen = {
            let mut s = self.state.borrow_mut();
            s.retry = true;
            if let Some(w) = s.writer.take() {
                w.wake();
            }
            s.attempts
        };
        poll_fn(|cx| {
            let mut s = self.state.borrow_mut();
            if s.attempts > seen || s.closed {
                return Poll::Ready(());
            }
            s.waiters.push(cx.waker().clone());
            Poll::Pending
        })
        .await;
        self.healthy.get()
    }

    /// The `recovered` record that goes first in the first batch after
    /// failures: how many records were lost, and why.
    fn recovered_record(&self) -> Vec<u8> {
        let (lost, why) = self.lost.borrow().clone();
        let r = Record {
            t: super::time::format(super::time::now_micros()).into(),
            kind: Kind::Recovered,
            lost: Some(lost),
            reason: Some(why.into()),
            ..Record::default()
        };
        let mut out = Vec::new();
        r.write_json(&mut out);
        out
    }

    /// Appends a record; its ticket says when it is written.
    pub fn append(&self, record: &Record) -> Ticket {
        let mut s = self.state.borrow_mut();
        record.write_json(&mut s.bodies);
        let end = s.bodies.len();
        s.ends.push(end);
        let t = s.next;
        s.next += 1;
        if let Some(w) = s.writer.take() {
            w.wake();
        }
        t
    }

    /// True when more is appended than the writer has taken, beyond a
    /// bound: sessions then wait for their records whatever the durability,
    /// so memory stays bounded when the disk is slower than the sessions.
    pub fn is_backlogged(&self) -> bool {
        self.state.borrow().bodies.len() > BACKLOG
    }

    /// Waits until record `t` has reached `level`, or failed.
    pub async fn reached(&self, t: Ticket, level: Level) -> Result<(), WriteFailed> {
        poll_fn(|cx| {
            let mut s = self.state.borrow_mut();
            if s.written >= t {
                let failed = s.failed.iter().find(|(lo, hi, _)| (*lo..=*hi).contains(&t));
                if let Some((_, _, why)) = failed {
                    return Poll::Ready(Err(WriteFailed(why.clone())));
                }
            }
            let done = match level {
                Level::Written => s.written,
                Level::Synced => s.synced,
            };
            if done >= t {
                return Poll::Ready(Ok(()));
            }
            if s.closed {
                return Poll::Ready(Err(WriteFailed("the audit stream is closed".into())));
            }
            s.waiters.push(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Asks the writer to finish what was appended, sync it, then stop.
    pub async fn close(&self) {
        let last = {
            let mut s = self.state.borrow_mut();
            s.closing = true;
            if let Some(w) = s.writer.take() {
                w.wake();
            }
            s.next - 1
        };
        let _ = self.reached(last, Level::Synced).await;
    }

    /// Fails tickets `lo..=hi` with `why` and marks the stream unhealthy.
    fn fail(&self, s: &mut State, lo: Ticket, hi: Ticket, why: String) {
        self.healthy.set(false);
        tracing::error!(stream = self.settings.stream, error = %why, "audit: records could not be written; statements are refused until the log can be written again");
        {
            let mut lost = self.lost.borrow_mut();
            lost.0 += hi + 1 - lo;
            lost.1 = why.clone();
        }
        if s.failed.len() == FAILED_KEPT {
            s.failed.pop_front();
        }
        s.failed.push_back((lo, hi, why));
    }
}

/// The writer task's half: the chain and the current segment.
pub struct StreamWriter {
    stream: Rc<AuditStream>,
    chain: Chain,
    /// The segment, written with plain pwrite: a buffered append costs a
    /// few microseconds, far less than handing it to an io_uring worker
    /// thread. The fsyncs, which take long, go through io_uring.
    file: Option<std::fs::File>,
    offset: u64,
    /// The first record of the current segment, which names it.
    segment_first: u64,
}

impl StreamWriter {
    /// Runs the writer and the syncer until the stream is closed; a start
    /// record first.
    pub async fn run(self) {
        let stream = self.stream.clone();
        monoio::join!(self.write_loop(), sync_loop(stream));
    }

    async fn write_loop(mut self) {
        let settings = self.stream.settings.clone();
        let start = Record {
            t: super::time::format(super::time::now_micros()).into(),
            kind: Kind::Start,
            version: Some(env!("CARGO_PKG_VERSION").into()),
            stream: Some(settings.stream),
            streams: Some(settings.streams),
            boot: Some(boot_id().into()),
            policy: Some(settings.policy.as_str().into()),
            ..Record::default()
        };
        self.stream.append(&start);
        let mut sealed = Vec::new();
        let mut bodies = Vec::new();
        let mut ends = Vec::new();
        loop {
            let last = poll_fn(|cx| {
                let mut s = self.stream.state.borrow_mut();
                if !s.ends.is_empty() || s.retry {
                    s.retry = false;
                    // Swap buffers, so both keep their allocations.
                    std::mem::swap(&mut s.bodies, &mut bodies);
                    std::mem::swap(&mut s.ends, &mut ends);
                    return Poll::Ready(Some(s.next - 1));
                }
                if s.closing {
                    return Poll::Ready(None);
                }
                s.writer = Some(cx.waker().clone());
                Poll::Pending
            })
            .await;
            let Some(mut last) = last else { break };
            if settings.durability == Durability::Async && !self.stream.state.borrow().closing {
                // Async: nobody waits, so let the batch grow first.
                monoio::time::sleep(ASYNC_GATHER).await;
                let mut s = self.stream.state.borrow_mut();
                let more = std::mem::take(&mut s.bodies);
                let base = bodies.len();
                bodies.extend_from_slice(&more);
                ends.extend(s.ends.drain(..).map(|e| e + base));
                last = s.next - 1;
                s.bodies = more;
                s.bodies.clear();
            }
            let first = last + 1 - ends.len() as u64;
            sealed.clear();
            let before = self.chain;
            if !self.stream.healthy.get() {
                // The log says where it has a gap, before anything else.
                self.chain
                    .seal(&self.stream.recovered_record(), &mut sealed);
            }
            let mut start = 0;
            for &end in &ends {
                self.chain.seal(&bodies[start..end], &mut sealed);
                start = end;
            }
            bodies.clear();
            ends.clear();
            if sealed.is_empty() {
                // A retry asked for while the stream was healthy again.
                let mut s = self.stream.state.borrow_mut();
                s.attempts += 1;
                s.wake_all();
                continue;
            }
            let result = self.write(before.seq, std::mem::take(&mut sealed)).await;
            let mut s = self.stream.state.borrow_mut();
            match result {
                Ok(buf) => {
                    sealed = buf;
                    if !self.stream.healthy.get() {
                        self.stream.healthy.set(true);
                        *self.stream.lost.borrow_mut() = (0, String::new());
                    }
                }
                Err(e) => {
                    self.chain = before;
                    if first <= last {
                        self.stream.fail(&mut s, first, last, e);
                    } else {
                        self.stream.healthy.set(false);
                    }
                }
            }
            s.attempts += 1;
            s.written = last;
            if let Some(w) = s.syncer.take() {
                w.wake();
            }
            s.wake_all();
        }
        let mut s = self.stream.state.borrow_mut();
        s.closed = true;
        if let Some(w) = s.syncer.take() {
            w.wake();
        }
        s.wake_all();
    }

    /// Appends sealed lines (whose first record is `seq`) to the current
    /// segment, rotating first when it is full. On failure the segment is
    /// cut back to where it was.
    async fn write(&mut self, seq: u64, buf: Vec<u8>) -> Result<Vec<u8>, String> {
        let settings = &self.stream.settings;
        let deleted = std::mem::take(&mut self.stream.state.borrow_mut().rotate);
        if self.file.is_none() || self.offset >= settings.segment_size || deleted {
            self.rotate(seq).await?;
        }
        let Some(file) = &self.file else {
            return Err("no segment is open".into());
        };
        let len = buf.len() as u64;
        let res = std::os::unix::fs::FileExt::write_all_at(file, &buf, self.offset);
        match res {
            Ok(()) => {
                self.offset += len;
                Ok(buf)
            }
            Err(e) => {
                let why = format!("writing {}: {e}", self.segment_path().display());
                // Whatever part of the batch reached the file is cut off
                // again; if even that fails, the next batch starts a new
                // segment (the stale tail is then an unfinished record that
                // verify reports).
                if !self.cut_back() {
                    self.file = None;
                }
                Err(why)
            }
        }
    }

    fn segment_path(&self) -> PathBuf {
        self.stream.settings.dir.join(segment::name(
            self.stream.settings.stream,
            self.segment_first,
        ))
    }

    fn cut_back(&self) -> bool {
        let Some(file) = &self.file else { return false };
        // SAFETY: ftruncate on the segment's own open descriptor.
        unsafe { libc::ftruncate(file.as_raw_fd(), self.offset as libc::off_t) == 0 }
    }

    /// Starts a new segment whose first record is `seq`, after syncing the
    /// one it replaces (the syncer only ever syncs the current segment).
    async fn rotate(&mut self, seq: u64) -> Result<(), String> {
        let old = self.stream.state.borrow().file.clone();
        if let Some(old) = old {
            old.sync_data()
                .await
                .map_err(|e| format!("syncing {}: {e}", self.segment_path().display()))?;
        }
        let dir = &self.stream.settings.dir;
        let path = dir.join(segment::name(self.stream.settings.stream, seq));
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        let len = f
            .metadata()
            .map_err(|e| format!("{}: {e}", path.display()))?
            .len();
        // The new name must reach the disk too.
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| format!("cannot sync {}: {e}", dir.display()))?;
        let for_sync = f
            .try_clone()
            .and_then(monoio::fs::File::from_std)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        self.stream.state.borrow_mut().file = Some(Rc::new(for_sync));
        self.file = Some(f);
        self.offset = len;
        self.segment_first = seq;
        Ok(())
    }
}

/// True when the file has no name left (it was deleted).
fn unlinked(f: &monoio::fs::File) -> bool {
    // SAFETY: fstat into a zeroed stat of the file's own descriptor.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    unsafe { libc::fstat(f.as_raw_fd(), &mut st) == 0 && st.st_nlink == 0 }
}

/// The syncer: fsyncs the current segment whenever records were written
/// since the last fsync began; each fsync settles every ticket written
/// before it started.
async fn sync_loop(stream: Rc<AuditStream>) {
    loop {
        let job = poll_fn(|cx| {
            let mut s = stream.state.borrow_mut();
            if s.written > s.synced {
                return Poll::Ready(Some((s.written, s.file.clone())));
            }
            if s.closed {
                return Poll::Ready(None);
            }
            s.syncer = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
        let Some((target, file)) = job else { return };
        let result = match &file {
            Some(f) => match f.sync_data().await {
                Err(e) => Err(e.to_string()),
                // A segment deleted from under pgward takes its records
                // with it: those not yet synced fail (their statements do
                // not run), and writing goes on in a new segment, whose
                // chain shows the gap.
                Ok(()) if unlinked(f) => {
                    Err("the segment was deleted while pgward wrote it".into())
                }
                Ok(()) => Ok(()),
            },
            // Nothing was ever written (every batch failed).
            None => Ok(()),
        };
        {
            let mut s = stream.state.borrow_mut();
            if let Err(e) = result {
                s.rotate = true;
                let lo = s.synced + 1;
                stream.fail(
                    &mut s,
                    lo,
                    target,
                    format!("syncing the audit segment: {e}"),
                );
            }
            s.synced = target;
            s.wake_all();
        }
        let interval = stream.settings.sync_interval;
        if stream.settings.durability != Durability::Strict && !interval.is_zero() {
            monoio::time::sleep(interval).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain::open;

    fn runtime() -> monoio::FusionRuntime<
        monoio::time::TimeDriver<monoio::IoUringDriver>,
        monoio::time::TimeDriver<monoio::LegacyDriver>,
    > {
        monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
            .enable_timer()
            .build()
            .unwrap()
    }

    fn settings(dir: &Path, segment_size: u64, durability: Durability) -> StreamSettings {
        StreamSettings {
            dir: dir.to_path_buf(),
            stream: 0,
            streams: 1,
            segment_size,
            policy: "p".into(),
            durability,
            sync_interval: std::time::Duration::from_millis(5),
        }
    }

    fn statement(n: u64) -> Record<'static> {
        Record {
            t: "2026-12-01T00:00:00.000000Z".into(),
            kind: Kind::Statement,
            n: Some(n),
            sql: Some(format!("SELECT {n}").into()),
            ..Record::default()
        }
    }

    /// Every line of every segment, checked link by link.
    fn chained_lines(dir: &Path) -> Vec<String> {
        let mut prev = crate::audit::chain::GENESIS;
        let mut seq = 1;
        let mut out = Vec::new();
        for s in segment::list(dir).unwrap() {
            let text = std::fs::read_to_string(&s.path).unwrap();
            assert!(text.is_empty() || text.ends_with('\n'));
            for (i, line) in text.lines().enumerate() {
                let link = open(line.as_bytes()).unwrap();
                assert_eq!((link.seq, link.prev), (seq, prev), "{}", s.path.display());
                if i == 0 {
                    assert_eq!(s.first_seq, seq);
                }
                prev = link.hash;
                seq += 1;
                out.push(line.to_string());
            }
        }
        out
    }

    #[test]
    fn records_are_synced_in_order_across_segments_and_restarts() {
        let dir = tempfile::tempdir().unwrap();
        for round in 0..2u64 {
            let opened = open_stream(settings(dir.path(), 64 * 1024, Durability::Strict)).unwrap();
            runtime().block_on(async {
                let (stream, writer) = AuditStream::new(opened);
                let run = monoio::spawn(writer.run());
                let mut last = 0;
                for n in 0..2000 {
                    last = stream.append(&statement(round * 10_000 + n));
                    if n % 100 == 0 {
                        stream.reached(last, Level::Synced).await.unwrap();
                    }
                }
                stream.reached(last, Level::Synced).await.unwrap();
                stream.close().await;
                run.await;
            });
        }
        let lines = chained_lines(dir.path());
        // A start record and 2000 statements per round.
        assert_eq!(lines.len(), 2 * 2001);
        assert!(segment::list(dir.path()).unwrap().len() > 4);
        let sqls: Vec<String> = lines
            .iter()
            .filter_map(|l| {
                let r: Record = serde_json::from_str(l).unwrap();
                r.sql.map(|s| s.into_owned())
            })
            .collect();
        let expected: Vec<String> = (0..2u64)
            .flat_map(|r| (0..2000).map(move |n| format!("SELECT {}", r * 10_000 + n)))
            .collect();
        assert_eq!(sqls, expected);
    }

    #[test]
    fn async_records_are_written_without_anyone_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let opened = open_stream(settings(dir.path(), 1 << 20, Durability::Async)).unwrap();
        runtime().block_on(async {
            let (stream, writer) = AuditStream::new(opened);
            let run = monoio::spawn(writer.run());
            for n in 0..10 {
                stream.append(&statement(n));
            }
            assert!(!stream.is_backlogged());
            stream.close().await;
            run.await;
        });
        assert_eq!(chained_lines(dir.path()).len(), 11);
    }

    #[test]
    fn a_segment_deleted_while_written_fails_its_unsynced_records_and_writing_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let opened = open_stream(settings(dir.path(), 1 << 20, Durability::Strict)).unwrap();
        runtime().block_on(async {
            let (stream, writer) = AuditStream::new(opened);
            let run = monoio::spawn(writer.run());
            let t = stream.append(&statement(1));
            stream.reached(t, Level::Synced).await.unwrap();
            for s in segment::list(dir.path()).unwrap() {
                std::fs::remove_file(&s.path).unwrap();
            }
            let t = stream.append(&statement(2));
            let e = stream.reached(t, Level::Synced).await.unwrap_err();
            assert!(e.0.contains("deleted"), "{e:?}");
            assert!(!stream.is_healthy());
            let t = stream.append(&statement(3));
            stream.reached(t, Level::Synced).await.unwrap();
            assert!(stream.is_healthy());
            stream.close().await;
            run.await;
        });
        // The new segment starts with the record of the loss, chained on
        // from the deleted one (so verify shows the gap).
        let segments = segment::list(dir.path()).unwrap();
        assert_eq!(segments.len(), 1);
        let text = std::fs::read_to_string(&segments[0].path).unwrap();
        let first: Record = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first.kind, Kind::Recovered);
        assert_eq!(first.lost, Some(1));
        assert!(segments[0].first_seq > 1);
    }

    #[test]
    fn a_second_process_cannot_take_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let _held = lock_dir(dir.path()).unwrap();
        // flock locks belong to the open file description: a second open
        // conflicts even within one process.
        let e = lock_dir(dir.path()).unwrap_err();
        assert!(e.contains("in use by another pgward"), "{e}");
    }
}
