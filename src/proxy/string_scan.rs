//! Where a statement's strings start and end, as the server's scanner
//! (scan.l) reads them, to find what pgward's fingerprint lexer reads
//! differently: string continuation. A string followed by whitespace that
//! holds a newline and then a quote continues in the next quoted part, under
//! the first part's rules (after E'a', `\'` in the next part escapes the
//! quote). The fingerprint lexer reads the parts as separate strings, so a
//! continued text could share a decision-cache entry with one the server reads
//! otherwise; the guard refuses continued strings. Pure logic.
//!
//! The scan follows the scanner for everything that decides where a string
//! starts: comments (nested block comments; `--` anywhere outside a token,
//! even inside an operator), quoted identifiers, dollar quoting, parameters,
//! numbers, identifiers (which may hold `$`), E'', B'', X'', N'' and U&''
//! strings, doubled quotes, and backslashes under
//! standard_conforming_strings off.

use crate::sql::fingerprint::Strings;

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
    /// `''` is a quote (standard strings, U&'').
    Doubled,
    /// `''` is a quote and a backslash escapes the next byte (E'', and
    /// ordinary strings with standard_conforming_strings off).
    Escaped,
    /// The first quote ends it (B'', X'').
    Bits,
}

/// True when the text holds a continued string. A text the scan cannot
/// finish (an unterminated string, say) is left to the parser, which refuses
/// it: false.
pub fn has_continued_string(sql: &[u8], strings: Strings) -> bool {
    // Continuation needs a newline: most statements need no scan at all.
    if memchr::memchr2(b'\n', b'\r', sql).is_none() {
        return false;
    }
    let plain = match strings {
        Strings::Standard => Body::Doubled,
        Strings::Escaped => Body::Escaped,
    };
    let n = sql.len();
    let mut i = 0;
    while i < n {
        let b = sql[i];
        let next = sql.get(i + 1).copied();
        let string = if is_space(b) {
            i += 1;
            continue;
        } else if b == b'-' && next == Some(b'-') {
            i = line_comment_end(sql, i);
            continue;
        } else if b == b'/' && next == Some(b'*') {
            match block_comment_end(sql, i) {
                Some(end) => i = end,
                None => return false,
            }
            continue;
        } else if matches!(b, b'e' | b'E') && next == Some(b'\'') {
            Some((i + 1, Body::Escaped))
        } else if matches!(b, b'b' | b'B' | b'x' | b'X') && next == Some(b'\'') {
            Some((i + 1, Body::Bits))
        } else if matches!(b, b'n' | b'N') && next == Some(b'\'') {
            // NCHAR followed by an ordinary string.
            Some((i + 1, plain))
        } else if matches!(b, b'u' | b'U') && next == Some(b'&') && sql.get(i + 2) == Some(&b'\'') {
            Some((i + 2, Body::Doubled))
        } else if b == b'\'' {
            Some((i, plain))
        } else {
            None
        };
        if let Some((quote, body)) = string {
            match string_end(sql, quote, body) {
                Some((_, true)) => return true,
                Some((end, false)) => i = end,
                None => return false,
            }
            continue;
        }
        let end = if matches!(b, b'u' | b'U') && next == Some(b'&') && sql.get(i + 2) == Some(&b'"')
        {
            identifier_end(sql, i + 2)
        } else if b == b'"' {
            identifier_end(sql, i)
        } else if b == b'$' {
            dollar_end(sql, i)
        } else if b.is_ascii_digit() || (b == b'.' && next.is_some_and(|d| d.is_ascii_digit())) {
            Some(number_end(sql, i))
        } else if is_ident_start(b) {
            let mut j = i + 1;
            while j < n && is_ident_cont(sql[j]) {
                j += 1;
            }
            Some(j)
        } else {
            Some(i + 1)
        };
        match end {
            Some(end) => i = end,
            None => return false,
        }
    }
    false
}

/// The end of a `--` comment starting at `i`: just past its newline.
fn line_comment_end(sql: &[u8], i: usize) -> usize {
    memchr::memchr2(b'\n', b'\r', &sql[i..]).map_or(sql.len(), |p| i + p + 1)
}

