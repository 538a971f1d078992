//! The untagged packets a client may send first: SSLRequest, GSSENCRequest,
//! CancelRequest and StartupMessage.

use super::frame::Cursor;
use super::WireError;

/// The largest startup packet accepted, as PostgreSQL's MAX_STARTUP_PACKET_LENGTH.
pub const MAX_STARTUP_LEN: usize = 10_000;

const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;

/// A decoded first packet.
#[derive(Debug, PartialEq, Eq)]
pub enum StartupPacket<'a> {
    /// The client asks for TLS.
    SslRequest,
    /// The client asks for GSSAPI encryption.
    GssEncRequest,
    /// The client asks to cancel the query running in another session.
    Cancel { pid: u32, secret: &'a [u8] },
    /// A session start: protocol version and parameters.
    Startup(Startup<'a>),
}

/// A StartupMessage: the requested protocol version and name/value parameters.
#[derive(Debug, PartialEq, Eq)]
pub struct Startup<'a> {
    /// Major protocol version (3).
    pub major: u16,
    /// Minor protocol version (0 or 2).
    pub minor: u16,
    params: &'a [u8],
}

impl<'a> Startup<'a> {
    /// The name/value pairs, in the order the client sent them.
    pub fn params(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        // Validated in `parse`, so every pair is well formed here.
        let mut c = Cursor::new(self.params, "StartupMessage");
        std::iter::from_fn(move || {
            let name = c.str().ok()?;
            if name.is_empty() {
                return None;
            }
            Some((name, c.str().ok()?))
        })
    }

    /// The value of one parameter.
    pub fn param(&self, name: &str) -> Option<&'a str> {
        self.params().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

/// Returns the size of the startup packet at the front of `buf`, once complete.
pub fn check_startup(buf: &[u8]) -> Result<Option<usize>, WireError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if len < 8 {
        return Err(WireError::BadLength { tag: 0, len });
    }
    if len as usize > MAX_STARTUP_LEN {
        return Err(WireError::TooLarge {
            tag: 0,
            len: len as usize,
            max: MAX_STARTUP_LEN,
        });
    }
    Ok((buf.len() >= len as usize).then_some(len as usize))
}

/// Decodes a complete startup packet (including its length word).
pub fn parse_startup(packet: &[u8]) -> Result<StartupPacket<'_>, WireError> {
    let mut c = Cursor::new(packet.get(4..).unwrap_or_default(), "startup packet");
    let code = c.i32()? as u32;
    match code {
        SSL_REQUEST => {
            c.finish()?;
            Ok(StartupPacket::SslRequest)
        }
        GSSENC_REQUEST => {
            c.finish()?;
            Ok(StartupPacket::GssEncRequest)
        }
        CANCEL_REQUEST => {
            let pid = c.i32()? as u32;
            let secret = c.rest();
            if secret.is_empty() || secret.len() > 256 {
                return Err(WireError::malformed(
                    "CancelRequest",
                    "bad secret key length",
                ));
            }
            Ok(StartupPacket::Cancel { pid, secret })
        }
        _ => {
            let major = (code >> 16) as u16;
            let minor = (code & 0xffff) as u16;
            if major != 3 {
                return Err(WireError::malformed(
                    "StartupMessage",
                    "unsupported frontend protocol (pgward speaks 3.x)",
                ));
            }
            let params = c.rest();
            validate_params(params)?;
            Ok(StartupPacket::Startup(Startup {
                major,
                minor,
                params,
            }))
        }
    }
}

fn validate_params(params: &[u8]) -> Result<(), WireError> {
    let mut c = Cursor::new(params, "StartupMessage");
    loop {
        let name = c.str()?;
        if name.is_empty() {
            return c.finish();
        }
        c.str()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(code: u32, rest: &[u8]) -> Vec<u8> {
        let mut p = ((8 + rest.len()) as u32).to_be_bytes().to_vec();
        p.extend_from_slice(&code.to_be_bytes());
        p.extend_from_slice(rest);
        p
    }

    #[test]
    fn decodes_each_kind() {
        assert_eq!(
            parse_startup(&packet(SSL_REQUEST, b"")),
            Ok(StartupPacket::SslRequest)
        );
        assert_eq!(
            parse_startup(&packet(GSSENC_REQUEST, b"")),
            Ok(StartupPacket::GssEncRequest)
        );
        assert_eq!(
            parse_startup(&packet(CANCEL_REQUEST, &[0, 0, 0, 7, 1, 2, 3, 4])),
            Ok(StartupPacket::Cancel {
                pid: 7,
                secret: &[1, 2, 3, 4]
            })
        );
        let p = packet(196_608, b"user\0agent\0database\0shop\0\0");
        let StartupPacket::Startup(s) = parse_startup(&p).unwrap() else {
            panic!("not a startup")
        };
        assert_eq!((s.major, s.minor), (3, 0));
        assert_eq!(s.param("database"), Some("shop"));
        assert_eq!(s.params().count(), 2);
    }

    #[test]
    fn rejects_bad_packets() {
        assert!(parse_startup(&packet(196_608, b"user\0agent")).is_err());
        assert!(parse_startup(&packet(196_608, b"user\0agent\0\0extra")).is_err());
        assert!(parse_startup(&packet(0x0002_0000, b"\0")).is_err());
        assert!(parse_startup(&packet(SSL_REQUEST, b"x")).is_err());
        assert!(check_startup(&[0, 0, 0, 3]).is_err());
        assert!(check_startup(&[0, 1, 0, 0]).is_err());
        assert_eq!(check_startup(&[0, 0, 0, 8, 1]), Ok(None));
    }
}
