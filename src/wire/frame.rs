//! Splitting regular messages (a one-byte tag, then a four-byte big-endian length
//! that counts itself) out of a read buffer, without copying or allocating.

use super::WireError;

/// Bytes in a regular message header: the tag and the length.
pub const HEADER_LEN: usize = 5;

/// The header of one message at the front of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The message type byte.
    pub tag: u8,
    /// The whole frame's size: tag, length field and body.
    pub total: usize,
}

impl FrameHeader {
    /// The body's size.
    pub fn body_len(&self) -> usize {
        self.total - HEADER_LEN
    }
}

/// Reads the header at the front of `buf`, if five bytes are there.
///
/// Returns `Ok(None)` when the header itself is incomplete. A length below four or
/// a frame larger than `max` is an error: the caller must not wait for more bytes.
#[inline]
pub fn read_header(buf: &[u8], max: usize) -> Result<Option<FrameHeader>, WireError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let tag = buf[0];
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    if len < 4 {
        return Err(WireError::BadLength { tag, len });
    }
    let total = len as usize + 1;
    if total > max {
        return Err(WireError::TooLarge {
            tag,
            len: total,
            max,
        });
    }
    Ok(Some(FrameHeader { tag, total }))
}

/// Says whether a complete frame sits at the front of `buf`.
///
/// `Ok(Some(header))` when all `header.total` bytes are present, `Ok(None)` when
/// more bytes are needed, an error when the frame can never be valid.
#[inline]
pub fn check_frame(buf: &[u8], max: usize) -> Result<Option<FrameHeader>, WireError> {
    match read_header(buf, max)? {
        Some(h) if buf.len() >= h.total => Ok(Some(h)),
        _ => Ok(None),
    }
}

/// What sits at the front of a read buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// A complete frame.
    Frame(FrameHeader),
    /// This many more bytes are needed; the header, once it is known.
    Need(usize, Option<FrameHeader>),
    /// Bytes that can never become a valid frame.
    Invalid(WireError),
}

/// Says what is at the front of `buf`: a complete frame, how much more is
/// needed, or an invalid header.
#[inline]
pub fn next(buf: &[u8], max: usize) -> Next {
    match read_header(buf, max) {
        Ok(Some(h)) if buf.len() >= h.total => Next::Frame(h),
        Ok(Some(h)) => Next::Need(h.total - buf.len(), Some(h)),
        Ok(None) => Next::Need(HEADER_LEN - buf.len(), None),
        Err(e) => Next::Invalid(e),
    }
}

/// One complete message borrowed from a buffer: its tag and its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The message type byte.
    pub tag: u8,
    /// The bytes after the length field.
    pub body: &'a [u8],
}

impl<'a> Frame<'a> {
    /// Views the complete frame at the front of `buf`, if there is one.
    pub fn first(buf: &'a [u8], max: usize) -> Result<Option<Frame<'a>>, WireError> {
        Ok(check_frame(buf, max)?.map(|h| Frame {
            tag: h.tag,
            body: &buf[HEADER_LEN..h.total],
        }))
    }

    /// Iterates over every complete frame in `buf`, stopping at the first
    /// incomplete one. The iterator yields an error once and then ends.
    pub fn iter(buf: &'a [u8], max: usize) -> Frames<'a> {
        Frames {
            buf,
            max,
            failed: false,
        }
    }
}

/// Iterator over the complete frames at the front of a buffer.
pub struct Frames<'a> {
    buf: &'a [u8],
    max: usize,
    failed: bool,
}

impl<'a> Frames<'a> {
    /// The bytes not yet yielded (an incomplete tail frame, or nothing).
    pub fn rest(&self) -> &'a [u8] {
        self.buf
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<Frame<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match check_frame(self.buf, self.max) {
            Ok(Some(h)) => {
                let frame = Frame {
                    tag: h.tag,
                    body: &self.buf[HEADER_LEN..h.total],
                };
                self.buf = &self.buf[h.total..];
                Some(Ok(frame))
            }
            Ok(None) => None,
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// A cursor over a message body, for reading its fields in order.
#[derive(Debug, Clone, Copy)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    message: &'static str,
}

impl<'a> Cursor<'a> {
    /// Starts reading `body`, naming `message` in errors.
    pub fn new(body: &'a [u8], message: &'static str) -> Self {
        Cursor { buf: body, message }
    }

    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.buf
    }

    /// True once every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn short(&self, what: &'static str) -> WireError {
        WireError::malformed(self.message, what)
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8, WireError> {
        let (&b, rest) = self.buf.split_first().ok_or(self.short("truncated"))?;
        self.buf = rest;
        Ok(b)
    }

    /// Reads a big-endian 16-bit integer.
    pub fn i16(&mut self) -> Result<i16, WireError> {
        let b = self.bytes(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    /// Reads a big-endian 32-bit integer.
    pub fn i32(&mut self) -> Result<i32, WireError> {
        let b = self.bytes(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.buf.len() < n {
            return Err(self.short("truncated"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// Reads a NUL-terminated string, without its terminator.
    pub fn cstr(&mut self) -> Result<&'a [u8], WireError> {
        let end = memchr::memchr(0, self.buf).ok_or(self.short("missing string terminator"))?;
        let s = &self.buf[..end];
        self.buf = &self.buf[end + 1..];
        Ok(s)
    }

    /// Reads a NUL-terminated string that must be UTF-8.
    pub fn str(&mut self) -> Result<&'a str, WireError> {
        let message = self.message;
        std::str::from_utf8(self.cstr()?)
            .map_err(|_| WireError::malformed(message, "invalid UTF-8"))
    }

    /// Fails unless the whole body was read.
    pub fn finish(&self) -> Result<(), WireError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.short("trailing bytes"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_complete_frames_and_keeps_the_tail() {
        let mut buf = vec![b'Q', 0, 0, 0, 9];
        buf.extend_from_slice(b"abcd\0");
        buf.extend_from_slice(&[b'S', 0, 0, 0, 4]);
        buf.extend_from_slice(&[b'D', 0, 0]);
        let mut it = Frame::iter(&buf, 1 << 20);
        let a = it.next().unwrap().unwrap();
        assert_eq!((a.tag, a.body), (b'Q', &b"abcd\0"[..]));
        let b = it.next().unwrap().unwrap();
        assert_eq!((b.tag, b.body.len()), (b'S', 0));
        assert!(it.next().is_none());
        assert_eq!(it.rest(), &[b'D', 0, 0]);
    }

    #[test]
    fn rejects_short_lengths_and_oversized_frames() {
        assert_eq!(
            check_frame(&[b'Q', 0, 0, 0, 3], 100),
            Err(WireError::BadLength { tag: b'Q', len: 3 })
        );
        assert_eq!(
            check_frame(&[b'Q', 0, 0, 1, 0], 100),
            Err(WireError::TooLarge {
                tag: b'Q',
                len: 257,
                max: 100
            })
        );
        // An oversized header is refused before its body arrives.
        assert!(read_header(&[b'd', 0x7f, 0xff, 0xff, 0xff], 1 << 26).is_err());
    }

    #[test]
    fn cursor_reads_fields_and_reports_truncation() {
        let body = b"name\0\x00\x02rest";
        let mut c = Cursor::new(body, "Test");
        assert_eq!(c.cstr().unwrap(), b"name");
        assert_eq!(c.i16().unwrap(), 2);
        assert_eq!(c.rest(), b"rest");
        assert!(c.i32().is_ok());
        assert!(c.u8().is_err());
        assert!(Cursor::new(b"no-nul", "Test").cstr().is_err());
    }
}
