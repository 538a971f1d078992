//! Statements written for `standard_conforming_strings = off`, rewritten so
//! they mean the same under `on`: every ordinary '...' string (and N'...')
//! that holds a backslash becomes an E'...' string, which reads backslash
//! escapes in either mode. The classifier then only ever reads standard
//! strings, and never has to know the session's mode. Pure logic.
//!
//! Only where a string starts and ends matters here, so this follows
//! PostgreSQL's scanner (scan.l) for exactly that: comments (nested block
//! comments; `--` anywhere outside a token, even inside an operator), quoted
//! identifiers, dollar quoting, parameters, numbers, identifiers (which may
//! hold `$`), E'', B'', X'', N'' and U&'' strings, doubled quotes, and string
//! continuation (a quote after whitespace holding a newline continues the
//! string before it, in the same mode).

use std::borrow::Cow;

use thiserror::Error;

/// Why a statement cannot be rewritten.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum EscapedError {
    /// A string, identifier, comment or dollar quote has no end.
    #[error("unterminated {0}")]
    Unterminated(&'static str),
    /// U&'' strings are refused by PostgreSQL itself when
    /// standard_conforming_strings is off.
    #[error("U&'' strings cannot be used while standard_conforming_strings is off")]
    UnicodeString,
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_ident_cont(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit() || b == b'$'
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0c | 0x0b)
}

/// How a quoted string reads its body.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Body {
    /// Backslash escapes the next byte, `''` is a quote (E'', and '' with the
    /// setting off).
    Escaped,
    /// The first quote ends it (B'', X'').
    Bits,
}

