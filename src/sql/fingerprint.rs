//! Statement fingerprints for the decision cache. A lexer over the SQL bytes
//! that splits a text into tokens exactly where PostgreSQL's scanner (scan.l,
//! PostgreSQL 18) does, in both standard_conforming_strings modes, and a key
//! written from those tokens: comments and whitespace dropped, unquoted words
//! lowercased (PostgreSQL folds them), literals and `$n` placeholders
//! collapsed. The literal values and placeholder numbers are kept on the
//! side, for the rare classifications that depend on them. Two texts with
//! the same key are, to the server, the same token sequence up to the values
//! of its literals.
//!
//! Whatever the lexer cannot read as the scanner does, it refuses (a
//! `LexError`): the scanner's own errors (unterminated strings, trailing junk
//! after a number), U&'' strings with standard_conforming_strings off (the
//! server refuses them too) and NUL bytes (the server would stop reading
//! there). It does not check escapes inside strings, which never move a
//! string's end. `tests/fingerprint_vs_scanner.rs` compares the tokens with
//! libpg_query's scanner.

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
    /// A number or parameter runs into a name (`1abc`, `0x`, `$1a`), which
    /// PostgreSQL 15 and later reject (older servers read `1abc` as
    /// `1 AS abc`).
    #[error("trailing junk after a numeric literal or parameter")]
    TrailingJunk,
    /// Something else the server's scanner rejects.
    #[error("{0}")]
    Rejected(&'static str),
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

/// What a token is, as far as the key is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A constant: a string in any quoting (the parts of a continued string
    /// joined), a bit string, a number.
    Literal,
    /// A parameter placeholder, `$1`.
    Param,
    /// An unquoted identifier or keyword.
    Word,
    /// The `N` of `N'...'`, which the server reads as the keyword NCHAR.
    NChar,
    /// A quoted identifier, `"..."` or `U&"..."`.
    QuotedIdent,
    /// An operator, punctuation, or any other byte.
    Symbol,
}

/// One token: its kind and where it lies in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    /// What it is.
    pub kind: Kind,
    /// Its first byte.
    pub start: usize,
    /// One past its last byte.
    pub end: usize,
}

/// The tokens of `sql` as the server's scanner splits them under `strings`;
/// after an error, nothing more.
pub fn tokens(sql: &[u8], strings: Strings) -> Tokens<'_> {
    Tokens {
        sql,
        pos: 0,
        strings,
        failed: false,
    }
}

/// Computes the fingerprint of `sql` into `fp` (cleared first).
pub fn fingerprint(sql: &[u8], strings: Strings, fp: &mut Fingerprint) -> Result<(), LexError> {
    fp.clear();
    if strings == Strings::Escaped {
        // Keys made under different string rules must never meet in a cache.
        fp.key.extend_from_slice(b"~e");
    }
    let mut after_uescape = false;
    let mut lexer = tokens(sql, strings);
    while let Some(token) = lexer.step()? {
        let text = &sql[token.start..token.end];
        if !fp.key.is_empty() {
            fp.key.push(b' ');
        }
        match token.kind {
            // The escape character decides what a U&"..." identifier names:
            // it is part of the statement, not a value.
            Kind::Literal if after_uescape => fp.key.extend_from_slice(text),
            Kind::Literal => {
                fp.key.push(b'?');
                fp.literals.extend_from_slice(text);
                fp.literals.push(0);
            }
            // Which parameter it is matters where a classification depends
            // on it (`current_setting($1)`): kept beside the literals.
            Kind::Param => {
                fp.key.extend_from_slice(b"$?");
                fp.literals.extend_from_slice(text);
                fp.literals.push(0);
            }
            Kind::Word => {
                let at = fp.key.len();
                fp.key.extend_from_slice(text);
                fp.key[at..].make_ascii_lowercase();
            }
            // The scanner returns the keyword NCHAR: `N'x'` is `nchar 'x'`.
            Kind::NChar => fp.key.extend_from_slice(b"nchar"),
            // A lone `?` operator must not read as a collapsed literal.
            Kind::Symbol if text == b"?" => fp.key.extend_from_slice(b"?op"),
            Kind::Symbol if text.len() == 1 => fp.key.push(text[0]),
            Kind::QuotedIdent | Kind::Symbol => fp.key.extend_from_slice(text),
        }
        after_uescape = token.kind == Kind::Word && text.eq_ignore_ascii_case(b"uescape");
    }
    Ok(())
}

