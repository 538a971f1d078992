//! Statement fingerprints. A lexer over the SQL bytes that follows
//! PostgreSQL's scanner for everything that decides where a token starts and
//! ends (comments, nested block comments, quoted identifiers, standard, E'',
//! B'', X'', N'' and U&'' strings, dollar quoting, parameters, numbers), and
//! writes a normalized form: comments and whitespace dropped, unquoted words
//! lowercased (PostgreSQL folds them), literals and `$n` placeholders collapsed.
//! The literal values are kept on the side, for the rare classifications that
//! depend on them. Two statements with the same normalized form are the same
//! statement up to literal values.

use thiserror::Error;

/// Why a statement could not be lexed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum LexError {
    /// A quoted string, identifier or dollar-quoted body has no end.
    #[error("unterminated {0}")]
    Unterminated(&'static str),
    /// A quoted identifier is empty (`""`), which PostgreSQL rejects.
    #[error("zero-length delimited identifier")]
    EmptyIdentifier,
    /// A number runs into a name (`1abc`, `0x`), which PostgreSQL 16 and
    /// later reject (older servers read `1abc` as `1 AS abc`).
    #[error("trailing junk after numeric literal")]
    TrailingJunk,
}

/// The normalized form of a statement and the literal values it collapsed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// Normalized tokens, separated by single spaces.
    pub key: Vec<u8>,
    /// Every collapsed literal's raw text, each followed by a NUL.
    pub literals: Vec<u8>,
}

impl Fingerprint {
    /// Clears both buffers, keeping their allocations.
    pub fn clear(&mut self) {
        self.key.clear();
        self.literals.clear();
    }

    /// The normalized form as text (for display and tests).
    pub fn key_str(&self) -> String {
        String::from_utf8_lossy(&self.key).into_owned()
    }
}

/// How the session interprets backslashes in '...' strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strings {
    /// standard_conforming_strings = on (the default): backslash is ordinary.
    #[default]
    Standard,
    /// standard_conforming_strings = off: backslash escapes in every string.
    Escaped,
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

fn is_op_char(b: u8) -> bool {
    matches!(
        b,
        b'~' | b'!'
            | b'@'
            | b'#'
            | b'^'
            | b'&'
            | b'|'
            | b'`'
            | b'?'
            | b'+'
            | b'-'
            | b'*'
            | b'/'
            | b'%'
            | b'<'
            | b'>'
            | b'='
    )
}

/// Computes the fingerprint of `sql` into `fp` (cleared first).
pub fn fingerprint(sql: &[u8], strings: Strings, fp: &mut Fingerprint) -> Result<(), LexError> {
    fp.clear();
    if strings == Strings::Escaped {
        // Keys made under different string rules must never meet in a cache.
        fp.key.extend_from_slice(b"~e");
    }
    let mut i = 0;
    let n = sql.len();
    while i < n {
        let b = sql[i];
        if is_space(b) {
            i += 1;
            continue;
        }
        // Comments.
        if b == b'-' && sql.get(i + 1) == Some(&b'-') {
            i = memchr::memchr2(b'\n', b'\r', &sql[i..]).map_or(n, |p| i + p + 1);
            continue;
        }
        if b == b'/' && sql.get(i + 1) == Some(&b'*') {
            i = skip_block_comment(sql, i)?;
            continue;
        }
        let start = i;
        // String literals with a prefix: E'', B'', X'', N'', U&''.
        if matches!(b, b'e' | b'E') && sql.get(i + 1) == Some(&b'\'') {
            i = skip_quoted(sql, i + 1, b'\'', true)?;
            literal(fp, &sql[start..i]);
            continue;
        }
        if matches!(b, b'b' | b'B' | b'x' | b'X' | b'n' | b'N') && sql.get(i + 1) == Some(&b'\'') {
            i = skip_quoted(
                sql,
                i + 1,
                b'\'',
                strings == Strings::Escaped && matches!(b, b'n' | b'N'),
            )?;
            literal(fp, &sql[start..i]);
            continue;
        }
        if matches!(b, b'u' | b'U') && sql.get(i + 1) == Some(&b'&') {
            match sql.get(i + 2) {
                Some(b'\'') => {
                    i = skip_quoted(sql, i + 2, b'\'', false)?;
                    literal(fp, &sql[start..i]);
                    continue;
                }
                Some(b'"') => {
                    i = skip_quoted(sql, i + 2, b'"', false)?;
                    if i - start == 5 {
                        return Err(LexError::EmptyIdentifier);
                    }
                    token(fp, &sql[start..i]);
                    continue;
                }
                _ => {}
            }
        }
        match b {
            b'\'' => {
                i = skip_quoted(sql, i, b'\'', strings == Strings::Escaped)?;
                literal(fp, &sql[start..i]);
            }
            b'"' => {
                i = skip_quoted(sql, i, b'"', false)?;
                if i - start == 2 {
                    return Err(LexError::EmptyIdentifier);
                }
                token(fp, &sql[start..i]);
            }
            b'$' => {
                if let Some(end) = param_end(sql, i) {
                    i = end;
                    fp_sep(fp);
                    fp.key.extend_from_slice(b"$?");
                } else if let Some(tag_end) = dollar_tag_end(sql, i) {
                    let tag = &sql[i..tag_end];
                    let body_end = memchr::memmem::find(&sql[tag_end..], tag)
                        .ok_or(LexError::Unterminated("dollar-quoted string"))?;
                    i = tag_end + body_end + tag.len();
                    literal(fp, &sql[start..i]);
                } else {
                    // A lone '$' is a syntax error for PostgreSQL; keep it as is.
                    i += 1;
                    token(fp, b"$");
                }
            }
            b'0'..=b'9' => {
                i = number_end(sql, i)?;
                literal(fp, &sql[start..i]);
            }
            b'.' if sql.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                i = number_end(sql, i)?;
                literal(fp, &sql[start..i]);
            }
            _ if is_ident_start(b) => {
                while i < n && is_ident_cont(sql[i]) {
                    i += 1;
                }
                fp_sep(fp);
                fp.key
                    .extend(sql[start..i].iter().map(u8::to_ascii_lowercase));
            }
            _ if is_op_char(b) => {
                // An operator runs until a non-operator byte or a comment start
                // (comments at the token start were consumed above).
                i += 1;
                while i < n && is_op_char(sql[i]) {
                    let next = sql.get(i + 1).copied();
                    if (sql[i] == b'-' && next == Some(b'-'))
                        || (sql[i] == b'/' && next == Some(b'*'))
                    {
                        break;
                    }
                    i += 1;
                }
                token(fp, &sql[start..i]);
            }
            b':' if sql.get(i + 1) == Some(&b':') => {
                i += 2;
                token(fp, b"::");
            }
            _ => {
                // Punctuation and anything else: one byte, verbatim.
                i += 1;
                token(fp, &sql[start..i]);
            }
        }
    }
    Ok(())
}

