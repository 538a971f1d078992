//! How a refusal reaches the client when the server has something to lose:
//! inside a transaction block or behind messages in flight, pgward has the
//! server raise the error, in place of the refused message, so it arrives in
//! order with every other reply and the server's transaction state is exactly
//! what PostgreSQL gives any failed statement (an open transaction block is
//! aborted; an implicit one rolls back). When the server is idle, the relay
//! answers the refusal itself (`ClientPump::refuse`).

use bytes::{BufMut, BytesMut};

use crate::policy::Denial;
use crate::wire::build::{cstr, message};

/// An E'' literal that is safe for any text, whatever the session's settings
/// and encoding: the literal is pure ASCII, so no client-chosen byte can be
/// read as part of a multibyte character that swallows the closing quote or a
/// backslash. Every non-ASCII character is written as `\x` escapes of its
/// UTF-8 bytes; quotes are doubled rather than backslash-escaped, so
/// `backslash_quote = off` cannot turn a refusal into a syntax error. (In a
/// database whose encoding is not UTF-8 or SQL_ASCII, such characters show
/// garbled or make the server refuse the bytes: the refusal stays a refusal.)
fn literal(text: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(text.len() + 4);
    out.push_str("E'");
    for ch in text.chars() {
        match ch {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            // Keep the DO body's dollar quote unbreakable.
            '$' => out.push_str("\\x24"),
            c if (c as u32) < 0x20 => out.push(' '),
            c if c.is_ascii() => out.push(c),
            c => {
                let mut utf8 = [0u8; 4];
                for b in c.encode_utf8(&mut utf8).bytes() {
                    // Always two digits: the next character is never taken in.
                    let _ = write!(out, "\\x{b:02x}");
                }
            }
        }
    }
    out.push('\'');
    out
}

/// A SQLSTATE as it may appear in the raise: five ASCII letters or digits.
fn sqlstate(code: &str) -> &str {
    if code.len() == 5 && code.bytes().all(|b| b.is_ascii_alphanumeric()) {
        code
    } else {
        "42501"
    }
}

/// How the server raises pgward's refusals in one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Raiser {
    /// A DO block: works everywhere; the server logs the error.
    DoBlock,
    /// `CALL pgward.refuse(...)`, a procedure installed by a superuser
    /// (examples/refusal-function.sql): it raises with `log_min_messages`
    /// at `panic`, so the server's log stays free of refusals.
    Function,
}

/// The query that tells whether the session can use `pgward.refuse`: the
/// function exists as examples/refusal-function.sql makes it (SECURITY
/// DEFINER, owned by a superuser) and the login may call it.
pub const RAISER_PROBE: &str = "EXISTS (SELECT FROM pg_catalog.pg_proc p \
     JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
     JOIN pg_catalog.pg_roles r ON r.oid = p.proowner \
     WHERE n.nspname = 'pgward' AND p.proname = 'refuse' AND p.prokind = 'p' AND p.prosecdef AND r.rolsuper \
       AND p.proargtypes = '25 25 25 25'::pg_catalog.oidvector \
       AND pg_catalog.has_schema_privilege(n.oid, 'USAGE') \
       AND pg_catalog.has_function_privilege(p.oid, 'EXECUTE'))";

/// The SQL that raises `d` as an ERROR with its SQLSTATE.
pub fn raise_sql(d: &Denial, how: Raiser) -> String {
    let (code, message, detail, hint) = (
        sqlstate(d.code),
        literal(&d.message),
        literal(&d.detail),
        literal(&d.hint),
    );
    match how {
        Raiser::DoBlock => format!(
            "DO $pgward$BEGIN RAISE EXCEPTION USING ERRCODE = '{code}', MESSAGE = {message}, DETAIL = {detail}, HINT = {hint}; END$pgward$"
        ),
        Raiser::Function => {
            format!("CALL pgward.refuse('{code}', {message}, {detail}, {hint})")
        }
    }
}

/// The server's error for one of pgward's refusals, cleaned: the refusal is
/// pgward's, so the PL/pgSQL context, file, line and routine the server adds
/// (`inline_code_block`, `pl_exec.c`) are not the client's business. `None`
/// for any other error.
pub fn clean_refusal(body: &[u8]) -> Option<bytes::Bytes> {
    let fields = crate::wire::error_response::ErrorFields::parse(body).ok()?;
    let ours = fields.get(b'M')?.starts_with(b"pgward:")
        && fields.get(b'W').is_some_and(|w| {
            memchr::memmem::find(w, b"inline_code_block").is_some()
                || memchr::memmem::find(w, b" pgward.refuse(").is_some()
        });
    ours.then(|| {
        fields.rebuild(b'E', |f| match f {
            b'W' | b'F' | b'L' | b'R' => Some(None),
            _ => None,
        })
    })
}

/// A simple Query that raises the refusal.
pub fn raise_query(d: &Denial, how: Raiser, out: &mut BytesMut) {
    let sql = raise_sql(d, how);
    message(out, b'Q', |b| cstr(b, sql.as_bytes()));
}

/// The statement and portal name pgward uses for its own refusals, so the
/// client's unnamed statement and portal survive a refusal.
pub const REFUSAL_NAME: &[u8] = b"pgward_refusal";

/// The number of hidden replies `raise_extended` causes before the error.
pub const EXTENDED_HIDDEN_REPLIES: usize = 4;

