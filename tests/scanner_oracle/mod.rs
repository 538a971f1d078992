//! The fingerprint lexer against PostgreSQL's own scanner (libpg_query's
//! `scan`, PostgreSQL 18's scan.l), shared by the differential test
//! and the fuzz target of the same name.
//!
//! `scan` has no standard_conforming_strings option (it always scans
//! with it on). Standard mode is compared token for token. For Escaped mode
//! the text is rewritten so that the standard scanner reads it as the
//! escaped one would: `' E` goes before every quote that opens a plain
//! string (under off, such a string is read exactly as an E'' string), and
//! the scanner's tokens are mapped back. That rewrite starts from the
//! lexer's own idea of where plain strings open, so it checks how far
//! strings run, not where they open; where they open does not depend on the
//! mode and is checked in Standard mode. Where the lexer refuses an Escaped
//! text, libpg_query's parser (which does take the mode) must refuse it too.

use pg_query::protobuf::Token as T;
use pg_query::ParserOptions;
use pgward::sql::fingerprint::{fingerprint, tokens, Fingerprint, Kind, LexError, Strings};

/// A token as both sides can describe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// A constant (string, bit string, number).
    Literal,
    /// `$n`.
    Param,
    /// Anything else; its text is the source between the bounds.
    Other,
}

/// (class, start, end) of each token.
pub type Spans = Vec<(Class, usize, usize)>;

/// The scanner's tokens as `signature` describes them.
pub type Signature = Vec<(i32, String)>;

/// The scanner's tokens, comments dropped.
pub fn scanner_spans(sql: &str) -> Result<Spans, String> {
    // `scan`, not `scan_tokens`: the latter builds a slice from a null
    // pointer when a text has no tokens.
    let scanned = pg_query::scan(sql).map_err(|e| e.to_string())?.tokens;
    Ok(scanned
        .iter()
        .filter(|t| t.token != T::SqlComment as i32 && t.token != T::CComment as i32)
        .map(|t| (class_of(t.token), t.start as usize, t.end as usize))
        .collect())
}

/// The scanner's class of a token number.
pub fn class_of(token: i32) -> Class {
    const LITERALS: [T; 6] = [
        T::Sconst,
        T::Usconst,
        T::Bconst,
        T::Xconst,
        T::Iconst,
        T::Fconst,
    ];
    if LITERALS.iter().any(|&l| l as i32 == token) {
        Class::Literal
    } else if token == T::Param as i32 {
        Class::Param
    } else {
        Class::Other
    }
}

/// True when the scanner read a parameter running into a name (`$1a`,
/// `$1E'x'`). PostgreSQL (15 and later) refuses that, "trailing junk after
/// parameter"; libpg_query leaves that rule out and reads `$1` and `a`.
fn has_param_junk(sql: &str, spans: &Spans) -> bool {
    spans
        .windows(2)
        .any(|w| w[0].0 == Class::Param && w[1].1 == w[0].2 && starts_identifier(sql, w[1].1))
}

fn starts_identifier(sql: &str, at: usize) -> bool {
    sql.as_bytes()
        .get(at)
        .is_some_and(|&b| b.is_ascii_alphabetic() || b == b'_' || b >= 0x80)
}

/// The fingerprint lexer's tokens; on an error, also where it stopped.
pub fn lexer_spans(sql: &str, strings: Strings) -> Result<Spans, (LexError, usize)> {
    let mut lexer = tokens(sql.as_bytes(), strings);
    let mut spans = Vec::new();
    for t in lexer.by_ref() {
        match t {
            Ok(t) => {
                let class = match t.kind {
                    Kind::Literal => Class::Literal,
                    Kind::Param => Class::Param,
                    _ => Class::Other,
                };
                spans.push((class, t.start, t.end));
            }
            Err(e) => return Err((e, lexer.offset())),
        }
    }
    Ok(spans)
}

/// True when the lexer stopped at a parameter running into a name, which
/// the server refuses (see `has_param_junk`).
fn stopped_at_param_junk(sql: &str, error: &(LexError, usize)) -> bool {
    let rest = &sql.as_bytes()[error.1..];
    let digits = rest
        .iter()
        .skip(1)
        .take_while(|b| b.is_ascii_digit())
        .count();
    error.0 == LexError::TrailingJunk
        && rest.first() == Some(&b'$')
        && digits > 0
        && starts_identifier(sql, error.1 + 1 + digits)
}

/// What a comparison found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agreement {
    /// Both read the same tokens.
    Same,
    /// The scanner refuses the text; the lexer may or may not, and the
    /// parser refuses it (so classification fails closed).
    ScannerRefuses,
    /// Both refuse it.
    BothRefuse,
}

/// Whether libpg_query's parser refuses `sql` under `strings`. A parse that
/// fails with standard_conforming_strings off leaves the setting off for the
/// thread's later calls (libpg_query restores it only after a success), and
/// `scan` would then read strings with backslash escapes: a parse in the
/// default mode puts it back.
fn parser_refuses(sql: &str, strings: Strings) -> bool {
    let refused = pg_query::parse(sql, options(strings)).is_err();
    let _ = pg_query::parse("", ParserOptions::DEFAULT);
    refused
}

fn options(strings: Strings) -> ParserOptions {
    match strings {
        Strings::Standard => ParserOptions::DEFAULT,
        Strings::Escaped => ParserOptions::DISABLE_STANDARD_CONFORMING_STRINGS,
    }
}