/// The SQL text with the same meaning under `standard_conforming_strings =
/// on` as `sql` has under `off`. Texts without a backslash mean the same in
/// both modes and come back as they are.
pub fn to_standard(sql: &[u8]) -> Result<Cow<'_, [u8]>, EscapedError> {
    if memchr::memchr(b'\\', sql).is_none() {
        return Ok(Cow::Borrowed(sql));
    }
    let n = sql.len();
    // Where to write "E": (position, replace the byte there instead of inserting).
    let mut marks: Vec<(usize, bool)> = Vec::new();
    let mut i = 0;
    while i < n {
        let b = sql[i];
        let next = sql.get(i + 1).copied();
        if is_space(b) {
            i += 1;
        } else if b == b'-' && next == Some(b'-') {
            i = line_comment_end(sql, i);
        } else if b == b'/' && next == Some(b'*') {
            i = block_comment_end(sql, i)?;
        } else if matches!(b, b'e' | b'E') && next == Some(b'\'') {
            i = string_end(sql, i + 1, Body::Escaped)?.0;
        } else if matches!(b, b'b' | b'B' | b'x' | b'X') && next == Some(b'\'') {
            i = string_end(sql, i + 1, Body::Bits)?.0;
        } else if matches!(b, b'n' | b'N') && next == Some(b'\'') {
            // NCHAR followed by an ordinary string.
            let (end, backslash) = string_end(sql, i + 1, Body::Escaped)?;
            if backslash {
                marks.push((i, true));
            }
            i = end;
        } else if matches!(b, b'u' | b'U') && next == Some(b'&') && sql.get(i + 2) == Some(&b'\'') {
            return Err(EscapedError::UnicodeString);
        } else if matches!(b, b'u' | b'U') && next == Some(b'&') && sql.get(i + 2) == Some(&b'"') {
            i = identifier_end(sql, i + 2)?;
        } else if b == b'\'' {
            let (end, backslash) = string_end(sql, i, Body::Escaped)?;
            if backslash {
                marks.push((i, false));
            }
            i = end;
        } else if b == b'"' {
            i = identifier_end(sql, i)?;
        } else if b == b'$' {
            i = dollar_end(sql, i)?;
        } else if b.is_ascii_digit() || (b == b'.' && next.is_some_and(|d| d.is_ascii_digit())) {
            i = number_end(sql, i);
        } else if is_ident_start(b) {
            i += 1;
            while i < n && is_ident_cont(sql[i]) {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    if marks.is_empty() {
        return Ok(Cow::Borrowed(sql));
    }
    let mut out = Vec::with_capacity(n + 2 * marks.len());
    let mut from = 0;
    for (at, replace) in marks {
        out.extend_from_slice(&sql[from..at]);
        if replace {
            out.push(b'E');
            from = at + 1;
        } else {
            // "E" must not join the identifier or number before it.
            if at > 0 && is_ident_cont(sql[at - 1]) {
                out.push(b' ');
            }
            out.push(b'E');
            from = at;
        }
    }
    out.extend_from_slice(&sql[from..]);
    Ok(Cow::Owned(out))
}

/// The end of a `--` comment starting at `i`: just past its newline.
fn line_comment_end(sql: &[u8], i: usize) -> usize {
    memchr::memchr2(b'\n', b'\r', &sql[i..]).map_or(sql.len(), |p| i + p + 1)
}

/// The end of a block comment starting at `i` (at "/*"), honouring nesting.
fn block_comment_end(sql: &[u8], mut i: usize) -> Result<usize, EscapedError> {
    let mut depth = 0usize;
    while i + 1 < sql.len() {
        match (sql[i], sql[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return Ok(i);
                }
            }
            _ => i += 1,
        }
    }
    Err(EscapedError::Unterminated("/* comment"))
}

/// The end of a string whose opening quote is at `i`, continuations
/// included, and whether its body holds a backslash.
fn string_end(sql: &[u8], i: usize, body: Body) -> Result<(usize, bool), EscapedError> {
    let mut backslash = false;
    let mut j = i + 1;
    loop {
        match sql.get(j) {
            None => return Err(EscapedError::Unterminated("quoted string")),
            Some(b'\\') if body == Body::Escaped => {
                backslash = true;
                if j + 1 >= sql.len() {
                    return Err(EscapedError::Unterminated("quoted string"));
                }
                j += 2;
            }
            Some(b'\'') if body == Body::Escaped && sql.get(j + 1) == Some(&b'\'') => j += 2,
            Some(b'\'') => match continuation(sql, j + 1) {
                Some(quote) => j = quote + 1,
                None => return Ok((j + 1, backslash)),
            },
            Some(_) => j += 1,
        }
    }
}

/// After a string's closing quote at `i - 1`: the position of the quote that
/// continues it, if one does (whitespace with a newline in it, `--` comments
/// allowed, then a quote).
fn continuation(sql: &[u8], mut i: usize) -> Option<usize> {
    let n = sql.len();
    // Horizontal space and comments, then a newline.
    loop {
        match sql.get(i)? {
            b' ' | b'\t' | 0x0c | 0x0b => i += 1,
            b'-' if sql.get(i + 1) == Some(&b'-') => {
                i += memchr::memchr2(b'\n', b'\r', &sql[i..])?;
            }
            b'\n' | b'\r' => break,
            _ => return None,
        }
    }
    // Any whitespace, and comments that end in a newline, then the quote.
    while i < n {
        match sql[i] {
            b if is_space(b) => i += 1,
            b'-' if sql.get(i + 1) == Some(&b'-') => {
                i += memchr::memchr2(b'\n', b'\r', &sql[i..])? + 1;
            }
            b'\'' => return Some(i),
            _ => return None,
        }
    }
    None
}

/// The end of a quoted identifier whose opening quote is at `i`.
fn identifier_end(sql: &[u8], i: usize) -> Result<usize, EscapedError> {
    let mut j = i + 1;
    loop {
        let p = memchr::memchr(b'"', &sql[j..])
            .ok_or(EscapedError::Unterminated("quoted identifier"))?;
        j += p;
        if sql.get(j + 1) == Some(&b'"') {
            j += 2;
            continue;
        }
        return Ok(j + 1);
    }
}

/// The end of a parameter (`$1`), a dollar-quoted string, or a lone `$`.
fn dollar_end(sql: &[u8], i: usize) -> Result<usize, EscapedError> {
    let mut j = i + 1;
    if sql.get(j).is_some_and(u8::is_ascii_digit) {
        while sql.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        return Ok(j);
    }
    if sql.get(j).is_some_and(|&b| is_ident_start(b)) {
        j += 1;
        while sql
            .get(j)
            .is_some_and(|&b| is_ident_start(b) || b.is_ascii_digit())
        {
            j += 1;
        }
    }
    if sql.get(j) != Some(&b'$') {
        return Ok(i + 1);
    }
    let tag = &sql[i..=j];
    let body = j + 1;
    let end = memchr::memmem::find(&sql[body..], tag)
        .ok_or(EscapedError::Unterminated("dollar-quoted string"))?;
    Ok(body + end + tag.len())
}

/// The end of a numeric literal starting at `i` (digits, a fraction, an
/// exponent with digits, 0x/0o/0b integers, `_` separators). Letters after it
/// start the next token, as the fingerprint lexer reads them.
fn number_end(sql: &[u8], mut i: usize) -> usize {
    let n = sql.len();
    if sql[i] == b'0'
        && matches!(
            sql.get(i + 1),
            Some(b'x' | b'X' | b'o' | b'O' | b'b' | b'B')
        )
    {
        i += 2;
        while i < n && (sql[i].is_ascii_hexdigit() || sql[i] == b'_') {
            i += 1;
        }
        return i;
    }
    let digits = |mut i: usize| {
        while i < n && (sql[i].is_ascii_digit() || sql[i] == b'_') {
            i += 1;
        }
        i
    };
    i = digits(i);
    if sql.get(i) == Some(&b'.') && sql.get(i + 1) != Some(&b'.') {
        i = digits(i + 1);
    }
    if matches!(sql.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(sql.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        if sql.get(j).is_some_and(u8::is_ascii_digit) {
            i = digits(j);
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn std_form(sql: &str) -> String {
        String::from_utf8(to_standard(sql.as_bytes()).unwrap().into_owned()).unwrap()
    }

    #[test]
    fn ordinary_strings_with_backslashes_become_e_strings() {
        for (off, on) in [
            // Nothing to do.
            ("SELECT 1", "SELECT 1"),
            ("SELECT 'a''b'", "SELECT 'a''b'"),
            ("SELECT E'\\''", "SELECT E'\\''"),
            ("SELECT $$\\$$, $t$'\\'$t$", "SELECT $$\\$$, $t$'\\'$t$"),
            ("SELECT \"a\\\" FROM t", "SELECT \"a\\\" FROM t"),
            ("SELECT 1 -- '\\'\n", "SELECT 1 -- '\\'\n"),
            ("SELECT /* '\\' /* */ */ 1", "SELECT /* '\\' /* */ */ 1"),
            ("SELECT B'01', X'\\'", "SELECT B'01', X'\\'"),
            ("SELECT \\", "SELECT \\"),
            // An escaped quote.
            ("SELECT 'it\\'s'", "SELECT E'it\\'s'"),
            // The trick: under `off` the first string runs to the second quote.
            (
                "SELECT '\\' AS x, ' , key_value FROM api_keys --'",
                "SELECT E'\\' AS x, ' , key_value FROM api_keys --'",
            ),
            // Typed literals and words before the quote keep their meaning.
            ("SELECT date'\\x'", "SELECT date E'\\x'"),
            ("SELECT 1'\\\\'", "SELECT 1 E'\\\\'"),
            ("SELECT a.b||'\\\\'", "SELECT a.b||E'\\\\'"),
            ("SELECT N'\\''", "SELECT E'\\''"),
            ("SELECT abn'\\''", "SELECT abn E'\\''"),
            (
                "SELECT U&\"a\\\" FROM t WHERE x = '\\\\'",
                "SELECT U&\"a\\\" FROM t WHERE x = E'\\\\'",
            ),
            // A continued string is one string: marked once, at its start.
            ("SELECT 'a'\n'\\''", "SELECT E'a'\n'\\''"),
            (
                "SELECT 'a' -- c\n  -- d\n '\\''",
                "SELECT E'a' -- c\n  -- d\n '\\''",
            ),
            // Not a continuation without a newline, or with a block comment.
            ("SELECT 'a' '\\''", "SELECT 'a' E'\\''"),
            ("SELECT 'a'/*\n*/'\\''", "SELECT 'a'/*\n*/E'\\''"),
            // Identifiers hold '$'; parameters are not dollar quotes.
            ("SELECT a$$'\\\\'", "SELECT a$$ E'\\\\'"),
            ("SELECT $1||'\\''", "SELECT $1||E'\\''"),
            // `--` inside an operator starts a comment.
            ("SELECT 1 +--'\\'\n", "SELECT 1 +--'\\'\n"),
        ] {
            assert_eq!(std_form(off), on, "{off}");
        }
    }

    #[test]
    fn the_fingerprint_lexer_reads_both_forms_alike() {
        use crate::sql::fingerprint::{fingerprint, Fingerprint, Strings};
        // Everything but continued strings, which that lexer does not join.
        for off in [
            "SELECT 'it\\'s', E'\\'', 'a''b\\\\'",
            "SELECT '\\' AS x, ' , key_value FROM api_keys --'",
            "SELECT date'\\x', N'\\'', abn'\\'', $1||'\\''",
            "SELECT 1 +--'\\'\n, '\\'' /* '\\' */",
        ] {
            let on = to_standard(off.as_bytes()).unwrap();
            let (mut a, mut b) = (Fingerprint::default(), Fingerprint::default());
            fingerprint(off.as_bytes(), Strings::Escaped, &mut a).unwrap();
            fingerprint(&on, Strings::Standard, &mut b).unwrap();
            assert_eq!(a.key_str(), format!("~e {}", b.key_str()), "{off}");
        }
    }

    #[test]
    fn what_cannot_be_rewritten() {
        for bad in [
            "SELECT '\\",
            "SELECT 'a\\'",
            "SELECT \"a\\",
            "SELECT $x$ \\",
            "SELECT /* \\",
        ] {
            assert!(
                matches!(
                    to_standard(bad.as_bytes()),
                    Err(EscapedError::Unterminated(_))
                ),
                "{bad}"
            );
        }
        assert_eq!(
            to_standard(b"SELECT U&'\\0041'"),
            Err(EscapedError::UnicodeString)
        );
    }
}
