//! `audit verify` on any bytes: written as one segment or split into two,
//! raw or as edits of a valid log (so the chain checks past the hash are
//! reached), verify returns a report, never panics.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pgward::audit::{sample, segment, verify};

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("pgward-fuzz-audit-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    })
}

fn valid() -> &'static Vec<u8> {
    static LOG: OnceLock<Vec<u8>> = OnceLock::new();
    LOG.get_or_init(|| sample::stream_lines(0, 1, 1_796_000_000_000_000, 2, 3).concat())
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let bytes = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        // Edits of a valid log: (position, byte) pairs XORed in, or with
        // mode bit 2, lines cut out at the positions.
        let mut log = valid().clone();
        for pair in rest.chunks(3) {
            let at = usize::from(u16::from_le_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
            let at = at % log.len().max(1);
            if mode & 4 == 0 {
                log[at] ^= pair.get(2).copied().unwrap_or(1).max(1);
            } else {
                let end = memchr::memchr(b'\n', &log[at..]).map_or(log.len(), |i| at + i + 1);
                log.drain(at..end);
                if log.is_empty() {
                    break;
                }
            }
        }
        log
    };
    let dir = dir();
    for entry in std::fs::read_dir(dir).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    if mode & 2 == 0 {
        std::fs::write(dir.join(segment::name(0, 1)), &bytes).unwrap();
    } else {
        let cut = usize::from(mode >> 3) * bytes.len() / 32;
        let cut = cut.min(bytes.len());
        std::fs::write(dir.join(segment::name(0, 1)), &bytes[..cut]).unwrap();
        // The second segment's name may or may not give its first seq.
        let named = u64::from(mode >> 6) + 3;
        std::fs::write(dir.join(segment::name(0, named)), &bytes[cut..]).unwrap();
    }
    let report = verify::verify(dir).expect("the directory is readable");
    for b in report.breaks() {
        let _ = b.to_string();
    }
});