/// Compares the lexer with the scanner on `sql`; `Err` describes a
/// divergence. Texts holding NUL are out of scope (the protocol ends a text
/// at its first NUL) and must be filtered by the caller.
pub fn compare(sql: &str, strings: Strings) -> Result<Agreement, String> {
    let lexed = lexer_spans(sql, strings);
    let parser_refuses = || parser_refuses(sql, strings);
    let scanned = match (strings, &lexed) {
        (Strings::Standard, _) => scanner_spans(sql),
        (Strings::Escaped, Ok(spans)) => escaped_scanner_spans(sql, spans),
        (Strings::Escaped, Err(e)) => {
            // No scanner in this mode: the parser, which scans in it, must
            // refuse the text too.
            return if parser_refuses() || stopped_at_param_junk(sql, e) {
                Ok(Agreement::BothRefuse)
            } else {
                Err(format!("lexer refuses ({}) what the parser reads", e.0))
            };
        }
    };
    // Put back the server's rule libpg_query leaves out.
    let scanned = match scanned {
        Ok(spans) if has_param_junk(sql, &spans) => {
            Err("trailing junk after parameter (PostgreSQL's rule)".to_string())
        }
        other => other,
    };
    match (lexed, scanned) {
        (Ok(l), Ok(s)) if l == s => Ok(Agreement::Same),
        (Ok(l), Ok(s)) => Err(format!(
            "tokens differ:\n lexer:   {}\n scanner: {}",
            show(sql, &l),
            show(sql, &s)
        )),
        (Err(e), Ok(_)) => Err(format!("lexer refuses ({}) what the scanner reads", e.0)),
        (Err(_), Err(_)) => Ok(Agreement::BothRefuse),
        // Only a string's contents may be refused by the scanner and read
        // by the lexer (it does not check escapes): where a token ends, the
        // two must agree even on texts the server refuses.
        (Ok(_), Err(e)) if !value_error(&e) => Err(format!(
            "the scanner refuses ({e}) where the lexer reads tokens"
        )),
        (Ok(_), Err(_)) if parser_refuses() => Ok(Agreement::ScannerRefuses),
        (Ok(_), Err(e)) => Err(format!(
            "the scanner refuses ({e}) but the parser reads the text"
        )),
    }
}

/// True for the scanner's errors about a string's contents (escapes that
/// name no character, bytes that are not UTF-8), not its extent.
fn value_error(message: &str) -> bool {
    ["Unicode", "invalid byte sequence"]
        .iter()
        .any(|m| message.contains(m))
}

/// The tokens the scanner would read under standard_conforming_strings
/// off, by the rewrite described at the top.
fn escaped_scanner_spans(sql: &str, lexed: &Spans) -> Result<Spans, String> {
    let bytes = sql.as_bytes();
    let opens: Vec<usize> = lexed
        .iter()
        .filter(|&&(class, start, _)| class == Class::Literal && bytes[start] == b'\'')
        .map(|&(_, start, _)| start)
        .collect();
    let mut rewritten = String::with_capacity(sql.len() + 2 * opens.len());
    // For each byte of the rewritten text, the byte of `sql` it stands for
    // (an inserted byte stands for the quote after it).
    let mut back = Vec::with_capacity(sql.len() + 2 * opens.len() + 1);
    let mut from = 0;
    for &q in &opens {
        rewritten.push_str(&sql[from..q]);
        back.extend(from..q);
        rewritten.push_str(" E");
        back.extend([q, q]);
        from = q;
    }
    rewritten.push_str(&sql[from..]);
    back.extend(from..=sql.len());
    let spans = scanner_spans(&rewritten)?;
    Ok(spans
        .into_iter()
        .map(|(class, start, end)| (class, back[start], back[end]))
        .collect())
}

fn show(sql: &str, spans: &Spans) -> String {
    spans
        .iter()
        .map(|&(class, s, e)| {
            format!(
                "{class:?}{:?}",
                sql.get(s..e).unwrap_or("<not a char boundary>")
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The scanner's view of a text, at the grain the decision cache must
/// respect: literals as one class, parameters as another, keywords by
/// token number, identifiers folded as the server folds unquoted ones,
/// everything else by token number and text. Two texts with the same
/// fingerprint key must have the same signature.
pub fn signature(sql: &str) -> Option<Signature> {
    let scanned = pg_query::scan(sql).ok()?.tokens;
    let mut out = Vec::new();
    let mut after_uescape = false;
    for t in scanned {
        if t.token == T::SqlComment as i32 || t.token == T::CComment as i32 {
            continue;
        }
        let text = &sql[t.start as usize..t.end as usize];
        let entry = match class_of(t.token) {
            // The escape character of a UESCAPE is part of the statement.
            Class::Literal if after_uescape => (t.token, text.to_string()),
            Class::Literal => (-1, String::new()),
            Class::Param => (-2, String::new()),
            Class::Other if t.keyword_kind != 0 => (t.token, String::new()),
            Class::Other if t.token == T::Ident as i32 && !text.starts_with('"') => {
                (t.token, text.to_ascii_lowercase())
            }
            Class::Other => (t.token, text.to_string()),
        };
        after_uescape = t.token == T::Uescape as i32;
        out.push(entry);
    }
    Some(out)
}

/// The fingerprint key of `sql`, when the lexer reads it.
pub fn key(sql: &str, strings: Strings) -> Option<Vec<u8>> {
    let mut f = Fingerprint::default();
    fingerprint(sql.as_bytes(), strings, &mut f).ok()?;
    Some(f.key)
}