/// The end of a block comment starting at `i` (at "/*"), honouring nesting.
fn block_comment_end(sql: &[u8], mut i: usize) -> Option<usize> {
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
                    return Some(i);
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// The end of the first part of a string whose opening quote is at `i`, and
/// whether another part continues it.
fn string_end(sql: &[u8], i: usize, body: Body) -> Option<(usize, bool)> {
    let mut j = i + 1;
    loop {
        match *sql.get(j)? {
            b'\\' if body == Body::Escaped => {
                if j + 1 >= sql.len() {
                    return None;
                }
                j += 2;
            }
            b'\'' if body != Body::Bits && sql.get(j + 1) == Some(&b'\'') => j += 2,
            b'\'' => return Some((j + 1, continues(sql, j + 1))),
            _ => j += 1,
        }
    }
}

/// After a string's closing quote at `i - 1`: true when a quote continues it
/// (whitespace with a newline in it, `--` comments allowed, then a quote).
fn continues(sql: &[u8], mut i: usize) -> bool {
    let n = sql.len();
    // Horizontal space and comments, then a newline.
    loop {
        match sql.get(i) {
            Some(b' ' | b'\t' | 0x0c | 0x0b) => i += 1,
            Some(b'-') if sql.get(i + 1) == Some(&b'-') => {
                match memchr::memchr2(b'\n', b'\r', &sql[i..]) {
                    Some(p) => i += p,
                    None => return false,
                }
            }
            Some(b'\n' | b'\r') => break,
            _ => return false,
        }
    }
    // Any whitespace, and comments that end in a newline, then the quote.
    while i < n {
        match sql[i] {
            b if is_space(b) => i += 1,
            b'-' if sql.get(i + 1) == Some(&b'-') => {
                match memchr::memchr2(b'\n', b'\r', &sql[i..]) {
                    Some(p) => i += p + 1,
                    None => return false,
                }
            }
            b'\'' => return true,
            _ => return false,
        }
    }
    false
}

/// The end of a quoted identifier whose opening quote is at `i`.
fn identifier_end(sql: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    loop {
        j += memchr::memchr(b'"', &sql[j..])?;
        if sql.get(j + 1) == Some(&b'"') {
            j += 2;
            continue;
        }
        return Some(j + 1);
    }
}

/// The end of a parameter (`$1`), a dollar-quoted string, or a lone `$`.
fn dollar_end(sql: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    if sql.get(j).is_some_and(u8::is_ascii_digit) {
        while sql.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        return Some(j);
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
        return Some(i + 1);
    }
    let tag = &sql[i..=j];
    let body = j + 1;
    let end = memchr::memmem::find(&sql[body..], tag)?;
    Some(body + end + tag.len())
}

/// The end of a numeric literal starting at `i` (digits, a fraction, an
/// exponent with digits, 0x/0o/0b integers, `_` separators).
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

    #[test]
    fn finds_continued_strings_as_the_server_reads_them() {
        let on = |sql: &str| has_continued_string(sql.as_bytes(), Strings::Standard);
        let off = |sql: &str| has_continued_string(sql.as_bytes(), Strings::Escaped);
        for continued in [
            "SELECT 'a'\n'b'",
            "SELECT E'a'\n'\\' AS x, ' , key_value FROM api_keys --'",
            "SELECT 'a' -- c\n  -- d\n 'b'",
            "SELECT 'a'\r\n\t'b'",
            "SELECT B'01'\n'1'",
            "SELECT X'0f'\n'f'",
            "SELECT N'a'\n'b'",
            "SELECT U&'a'\n'b'",
            "SELECT 1, 'it''s'\n'x'",
        ] {
            assert!(on(continued) && off(continued), "{continued:?}");
        }
        for not in [
            "SELECT 'a' 'b'",
            "SELECT 'a'/*\n*/'b'",
            "SELECT 'a' -- c 'b'",
            "SELECT 'a'\n, 'b'",
            "SELECT \"a\"\n\"b\"",
            "SELECT $$a$$\n'b'",
            "SELECT 1 -- 'a'\n'b'",
            "SELECT /* 'a' */\n'b'",
            "SELECT a$$'x'\n, 1",
        ] {
            assert!(!on(not) && !off(not), "{not:?}");
        }
        // The mode decides where a backslash-quote string ends.
        let text = "SELECT '\\' AS x\n, 'y'\n'z'";
        assert!(
            on(text),
            "under on the string ends at the backslash's quote"
        );
        assert!(!off(text), "under off it runs to ' AS x\\n, '");
        let text = "SELECT '\\'\n'a' AS x";
        assert!(on(text));
        assert!(!off(text));
    }
}
