//! Views of the client messages pgward reads: Query, Parse, and the password
//! and SASL responses of authentication.

use super::frame::Cursor;
use super::WireError;

/// A simple-protocol Query: the SQL text, possibly several statements.
#[derive(Debug, PartialEq, Eq)]
pub struct Query<'a> {
    /// The SQL text without its terminator.
    pub sql: &'a [u8],
}

impl<'a> Query<'a> {
    /// Decodes a 'Q' message body.
    pub fn parse(body: &'a [u8]) -> Result<Self, WireError> {
        let mut c = Cursor::new(body, "Query");
        let sql = c.cstr()?;
        c.finish()?;
        Ok(Query { sql })
    }
}

/// An extended-protocol Parse: statement name, SQL, parameter type OIDs.
#[derive(Debug, PartialEq, Eq)]
pub struct Parse<'a> {
    /// Prepared statement name; empty for the unnamed statement.
    pub name: &'a [u8],
    /// The SQL text (one statement).
    pub sql: &'a [u8],
    param_types: &'a [u8],
}

impl<'a> Parse<'a> {
    /// Decodes a 'P' message body.
    #[allow(clippy::self_named_constructors)] // every view decodes with `parse`
    pub fn parse(body: &'a [u8]) -> Result<Self, WireError> {
        let mut c = Cursor::new(body, "Parse");
        let name = c.cstr()?;
        let sql = c.cstr()?;
        let n = c.i16()?;
        if n < 0 {
            return Err(WireError::malformed("Parse", "negative parameter count"));
        }
        let param_types = c.bytes(n as usize * 4)?;
        c.finish()?;
        Ok(Parse {
            name,
            sql,
            param_types,
        })
    }

    /// The declared type OID of parameter `$n` (1-based; 0 = unspecified).
    pub fn param_type(&self, n: usize) -> u32 {
        self.param_types().nth(n.wrapping_sub(1)).unwrap_or(0)
    }

    /// The declared parameter type OIDs (0 = unspecified).
    pub fn param_types(&self) -> impl Iterator<Item = u32> + 'a {
        self.param_types
            .chunks_exact(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// The names at the front of a Bind (the rest, parameters and formats, is
/// left to the server).
#[derive(Debug, PartialEq, Eq)]
pub struct BindNames<'a> {
    /// Destination portal; empty for the unnamed portal.
    pub portal: &'a [u8],
    /// Source prepared statement; empty for the unnamed statement.
    pub statement: &'a [u8],
}

impl<'a> BindNames<'a> {
    /// Decodes the names of a 'B' message body.
    pub fn parse(body: &'a [u8]) -> Result<Self, WireError> {
        let mut c = Cursor::new(body, "Bind");
        let portal = c.cstr()?;
        let statement = c.cstr()?;
        Ok(BindNames { portal, statement })
    }
}

/// The parameter values of a Bind, read on demand (only statements whose
/// verdict depends on a parameter need them).
#[derive(Debug, PartialEq, Eq)]
pub struct BindParameters<'a> {
    /// The format codes: none (all text), one (for all), or one each.
    formats: &'a [u8],
    count: usize,
    /// The values, each a length (-1 for NULL) and its bytes.
    values: &'a [u8],
}

/// One Bind parameter value.
#[derive(Debug, PartialEq, Eq)]
pub struct Parameter<'a> {
    /// 0 for text, 1 for binary.
    pub format: i16,
    /// The bytes; `None` for NULL.
    pub value: Option<&'a [u8]>,
}

impl<'a> BindParameters<'a> {
    /// Decodes the formats and values of a 'B' message body.
    pub fn parse(body: &'a [u8]) -> Result<Self, WireError> {
        let mut c = Cursor::new(body, "Bind");
        c.cstr()?;
        c.cstr()?;
        let nformats = c.i16()?;
        if nformats < 0 {
            return Err(WireError::malformed("Bind", "negative format count"));
        }
        let formats = c.bytes(nformats as usize * 2)?;
        let count = c.i16()?;
        if count < 0 {
            return Err(WireError::malformed("Bind", "negative parameter count"));
        }
        if nformats > 1 && nformats != count {
            return Err(WireError::malformed(
                "Bind",
                "parameter format count differs from the parameter count",
            ));
        }
        Ok(BindParameters {
            formats,
            count: count as usize,
            values: c.rest(),
        })
    }

