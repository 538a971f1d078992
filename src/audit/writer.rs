//! A worker's audit stream. Sessions append record bodies; one writer task
//! per worker seals them into the chain, appends them to the stream's
//! current segment and group-commits them with one fsync per batch (every
//! record that arrived during the previous fsync goes in the next), then
//! wakes the sessions waiting for their records. Nothing is shared between
//! workers, so nothing on the data path takes a lock, and a slow disk holds
//! back only the sessions that wait for it, never the worker.
//!
//! When a write or fsync fails, the batch is cut back off the segment, the
//! chain is left where it was, the waiting sessions learn that their
//! records were not written, and the stream reports itself unhealthy until
//! a later batch succeeds.

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

/// Names one appended record until it is written.
pub type Ticket = u64;

/// How long a statement waits for its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// A statement is forwarded only once its record is on disk (fsynced).
    Strict,
    /// Statements are forwarded at once; records follow within one fsync.
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
    /// Appended bytes waiting to be written beyond which appending sessions
    /// wait, whatever the durability.
    pub max_pending: usize,
    /// The configuration's hash, for the start record.
    pub policy: String,
}

/// A stream opened before the worker starts: the segment to write and
/// where the chain continues.
pub struct OpenedStream {
    settings: StreamSettings,
    resume: Resume,
}

/// Takes the directory for this process: an exclusive lock on `dir/.lock`,
/// held as long as the returned file is open (two pgward processes writing
/// one stream would break its chain).
pub fn lock_dir(dir: &Path) -> Result<std::fs::File, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join(".lock");
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
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

/// One worker's audit stream.
pub struct AuditStream {
    settings: StreamSettings,
    state: RefCell<State>,
    healthy: Cell<bool>,
    /// The `recovered` record in flight, when a session is trying the disk.
    probe: Cell<Option<Ticket>>,
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
    done: Ticket,
    /// Tickets that failed, as inclusive ranges, newest last.
    failed: VecDeque<(Ticket, Ticket, String)>,
    waiters: Vec<Waker>,
    writer: Option<Waker>,
    closing: bool,
}

/// How many failed ranges are remembered for late waiters.
const FAILED_KEPT: usize = 256;

