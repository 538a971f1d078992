//! Client encodings: which ones pgward can read statements in exactly as the
//! server will, and the statement text as the server holds it (converted to
//! UTF-8, the server encoding pgward analyses).
//!
//! - UTF8 and SQL_ASCII: the bytes are the text (the server checks SQL_ASCII
//!   input as UTF-8 in a UTF-8 database).
//! - LATIN1 and LATIN9: every byte is one character; pgward converts them with
//!   the same tables as the server (ISO 8859-1, ISO 8859-15).
//! - Every other encoding PostgreSQL allows as a server encoding (EUC_JP,
//!   KOI8R, WIN1252, ...): ASCII bytes are ASCII characters in all of them
//!   and never part of a multibyte character, so a statement that is plain
//!   ASCII reads the same in all of them; one with other bytes is refused
//!   (values can travel as bind parameters).
//! - Client-only encodings (SJIS, BIG5, GBK, GB18030, UHC, JOHAB) are never
//!   accepted: their multibyte characters can hold ASCII bytes such as `\` and
//!   `'`, so the server may end a string where UTF-8 text does not.

use std::borrow::Cow;

/// How pgward reads the statements of one client encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientEncoding {
    /// UTF8 or SQL_ASCII: the bytes as they are.
    Utf8,
    /// ISO 8859-1.
    Latin1,
    /// ISO 8859-15.
    Latin9,
    /// Another server encoding: plain ASCII statements only.
    AsciiOnly,
}

/// Why a statement's text cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Not valid UTF-8 (in a UTF8 or SQL_ASCII session).
    NotUtf8,
    /// Bytes outside ASCII in a session whose encoding pgward reads as ASCII only.
    NotAscii,
}

/// Encoding names PostgreSQL accepts only as client encodings.
const CLIENT_ONLY: &[&str] = &[
    "big5",
    "gbk",
    "gb18030",
    "johab",
    "sjis",
    "mskanji",
    "shiftjis",
    "shiftjis2004",
    "uhc",
    "win932",
    "win936",
    "win949",
    "win950",
    "windows932",
    "windows936",
    "windows949",
    "windows950",
];

/// The other names (and aliases) of PostgreSQL's server encodings.
const ASCII_SAFE: &[&str] = &[
    "abc",
    "alt",
    "euccn",
    "eucjis2004",
    "eucjp",
    "euckr",
    "euctw",
    "iso885910",
    "iso885913",
    "iso885914",
    "iso885916",
    "iso88592",
    "iso88593",
    "iso88594",
    "iso88595",
    "iso88596",
    "iso88597",
    "iso88598",
    "iso88599",
    "koi8",
    "koi8r",
    "koi8u",
    "latin10",
    "latin2",
    "latin3",
    "latin4",
    "latin5",
    "latin6",
    "latin7",
    "latin8",
    "muleinternal",
    "tcvn",
    "tcvn5712",
    "vscii",
    "win",
    "win1250",
    "win1251",
    "win1252",
    "win1253",
    "win1254",
    "win1255",
    "win1256",
    "win1257",
    "win1258",
    "win866",
    "win874",
    "windows1250",
    "windows1251",
    "windows1252",
    "windows1253",
    "windows1254",
    "windows1255",
    "windows1256",
    "windows1257",
    "windows1258",
    "windows866",
    "windows874",
];

/// The encoding a name means to PostgreSQL (which ignores case and every
/// character that is not a letter or a digit); `None` for names pgward
/// refuses: client-only encodings, `auto` and unknown names.
pub fn client_encoding(name: &str) -> Option<ClientEncoding> {
    let clean: String = name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    match clean.as_str() {
        "utf8" | "unicode" | "sqlascii" => Some(ClientEncoding::Utf8),
        "latin1" | "iso88591" => Some(ClientEncoding::Latin1),
        "latin9" | "iso885915" => Some(ClientEncoding::Latin9),
        c if CLIENT_ONLY.contains(&c) => None,
        c if ASCII_SAFE.contains(&c) => Some(ClientEncoding::AsciiOnly),
        _ => None,
    }
}

