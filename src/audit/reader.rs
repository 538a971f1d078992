//! Reading an audit directory back: its segments grouped into streams, each
//! stream read line by line through one large buffer (a read syscall per
//! megabyte, not per line), and lines parsed into records with simd-json.
//!
//! Lines are handed out as `&mut [u8]` into the read buffer: simd-json
//! parses in place, and a caller that needs the original bytes (to hash
//! them, or print them unchanged) uses them before parsing.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::record::Record;
use super::segment::{self, Segment};

/// How much a reader asks the kernel for at once.
const READ_SIZE: usize = 1 << 20;

/// Why the audit directory could not be read.
#[derive(Debug)]
pub struct ReadError {
    /// The file or directory.
    pub path: PathBuf,
    /// What failed.
    pub error: io::Error,
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: cannot read: {}", self.path.display(), self.error)
    }
}

impl std::error::Error for ReadError {}

fn read_error(path: &Path) -> impl FnOnce(io::Error) -> ReadError + '_ {
    move |error| ReadError {
        path: path.to_path_buf(),
        error,
    }
}

/// One stream's segments, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    /// The stream (worker) number.
    pub stream: u32,
    /// Its segment files, in sequence order.
    pub segments: Vec<Segment>,
}

/// The streams of `dir`, by stream number.
pub fn streams(dir: &Path) -> Result<Vec<Stream>, ReadError> {
    let mut out: Vec<Stream> = Vec::new();
    for s in segment::list(dir).map_err(read_error(dir))? {
        match out.last_mut() {
            Some(last) if last.stream == s.stream => last.segments.push(s),
            _ => out.push(Stream {
                stream: s.stream,
                segments: vec![s],
            }),
        }
    }
    Ok(out)
}

/// One line of a segment, without its newline.
#[derive(Debug)]
pub struct Line<'a> {
    /// Its line number in the segment, from 1.
    pub number: u64,
    /// Where it starts in the segment, in bytes.
    pub offset: u64,
    /// Whether a newline ended it (a last line without one is a write that
    /// never completed).
    pub complete: bool,
    /// Its bytes, which the caller may parse in place.
    pub bytes: &'a mut [u8],
}

/// Reads one segment file line by line.
#[derive(Debug)]
pub struct LineReader {
    file: File,
    buf: Vec<u8>,
    /// The unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// The file offset of `buf[start]` and its line number.
    offset: u64,
    number: u64,
    /// The line handed out last: its length, the bytes it takes (with its
    /// newline) and whether it was complete.
    last: (usize, usize, bool),
}

impl LineReader {
    /// Opens `path` at its beginning.
    pub fn open(path: &Path) -> io::Result<LineReader> {
        Ok(LineReader {
            file: File::open(path)?,
            buf: vec![0; READ_SIZE],
            start: 0,
            end: 0,
            offset: 0,
            number: 1,
            last: (0, 0, false),
        })
    }

    /// Opens `path` at `offset`, where line `number` starts.
    pub fn open_at(path: &Path, offset: u64, number: u64) -> io::Result<LineReader> {
        let mut r = LineReader::open(path)?;
        r.file.seek(SeekFrom::Start(offset))?;
        r.offset = offset;
        r.number = number;
        Ok(r)
    }

    /// The next complete line, or `None` when the file has no more. With
    /// `finish`, bytes after the last newline are handed out as an
    /// unfinished line; without it they stay buffered, so a later call sees
    /// the line once its writer has completed it (`show --follow`).
    pub fn next_line(&mut self, finish: bool) -> io::Result<Option<Line<'_>>> {
        Ok(if self.advance(finish)? {
            Some(self.line())
        } else {
            None
        })
    }

    /// Moves to the next line; false when there is none (yet).
    fn advance(&mut self, finish: bool) -> io::Result<bool> {
        // Skip the line handed out last.
        self.start += self.last.1;
        self.offset += self.last.1 as u64;
        self.number += u64::from(self.last.1 > 0);
        self.last = (0, 0, false);
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[self.start..self.end]) {
                self.last = (i, i + 1, true);
                return Ok(true);
            }
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.end == self.buf.len() {
                // A line longer than the buffer: make room for it.
                self.buf.resize(self.buf.len() * 2, 0);
            }
            let n = match self.file.read(&mut self.buf[self.end..]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n > 0 {
                self.end += n;
                continue;
            }
            if finish && self.end > self.start {
                let len = self.end - self.start;
                self.last = (len, len, false);
                return Ok(true);
            }
            return Ok(false);
        }
    }

    /// The line `advance` moved to.
    fn line(&mut self) -> Line<'_> {
        let (len, _, complete) = self.last;
        Line {
            number: self.number,
            offset: self.offset,
            complete,
            bytes: &mut self.buf[self.start..self.start + len],
        }
    }
}