fn fp_sep(fp: &mut Fingerprint) {
    if !fp.key.is_empty() {
        fp.key.push(b' ');
    }
}

fn token(fp: &mut Fingerprint, t: &[u8]) {
    fp_sep(fp);
    fp.key.extend_from_slice(t);
}

fn literal(fp: &mut Fingerprint, raw: &[u8]) {
    if fp.key.ends_with(b"uescape") {
        // The escape character decides what a U&"..." identifier names: it
        // is part of the statement, not a value.
        token(fp, raw);
        return;
    }
    fp_sep(fp);
    fp.key.push(b'?');
    fp.literals.extend_from_slice(raw);
    fp.literals.push(0);
}

/// Skips a block comment starting at `i` (at "/*"), honouring nesting.
fn skip_block_comment(sql: &[u8], mut i: usize) -> Result<usize, LexError> {
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
    Err(LexError::Unterminated("/* comment"))
}

/// Skips a quoted run starting at the opening `quote` at `i`; a doubled quote
/// is an escaped quote, and with `backslash` a backslash escapes the next byte.
fn skip_quoted(sql: &[u8], i: usize, quote: u8, backslash: bool) -> Result<usize, LexError> {
    let what = if quote == b'"' {
        "quoted identifier"
    } else {
        "quoted string"
    };
    let mut j = i + 1;
    loop {
        let rest = &sql[j..];
        let p = if backslash {
            memchr::memchr2(quote, b'\\', rest)
        } else {
            memchr::memchr(quote, rest)
        }
        .ok_or(LexError::Unterminated(what))?;
        j += p;
        if sql[j] == b'\\' {
            j += 2;
            if j > sql.len() {
                return Err(LexError::Unterminated(what));
            }
            continue;
        }
        if sql.get(j + 1) == Some(&quote) {
            j += 2;
            continue;
        }
        return Ok(j + 1);
    }
}

/// `$` followed by digits: a parameter placeholder; returns its end.
fn param_end(sql: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    while j < sql.len() && sql[j].is_ascii_digit() {
        j += 1;
    }
    // "$1abc" is a parameter followed by junk for PostgreSQL 15 too.
    (j > i + 1).then_some(j)
}

/// `$tag$` (tag possibly empty): returns the end of the opening delimiter.
fn dollar_tag_end(sql: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    if j < sql.len() && is_ident_start(sql[j]) {
        j += 1;
        while j < sql.len() && (is_ident_start(sql[j]) || sql[j].is_ascii_digit()) {
            j += 1;
        }
    }
    (sql.get(j) == Some(&b'$')).then_some(j + 1)
}