/// Close, Parse, Bind and Execute that raise the refusal in the extended
/// protocol under pgward's own statement and portal name. The server answers
/// two CloseComplete, ParseComplete and BindComplete, which the relay hides,
/// then the error, which it forwards.
pub fn raise_extended(d: &Denial, how: Raiser, out: &mut BytesMut) {
    let sql = raise_sql(d, how);
    for kind in [b'S', b'P'] {
        message(out, b'C', |b| {
            b.put_u8(kind);
            cstr(b, REFUSAL_NAME);
        });
    }
    message(out, b'P', |b| {
        cstr(b, REFUSAL_NAME);
        cstr(b, sql.as_bytes());
        b.put_i16(0);
    });
    message(out, b'B', |b| {
        cstr(b, REFUSAL_NAME);
        cstr(b, REFUSAL_NAME);
        b.put_i16(0);
        b.put_i16(0);
        b.put_i16(0);
    });
    message(out, b'E', |b| {
        cstr(b, REFUSAL_NAME);
        b.put_i32(0);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads an E'' literal as PostgreSQL's scanner does (the escapes
    /// `literal` writes, and the rest of the scanner's rules for the bytes
    /// around them): the value's bytes and what follows the closing quote.
    fn read_e_literal(sql: &[u8]) -> (Vec<u8>, &[u8]) {
        assert!(sql.starts_with(b"E'"), "{:?}", String::from_utf8_lossy(sql));
        let mut value = Vec::new();
        let mut i = 2;
        loop {
            match sql[i] {
                b'\'' if sql.get(i + 1) == Some(&b'\'') => {
                    value.push(b'\'');
                    i += 2;
                }
                b'\'' => return (value, &sql[i + 1..]),
                b'\\' => match sql[i + 1] {
                    b'x' => {
                        let hex = |b: u8| (b as char).to_digit(16);
                        let hi = hex(sql[i + 2]).expect("a hex digit") as u8;
                        match sql.get(i + 3).and_then(|&b| hex(b)) {
                            Some(lo) => {
                                value.push(hi << 4 | lo as u8);
                                i += 4;
                            }
                            None => {
                                value.push(hi);
                                i += 3;
                            }
                        }
                    }
                    c => {
                        value.push(c);
                        i += 2;
                    }
                },
                b => {
                    value.push(b);
                    i += 1;
                }
            }
        }
    }

    #[test]
    fn refusals_lose_the_servers_context() {
        let mut raw = BytesMut::new();
        crate::wire::build::message(&mut raw, b'E', |b| {
            for (f, v) in [
                (b'S', &b"ERROR"[..]),
                (b'C', b"42501"),
                (b'M', b"pgward: role r may not read t"),
                (b'W', b"PL/pgSQL function inline_code_block line 1 at RAISE"),
                (b'F', b"pl_exec.c"),
            ] {
                b.put_u8(f);
                cstr(b, v);
            }
            b.put_u8(0);
        });
        let clean = clean_refusal(&raw[5..]).unwrap();
        let fields = crate::wire::error_response::ErrorFields::parse(&clean[5..]).unwrap();
        assert_eq!(fields.get(b'C'), Some(&b"42501"[..]));
        assert!(fields.get(b'W').is_none() && fields.get(b'F').is_none());
        assert!(clean_refusal(b"SERROR\0C22012\0Mdivision by zero\0\0").is_none());
    }

    #[test]
    fn literals_cannot_escape_the_do_block() {
        let d = Denial {
            code: "42501",
            message: "pgward: role r may not read public.\"x'$pgward$; DROP TABLE t; --\\".into(),
            detail: "d\nnewline".into(),
            hint: "h".into(),
        };
        let sql = raise_sql(&d, Raiser::DoBlock);
        assert_eq!(sql.matches("$pgward$").count(), 2, "{sql}");
        assert!(
            sql.contains("x''\\x24pgward\\x24; DROP TABLE t; --\\\\'"),
            "{sql}"
        );
        assert!(!sql.contains('\n'));
        // The procedure form: one CALL, whatever the names.
        let sql = raise_sql(&d, Raiser::Function);
        let c = crate::sql::classify(&sql).unwrap();
        assert_eq!(c.statements, 1, "{sql}");
        let calls: Vec<String> = c.functions.iter().map(|f| f.to_string()).collect();
        assert_eq!(calls, ["pgward.refuse"], "{sql}");
    }

    #[test]
    fn literals_are_ascii_and_read_back_as_the_text() {
        // Names a client chose: non-ASCII, and the bytes of characters whose
        // second byte is a backslash in SJIS or BIG5 (0x95 0x5c is SJIS for
        // U+8868, 0xa5 0x5c is BIG5 for U+529F), as pgward turns them into
        // text (invalid UTF-8 becomes U+FFFD) and as proper characters.
        let names: [&[u8]; 6] = [
            "public.\"çé表功\"".as_bytes(),
            b"s\x95\x5c' || (SELECT 1) --",
            b"\xa5\x5c'; DROP TABLE t; --",
            "\u{8868}\\'x".as_bytes(),
            "emoji \u{1F600}\u{1F600}' \\".as_bytes(),
            "ends in a lead byte \u{00e8}".as_bytes(),
        ];
        for name in names {
            let text = format!(
                "pgward: prepared statement \"{}\" was refused",
                String::from_utf8_lossy(name)
            );
            let lit = literal(&text);
            assert!(lit.is_ascii(), "{lit}");
            let (value, rest) = read_e_literal(lit.as_bytes());
            assert_eq!(rest, b"", "the literal ended early: {lit}");
            assert_eq!(value, text.as_bytes(), "{lit}");
            // No byte of the literal can start a multibyte character in any
            // encoding PostgreSQL supports, so it lexes the same in all of them.
            assert!(lit.bytes().all(|b| b < 0x80));
        }
    }
}