/// A line of a stream, with the segment it is in.
#[derive(Debug)]
pub struct StreamLine<'a> {
    /// The segment.
    pub segment: &'a Segment,
    /// Which of the stream's segments it is (from 0).
    pub index: usize,
    /// The line.
    pub line: Line<'a>,
}

/// Reads a stream's segments one after the other, as one sequence of lines.
#[derive(Debug)]
pub struct StreamReader {
    stream: Stream,
    index: usize,
    current: Option<LineReader>,
}

impl StreamReader {
    /// Reads `stream` from its first segment.
    pub fn new(stream: Stream) -> StreamReader {
        StreamReader {
            stream,
            index: 0,
            current: None,
        }
    }

    /// Reads `stream` from line `number` at `offset` of segment `index`.
    pub fn at(
        stream: Stream,
        index: usize,
        offset: u64,
        number: u64,
    ) -> Result<StreamReader, ReadError> {
        let current = match stream.segments.get(index) {
            Some(s) => {
                Some(LineReader::open_at(&s.path, offset, number).map_err(read_error(&s.path))?)
            }
            None => None,
        };
        Ok(StreamReader {
            stream,
            index,
            current,
        })
    }

    /// The stream being read.
    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    /// Adds the stream's segments that appeared in `dir` since it was
    /// listed (`show --follow`).
    pub fn refresh(&mut self, dir: &Path) -> Result<(), ReadError> {
        let last = self.stream.segments.last().map_or(0, |s| s.first_seq);
        for s in segment::list(dir).map_err(read_error(dir))? {
            if s.stream == self.stream.stream && s.first_seq > last {
                self.stream.segments.push(s);
            }
        }
        Ok(())
    }

    /// The next line of the stream, or `None` at its (current) end. A
    /// segment followed by another is complete, so its unfinished last
    /// line is handed out; the last segment's is too when `finish`.
    pub fn next_line(&mut self, finish: bool) -> Result<Option<StreamLine<'_>>, ReadError> {
        loop {
            let Some(segment) = self.stream.segments.get(self.index) else {
                return Ok(None);
            };
            let last = self.index + 1 == self.stream.segments.len();
            if self.current.is_none() {
                self.current =
                    Some(LineReader::open(&segment.path).map_err(read_error(&segment.path))?);
            }
            let Some(reader) = self.current.as_mut() else {
                return Ok(None);
            };
            if reader
                .advance(finish || !last)
                .map_err(read_error(&segment.path))?
            {
                break;
            }
            if last {
                return Ok(None);
            }
            self.index += 1;
            self.current = None;
        }
        let segment = &self.stream.segments[self.index];
        Ok(self.current.as_mut().map(|reader| StreamLine {
            segment,
            index: self.index,
            line: reader.line(),
        }))
    }
}

/// Parses lines into records with reusable simd-json buffers.
pub struct Parser {
    buffers: simd_json::Buffers,
}

impl Default for Parser {
    fn default() -> Self {
        Parser {
            buffers: simd_json::Buffers::new(4096),
        }
    }
}

impl std::fmt::Debug for Parser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Parser")
    }
}

impl Parser {
    /// Parses a line into a record, in place: `line` is rewritten.
    pub fn record<'a>(&mut self, line: &'a mut [u8]) -> Result<Record<'a>, simd_json::Error> {
        simd_json::serde::from_slice_with_buffers(line, &mut self.buffers)
    }
}
