//! One connection type for both legs, plain or TLS, so the relay is written once.

use std::io;

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, Split};
use monoio::net::TcpStream;
use monoio::BufResult;

/// A client or upstream connection.
pub enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS that pgward terminates (client leg).
    ServerTls(monoio_rustls::ServerTlsStream<TcpStream>),
    /// TLS that pgward originates (upstream leg).
    ClientTls(monoio_rustls::ClientTlsStream<TcpStream>),
}

// Each variant is Split (TcpStream is, and the TLS streams are when their IO is),
// so reading and writing halves may run concurrently on one thread.
unsafe impl Split for Stream {}

impl Stream {
    /// True when this leg is encrypted.
    pub fn is_tls(&self) -> bool {
        !matches!(self, Stream::Plain(_))
    }
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Stream::Plain($s) => $e,
            Stream::ServerTls($s) => $e,
            Stream::ClientTls($s) => $e,
        }
    };
}

impl AsyncReadRent for Stream {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        each!(self, s => s.read(buf).await)
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        each!(self, s => s.readv(buf).await)
    }
}

impl AsyncWriteRent for Stream {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        each!(self, s => s.write(buf).await)
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        each!(self, s => s.writev(buf).await)
    }

    async fn flush(&mut self) -> io::Result<()> {
        each!(self, s => s.flush().await)
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        each!(self, s => s.shutdown().await)
    }
}
