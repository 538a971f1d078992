//! Views of the server messages pgward reads: authentication requests,
//! BackendKeyData, ParameterStatus and ReadyForQuery.

use super::frame::Cursor;
use super::WireError;

/// An Authentication* request from the server.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthRequest<'a> {
    /// AuthenticationOk.
    Ok,
    /// AuthenticationCleartextPassword.
    Cleartext,
    /// AuthenticationMD5Password with its salt.
    Md5 { salt: [u8; 4] },
    /// AuthenticationSASL with the offered mechanisms (NUL-separated list).
    Sasl { mechanisms: &'a [u8] },
    /// AuthenticationSASLContinue.
    SaslContinue { data: &'a [u8] },
    /// AuthenticationSASLFinal.
    SaslFinal { data: &'a [u8] },
    /// A method pgward does not implement (Kerberos, GSS, SSPI).
    Unsupported(i32),
}

impl<'a> AuthRequest<'a> {
    /// Decodes an 'R' message body.
    pub fn parse(body: &'a [u8]) -> Result<Self, WireError> {
        let mut c = Cursor::new(body, "Authentication");
        Ok(match c.i32()? {
            0 => AuthRequest::Ok,
            3 => AuthRequest::Cleartext,
            5 => {
                let s = c.bytes(4)?;
                AuthRequest::Md5 {
                    salt: [s[0], s[1], s[2], s[3]],
                }
            }
            10 => AuthRequest::Sasl {
                mechanisms: c.rest(),
            },
            11 => AuthRequest::SaslContinue { data: c.rest() },
            12 => AuthRequest::SaslFinal { data: c.rest() },
            other => AuthRequest::Unsupported(other),
        })
    }

    /// True if a SASL request offers `mechanism`.
    pub fn offers(&self, mechanism: &str) -> bool {
        match self {
            AuthRequest::Sasl { mechanisms } => mechanisms
                .split(|&b| b == 0)
                .any(|m| m == mechanism.as_bytes()),
            _ => false,
        }
    }
}

/// BackendKeyData: the server process id and the cancel secret.
#[derive(Debug, PartialEq, Eq)]
pub struct BackendKeyData<'a> {
    /// Backend process id.
    pub pid: u32,
    /// The secret key (4 bytes in protocol 3.0, up to 256 in 3.2).
    pub secret: &'a [u8],
}

impl<'a> BackendKeyData<'a> {
    /// Decodes a 'K' message body.
    pub fn parse(body: &'a [u8]) -> Result<Self, WireError> {
        let mut c = Cursor::new(body, "BackendKeyData");
        let pid = c.i32()? as u32;
        let secret = c.rest();
        if secret.len() < 4 || secret.len() > 256 {
            return Err(WireError::malformed(
                "BackendKeyData",
                "bad secret key length",
            ));
        }
        Ok(BackendKeyData { pid, secret })
    }
}

/// ParameterStatus: a run-time parameter's name and value.
#[derive(Debug, PartialEq, Eq)]
pub struct ParameterStatus<'a> {
    /// Parameter name.
    pub name: &'a str,
    /// Current value, in the client encoding (`application_name` may hold
    /// any character).
    pub value: &'a [u8],
}

impl<'a> ParameterStatus<'a> {
    /// Decodes an 'S' message body.
    pub fn parse(body: &'a [u8]) -> Result<Self, WireError> {
        let mut c = Cursor::new(body, "ParameterStatus");
        let name = c.str()?;
        let value = c.cstr()?;
        c.finish()?;
        Ok(ParameterStatus { name, value })
    }
}

/// One field of a RowDescription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    /// Column name (alias) as the client sees it.
    pub name: &'a [u8],
    /// The table's OID when the column is a plain table or view column, else 0.
    pub table_oid: u32,
    /// The column's attribute number in that table, else 0.
    pub attnum: i16,
    /// The data type's OID.
    pub type_oid: u32,
    /// 0 for text, 1 for binary.
    pub format: i16,
}

/// A RowDescription, borrowed from the read buffer.
#[derive(Debug, Clone, Copy)]
pub struct RowDescription<'a> {
    body: &'a [u8],
    count: u16,
}

impl<'a> RowDescription<'a> {
    /// Checks a 'T' body's layout.
    pub fn parse(body: &'a [u8]) -> Result<Self, WireError> {
        let mut c = Cursor::new(body, "RowDescription");
        let count = c.i16()?;
        if count < 0 {
            return Err(WireError::malformed(
                "RowDescription",
                "negative field count",
            ));
        }
        let d = RowDescription {
            body,
            count: count as u16,
        };
        let mut n = 0;
        for f in d.fields() {
            f?;
            n += 1;
        }
        if n != count {
            return Err(WireError::malformed("RowDescription", "truncated"));
        }
        Ok(d)
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True when there are no fields.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Each field in order.
    pub fn fields(&self) -> impl Iterator<Item = Result<Field<'a>, WireError>> + 'a {
        let mut c = Cursor::new(&self.body[2..], "RowDescription");
        let mut left = self.count;
        std::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            left -= 1;
            let mut field = || -> Result<Field<'a>, WireError> {
                let name = c.cstr()?;
                let table_oid = c.i32()? as u32;
                let attnum = c.i16()?;
                let type_oid = c.i32()? as u32;
                let _typlen = c.i16()?;
                let _typmod = c.i32()?;
                let format = c.i16()?;
                Ok(Field {
                    name,
                    table_oid,
                    attnum,
                    type_oid,
                    format,
                })
            };
            Some(field())
        })
    }
}