impl AuditStream {
    /// The stream, ready for its writer task (`run`).
    pub fn new(opened: OpenedStream) -> (Rc<AuditStream>, StreamWriter) {
        let stream = Rc::new(AuditStream {
            settings: opened.settings,
            state: RefCell::new(State {
                bodies: Vec::new(),
                ends: Vec::new(),
                next: 1,
                done: 0,
                failed: VecDeque::new(),
                waiters: Vec::new(),
                writer: None,
                closing: false,
            }),
            healthy: Cell::new(true),
            probe: Cell::new(None),
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

    /// Tries the disk again when the last batch failed: appends a
    /// `recovered` record (one at a time, shared by every session asking)
    /// and waits for it. True when the stream writes again.
    pub async fn recover(&self) -> bool {
        if self.healthy.get() {
            return true;
        }
        let t = match self.probe.get() {
            Some(t) => t,
            None => {
                let (lost, why) = self.lost.borrow().clone();
                let r = Record {
                    t: super::time::format(super::time::now_micros()).into(),
                    kind: Kind::Recovered,
                    lost: Some(lost),
                    reason: Some(why.into()),
                    ..Record::default()
                };
                let t = self.append(&r);
                self.probe.set(Some(t));
                t
            }
        };
        let ok = self.written(t).await.is_ok();
        if self.probe.get() == Some(t) {
            self.probe.set(None);
        }
        ok
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

    /// True when appended records wait beyond the bound: appending sessions
    /// should wait for their last record even in async mode.
    pub fn is_backlogged(&self) -> bool {
        self.state.borrow().bodies.len() > self.settings.max_pending
    }

    /// Waits until record `t` is written (fsynced), or its write failed.
    pub async fn written(&self, t: Ticket) -> Result<(), WriteFailed> {
        poll_fn(|cx| {
            let mut s = self.state.borrow_mut();
            if s.done >= t {
                let failed = s.failed.iter().find(|(lo, hi, _)| (*lo..=*hi).contains(&t));
                return Poll::Ready(match failed {
                    Some((_, _, why)) => Err(WriteFailed(why.clone())),
                    None => Ok(()),
                });
            }
            s.waiters.push(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Asks the writer to finish what was appended, then stop.
    pub async fn close(&self) {
        let last = {
            let mut s = self.state.borrow_mut();
            s.closing = true;
            if let Some(w) = s.writer.take() {
                w.wake();
            }
            s.next - 1
        };
        let _ = self.written(last).await;
    }
}

/// The writer task's half: the chain and the current segment.
pub struct StreamWriter {
    stream: Rc<AuditStream>,
    chain: Chain,
    file: Option<monoio::fs::File>,
    offset: u64,
    /// The first record of the current segment, which names it.
    segment_first: u64,
}

impl StreamWriter {
    /// Writes batches until the stream is closed; a start record first.
    pub async fn run(mut self) {
        let settings = self.stream.settings.clone();
        let start = Record {
            t: super::time::format(super::time::now_micros()).into(),
            kind: Kind::Start,
            version: Some(env!("CARGO_PKG_VERSION").into()),
            stream: Some(settings.stream),
            streams: Some(settings.streams),
            policy: Some(settings.policy.as_str().into()),
            ..Record::default()
        };
        self.stream.append(&start);
        let mut sealed = Vec::new();
        loop {
            let batch = poll_fn(|cx| {
                let mut s = self.stream.state.borrow_mut();
                if !s.ends.is_empty() {
                    let bodies = std::mem::take(&mut s.bodies);
                    let ends = std::mem::take(&mut s.ends);
                    let last = s.next - 1;
                    return Poll::Ready(Some((bodies, ends, last)));
                }
                if s.closing {
                    return Poll::Ready(None);
                }
                s.writer = Some(cx.waker().clone());
                Poll::Pending
            })
            .await;
            let Some((bodies, ends, last)) = batch else {
                return;
            };
            let first = last + 1 - ends.len() as u64;
            sealed.clear();
            let before = self.chain;
            let mut start = 0;
            for &end in &ends {
                self.chain.seal(&bodies[start..end], &mut sealed);
                start = end;
            }
            let result = self.write(before.seq, std::mem::take(&mut sealed)).await;
            let mut s = self.stream.state.borrow_mut();
            match result {
                Ok(buf) => {
                    sealed = buf;
                    self.stream.healthy.set(true);
                    *self.stream.lost.borrow_mut() = (0, String::new());
                }
                Err(e) => {
                    self.chain = before;
                    self.stream.healthy.set(false);
                    {
                        let mut lost = self.stream.lost.borrow_mut();
                        lost.0 += ends.len() as u64;
                        lost.1 = e.clone();
                    }
                    tracing::error!(stream = settings.stream, error = %e, "audit: records could not be written; statements are refused until the log can be written again");
                    if s.failed.len() == FAILED_KEPT {
                        s.failed.pop_front();
                    }
                    s.failed.push_back((first, last, e));
                }
            }
            s.done = last;
            for w in s.waiters.drain(..) {
                w.wake();
            }
        }
    }

    /// Appends sealed lines (whose first record is `seq`) to the current
    /// segment, rotating first when it is full, and fsyncs. On failure the
    /// segment is cut back to where it was.
    async fn write(&mut self, seq: u64, buf: Vec<u8>) -> Result<Vec<u8>, String> {
        let settings = &self.stream.settings;
        if self.file.is_none() || self.offset >= settings.segment_size {
            self.rotate(seq)?;
        }
        let Some(file) = &self.file else {
            return Err("no segment is open".into());
        };
        let len = buf.len() as u64;
        let (res, buf) = file.write_all_at(buf, self.offset).await;
        let res = match res {
            Ok(()) => file.sync_data().await,
            Err(e) => Err(e),
        };
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

    /// Starts a new segment whose first record is `seq`.
    fn rotate(&mut self, seq: u64) -> Result<(), String> {
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
        self.file =
            Some(monoio::fs::File::from_std(f).map_err(|e| format!("{}: {e}", path.display()))?);
        self.offset = len;
        self.segment_first = seq;
        Ok(())
    }
}