/// The token iterator `tokens` returns.
pub struct Tokens<'a> {
    sql: &'a [u8],
    pos: usize,
    strings: Strings,
    failed: bool,
}

impl Iterator for Tokens<'_> {
    type Item = Result<Token, LexError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.step() {
            Ok(token) => token.map(Ok),
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// How a quoted string's body reads (the scanner's states).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quoting {
    /// `''` is a quote (xq: standard strings; xus: U&'').
    Doubled,
    /// `''` is a quote and a backslash escapes the next byte (xe: E'', and
    /// plain strings with standard_conforming_strings off).
    Backslash,
    /// The first quote ends the part (xb, xh: B'', X'').
    Bits,
}

impl Tokens<'_> {
    /// Where the next token starts; after an error, where the token that
    /// could not be read starts.
    pub fn offset(&self) -> usize {
        self.pos
    }

    /// Skips whitespace and comments, then reads one token.
    #[inline]
    fn step(&mut self) -> Result<Option<Token>, LexError> {
        let sql = self.sql;
        let n = sql.len();
        let mut i = self.pos;
        if i == 0 && memchr::memchr(0, sql).is_some() {
            // The server reads a text up to its first NUL; pgward reads texts
            // from the protocol the same way, so a NUL here is a mistake.
            return Err(LexError::Rejected("the statement holds a NUL byte"));
        }
        // Whitespace and comments.
        loop {
            match sql.get(i) {
                Some(&b) if is_space(b) => i += 1,
                Some(b'-') if sql.get(i + 1) == Some(&b'-') => i = line_comment_end(sql, i),
                Some(b'/') if sql.get(i + 1) == Some(&b'*') => i = block_comment_end(sql, i)?,
                Some(_) => break,
                None => {
                    self.pos = n;
                    return Ok(None);
                }
            }
        }
        // From here on an error is reported at this token's start.
        self.pos = i;
        let start = i;
        let b = sql[i];
        let next = sql.get(i + 1).copied();
        let (kind, end) = match b {
            // Words first, the most common token: a letter starts a string
            // only when a quote or `&` follows it.
            _ if is_ident_start(b) && !matches!(next, Some(b'\'' | b'&')) => {
                (Kind::Word, word_end_from(sql, i + 1))
            }
            b'b' | b'B' | b'x' | b'X' if next == Some(b'\'') => {
                (Kind::Literal, string_end(sql, i + 1, Quoting::Bits)?)
            }
            b'e' | b'E' if next == Some(b'\'') => {
                (Kind::Literal, string_end(sql, i + 1, Quoting::Backslash)?)
            }
            // The scanner returns NCHAR for the `N` alone, then reads the
            // string from its quote as any plain string.
            b'n' | b'N' if next == Some(b'\'') => (Kind::NChar, i + 1),
            b'u' | b'U' if next == Some(b'&') && sql.get(i + 2) == Some(&b'\'') => {
                if self.strings == Strings::Escaped {
                    return Err(LexError::Rejected(
                        "U&'' strings are refused with standard_conforming_strings off",
                    ));
                }
                (Kind::Literal, string_end(sql, i + 2, Quoting::Doubled)?)
            }
            b'u' | b'U' if next == Some(b'&') && sql.get(i + 2) == Some(&b'"') => {
                (Kind::QuotedIdent, identifier_end(sql, i + 2)?)
            }
            b'\'' => {
                let quoting = match self.strings {
                    Strings::Standard => Quoting::Doubled,
                    Strings::Escaped => Quoting::Backslash,
                };
                (Kind::Literal, string_end(sql, i, quoting)?)
            }
            b'"' => (Kind::QuotedIdent, identifier_end(sql, i)?),
            b'$' => dollar(sql, i)?,
            b'0'..=b'9' => (Kind::Literal, number_end(sql, i)?),
            b'.' if next.is_some_and(|d| d.is_ascii_digit()) => {
                (Kind::Literal, number_end(sql, i)?)
            }
            b'.' if next == Some(b'.') => (Kind::Symbol, i + 2),
            b':' if matches!(next, Some(b':' | b'=')) => (Kind::Symbol, i + 2),
            _ if is_ident_start(b) => (Kind::Word, word_end_from(sql, i + 1)),
            _ if is_op_char(b) => (Kind::Symbol, operator_end(sql, i)?),
            // Punctuation and anything else: one byte.
            _ => (Kind::Symbol, i + 1),
        };
        self.pos = end;
        Ok(Some(Token { kind, start, end }))
    }
}