/// The end of a numeric literal starting at `i`: decimal digits with an
/// optional fraction and exponent, or a 0x/0o/0b integer, with `_` separators.
/// Letters after a number start a new token (PostgreSQL 15 and later reject
/// them as trailing junk; older servers read them as the next token).
fn number_end(sql: &[u8], i: usize) -> Result<usize, LexError> {
    let end = number_body_end(sql, i);
    // PostgreSQL's parser (libpg_query, PostgreSQL 18) refuses a number that
    // runs straight into a name; so does pgward, so both read the same tokens.
    if end == i || sql.get(end).is_some_and(|&b| is_ident_cont(b)) {
        return Err(LexError::TrailingJunk);
    }
    Ok(end)
}

fn number_body_end(sql: &[u8], mut i: usize) -> usize {
    let n = sql.len();
    if sql[i] == b'0'
        && matches!(
            sql.get(i + 1),
            Some(b'x' | b'X' | b'o' | b'O' | b'b' | b'B')
        )
    {
        let digit: fn(u8) -> bool = match sql[i + 1] {
            b'x' | b'X' => |b| b.is_ascii_hexdigit(),
            b'o' | b'O' => |b| (b'0'..=b'7').contains(&b),
            _ => |b| b == b'0' || b == b'1',
        };
        let start = i + 2;
        i = start;
        while i < n && (digit(sql[i]) || sql[i] == b'_') {
            i += 1;
        }
        return if i == start { start - 1 } else { i };
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

    fn fp(sql: &str) -> String {
        let mut f = Fingerprint::default();
        fingerprint(sql.as_bytes(), Strings::Standard, &mut f).unwrap();
        f.key_str()
    }

    #[test]
    fn normalizes_case_space_comments_and_literals() {
        let a = fp("SELECT abalance FROM pgbench_accounts WHERE aid = 42;");
        assert_eq!(a, "select abalance from pgbench_accounts where aid = ? ;");
        assert_eq!(
            a,
            fp("select  abalance\n from /* c /* nested */ */ PGBENCH_ACCOUNTS -- x\n where aid=7;")
        );
        assert_eq!(fp("SELECT $1, $22"), "select $? , $?");
        assert_eq!(
            fp("SELECT 'a''b', E'x\\'y', $$a$b$$, $t$ ' $t$, 1.5e3, .5, 0x1F"),
            "select ? , ? , ? , ? , ? , ? , ?"
        );
    }

    #[test]
    fn keeps_what_changes_meaning() {
        assert_ne!(
            fp("SELECT * FROM \"Customers\""),
            fp("SELECT * FROM customers")
        );
        assert_eq!(fp("SELECT * FROM \"a\"\"b\""), "select * from \"a\"\"b\"");
        // A quote inside a string or a comment marker inside a string is data.
        assert_eq!(fp("SELECT '--', '/*'"), "select ? , ?");
        assert_eq!(fp("SELECT 1 --'\n, 2"), "select ? , ?");
        // Dollar signs inside identifiers are identifier characters.
        assert_eq!(fp("SELECT a$1 FROM t"), "select a$1 from t");
        assert_ne!(fp("SELECT 1 - -2"), fp("SELECT 1 --2"));
        // A number never swallows the word after it.
        // PostgreSQL 16 and later refuse a number running into a name.
        for junk in [
            "SELECT 1from customers",
            "SELECT 0x",
            "SELECT 1e",
            "SELECT 0b2",
        ] {
            let mut f = Fingerprint::default();
            assert_eq!(
                fingerprint(junk.as_bytes(), Strings::Standard, &mut f),
                Err(LexError::TrailingJunk),
                "{junk}"
            );
            assert!(pg_query::parse(junk, 0).is_err(), "{junk}");
        }
        assert_eq!(fp("SELECT 0x1F, 1_000, .5e-3"), "select ? , ? , ?");
    }

    #[test]
    fn backslash_rules_follow_the_session() {
        let sql = b"SELECT 'a\\' , (SELECT 1) --'";
        let mut f = Fingerprint::default();
        fingerprint(sql, Strings::Standard, &mut f).unwrap();
        assert_eq!(f.key_str(), "select ? , ( select ? )");
        // With backslash escapes the whole rest is one string.
        fingerprint(sql, Strings::Escaped, &mut f).unwrap();
        assert_eq!(f.key_str(), "~e select ?");
    }

    #[test]
    fn literal_values_are_kept_aside() {
        let mut f = Fingerprint::default();
        fingerprint(
            b"SELECT set_config('role', 'x', false)",
            Strings::Standard,
            &mut f,
        )
        .unwrap();
        assert_eq!(f.literals, b"'role'\0'x'\0");
    }

    #[test]
    fn unterminated_input_is_an_error() {
        let mut f = Fingerprint::default();
        for bad in [
            "SELECT 'abc",
            "SELECT \"abc",
            "SELECT $x$ abc",
            "SELECT /* /* */",
            "SELECT E'\\",
        ] {
            assert!(
                fingerprint(bad.as_bytes(), Strings::Standard, &mut f).is_err(),
                "{bad}"
            );
        }
    }
}
