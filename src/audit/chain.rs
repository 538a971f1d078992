//! The hash chain of an audit stream. A record's body (a JSON object) is
//! sealed into one line that starts with its sequence number and the
//! previous record's hash and ends with its own hash:
//!
//! `{"seq":7,"prev":"<64 hex>",<body fields>,"hash":"<64 hex>"}`
//!
//! The hash is the SHA-256 of every byte of the line before `,"hash":"`, so
//! it covers the previous hash: editing, deleting, inserting or reordering a
//! line breaks the next link. Pure logic; `open` never panics on any input.

use ring::digest::{digest, SHA256};

/// The `prev` of a stream's first record.
pub const GENESIS: [u8; 32] = [0; 32];

const SEQ_PREFIX: &[u8] = b"{\"seq\":";
const PREV_KEY: &[u8] = b",\"prev\":\"";
const HASH_KEY: &[u8] = b",\"hash\":\"";
/// `,"hash":"` + 64 hex + `"}`.
const HASH_SUFFIX_LEN: usize = HASH_KEY.len() + 64 + 2;

/// Where a stream stands: the next record's number and the last hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chain {
    /// The sequence number the next record gets.
    pub seq: u64,
    /// The hash of the last record (`GENESIS` before the first).
    pub prev: [u8; 32],
}

impl Default for Chain {
    fn default() -> Self {
        Chain {
            seq: 1,
            prev: GENESIS,
        }
    }
}

impl Chain {
    /// Seals `body` (a JSON object with at least one field, no newline)
    /// into a line ending in `\n`, appended to `out`, and advances.
    pub fn seal(&mut self, body: &[u8], out: &mut Vec<u8>) {
        debug_assert!(body.len() > 2 && body[0] == b'{' && body[body.len() - 1] == b'}');
        let start = out.len();
        out.extend_from_slice(SEQ_PREFIX);
        out.extend_from_slice(self.seq.to_string().as_bytes());
        out.extend_from_slice(PREV_KEY);
        push_hex(out, &self.prev);
        out.extend_from_slice(b"\",");
        out.extend_from_slice(&body[1..body.len() - 1]);
        let hash = sha256(&out[start..]);
        out.extend_from_slice(HASH_KEY);
        push_hex(out, &hash);
        out.extend_from_slice(b"\"}\n");
        self.seq += 1;
        self.prev = hash;
    }
}

/// One line's link fields, read and checked against its own hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// Its sequence number.
    pub seq: u64,
    /// The previous record's hash, as it claims.
    pub prev: [u8; 32],
    /// Its own hash (checked).
    pub hash: [u8; 32],
}

/// Why a line is not a sealed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkError {
    /// It does not have the sealed shape (what is wrong).
    Shape(&'static str),
    /// Its bytes do not hash to the hash it carries: it was edited.
    Hash,
}

impl std::fmt::Display for LinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkError::Shape(why) => write!(f, "not a sealed record: {why}"),
            LinkError::Hash => write!(f, "its bytes do not match its hash (the record was edited)"),
        }
    }
}

/// Reads a line's link (without its newline) and checks its hash.
pub fn open(line: &[u8]) -> Result<Link, LinkError> {
    let rest = line
        .strip_prefix(SEQ_PREFIX)
        .ok_or(LinkError::Shape("it does not start with {\"seq\":"))?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 20 {
        return Err(LinkError::Shape("its seq is not a number"));
    }
    let seq = std::str::from_utf8(&rest[..digits])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or(LinkError::Shape("its seq is not a number"))?;
    let rest = rest[digits..]
        .strip_prefix(PREV_KEY)
        .ok_or(LinkError::Shape("prev does not follow seq"))?;
    let prev = rest
        .get(..64)
        .and_then(parse_hex)
        .ok_or(LinkError::Shape("prev is not 64 hex digits"))?;
    if rest.get(64..66) != Some(b"\",") {
        return Err(LinkError::Shape("prev is not 64 hex digits"));
    }
    if line.len() < SEQ_PREFIX.len() + digits + PREV_KEY.len() + 66 + HASH_SUFFIX_LEN + 1 {
        return Err(LinkError::Shape(
            "it is too short to hold a body and a hash",
        ));
    }
    let (sealed, suffix) = line.split_at(line.len() - HASH_SUFFIX_LEN);
    let hash = suffix
        .strip_prefix(HASH_KEY)
        .and_then(|h| h.strip_suffix(b"\"}"))
        .and_then(parse_hex)
        .ok_or(LinkError::Shape(
            "it does not end with ,\"hash\":\"<64 hex>\"}",
        ))?;
    if sha256(sealed) != hash {
        return Err(LinkError::Hash);
    }
    Ok(Link { seq, prev, hash })
}

/// The SHA-256 of `bytes`.
fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut h = [0; 32];
    h.copy_from_slice(digest(&SHA256, bytes).as_ref());
    h
}

/// Lowercase hex of `bytes`, appended to `out`.
pub fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 15)]);
    }
}

/// The first `len` bytes (at most 32) of the SHA-256 of `bytes`, in
/// lowercase hex.
pub fn sha256_hex(bytes: &[u8], len: usize) -> String {
    let mut out = Vec::with_capacity(2 * len);
    push_hex(&mut out, &sha256(bytes)[..len.min(32)]);
    String::from_utf8(out).unwrap_or_default()
}

/// Lowercase hex of a hash, as text.
pub fn hex(bytes: &[u8; 32]) -> String {
    let mut out = Vec::with_capacity(64);
    push_hex(&mut out, bytes);
    String::from_utf8(out).unwrap_or_default()
}

/// 64 lowercase hex digits as 32 bytes.
fn parse_hex(h: &[u8]) -> Option<[u8; 32]> {
    if h.len() != 64 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0; 32];
    for (i, pair) in h.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(bodies: &[&str]) -> (Vec<Vec<u8>>, Chain) {
        let mut chain = Chain::default();
        let lines = bodies
            .iter()
            .map(|b| {
                let mut out = Vec::new();
                chain.seal(b.as_bytes(), &mut out);
                assert_eq!(out.pop(), Some(b'\n'));
                out
            })
            .collect();
        (lines, chain)
    }

    #[test]
    fn sealed_lines_link_up_and_read_as_json() {
        let (lines, chain) = sealed(&[r#"{"kind":"a"}"#, r#"{"kind":"b","n":2}"#]);
        let first = open(&lines[0]).unwrap();
        let second = open(&lines[1]).unwrap();
        assert_eq!((first.seq, first.prev), (1, GENESIS));
        assert_eq!((second.seq, second.prev), (2, first.hash));
        assert_eq!(
            chain,
            Chain {
                seq: 3,
                prev: second.hash
            }
        );
        let v: serde_json::Value = serde_json::from_slice(&lines[1]).unwrap();
        assert_eq!(v["kind"], "b");
        assert_eq!(v["seq"], 2);
        assert_eq!(v["hash"], hex(&second.hash));
    }

    #[test]
    fn any_edited_byte_is_caught() {
        let (lines, _) = sealed(&[r#"{"kind":"statement","sql":"SELECT 1"}"#]);
        let line = &lines[0];
        for i in 0..line.len() {
            let mut bad = line.clone();
            bad[i] ^= 0x01;
            assert!(open(&bad).is_err(), "byte {i} edited unnoticed");
        }
        assert!(open(&line[..line.len() - 1]).is_err());
        assert!(open(b"").is_err());
        assert!(open(b"{\"seq\":99999999999999999999999").is_err());
    }
}
