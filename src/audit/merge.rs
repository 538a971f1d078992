//! The records of every stream of a directory, merged in time order, for
//! `show` and `replay`. Each stream is in time order already, so the merge
//! keeps one record per stream and hands out the earliest. With `follow`,
//! the end of a stream is only its end for now: a later call after
//! `refresh` goes on with what was appended, new segments and new streams.

use std::path::{Path, PathBuf};

use super::reader::{self, ReadError, StreamReader};
use super::time;

/// One record as read: its time and its line, unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The stream it is in.
    pub stream: u32,
    /// Its time, microseconds since the epoch (0 when unreadable).
    pub t: u64,
    /// The line, without its newline.
    pub line: Vec<u8>,
}

/// Reads the streams of a directory as one sequence in time order.
#[derive(Debug)]
pub struct Merge {
    dir: PathBuf,
    follow: bool,
    needle: Option<Vec<u8>>,
    readers: Vec<StreamReader>,
    heads: Vec<Option<Entry>>,
    /// Unfinished lines passed over (not in follow mode).
    pub unfinished: Vec<PathBuf>,
}

impl Merge {
    /// Opens every stream of `dir`. Only lines containing `needle` (when
    /// given) are read further: a cheap way to pick one session's records.
    pub fn open(dir: &Path, follow: bool, needle: Option<Vec<u8>>) -> Result<Merge, ReadError> {
        let mut m = Merge {
            dir: dir.to_path_buf(),
            follow,
            needle,
            readers: Vec::new(),
            heads: Vec::new(),
            unfinished: Vec::new(),
        };
        m.refresh()?;
        Ok(m)
    }

    /// Picks up new segments and new streams.
    pub fn refresh(&mut self) -> Result<(), ReadError> {
        for r in &mut self.readers {
            r.refresh(&self.dir)?;
        }
        for s in reader::streams(&self.dir)? {
            if !self.readers.iter().any(|r| r.stream().stream == s.stream) {
                self.readers.push(StreamReader::new(s));
                self.heads.push(None);
            }
        }
        Ok(())
    }

    /// The earliest record not handed out yet, or `None` when every stream
    /// is at its (current) end.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, ReadError> {
        for i in 0..self.readers.len() {
            if self.heads[i].is_none() {
                self.heads[i] = self.read(i)?;
            }
        }
        let earliest = self
            .heads
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.as_ref().map(|e| (e.t, i)))
            .min();
        Ok(earliest.and_then(|(_, i)| self.heads[i].take()))
    }

    /// The next line of stream `i` that passes the needle.
    fn read(&mut self, i: usize) -> Result<Option<Entry>, ReadError> {
        let finish = !self.follow;
        let reader = &mut self.readers[i];
        let stream = reader.stream().stream;
        while let Some(l) = reader.next_line(finish)? {
            if !l.line.complete {
                self.unfinished.push(l.segment.path.clone());
                continue;
            }
            let bytes = &*l.line.bytes;
            if let Some(n) = &self.needle {
                if memchr::memmem::find(bytes, n).is_none() {
                    continue;
                }
            }
            return Ok(Some(Entry {
                stream,
                t: time_of(bytes).unwrap_or(0),
                line: bytes.to_vec(),
            }));
        }
        Ok(None)
    }
}

/// A record's time without parsing it: its first `"t"` field (records have
/// no nested objects, and a quote inside a string is escaped, so `,"t":"`
/// is always the field).
pub fn time_of(line: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b",\"t\":\"";
    let start = memchr::memmem::find(line, KEY)? + KEY.len();
    let len = memchr::memchr(b'"', &line[start..])?;
    time::parse(std::str::from_utf8(&line[start..start + len]).ok()?)
}

/// The bytes a record holding `"session":"<session>"` contains.
pub fn session_needle(session: &str) -> Vec<u8> {
    let mut n = b"\"session\":".to_vec();
    // Escaped as the writer escapes it; a string always serializes.
    let _ = serde_json::to_writer(&mut n, session);
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_and_session_are_found_without_parsing() {
        let line = br#"{"seq":1,"prev":"00","t":"2026-12-01T00:00:01.000000Z","kind":"connect","session":"a\"b"}"#;
        assert_eq!(time_of(line), time::parse("2026-12-01T00:00:01Z"));
        assert!(memchr::memmem::find(line, &session_needle("a\"b")).is_some());
        assert!(memchr::memmem::find(line, &session_needle("a")).is_none());
        assert_eq!(
            time_of(br#"{"seq":1,"sql":"x\",\"t\":\"2026-12-01"}"#),
            None
        );
    }
}