    /// Parameter `$n` (1-based); `None` when the Bind has fewer.
    pub fn get(&self, n: usize) -> Result<Option<Parameter<'a>>, WireError> {
        if n == 0 || n > self.count {
            return Ok(None);
        }
        let mut c = Cursor::new(self.values, "Bind");
        let mut value = None;
        for _ in 0..n {
            let len = c.i32()?;
            value = match len {
                -1 => None,
                l if l < 0 => return Err(WireError::malformed("Bind", "negative value length")),
                l => Some(c.bytes(l as usize)?),
            };
        }
        let format = match self.formats.len() / 2 {
            0 => 0,
            1 => i16::from_be_bytes([self.formats[0], self.formats[1]]),
            _ => i16::from_be_bytes([self.formats[2 * (n - 1)], self.formats[2 * (n - 1) + 1]]),
        };
        Ok(Some(Parameter { format, value }))
    }

    /// Every parameter in order; ends early at a malformed length (the
    /// server refuses that Bind anyway).
    pub fn values(&self) -> impl Iterator<Item = Parameter<'a>> + 'a {
        let mut c = Cursor::new(self.values, "Bind");
        let formats = self.formats;
        (0..self.count).map_while(move |i| {
            let value = match c.i32().ok()? {
                -1 => None,
                l if l < 0 => return None,
                l => Some(c.bytes(l as usize).ok()?),
            };
            let at = match formats.len() / 2 {
                0 => None,
                1 => Some(0),
                _ => Some(2 * i),
            };
            let format = at.map_or(0, |a| i16::from_be_bytes([formats[a], formats[a + 1]]));
            Some(Parameter { format, value })
        })
    }
}

/// An Execute: the portal and the row limit (0 = all).
#[derive(Debug, PartialEq, Eq)]
pub struct Execute<'a> {
    /// Portal name; empty for the unnamed portal.
    pub portal: &'a [u8],
    /// Maximum rows to return, 0 for no limit.
    pub max_rows: i32,
}

impl<'a> Execute<'a> {
    /// Decodes an 'E' message body.
    pub fn parse(body: &'a [u8]) -> Result<Self, WireError> {
        let mut c = Cursor::new(body, "Execute");
        let portal = c.cstr()?;
        let max_rows = c.i32()?;
        c.finish()?;
        Ok(Execute { portal, max_rows })
    }
}

/// The target of a Describe or Close: `S` (statement) or `P` (portal) and a name.
#[derive(Debug, PartialEq, Eq)]
pub struct Target<'a> {
    /// `b'S'` or `b'P'`.
    pub kind: u8,
    /// The statement or portal name.
    pub name: &'a [u8],
}

impl<'a> Target<'a> {
    /// Decodes a 'D' or 'C' message body.
    pub fn parse(body: &'a [u8], message: &'static str) -> Result<Self, WireError> {
        let mut c = Cursor::new(body, message);
        let kind = c.u8()?;
        if kind != b'S' && kind != b'P' {
            return Err(WireError::malformed(message, "target must be 'S' or 'P'"));
        }
        let name = c.cstr()?;
        c.finish()?;
        Ok(Target { kind, name })
    }
}

/// SASLInitialResponse: the chosen mechanism and the client-first message.
#[derive(Debug, PartialEq, Eq)]
pub struct SaslInitialResponse<'a> {
    /// Mechanism name, e.g. `SCRAM-SHA-256`.
    pub mechanism: &'a str,
    /// The initial client response.
    pub data: &'a [u8],
}