/// A DataRow, borrowed from the read buffer: its values are handed out as
/// slices, nothing is copied.
#[derive(Debug, Clone, Copy)]
pub struct DataRow<'a> {
    body: &'a [u8],
    columns: u16,
}

impl<'a> DataRow<'a> {
    /// Checks a 'D' body's layout.
    pub fn parse(body: &'a [u8]) -> Result<Self, WireError> {
        let mut c = Cursor::new(body, "DataRow");
        let columns = c.i16()?;
        if columns < 0 {
            return Err(WireError::malformed("DataRow", "negative column count"));
        }
        let row = DataRow {
            body,
            columns: columns as u16,
        };
        let mut n = 0;
        for v in row.values() {
            v?;
            n += 1;
        }
        if n != columns {
            return Err(WireError::malformed("DataRow", "truncated"));
        }
        // values() stops at the declared count; anything after is junk.
        let mut c = Cursor::new(body, "DataRow");
        c.i16()?;
        for _ in 0..columns {
            let len = c.i32()?;
            if len > 0 {
                c.bytes(len as usize)?;
            }
        }
        c.finish()?;
        Ok(row)
    }

    /// The number of columns.
    pub fn len(&self) -> usize {
        self.columns as usize
    }

    /// True when the row has no columns.
    pub fn is_empty(&self) -> bool {
        self.columns == 0
    }

    /// Each value, `None` for SQL NULL.
    pub fn values(&self) -> impl Iterator<Item = Result<Option<&'a [u8]>, WireError>> + 'a {
        let mut c = Cursor::new(&self.body[2..], "DataRow");
        let mut left = self.columns;
        std::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            left -= 1;
            Some(match c.i32() {
                Ok(-1) => Ok(None),
                Ok(n) if n >= 0 => c.bytes(n as usize).map(Some),
                Ok(_) => Err(WireError::malformed("DataRow", "negative value length")),
                Err(e) => Err(e),
            })
        })
    }
}

/// Decodes a ReadyForQuery body into its transaction status byte.
pub fn ready_for_query_status(body: &[u8]) -> Result<u8, WireError> {
    match body {
        [s @ (b'I' | b'T' | b'E')] => Ok(*s),
        _ => Err(WireError::malformed(
            "ReadyForQuery",
            "bad transaction status",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_auth_requests() {
        assert_eq!(AuthRequest::parse(&[0, 0, 0, 0]), Ok(AuthRequest::Ok));
        assert_eq!(
            AuthRequest::parse(&[0, 0, 0, 5, 1, 2, 3, 4]),
            Ok(AuthRequest::Md5 { salt: [1, 2, 3, 4] })
        );
        let sasl = AuthRequest::parse(b"\0\0\0\x0aSCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0").unwrap();
        assert!(sasl.offers("SCRAM-SHA-256"));
        assert!(!sasl.offers("SCRAM"));
        assert!(AuthRequest::parse(&[0, 0, 5]).is_err());
    }

    #[test]
    fn row_descriptions_are_views() {
        let mut body = vec![0, 1];
        body.extend_from_slice(b"email\0");
        body.extend_from_slice(&16390u32.to_be_bytes());
        body.extend_from_slice(&3i16.to_be_bytes());
        body.extend_from_slice(&25u32.to_be_bytes());
        body.extend_from_slice(&(-1i16).to_be_bytes());
        body.extend_from_slice(&(-1i32).to_be_bytes());
        body.extend_from_slice(&0i16.to_be_bytes());
        let d = RowDescription::parse(&body).unwrap();
        let f = d.fields().next().unwrap().unwrap();
        assert_eq!(
            (f.name, f.table_oid, f.attnum, f.type_oid, f.format),
            (&b"email"[..], 16390, 3, 25, 0)
        );
        assert!(RowDescription::parse(&body[..body.len() - 1]).is_err());
    }

    #[test]
    fn data_rows_are_views() {
        let body = b"\0\x03\0\0\0\x02ab\xff\xff\xff\xff\0\0\0\0";
        let row = DataRow::parse(body).unwrap();
        let vals: Vec<_> = row.values().map(Result::unwrap).collect();
        assert_eq!(vals, vec![Some(&b"ab"[..]), None, Some(&b""[..])]);
        assert!(DataRow::parse(b"\0\x01\0\0\0\x05ab").is_err());
        assert!(DataRow::parse(b"\0\x01\0\0\0\x01abc").is_err());
        assert!(DataRow::parse(b"\xff\xff").is_err());
    }

    #[test]
    fn decodes_key_data_and_status() {
        let k = BackendKeyData::parse(&[0, 0, 1, 0, 9, 9, 9, 9]).unwrap();
        assert_eq!((k.pid, k.secret), (256, &[9u8, 9, 9, 9][..]));
        assert!(BackendKeyData::parse(&[0, 0, 1, 0, 9]).is_err());
        let p = ParameterStatus::parse(b"TimeZone\0UTC\0").unwrap();
        assert_eq!((p.name, p.value), ("TimeZone", &b"UTC"[..]));
        assert_eq!(ready_for_query_status(b"T"), Ok(b'T'));
        assert!(ready_for_query_status(b"X").is_err());
    }
}
