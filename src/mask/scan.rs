//! The second masking layer: finds personal data inside otherwise unmasked
//! text (e-mail addresses, card numbers that pass the Luhn check, US social
//! security numbers) and masks each occurrence in place, writing the result
//! straight into the output buffer.

use bytes::{BufMut, BytesMut};

/// Which kinds of entity to look for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Entities {
    /// `local@domain.tld`.
    pub email: bool,
    /// 13 to 19 digits, optionally grouped by spaces or dashes, passing Luhn.
    pub card: bool,
    /// `ddd-dd-dddd`.
    pub ssn: bool,
}

impl Entities {
    /// Parses `["email", "card", "ssn"]`; unknown names are an error.
    pub fn parse(names: &[String]) -> Result<Entities, String> {
        let mut e = Entities::default();
        for n in names {
            match n.as_str() {
                "email" => e.email = true,
                "card" => e.card = true,
                "ssn" => e.ssn = true,
                other => {
                    return Err(format!(
                        "unknown entity {other:?}; expected email, card or ssn"
                    ))
                }
            }
        }
        Ok(e)
    }

    /// True when nothing is scanned for.
    pub fn is_empty(&self) -> bool {
        !(self.email || self.card || self.ssn)
    }

    /// The union of two sets.
    pub fn union(self, other: Entities) -> Entities {
        Entities {
            email: self.email || other.email,
            card: self.card || other.card,
            ssn: self.ssn || other.ssn,
        }
    }
}

fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_domain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')
}

/// Writes `value` to `out` with every entity found masked; returns how many.
pub fn scan(value: &[u8], kinds: Entities, out: &mut BytesMut) -> u32 {
    let start = out.len();
    out.put_slice(value);
    let buf = &mut out[start..];
    let mut found = 0;
    if kinds.email {
        found += mask_emails(buf);
    }
    if kinds.ssn {
        found += mask_ssns(buf);
    }
    if kinds.card {
        found += mask_cards(buf);
    }
    found
}

fn mask_emails(buf: &mut [u8]) -> u32 {
    let mut found = 0;
    let mut from = 0;
    while let Some(p) = memchr::memchr(b'@', &buf[from..]) {
        let at = from + p;
        from = at + 1;
        let mut l = at;
        while l > 0 && is_local(buf[l - 1]) {
            l -= 1;
        }
        let mut r = at + 1;
        while r < buf.len() && is_domain(buf[r]) {
            r += 1;
        }
        let domain = &buf[at + 1..r];
        let dotted = domain
            .iter()
            .rposition(|&b| b == b'.')
            .is_some_and(|d| d > 0 && d + 2 < domain.len() + 1);
        if at - l >= 1 && dotted {
            for b in &mut buf[l + 1..at] {
                *b = b'*';
            }
            found += 1;
        }
    }
    found
}

fn mask_ssns(buf: &mut [u8]) -> u32 {
    let mut found = 0;
    let shape = b"ddd-dd-dddd";
    let mut i = 0;
    while i + shape.len() <= buf.len() {
        let w = &buf[i..i + shape.len()];
        let fits = w.iter().zip(shape).all(|(&b, &s)| {
            if s == b'd' {
                b.is_ascii_digit()
            } else {
                b == s
            }
        });
        let before_ok = i == 0 || !buf[i - 1].is_ascii_digit();
        let after_ok = i + shape.len() == buf.len() || !buf[i + shape.len()].is_ascii_digit();
        if fits && before_ok && after_ok {
            for b in &mut buf[i..i + 6] {
                if b.is_ascii_digit() {
                    *b = b'*';
                }
            }
            found += 1;
            i += shape.len();
        } else {
            i += 1;
        }
    }
    found
}

fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = (d - b'0') as u32;
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

fn mask_cards(buf: &mut [u8]) -> u32 {
    let mut found = 0;
    let mut i = 0;
    while i < buf.len() {
        if !buf[i].is_ascii_digit() || (i > 0 && buf[i - 1].is_ascii_digit()) {
            i += 1;
            continue;
        }
        // A run of digits with single spaces or dashes between groups.
        let mut j = i;
        let mut digits = [0u8; 19];
        let mut n = 0;
        while j < buf.len() {
            if buf[j].is_ascii_digit() {
                if n == 19 {
                    n += 1;
                    break;
                }
                digits[n] = buf[j];
                n += 1;
                j += 1;
            } else if matches!(buf[j], b' ' | b'-')
                && j + 1 < buf.len()
                && buf[j + 1].is_ascii_digit()
                && n > 0
            {
                j += 1;
            } else {
                break;
            }
        }
        if (13..=19).contains(&n) && luhn(&digits[..n]) {
            let mut left = n - 4;
            for b in &mut buf[i..j] {
                if left == 0 {
                    break;
                }
                if b.is_ascii_digit() {
                    *b = b'*';
                    left -= 1;
                }
            }
            found += 1;
        }
        i = j.max(i + 1);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(s: &str) -> (String, u32) {
        let mut out = BytesMut::new();
        let all = Entities {
            email: true,
            card: true,
            ssn: true,
        };
        let n = scan(s.as_bytes(), all, &mut out);
        (String::from_utf8(out.to_vec()).unwrap(), n)
    }

    #[test]
    fn finds_and_masks_entities_in_text() {
        assert_eq!(
            run("mail jane.doe@example.com now"),
            ("mail j*******@example.com now".into(), 1)
        );
        assert_eq!(run("ssn 901-23-4567."), ("ssn ***-**-4567.".into(), 1));
        assert_eq!(
            run("card 4111 1111 1111 1111 ok"),
            ("card **** **** **** 1111 ok".into(), 1)
        );
        assert_eq!(
            run("4111-1111-1111-1112"),
            ("4111-1111-1111-1112".into(), 0),
            "fails Luhn"
        );
        assert_eq!(
            run("order 12345, total 99"),
            ("order 12345, total 99".into(), 0)
        );
        assert_eq!(run("a@b"), ("a@b".into(), 0));
        assert_eq!(run("x1901-23-45678"), ("x1901-23-45678".into(), 0));
    }
}