/// Byte classes of the scanner's character sets, one table lookup each.
const SPACE: u8 = 1;
const IDENT_START: u8 = 2;
const IDENT_CONT: u8 = 4;
const OP_CHAR: u8 = 8;

static CLASSES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let start = c.is_ascii_alphabetic() || c == b'_' || c >= 0x80;
        if start {
            t[b] |= IDENT_START | IDENT_CONT;
        }
        if c.is_ascii_digit() || c == b'$' {
            t[b] |= IDENT_CONT;
        }
        // `space`: [ \t\n\r\f\v]
        if matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0c | 0x0b) {
            t[b] |= SPACE;
        }
        // `op_chars`: [~!@#^&|`?+\-*/%<>=]
        if matches!(
            c,
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
        ) {
            t[b] |= OP_CHAR;
        }
        b += 1;
    }
    t
};

fn is_ident_start(b: u8) -> bool {
    CLASSES[b as usize] & IDENT_START != 0
}

fn is_ident_cont(b: u8) -> bool {
    CLASSES[b as usize] & IDENT_CONT != 0
}

fn is_space(b: u8) -> bool {
    CLASSES[b as usize] & SPACE != 0
}

fn is_newline(b: u8) -> bool {
    b == b'\n' || b == b'\r'
}

fn is_op_char(b: u8) -> bool {
    CLASSES[b as usize] & OP_CHAR != 0
}

/// The end of a `--` comment starting at `i`: just past its newline, or the
/// end of the text.
fn line_comment_end(sql: &[u8], i: usize) -> usize {
    memchr::memchr2(b'\n', b'\r', &sql[i..]).map_or(sql.len(), |p| i + p + 1)
}

