//! Classification of the few statement forms sqlparser does not accept but
//! common clients send (`COPY ... WITH (FREEZE ON)` and `VACUUM ANALYZE t`
//! from pgbench -i). Each accepts one exact shape and nothing else.

use sqlparser::dialect::PostgreSqlDialect;

use super::classification::{Classification, Name, Operation};

/// sqlparser's tokens of `sql` without whitespace (comments included as such).
fn significant_tokens(sql: &str) -> Option<Vec<sqlparser::tokenizer::Token>> {
    use sqlparser::tokenizer::{Token, Tokenizer};
    Some(
        Tokenizer::new(&PostgreSqlDialect {}, sql)
            .tokenize()
            .ok()?
            .into_iter()
            .filter(|t| !matches!(t, Token::Whitespace(_)))
            .collect(),
    )
}

/// `COPY name [(columns)] FROM STDIN | TO STDOUT [options]`, for the option
/// spellings sqlparser does not accept (`WITH (FREEZE ON)`, as pgbench -i
/// sends). Only this exact shape is accepted: the table and the direction
/// decide everything, and options cannot name other objects or run queries.
pub fn copy_fallback(sql: &str) -> Option<Classification> {
    use sqlparser::tokenizer::Token;
    let tokens = significant_tokens(sql)?;
    let word = |t: &Token| match t {
        Token::Word(w) => Some(w.clone()),
        _ => None,
    };
    let mut it = tokens.iter().peekable();
    if !word(it.next()?)?.value.eq_ignore_ascii_case("copy") {
        return None;
    }
    let mut parts = vec![word(it.next()?)?];
    while it.peek() == Some(&&Token::Period) {
        it.next();
        parts.push(word(it.next()?)?);
    }
    if it.peek() == Some(&&Token::LParen) {
        it.next();
        loop {
            word(it.next()?)?;
            match it.next()? {
                Token::Comma => continue,
                Token::RParen => break,
                _ => return None,
            }
        }
    }
    let direction = word(it.next()?)?.value.to_lowercase();
    let endpoint = word(it.next()?)?.value.to_lowercase();
    let to = match (direction.as_str(), endpoint.as_str()) {
        ("from", "stdin") => false,
        ("to", "stdout") => true,
        _ => return None,
    };
    // Options: words, numbers, strings, commas, parentheses and '=' only,
    // then at most a final semicolon.
    let mut ended = false;
    for t in it {
        match t {
            _ if ended => return None,
            Token::Word(_)
            | Token::Number(..)
            | Token::SingleQuotedString(_)
            | Token::Comma
            | Token::LParen
            | Token::RParen
            | Token::Eq => {}
            Token::SemiColon => ended = true,
            _ => return None,
        }
    }
    let names: Vec<String> = parts
        .iter()
        .map(|w| {
            if w.quote_style.is_some() {
                w.value.clone()
            } else {
                w.value.to_lowercase()
            }
        })
        .collect();
    let name = match names.as_slice() {
        [n] => Name::bare(n),
        [s, n] => Name::qualified(s, n),
        _ => return None,
    };
    let mut c = Classification {
        statements: 1,
        ..Classification::default()
    };
    if to {
        c.operations.insert(Operation::CopyOut);
        c.reads.insert(name);
        c.wildcard = true;
    } else {
        c.operations.insert(Operation::CopyIn);
        c.writes.insert(name);
    }
    Some(c)
}

/// `VACUUM` / `ANALYZE` with option words and a list of tables, for forms
/// sqlparser does not accept (`VACUUM ANALYZE t`, as pgbench -i sends).
pub fn maintenance_fallback(sql: &str) -> Option<Classification> {
    use sqlparser::tokenizer::Token;
    const OPTIONS: &[&str] = &[
        "full",
        "freeze",
        "verbose",
        "analyze",
        "analyse",
        "skip_locked",
        "disable_page_skipping",
    ];
    let tokens = significant_tokens(sql)?;
    let mut it = tokens.iter().peekable();
    let Token::Word(first) = it.next()? else {
        return None;
    };
    if !matches!(
        first.value.to_lowercase().as_str(),
        "vacuum" | "analyze" | "analyse"
    ) {
        return None;
    }
    if it.peek() == Some(&&Token::LParen) {
        // Parenthesised options: words and booleans only.
        for t in it.by_ref() {
            match t {
                Token::RParen => break,
                Token::Word(_) | Token::Comma | Token::Number(..) => {}
                _ => return None,
            }
        }
    }
    let mut c = Classification {
        statements: 1,
        ..Classification::default()
    };
    c.operations.insert(Operation::Maintenance);
    let mut parts: Vec<String> = Vec::new();
    let flush = |parts: &mut Vec<String>, c: &mut Classification| -> Option<()> {
        let name = match parts.as_slice() {
            [] => return Some(()),
            [n] => Name::bare(n),
            [s, n] => Name::qualified(s, n),
            _ => return None,
        };
        c.writes.insert(name);
        parts.clear();
        Some(())
    };
    let mut expect_name = false;
    while let Some(t) = it.next() {
        match t {
            Token::Word(w)
                if parts.is_empty()
                    && !expect_name
                    && w.quote_style.is_none()
                    && OPTIONS.contains(&w.value.to_lowercase().as_str()) => {}
            Token::Word(w) => {
                parts.push(if w.quote_style.is_some() {
                    w.value.clone()
                } else {
                    w.value.to_lowercase()
                });
                expect_name = false;
            }
            Token::Period => expect_name = true,
            Token::Comma => flush(&mut parts, &mut c)?,
            Token::SemiColon => {
                if it.next().is_some() {
                    return None;
                }
            }
            _ => return None,
        }
    }
    flush(&mut parts, &mut c)?;
    Some(c)
}
