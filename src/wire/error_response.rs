//! ErrorResponse and NoticeResponse: a zero-copy view of their fields, and a
//! builder for the errors pgward raises itself.

use bytes::{BufMut, BytesMut};

use super::build::{cstr, message};
use super::frame::Cursor;
use super::WireError;

/// How serious an error pgward raises is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The statement failed; the session goes on.
    Error,
    /// The session ends.
    Fatal,
    /// Not an error: a NoticeResponse telling the client something.
    Notice,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
            Severity::Notice => "NOTICE",
        }
    }
}

/// An error pgward sends to a client, built from its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgError {
    /// ERROR or FATAL.
    pub severity: Severity,
    /// The five-character SQLSTATE.
    pub code: &'static str,
    /// The primary message.
    pub message: String,
    /// Optional DETAIL.
    pub detail: Option<String>,
    /// Optional HINT.
    pub hint: Option<String>,
}

impl PgError {
    /// A FATAL error: the session ends after it.
    pub fn fatal(code: &'static str, message: impl Into<String>) -> Self {
        PgError {
            severity: Severity::Fatal,
            code,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    /// An ERROR: the statement fails, the session goes on.
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        PgError {
            severity: Severity::Error,
            ..PgError::fatal(code, message)
        }
    }

    /// A NoticeResponse: the client is told, nothing fails.
    pub fn notice(code: &'static str, message: impl Into<String>) -> Self {
        PgError {
            severity: Severity::Notice,
            ..PgError::fatal(code, message)
        }
    }

    /// Adds a DETAIL field.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Adds a HINT field.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Appends this error as an ErrorResponse.
    pub fn encode(&self, out: &mut BytesMut) {
        let tag = if self.severity == Severity::Notice {
            b'N'
        } else {
            b'E'
        };
        message(out, tag, |b| {
            for (field, value) in [
                (b'S', Some(self.severity.as_str())),
                (b'V', Some(self.severity.as_str())),
                (b'C', Some(self.code)),
                (b'M', Some(self.message.as_str())),
                (b'D', self.detail.as_deref()),
                (b'H', self.hint.as_deref()),
            ] {
                if let Some(v) = value {
                    b.put_u8(field);
                    cstr(b, v.as_bytes());
                }
            }
            b.put_u8(0);
        });
    }

    /// This error as a standalone ErrorResponse frame.
    pub fn to_frame(&self) -> BytesMut {
        let mut out = BytesMut::with_capacity(64 + self.message.len());
        self.encode(&mut out);
        out
    }
}

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.severity.as_str(),
            self.code,
            self.message
        )
    }
}

/// A view of an ErrorResponse or NoticeResponse body.
#[derive(Debug, Clone, Copy)]
pub struct ErrorFields<'a> {
    body: &'a [u8],
}

impl<'a> ErrorFields<'a> {
    /// Checks the field layout of `body`.
    pub fn parse(body: &'a [u8]) -> Result<Self, WireError> {
        let view = ErrorFields { body };
        for f in view.iter() {
            f?;
        }
        Ok(view)
    }

    /// Each (field type, value) pair.
    pub fn iter(&self) -> impl Iterator<Item = Result<(u8, &'a [u8]), WireError>> + 'a {
        let mut c = Cursor::new(self.body, "ErrorResponse");
        let mut done = false;
        std::iter::from_fn(move || {
            if done {
                return None;
            }
            let field = match c.u8() {
                Ok(0) => {
                    done = true;
                    return None;
                }
                Ok(f) => f,
                Err(e) => {
                    done = true;
                    return Some(Err(e));
                }
            };
            match c.cstr() {
                Ok(v) => Some(Ok((field, v))),
                Err(e) => {
                    done = true;
                    Some(Err(e))
                }
            }
        })
    }

    /// The value of one field, such as `b'C'` for the SQLSTATE.
    pub fn get(&self, field: u8) -> Option<&'a [u8]> {
        self.iter()
            .filter_map(Result::ok)
            .find(|(f, _)| *f == field)
            .map(|(_, v)| v)
    }

    /// The SQLSTATE, if present.
    pub fn code(&self) -> Option<&'a str> {
        self.get(b'C').and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The primary message, lossily decoded.
    pub fn message(&self) -> String {
        String::from_utf8_lossy(self.get(b'M').unwrap_or_default()).into_owned()
    }

    /// Rebuilds the message as `tag` (ErrorResponse or NoticeResponse);
    /// `change(field)` returns `None` to keep a field, `Some(None)` to drop
    /// it, `Some(Some(text))` to replace its value.
    pub fn rebuild<'b>(
        &self,
        tag: u8,
        change: impl Fn(u8) -> Option<Option<&'b [u8]>>,
    ) -> bytes::Bytes {
        let mut out = BytesMut::with_capacity(256);
        crate::wire::build::message(&mut out, tag, |b| {
            for (f, v) in self.iter().flatten() {
                let value: &[u8] = match change(f) {
                    None => v,
                    Some(None) => continue,
                    Some(Some(text)) => text,
                };
                bytes::BufMut::put_u8(b, f);
                crate::wire::build::cstr(b, value);
            }
            bytes::BufMut::put_u8(b, 0);
        });
        out.freeze()
    }

    /// True when the non-localized severity is FATAL or PANIC.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self.get(b'V').or_else(|| self.get(b'S')),
            Some(b"FATAL") | Some(b"PANIC")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Frame;

    #[test]
    fn round_trips_through_the_view() {
        let e = PgError::fatal("28P01", "password authentication failed for user \"x\"")
            .with_hint("check the password");
        let frame = e.to_frame();
        let f = Frame::first(&frame, 1024).unwrap().unwrap();
        assert_eq!(f.tag, b'E');
        let fields = ErrorFields::parse(f.body).unwrap();
        assert_eq!(fields.code(), Some("28P01"));
        assert!(fields.is_fatal());
        assert_eq!(fields.get(b'H'), Some(&b"check the password"[..]));
        assert_eq!(fields.get(b'D'), None);
        assert!(fields
            .message()
            .starts_with("password authentication failed"));
    }

    #[test]
    fn rejects_unterminated_fields() {
        assert!(ErrorFields::parse(b"Cabc").is_err());
        assert!(ErrorFields::parse(b"C42501\0").is_err());
        assert!(ErrorFields::parse(b"C42501\0\0").is_ok());
    }
}