/// The end of a block comment starting at `i` (at "/*"), honouring nesting.
fn block_comment_end(sql: &[u8], mut i: usize) -> Result<usize, LexError> {
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

/// The end of a string whose opening quote is at `i`: past the closing quote
/// of its last part. Every part reads under the first part's quoting.
fn string_end(sql: &[u8], i: usize, quoting: Quoting) -> Result<usize, LexError> {
    let unterminated = || {
        LexError::Unterminated(match quoting {
            Quoting::Bits if matches!(sql[i - 1], b'b' | b'B') => "bit string literal",
            Quoting::Bits => "hexadecimal string literal",
            _ => "quoted string",
        })
    };
    let mut j = i + 1;
    loop {
        // The closing quote of this part.
        loop {
            let rest = &sql[j..];
            let p = if quoting == Quoting::Backslash {
                memchr::memchr2(b'\'', b'\\', rest)
            } else {
                memchr::memchr(b'\'', rest)
            }
            .ok_or_else(unterminated)?;
            j += p;
            if sql[j] == b'\\' {
                // The escaped byte never ends the string (`\'` included).
                j += 2;
                if j > sql.len() {
                    return Err(unterminated());
                }
                continue;
            }
            j += 1;
            if quoting != Quoting::Bits && sql.get(j) == Some(&b'\'') {
                j += 1;
                continue;
            }
            break;
        }
        match continuation(sql, j) {
            Some(quote) => j = quote + 1,
            None => return Ok(j),
        }
    }
}

/// After a string part's closing quote (`i` is just past it): the quote of
/// the part that continues it, if any. The scanner's `quotecontinue`: spaces
/// and `--` comments holding at least one newline, then a quote. Block
/// comments do not count.
fn continuation(sql: &[u8], mut i: usize) -> Option<usize> {
    // Horizontal space and comments, up to the first newline.
    loop {
        match *sql.get(i)? {
            b' ' | b'\t' | 0x0c | 0x0b => i += 1,
            b'-' if sql.get(i + 1) == Some(&b'-') => {
                i += memchr::memchr2(b'\n', b'\r', &sql[i..])?;
            }
            b if is_newline(b) => break,
            _ => return None,
        }
    }
    // Any space, and comments ended by a newline, then the quote.
    loop {
        match *sql.get(i)? {
            b if is_space(b) => i += 1,
            b'-' if sql.get(i + 1) == Some(&b'-') => {
                i += memchr::memchr2(b'\n', b'\r', &sql[i..])? + 1;
            }
            b'\'' => return Some(i),
            _ => return None,
        }
    }
}

/// The end of a quoted identifier whose opening quote is at `i`.
fn identifier_end(sql: &[u8], i: usize) -> Result<usize, LexError> {
    let mut j = i + 1;
    loop {
        j += memchr::memchr(b'"', &sql[j..]).ok_or(LexError::Unterminated("quoted identifier"))?;
        if sql.get(j + 1) == Some(&b'"') {
            j += 2;
            continue;
        }
        if j == i + 1 {
            return Err(LexError::EmptyIdentifier);
        }
        return Ok(j + 1);
    }
}

/// A token starting with `$` at `i`: a parameter, a dollar-quoted string, or
/// a lone `$` (then an identifier may follow: `$abc` is `$` and `abc`).
fn dollar(sql: &[u8], i: usize) -> Result<(Kind, usize), LexError> {
    let mut j = i + 1;
    if sql.get(j).is_some_and(u8::is_ascii_digit) {
        let mut value = 0u64;
        while let Some(d) = sql.get(j).filter(|d| d.is_ascii_digit()) {
            value = (value * 10 + u64::from(d - b'0')).min(1 << 32);
            j += 1;
        }
        if sql.get(j).is_some_and(|&b| is_ident_start(b)) {
            return Err(LexError::TrailingJunk);
        }
        if value > i32::MAX as u64 {
            return Err(LexError::Rejected("parameter number too large"));
        }
        return Ok((Kind::Param, j));
    }
    // The tag: an identifier without `$`.
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
        return Ok((Kind::Symbol, i + 1));
    }
    let delimiter = &sql[i..=j];
    let body = j + 1;
    // The body ends at the first copy of the delimiter (the scanner gives
    // back the last `$` of any other `$tag$` it meets, so none is skipped).
    let end = memchr::memmem::find(&sql[body..], delimiter)
        .ok_or(LexError::Unterminated("dollar-quoted string"))?;
    Ok((Kind::Literal, body + end + delimiter.len()))
}

/// The end of an operator starting at `i`, as the scanner's `{operator}`
/// rule cuts it: before a comment start, and without trailing `+`/`-`
/// unless it holds a character SQL operators do not use.
fn operator_end(sql: &[u8], i: usize) -> Result<usize, LexError> {
    let mut end = i + 1;
    while end < sql.len() && is_op_char(sql[end]) {
        if matches!(
            (sql[end], sql.get(end + 1)),
            (b'-', Some(b'-')) | (b'/', Some(b'*'))
        ) {
            break;
        }
        end += 1;
    }
    if end - i > 1
        && matches!(sql[end - 1], b'+' | b'-')
        && !sql[i..end - 1].iter().any(|b| b"~!@#^&|`?%".contains(b))
    {
        while end - i > 1 && matches!(sql[end - 1], b'+' | b'-') {
            end -= 1;
        }
    }
    if end - i >= 64 {
        return Err(LexError::Rejected("operator too long"));
    }
    Ok(end)
}