/// The characters of ISO 8859-15 that differ from ISO 8859-1.
const LATIN9_DIFFERENT: [(u8, char); 8] = [
    (0xa4, '\u{20ac}'),
    (0xa6, '\u{160}'),
    (0xa8, '\u{161}'),
    (0xb4, '\u{17d}'),
    (0xb8, '\u{17e}'),
    (0xbc, '\u{152}'),
    (0xbd, '\u{153}'),
    (0xbe, '\u{178}'),
];

impl ClientEncoding {
    /// The text as the server holds it once converted (UTF-8).
    pub fn decode<'a>(self, bytes: &'a [u8]) -> Result<Cow<'a, str>, DecodeError> {
        match self {
            // (One pass over the text in a UTF8 session, the usual case.)
            ClientEncoding::Utf8 => std::str::from_utf8(bytes)
                .map(Cow::Borrowed)
                .map_err(|_| DecodeError::NotUtf8),
            // Plain ASCII reads the same in every encoding pgward accepts.
            _ if bytes.is_ascii() => std::str::from_utf8(bytes)
                .map(Cow::Borrowed)
                .map_err(|_| DecodeError::NotUtf8),
            ClientEncoding::Latin1 => Ok(Cow::Owned(bytes.iter().map(|&b| b as char).collect())),
            ClientEncoding::Latin9 => Ok(Cow::Owned(
                bytes
                    .iter()
                    .map(|&b| {
                        LATIN9_DIFFERENT
                            .iter()
                            .find(|(l, _)| *l == b)
                            .map_or(b as char, |(_, c)| *c)
                    })
                    .collect(),
            )),
            ClientEncoding::AsciiOnly => Err(DecodeError::NotAscii),
        }
    }

    /// Text pgward writes to the client itself, in its encoding as far as
    /// it can: UTF-8 as it is, anything else with non-ASCII characters
    /// replaced by `?`.
    pub fn outgoing(self, text: &str) -> Cow<'_, str> {
        if self == ClientEncoding::Utf8 || text.is_ascii() {
            Cow::Borrowed(text)
        } else {
            Cow::Owned(
                text.chars()
                    .map(|c| if c.is_ascii() { c } else { '?' })
                    .collect(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_read_as_the_server_reads_them() {
        for (name, want) in [
            ("UTF8", Some(ClientEncoding::Utf8)),
            ("utf-8", Some(ClientEncoding::Utf8)),
            ("Unicode", Some(ClientEncoding::Utf8)),
            ("SQL_ASCII", Some(ClientEncoding::Utf8)),
            ("latin1", Some(ClientEncoding::Latin1)),
            ("ISO-8859-1", Some(ClientEncoding::Latin1)),
            ("LATIN9", Some(ClientEncoding::Latin9)),
            ("iso_8859_15", Some(ClientEncoding::Latin9)),
            ("EUC_JP", Some(ClientEncoding::AsciiOnly)),
            ("win1252", Some(ClientEncoding::AsciiOnly)),
            ("KOI8-R", Some(ClientEncoding::AsciiOnly)),
            ("SJIS", None),
            ("Shift_JIS", None),
            ("big5", None),
            ("GB18030", None),
            ("windows-936", None),
            ("auto", None),
            ("wat", None),
        ] {
            assert_eq!(client_encoding(name), want, "{name}");
        }
    }

    #[test]
    fn statements_decode_as_the_server_converts_them() {
        let latin1 = ClientEncoding::Latin1;
        assert_eq!(latin1.decode(b"SELECT 'caf\xe9'").unwrap(), "SELECT 'café'");
        assert_eq!(latin1.decode(b"\xa4\x80").unwrap(), "\u{a4}\u{80}");
        let latin9 = ClientEncoding::Latin9;
        assert_eq!(latin9.decode(b"\xa4 \xbe \xe9").unwrap(), "€ Ÿ é");
        assert_eq!(
            ClientEncoding::Utf8.decode(b"\xe9").unwrap_err(),
            DecodeError::NotUtf8
        );
        let euc = ClientEncoding::AsciiOnly;
        assert_eq!(euc.decode(b"SELECT 1").unwrap(), "SELECT 1");
        assert_eq!(
            euc.decode(b"SELECT '\xa4\xa2'").unwrap_err(),
            DecodeError::NotAscii
        );
        assert_eq!(euc.outgoing("table café"), "table caf?");
        assert_eq!(ClientEncoding::Utf8.outgoing("café"), "café");
    }
}
