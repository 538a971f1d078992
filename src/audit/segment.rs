//! Segment files of the audit directory. Each worker writes its own stream
//! of records; a stream is split into segments named by stream and by the
//! sequence number of their first record, `w0-0000000000000001.jsonl`, so
//! sorting the names orders a stream. A segment's first record links to the
//! last record of the segment before it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::chain::{open, Chain};

/// One segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Its path.
    pub path: PathBuf,
    /// The stream (worker) that wrote it.
    pub stream: u32,
    /// The sequence number of its first record.
    pub first_seq: u64,
}

/// The file name of a segment.
pub fn name(stream: u32, first_seq: u64) -> String {
    format!("w{stream}-{first_seq:016}.jsonl")
}

/// The stream and first sequence number a segment's file name gives.
pub fn parse_name(file_name: &str) -> Option<(u32, u64)> {
    let rest = file_name.strip_prefix('w')?.strip_suffix(".jsonl")?;
    let (stream, seq) = rest.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(stream) || seq.len() != 16 || !digits(seq) {
        return None;
    }
    Some((stream.parse().ok()?, seq.parse().ok()?))
}

/// Every segment in `dir`, ordered by stream, then by first record.
pub fn list(dir: &Path) -> io::Result<Vec<Segment>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some((stream, first_seq)) = file_name.to_str().and_then(parse_name) else {
            continue;
        };
        out.push(Segment {
            path: entry.path(),
            stream,
            first_seq,
        });
    }
    out.sort_by_key(|s| (s.stream, s.first_seq));
    Ok(out)
}

/// Where a stream continues after a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    /// The next record's number and the last record's hash.
    pub chain: Chain,
    /// Bytes of an unfinished last line that were cut off (a record whose
    /// write never completed, so whose statement never ran).
    pub cut: u64,
}

/// Why a stream cannot be continued.
#[derive(Debug)]
pub enum ResumeError {
    /// Reading or truncating failed.
    Io(PathBuf, io::Error),
    /// The last record is not a sealed record: the log was damaged.
    Broken(PathBuf, String),
}

impl std::fmt::Display for ResumeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResumeError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            ResumeError::Broken(p, why) => write!(
                f,
                "{}: the last record is broken ({why}); run `pgward audit verify` and move the damaged stream aside",
                p.display()
            ),
        }
    }
}

/// Finds where `stream` left off in `dir`: the last complete record of its
/// last non-empty segment. An unfinished last line is cut off first.
pub fn resume(dir: &Path, stream: u32) -> Result<Resume, ResumeError> {
    let io_err = |p: &Path| {
        let p = p.to_path_buf();
        move |e| ResumeError::Io(p, e)
    };
    let segments = list(dir).map_err(io_err(dir))?;
    let mut cut = 0;
    for s in segments.iter().rev().filter(|s| s.stream == stream) {
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&s.path)
            .map_err(io_err(&s.path))?;
        let (last, complete_len) = last_line(&mut f).map_err(io_err(&s.path))?;
        let len = f.metadata().map_err(io_err(&s.path))?.len();
        if complete_len < len {
            cut += len - complete_len;
            f.set_len(complete_len).map_err(io_err(&s.path))?;
            f.sync_all().map_err(io_err(&s.path))?;
        }
        let Some(line) = last else { continue };
        let link = open(&line).map_err(|e| ResumeError::Broken(s.path.clone(), e.to_string()))?;
        return Ok(Resume {
            chain: Chain {
                seq: link.seq + 1,
                prev: link.hash,
            },
            cut,
        });
    }
    Ok(Resume {
        chain: Chain::default(),
        cut,
    })
}

/// The last complete line of a file (without its newline) and the length
/// of the file up to the end of that line.
fn last_line(f: &mut File) -> io::Result<(Option<Vec<u8>>, u64)> {
    let len = f.metadata()?.len();
    let mut window = 64 * 1024u64;
    loop {
        let start = len.saturating_sub(window);
        f.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::with_capacity((len - start) as usize);
        f.take(len - start).read_to_end(&mut buf)?;
        let Some(end) = memchr::memrchr(b'\n', &buf) else {
            if start == 0 {
                return Ok((None, 0));
            }
            window *= 4;
            continue;
        };
        match memchr::memrchr(b'\n', &buf[..end]) {
            Some(begin) => {
                return Ok((Some(buf[begin + 1..end].to_vec()), start + end as u64 + 1));
            }
            None if start == 0 => return Ok((Some(buf[..end].to_vec()), end as u64 + 1)),
            None => window *= 4,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_a_stream_and_read_back() {
        assert_eq!(name(3, 42), "w3-0000000000000042.jsonl");
        assert_eq!(parse_name(&name(3, 42)), Some((3, 42)));
        for bad in [
            "w3-42.jsonl",
            "x3-0000000000000042.jsonl",
            "w-0000000000000042.jsonl",
            "w3-0000000000000042.json",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn resume_cuts_an_unfinished_line_and_continues_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(resume(dir.path(), 0).unwrap().chain, Chain::default());
        let mut chain = Chain::default();
        let mut bytes = Vec::new();
        chain.seal(br#"{"kind":"start"}"#, &mut bytes);
        chain.seal(br#"{"kind":"connect"}"#, &mut bytes);
        let whole = bytes.len() as u64;
        bytes.extend_from_slice(br#"{"seq":3,"prev":"ab"#);
        let path = dir.path().join(name(0, 1));
        std::fs::write(&path, &bytes).unwrap();
        // An empty later segment (made just before a crash) is passed over.
        std::fs::write(dir.path().join(name(0, 3)), b"").unwrap();
        let r = resume(dir.path(), 0).unwrap();
        assert_eq!(r.chain, chain);
        assert_eq!(r.cut, bytes.len() as u64 - whole);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), whole);
        // Another stream is untouched.
        assert_eq!(resume(dir.path(), 1).unwrap().chain, Chain::default());
        // A damaged last record stops the start.
        let mut damaged = std::fs::read(&path).unwrap();
        let i = damaged.len() - 80;
        damaged[i] ^= 1;
        std::fs::write(&path, &damaged).unwrap();
        assert!(matches!(
            resume(dir.path(), 0),
            Err(ResumeError::Broken(..))
        ));
    }
}