/// The end of a numeric literal starting at `i` (a digit, or `.` and a
/// digit). The scanner takes the longest match among its number rules and
/// its error rules (`{integer_junk}` is `{decinteger}{identifier}`, ...),
/// valid rules first on a tie. A junk rule may split a number wherever an
/// identifier can start: `1_000$` is `1` and `_000$`, longer than the number
/// `1_000`, so an error.
fn number_end(sql: &[u8], i: usize) -> Result<usize, LexError> {
    let at = |k: usize| sql.get(k).copied();

    // Most numbers are plain digits followed by something no number rule
    // takes (no `_`, `.`, exponent or letter): those end there.
    let plain = i + sql[i..].iter().take_while(|b| b.is_ascii_digit()).count();
    if plain > i && !at(plain).is_some_and(|b| b == b'.' || is_ident_start(b)) {
        return Ok(plain);
    }

    // 0x, 0o, 0b integers.
    if at(i) == Some(b'0') {
        let digit: Option<fn(u8) -> bool> = match at(i + 1) {
            Some(b'x' | b'X') => Some(|b| b.is_ascii_hexdigit()),
            Some(b'o' | b'O') => Some(|b| (b'0'..=b'7').contains(&b)),
            Some(b'b' | b'B') => Some(|b| b == b'0' || b == b'1'),
            _ => None,
        };
        if let Some(digit) = digit {
            let mut k = i + 2;
            loop {
                let d = if at(k) == Some(b'_') { k + 1 } else { k };
                match at(d) {
                    Some(c) if digit(c) => k = d + 1,
                    _ => break,
                }
            }
            // `{hexfail}` (no digit), or `{integer_junk}`: `0` and an
            // identifier from the `x` reaching past the digits.
            if k == i + 2 || at(k).is_some_and(is_ident_cont) {
                return Err(LexError::TrailingJunk);
            }
            return Ok(k);
        }
    }

    let integer = decinteger(sql, i);
    // `{numeric}`: an integer, `.` and an optional fraction; or `.` and a
    // fraction.
    let numeric = match integer {
        Some(int) if at(int.end) == Some(b'.') => {
            let dot = int.end + 1;
            Some(decinteger(sql, dot).unwrap_or(Digits {
                end: dot,
                junk: word_end(sql, dot),
            }))
        }
        Some(_) => None,
        None => decinteger(sql, i + 1),
    };
    // `{numericfail}`: `1..` is the integer 1 and `..`.
    let numericfail = integer
        .map(|int| int.end)
        .filter(|&d| at(d) == Some(b'.') && at(d + 1) == Some(b'.'));
    // `{real}` and `{realfail}` after either base.
    let mut real: Option<Digits> = None;
    let mut realfail = None;
    for base in [integer, numeric].into_iter().flatten() {
        if !matches!(at(base.end), Some(b'e' | b'E')) {
            continue;
        }
        let signed = matches!(at(base.end + 1), Some(b'+' | b'-'));
        let digits = base.end + 1 + usize::from(signed);
        match decinteger(sql, digits) {
            Some(exponent) if real.is_none_or(|r| r.end < exponent.end) => real = Some(exponent),
            Some(_) => {}
            None if signed => realfail = realfail.max(Some(digits)),
            None => {}
        }
    }

    let matches = [integer, numeric, real].into_iter().flatten();
    let valid = matches
        .clone()
        .map(|m| m.end)
        .chain(numericfail.map(|d| d + 2))
        .max()
        .ok_or(LexError::TrailingJunk)?;
    // `{integer_junk}`, `{numeric_junk}`, `{real_junk}`.
    let junk = matches.filter_map(|m| m.junk).chain(realfail).max();
    if junk.is_some_and(|j| j > valid) {
        return Err(LexError::TrailingJunk);
    }
    Ok(match numericfail {
        Some(d) if valid == d + 2 => d,
        _ => valid,
    })
}

/// A `{decinteger}` match: where the longest ends, and how far the longest
/// match of it followed by an identifier reaches (`{integer_junk}`), if any.
#[derive(Clone, Copy)]
struct Digits {
    end: usize,
    junk: Option<usize>,
}

/// The `{decinteger}` at `k`: a digit, then digits each after at most one
/// `_`.
fn decinteger(sql: &[u8], k: usize) -> Option<Digits> {
    if !sql.get(k)?.is_ascii_digit() {
        return None;
    }
    let mut end = k + 1;
    let mut underscore = None;
    loop {
        let d = if sql.get(end) == Some(&b'_') {
            end + 1
        } else {
            end
        };
        match sql.get(d) {
            Some(c) if c.is_ascii_digit() => {
                if d > end {
                    underscore = underscore.or(Some(end));
                }
                end = d + 1;
            }
            _ => break,
        }
    }
    // A shorter match may be followed by an identifier starting at an
    // underscore, which runs on through the digits (and past them).
    let junk = underscore.map_or_else(|| word_end(sql, end), |u| word_end(sql, u));
    Some(Digits { end, junk })
}

