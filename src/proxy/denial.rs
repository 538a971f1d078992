//! How a refusal reaches the client. pgward does not fabricate the error
//! alone: it has the server raise it, in place of the refused message, so the
//! error arrives in order with every other reply and the server's transaction
//! state is exactly what PostgreSQL gives any failed statement (an open
//! transaction block is aborted; an implicit one rolls back).

use bytes::{BufMut, BytesMut};

use crate::policy::Denial;
use crate::wire::build::{cstr, message};

/// An E'' literal that is safe for any text, whatever the session's settings.
fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    out.push_str("E'");
    for ch in text.chars() {
        match ch {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            // Keep the DO body's dollar quote unbreakable.
            '$' => out.push_str("\\x24"),
            c if (c as u32) < 0x20 => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// The SQL that raises `d` as an ERROR with SQLSTATE 42501.
pub fn raise_sql(d: &Denial) -> String {
    format!(
        "DO $pgward$BEGIN RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = {}, DETAIL = {}, HINT = {}; END$pgward$",
        literal(&d.message),
        literal(&d.detail),
        literal(&d.hint)
    )
}

/// A simple Query that raises the refusal.
pub fn raise_query(d: &Denial, out: &mut BytesMut) {
    let sql = raise_sql(d);
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
pub fn raise_extended(d: &Denial, out: &mut BytesMut) {
    let sql = raise_sql(d);
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

    #[test]
    fn literals_cannot_escape_the_do_block() {
        let d = Denial {
            message: "pgward: role r may not read public.\"x'$pgward$; DROP TABLE t; --\\".into(),
            detail: "d\nnewline".into(),
            hint: "h".into(),
        };
        let sql = raise_sql(&d);
        assert_eq!(sql.matches("$pgward$").count(), 2, "{sql}");
        assert!(
            sql.contains("x\\'\\x24pgward\\x24; DROP TABLE t; --\\\\'"),
            "{sql}"
        );
        assert!(!sql.contains('\n'));
    }
}