impl<'a> SaslInitialResponse<'a> {
    /// Decodes a 'p' body sent in answer to AuthenticationSASL.
    pub fn parse(body: &'a [u8]) -> Result<Self, WireError> {
        let mut c = Cursor::new(body, "SASLInitialResponse");
        let mechanism = c.str()?;
        let len = c.i32()?;
        let data = if len < 0 {
            &[][..]
        } else {
            c.bytes(len as usize)?
        };
        c.finish()?;
        Ok(SaslInitialResponse { mechanism, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_query_and_parse() {
        assert_eq!(Query::parse(b"SELECT 1\0").unwrap().sql, b"SELECT 1");
        assert!(Query::parse(b"SELECT 1").is_err());
        let p = Parse::parse(b"s1\0SELECT $1\0\0\x01\0\0\0\x17").unwrap();
        assert_eq!((p.name, p.sql), (&b"s1"[..], &b"SELECT $1"[..]));
        assert_eq!(p.param_types().collect::<Vec<_>>(), vec![23]);
        assert!(Parse::parse(b"s1\0SELECT $1\0\0\x02\0\0\0\x17").is_err());
        assert!(Parse::parse(b"s1\0SELECT\0\xff\xff").is_err());
    }

    #[test]
    fn decodes_bind_execute_and_targets() {
        let b = BindNames::parse(b"p1\0s1\0\0\0").unwrap();
        assert_eq!((b.portal, b.statement), (&b"p1"[..], &b"s1"[..]));
        assert!(BindNames::parse(b"p1\0s1").is_err());
        let e = Execute::parse(b"\0\0\0\0\x05").unwrap();
        assert_eq!((e.portal, e.max_rows), (&b""[..], 5));
        let t = Target::parse(b"Sname\0", "Describe").unwrap();
        assert_eq!((t.kind, t.name), (b'S', &b"name"[..]));
        assert!(Target::parse(b"Xname\0", "Describe").is_err());
    }

    #[test]
    fn reads_bind_parameters_on_demand() {
        // Two parameters, one format for all (binary): 'ab' and NULL.
        let body = b"\0s\0\0\x01\0\x01\0\x02\0\0\0\x02ab\xff\xff\xff\xff\0\0";
        let p = BindParameters::parse(body).unwrap();
        let first = p.get(1).unwrap().unwrap();
        assert_eq!((first.format, first.value), (1, Some(&b"ab"[..])));
        assert_eq!(p.get(2).unwrap().unwrap().value, None);
        assert_eq!(p.get(3).unwrap(), None);
        assert_eq!(p.get(0).unwrap(), None);
        // One format per parameter.
        let body = b"\0s\0\0\x02\0\0\0\x01\0\x02\0\0\0\x01x\0\0\0\x01y\0\0";
        let p = BindParameters::parse(body).unwrap();
        assert_eq!(p.get(1).unwrap().unwrap().format, 0);
        assert_eq!(p.get(2).unwrap().unwrap().format, 1);
        // Malformed: lengths past the end, mismatched format counts.
        let short = BindParameters::parse(b"\0s\0\0\0\0\x01\0\0\0\x09ab").unwrap();
        assert!(short.get(1).is_err());
        assert!(BindParameters::parse(b"\0s\0\0\x02\0\0\0\0\0\x01").is_err());
        let parse = Parse::parse(b"\0SELECT $2\0\0\x02\0\0\0\x19\0\0\x04\x13").unwrap();
        assert_eq!(
            (
                parse.param_type(1),
                parse.param_type(2),
                parse.param_type(3)
            ),
            (25, 1043, 0)
        );
        assert_eq!(parse.param_type(0), 0);
    }

    #[test]
    fn decodes_sasl_initial_response() {
        let r = SaslInitialResponse::parse(b"SCRAM-SHA-256\0\0\0\0\x03n,,").unwrap();
        assert_eq!((r.mechanism, r.data), ("SCRAM-SHA-256", &b"n,,"[..]));
        assert!(SaslInitialResponse::parse(b"SCRAM-SHA-256\0\0\0\0\x09n,,").is_err());
    }
}