/// The end of an unquoted identifier starting at `k`, if one starts there.
fn word_end(sql: &[u8], k: usize) -> Option<usize> {
    is_ident_start(*sql.get(k)?).then(|| word_end_from(sql, k + 1))
}

/// The end of the identifier characters from `k` on.
fn word_end_from(sql: &[u8], k: usize) -> usize {
    k + sql[k..].iter().take_while(|&&b| is_ident_cont(b)).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(sql: &str) -> String {
        let mut f = Fingerprint::default();
        fingerprint(sql.as_bytes(), Strings::Standard, &mut f).unwrap();
        f.key_str()
    }

    fn fp_off(sql: &str) -> String {
        let mut f = Fingerprint::default();
        fingerprint(sql.as_bytes(), Strings::Escaped, &mut f).unwrap();
        f.key_str()
    }

    fn lex_error(sql: &str, strings: Strings) -> LexError {
        let mut f = Fingerprint::default();
        fingerprint(sql.as_bytes(), strings, &mut f).expect_err(sql)
    }

    /// Each token's kind and text.
    fn toks(sql: &str, strings: Strings) -> Vec<(Kind, &str)> {
        tokens(sql.as_bytes(), strings)
            .map(|t| {
                let t = t.unwrap_or_else(|e| panic!("{sql:?}: {e}"));
                (t.kind, &sql[t.start..t.end])
            })
            .collect()
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
            "SELECT B'01",
            "SELECT 'a'\n'b",
        ] {
            assert!(
                fingerprint(bad.as_bytes(), Strings::Standard, &mut f).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn continued_strings_are_one_literal_under_the_first_parts_rules() {
        use Kind::*;
        let on = Strings::Standard;
        // Joined only across whitespace holding a newline (`--` comments
        // allowed, block comments not).
        assert_eq!(
            toks("SELECT 'a'\n'b'", on),
            [(Word, "SELECT"), (Literal, "'a'\n'b'")]
        );
        assert_eq!(
            toks("SELECT 'a' -- c\n  -- d\n 'b' x", on)[1],
            (Literal, "'a' -- c\n  -- d\n 'b'")
        );
        assert_eq!(
            toks("SELECT 'a'\r\n\t'b'", on)[1],
            (Literal, "'a'\r\n\t'b'")
        );
        assert_eq!(toks("SELECT 'a' 'b'", on).len(), 3);
        assert_eq!(toks("SELECT 'a'/*\n*/'b'", on).len(), 3);
        assert_eq!(toks("SELECT 'a'\n-'b'", on).len(), 4);
        // Every kind of quoted string continues, in its own rules.
        for (sql, literal) in [
            ("SELECT B'01'\n'1'", "B'01'\n'1'"),
            ("SELECT X'0f'\n'f'", "X'0f'\n'f'"),
            ("SELECT U&'a'\n'b'", "U&'a'\n'b'"),
            ("SELECT 1, 'it''s'\n'x'", "'it''s'\n'x'"),
            ("SELECT $$a$$\n'b'", "$$a$$"),
        ] {
            assert!(toks(sql, on).contains(&(Literal, literal)), "{sql:?}");
        }
        // Nothing else continues, and a quote inside a comment or another
        // token starts nothing.
        for sql in [
            "SELECT \"a\"\n\"b\"",
            "SELECT 'a'\n, 'b'",
            "SELECT 1 -- 'a'\n'b'",
            "SELECT /* 'a' */\n'b'",
            "SELECT a$$'x'\n, 1",
            "SELECT 'a' -- c 'b'\n",
        ] {
            assert!(
                toks(sql, on)
                    .iter()
                    .all(|&(kind, text)| kind != Literal || !text.contains('\n')),
                "{sql:?}"
            );
        }
        // N'' is the keyword NCHAR and a plain string, which continues.
        assert_eq!(
            toks("SELECT N'a'\n'b'", on)[1..],
            [(NChar, "N"), (Literal, "'a'\n'b'")]
        );
        // After E'', `\'` in the next part escapes the quote: the rest of
        // the text is still inside the string.
        // After E'', `\'` in the next part escapes the quote: the string
        // runs to the quote before the comma, and what follows is code.
        let sql = "SELECT E'a'\n'\\' AS x, ' , key_value FROM api_keys --'";
        assert_eq!(toks(sql, on)[1], (Literal, "E'a'\n'\\' AS x, '"));
        assert_eq!(fp(sql), "select ? , key_value from api_keys");
        // The same parts without the E: a string, code, and a string.
        let plain = "SELECT 'a'\n'\\' AS x, ' , key_value FROM api_keys --'";
        assert_eq!(fp(plain), "select ? as x , ?");
        assert_eq!(fp(plain), fp("SELECT 'a'\n'b' AS x, 'c'"));
    }

    #[test]
    fn bit_strings_end_at_the_first_quote() {
        use Kind::*;
        // In B'' and X'' the scanner has no doubled quote: `''` ends the
        // string and starts another.
        for strings in [Strings::Standard, Strings::Escaped] {
            assert_eq!(
                toks("SELECT B'0'', key_value FROM api_keys --'", strings)[1..],
                [
                    (Literal, "B'0'"),
                    (Literal, "', key_value FROM api_keys --'")
                ]
            );
            assert_eq!(
                toks("SELECT X'1''2'", strings)[1..],
                [(Literal, "X'1'"), (Literal, "'2'")]
            );
            // And no backslash escape, whatever the mode.
            assert_eq!(toks("SELECT b'\\' x", strings)[1], (Literal, "b'\\'"));
        }
    }

    #[test]
    fn unicode_strings_keep_their_escape_in_the_key() {
        assert_eq!(fp("SELECT U&'d!0061t' UESCAPE '!'"), "select ? uescape '!'");
        assert_ne!(
            fp(r#"SELECT U&"!0073alary" UESCAPE '#' FROM employees"#),
            fp(r#"SELECT U&"!0073alary" UESCAPE '!' FROM employees"#)
        );
        // Only the keyword: a word ending in "uescape" is another word.
        assert_eq!(fp("SELECT xuescape '!'"), "select xuescape ?");
        // The server refuses U&'' with standard_conforming_strings off.
        assert!(matches!(
            lex_error("SELECT U&'a'", Strings::Escaped),
            LexError::Rejected(_)
        ));
        assert_eq!(fp_off("SELECT U&\"a\""), "~e select U&\"a\"");
    }

    #[test]
    fn national_strings_are_nchar_and_a_string() {
        // The server reads N'x' as the token NCHAR and the string 'x', as
        // it reads `nchar 'x'`; `n 'x'` is a cast to a type named n.
        assert_eq!(fp("SELECT N'x'"), fp("SELECT nchar 'x'"));
        assert_ne!(fp("SELECT N'x'"), fp("SELECT n 'x'"));
        assert_ne!(fp("SELECT N'x'"), fp("SELECT 'x'"));
        // Under standard_conforming_strings off its string takes backslashes.
        assert_eq!(fp_off("SELECT N'\\'' x"), "~e select nchar ? x");
        assert_eq!(fp("SELECT N'\\' x"), "select nchar ? x");
    }

    #[test]
    fn operators_are_cut_as_the_scanner_cuts_them() {
        use Kind::*;
        let on = Strings::Standard;
        let ops = |sql: &str| -> Vec<String> {
            toks(sql, on)
                .into_iter()
                .map(|(_, t)| t.to_string())
                .collect()
        };
        // A trailing + or - leaves the operator unless it holds a character
        // SQL operators do not use.
        assert_eq!(ops("a=-1"), ["a", "=", "-", "1"]);
        assert_eq!(ops("a*-+1"), ["a", "*", "-", "+", "1"]);
        assert_eq!(ops("a<=-1"), ["a", "<=", "-", "1"]);
        assert_eq!(ops("a@-1"), ["a", "@-", "1"]);
        assert_eq!(ops("a?-1"), ["a", "?-", "1"]);
        assert_eq!(ops("a=%-+1"), ["a", "=%-+", "1"]);
        // A comment start ends an operator.
        assert_eq!(ops("a+/*c*/1"), ["a", "+", "1"]);
        assert_eq!(ops("a*--c\n1"), ["a", "*", "1"]);
        assert_eq!(ops("a<--c\n1"), ["a", "<", "1"]);
        assert_eq!(ops("a*/1"), ["a", "*/", "1"]);
        // Two-character tokens of their own.
        assert_eq!(ops("f(a:=1)"), ["f", "(", "a", ":=", "1", ")"]);
        assert_eq!(ops("a::=b"), ["a", "::", "=", "b"]);
        assert_eq!(ops("1..2"), ["1", "..", "2"]);
        assert_eq!(ops("a...b"), ["a", "..", ".", "b"]);
        // A lone `?` operator and a collapsed literal differ in the key.
        assert_ne!(fp("SELECT 1 ? 2"), fp("SELECT ? ? 2"));
        assert_eq!(toks("a ? b", on)[1], (Symbol, "?"));
        assert!(matches!(
            lex_error(&format!("SELECT 1 {} 2", "~".repeat(64)), on),
            LexError::Rejected(_)
        ));
    }

    #[test]
    fn numbers_follow_the_scanners_rules() {
        use Kind::*;
        let on = Strings::Standard;
        for (sql, number) in [
            ("1_000", "1_000"),
            ("0x_1F", "0x_1F"),
            ("0b1_0", "0b1_0"),
            ("0o17", "0o17"),
            ("1.", "1."),
            ("1.e5", "1.e5"),
            ("1e+5$", "1e+5"),
            ("1.5$", "1.5"),
            ("1$", "1"),
            (".5e-3", ".5e-3"),
            ("1_0.5_0+", "1_0.5_0"),
            ("1.5_0e1_0+", "1.5_0e1_0"),
        ] {
            assert_eq!(toks(sql, on)[0], (Literal, number), "{sql:?}");
        }
        for junk in [
            "1__0", "1_", "1_.5", "1._5", "1.x", "1.e", "1e+", "1e-x", "1e5$", "1e5_", "1.5e5$",
            "0x1g", "0x1$", "0x__1", "0x_", "0b12", "00x1", "1e", "$1a", "$1_",
            // An identifier may start at an underscore inside the number.
            "1_000$", "1.5_0$", "1e5_0$", "1_0e5$", "1_0.5_0$",
        ] {
            assert_eq!(lex_error(junk, on), LexError::TrailingJunk, "{junk:?}");
        }
        assert!(matches!(
            lex_error("SELECT $2147483648", on),
            LexError::Rejected(_)
        ));
        assert_eq!(toks("$1$", on), [(Param, "$1"), (Symbol, "$")]);
        assert_eq!(toks("$abc", on), [(Symbol, "$"), (Word, "abc")]);
    }

    #[test]
    fn words_hold_non_ascii_bytes_and_dollars() {
        use Kind::*;
        let on = Strings::Standard;
        assert_eq!(toks("SELECT café$1", on)[1], (Word, "café$1"));
        assert_eq!(toks("é'x'", on), [(Word, "é"), (Literal, "'x'")]);
        // A prefix counts only at the start of a token.
        assert_eq!(toks("ae'x'", on), [(Word, "ae"), (Literal, "'x'")]);
        assert_eq!(toks("u&x", on), [(Word, "u"), (Symbol, "&"), (Word, "x")]);
        // A non-breaking space is a letter to the scanner.
        assert_eq!(toks("SELECT\u{a0}1", on), [(Word, "SELECT\u{a0}1")]);
        // Vertical tab is whitespace.
        assert_eq!(toks("a\x0bb", on).len(), 2);
        assert!(matches!(lex_error("SELECT 1\0", on), LexError::Rejected(_)));
    }

    #[test]
    fn dollar_quotes_end_at_the_first_copy_of_their_delimiter() {
        use Kind::*;
        let on = Strings::Standard;
        assert_eq!(toks("$a$x$b$a$ y", on)[0], (Literal, "$a$x$b$a$"));
        assert_eq!(toks("$$x$b$$ y", on)[0], (Literal, "$$x$b$$"));
        assert_eq!(toks("$a$ '$a$ x", on)[0], (Literal, "$a$ '$a$"));
        // A tag holds no `$` and does not start with a digit.
        assert_eq!(toks("$1$", on)[0], (Param, "$1"));
    }
}
