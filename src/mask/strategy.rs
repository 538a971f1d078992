//! Masking strategies. Each writes the masked form of one value into the
//! output buffer (no allocation), or says the value becomes NULL.

use bytes::{BufMut, BytesMut};
use ring::hmac;

/// How one column is masked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    /// Keep the first character of the local part and the domain: `j***@example.com`.
    Email,
    /// Keep the last `keep_last` letters and digits; mask the others, keep punctuation.
    Partial {
        /// How many trailing letters and digits stay visible.
        keep_last: usize,
    },
    /// Replace with a fixed token.
    Redact,
    /// Replace with NULL.
    Null,
    /// Keyed HMAC-SHA-256, hex: stable, so joins and GROUP BY still work.
    Hash,
    /// Not a masked column: mask the personal data found inside the text.
    Scan(super::scan::Entities),
}

/// The token `Redact` writes.
pub const REDACTED: &[u8] = b"[redacted]";

/// The key of the Hash strategy (never logged).
#[derive(Clone)]
pub struct HashKey(hmac::Key);

impl HashKey {
    /// A key from secret bytes.
    pub fn new(secret: &[u8]) -> Self {
        HashKey(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }
}

impl std::fmt::Debug for HashKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HashKey(<redacted>)")
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl Strategy {
    /// Writes the masked form of `value` to `out`; returns false when the
    /// result is NULL (nothing written).
    pub fn apply(&self, value: &[u8], key: &HashKey, out: &mut BytesMut) -> bool {
        match self {
            Strategy::Null => false,
            Strategy::Redact => {
                out.put_slice(REDACTED);
                true
            }
            Strategy::Email => {
                match memchr::memrchr(b'@', value) {
                    Some(at) if at > 0 => {
                        // The first character when it is ASCII; any other is
                        // masked too (its length depends on the client
                        // encoding: a UTF-8 rule would keep a LATIN1 value's
                        // first three characters, or cut an EUC_JP one).
                        let first = value[0];
                        out.put_u8(if first.is_ascii() { first } else { b'*' });
                        out.put_slice(b"***");
                        out.put_slice(&value[at..]);
                    }
                    _ => out.put_slice(REDACTED),
                }
                true
            }
            Strategy::Partial { keep_last } => {
                let visible = value.iter().filter(|b| b.is_ascii_alphanumeric()).count();
                let mut to_mask = visible.saturating_sub(*keep_last);
                for &b in value {
                    if b.is_ascii_alphanumeric() && to_mask > 0 {
                        out.put_u8(b'*');
                        to_mask -= 1;
                    } else if b.is_ascii() {
                        out.put_u8(b);
                    } else {
                        // Non-ASCII bytes are masked too (they may be letters).
                        out.put_u8(b'*');
                    }
                }
                true
            }
            Strategy::Scan(kinds) => {
                super::scan::scan(value, *kinds, out);
                true
            }
            Strategy::Hash => {
                let tag = hmac::sign(&key.0, value);
                for b in &tag.as_ref()[..16] {
                    out.put_u8(HEX[(b >> 4) as usize]);
                    out.put_u8(HEX[(b & 15) as usize]);
                }
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(s: &Strategy, v: &str) -> Option<String> {
        let mut out = BytesMut::new();
        s.apply(v.as_bytes(), &HashKey::new(b"k"), &mut out)
            .then(|| String::from_utf8(out.to_vec()).unwrap())
    }

    #[test]
    fn each_strategy() {
        assert_eq!(
            mask(&Strategy::Email, "jane.doe@example.com").as_deref(),
            Some("j***@example.com")
        );
        assert_eq!(
            mask(&Strategy::Email, "no-at-sign").as_deref(),
            Some("[redacted]")
        );
        assert_eq!(
            mask(&Strategy::Email, "émile@example.org").as_deref(),
            Some("****@example.org")
        );
        assert_eq!(
            mask(&Strategy::Partial { keep_last: 4 }, "555-0123").as_deref(),
            Some("***-0123")
        );
        assert_eq!(
            mask(&Strategy::Partial { keep_last: 4 }, "12").as_deref(),
            Some("12")
        );
        assert_eq!(
            mask(&Strategy::Redact, "900-12-3456").as_deref(),
            Some("[redacted]")
        );
        assert_eq!(mask(&Strategy::Null, "x"), None);
        let a = mask(&Strategy::Hash, "4111111111111111").unwrap();
        assert_eq!(a.len(), 32);
        assert_eq!(Some(a.clone()), mask(&Strategy::Hash, "4111111111111111"));
        assert_ne!(Some(a), mask(&Strategy::Hash, "4111111111111112"));
        let mut out = BytesMut::new();
        Strategy::Hash.apply(b"4111111111111111", &HashKey::new(b"other"), &mut out);
        assert_ne!(
            &out[..],
            mask(&Strategy::Hash, "4111111111111111")
                .unwrap()
                .as_bytes()
        );
    }
}
