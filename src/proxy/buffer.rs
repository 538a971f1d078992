//! Reading frames off a connection into one reusable buffer, and writing whole
//! buffers out. Frames are split off the buffer in place and handed to the
//! writer as frozen `Bytes`, so relayed bytes are never copied.

use std::io;

use bytes::{Bytes, BytesMut};
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};

use crate::wire::frame::{read_header, FrameHeader};
use crate::wire::WireError;

/// The read side of a connection and its buffer.
pub struct FrameReader<R> {
    io: R,
    /// Bytes read and not yet consumed.
    pub buf: BytesMut,
    chunk: usize,
}

/// Why reading a frame stopped.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the connection.
    Eof,
    /// The socket failed.
    Io(io::Error),
    /// The bytes are not a valid frame.
    Wire(WireError),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

impl From<WireError> for ReadError {
    fn from(e: WireError) -> Self {
        ReadError::Wire(e)
    }
}

impl<R: AsyncReadRent> FrameReader<R> {
    /// Wraps `io`, reading up to `chunk` bytes at a time; `buf` holds bytes
    /// already read from it.
    pub fn new(io: R, buf: BytesMut, chunk: usize) -> Self {
        FrameReader { io, buf, chunk }
    }

    /// Reads once, appending at least one byte; `Ok(0)` means end of stream.
    ///
    /// `need` is how many more bytes the caller knows it needs; the buffer grows
    /// to hold them, and otherwise stays at about `chunk` bytes.
    pub async fn fill(&mut self, need: usize) -> io::Result<usize> {
        let want = need.max(self.chunk.saturating_sub(self.buf.len())).max(512);
        self.buf.reserve(want);
        let buf = std::mem::take(&mut self.buf);
        let (len, cap) = (buf.len(), buf.capacity());
        let (res, slice) = self.io.read(buf.slice_mut(len..cap)).await;
        self.buf = slice.into_inner();
        res
    }

    /// Reads until one complete frame is buffered and returns its header.
    pub async fn next_frame(&mut self, max: usize) -> Result<FrameHeader, ReadError> {
        loop {
            if let Some(h) = read_header(&self.buf, max)? {
                if self.buf.len() >= h.total {
                    return Ok(h);
                }
                let need = h.total - self.buf.len();
                if self.fill(need).await? == 0 {
                    return Err(ReadError::Eof);
                }
            } else if self.fill(5).await? == 0 {
                return Err(ReadError::Eof);
            }
        }
    }

    /// Removes and returns the first `n` buffered bytes.
    pub fn take(&mut self, n: usize) -> BytesMut {
        self.buf.split_to(n)
    }

    /// The connection.
    pub fn io(&self) -> &R {
        &self.io
    }

    /// The connection, for writing replies during login.
    pub fn io_mut(&mut self) -> &mut R {
        &mut self.io
    }

    /// Gives back the connection and the unread bytes.
    pub fn into_parts(self) -> (R, BytesMut) {
        (self.io, self.buf)
    }
}

/// Writes all of `bytes` to `io`.
pub async fn write_all<W: AsyncWriteRent>(io: &mut W, bytes: Bytes) -> io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    let (res, _) = io.write_all(bytes).await;
    res.map(|_| ())
}
