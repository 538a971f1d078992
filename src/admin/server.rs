//! The admin listener on a monoio runtime: one task per connection, one
//! request per connection, a deadline on reading it and a cap on how many
//! connections are open. Parsing and replies are `http`'s; this owns the I/O.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};
use tracing::{debug, warn};

use super::http::{parse_request, Limits, Parsed, Request, Response};

/// Connections served at once; more are told 503 and closed.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a client has to send its whole request.
pub const READ_DEADLINE: Duration = Duration::from_secs(5);
/// How long writing a reply may take before the connection is dropped.
const WRITE_DEADLINE: Duration = Duration::from_secs(5);
/// After replying, how long to read and discard what the client still sends,
/// so closing with unread bytes does not reset the connection and lose the
/// reply (a 413 sent before the body arrived, say).
const LINGER: Duration = Duration::from_millis(500);
const LINGER_BYTES: usize = 256 * 1024;

/// What `serve` enforces; tests shrink it.
#[derive(Clone, Copy, Debug)]
struct Bounds {
    connections: usize,
    read_deadline: Duration,
    limits: Limits,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            connections: MAX_CONNECTIONS,
            read_deadline: READ_DEADLINE,
            limits: Limits::default(),
        }
    }
}

/// What a handler gives back: the response, once it is ready.
pub type ResponseFuture = Pin<Box<dyn Future<Output = Response>>>;

/// Accepts connections on `listener` forever, answering each one's request
/// with `handler`, which is given the request and the peer's address.
pub async fn serve<H>(listener: TcpListener, handler: Rc<H>)
where
    H: Fn(Request, SocketAddr) -> ResponseFuture + 'static,
{
    serve_within(listener, handler, Bounds::default()).await
}

async fn serve_within<H>(listener: TcpListener, handler: Rc<H>, bounds: Bounds)
where
    H: Fn(Request, SocketAddr) -> ResponseFuture + 'static,
{
    let open = Rc::new(Cell::new(0));
    loop {
        let (mut stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors and similar: back off instead of spinning.
                warn!(error = %e, "admin accept failed");
                monoio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if open.get() >= bounds.connections {
            debug!(%peer, "admin connection refused: {} already open", bounds.connections);
            let busy = Response::error(503, "too many admin connections; retry shortly")
                .with_header("Retry-After", "1");
            monoio::spawn(reply(stream, busy));
            continue;
        }
        let slot = Slot::take(&open);
        let handler = handler.clone();
        monoio::spawn(async move {
            let response = answer(&mut stream, peer, &*handler, &bounds).await;
            reply(stream, response).await;
            drop(slot);
        });
    }
}

/// The response to the one request `stream` carries.
async fn answer<H>(
    stream: &mut TcpStream,
    peer: SocketAddr,
    handler: &H,
    bounds: &Bounds,
) -> Response
where
    H: Fn(Request, SocketAddr) -> ResponseFuture,
{
    let read = monoio::time::timeout(bounds.read_deadline, read_request(stream, &bounds.limits));
    let refusal = match read.await {
        Ok(Ok(request)) => return handler(request, peer).await,
        Ok(Err(refusal)) => refusal,
        Err(_) => {
            let why = format!(
                "the request did not arrive within {:?}",
                bounds.read_deadline
            );
            Response::error(408, &why)
        }
    };
    debug!(%peer, status = refusal.status, "admin request refused");
    refusal
}

/// One of the open connections, given back when dropped.
struct Slot(Rc<Cell<usize>>);

impl Slot {
    fn take(open: &Rc<Cell<usize>>) -> Self {
        open.set(open.get() + 1);
        Slot(open.clone())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// Reads until `buf` holds a whole request; a refusal to send otherwise.
async fn read_request(stream: &mut TcpStream, limits: &Limits) -> Result<Request, Response> {
    let mut buf = Vec::with_capacity(4096);
    loop {
        match parse_request(&buf, limits) {
            Parsed::Complete(request, _) => return Ok(request),
            Parsed::Bad(status, why) => return Err(Response::error(status, &why)),
            Parsed::Need => {}
        }
        // The parser refuses heads and bodies over the limits, so this stays
        // within about max_head + max_body.
        if buf.len() == buf.capacity() {
            buf.reserve(4096);
        }
        let (len, cap) = (buf.len(), buf.capacity());
        let (res, slice) = stream.read(buf.slice_mut(len..cap)).await;
        buf = slice.into_inner();
        match res {
            Ok(0) => {
                return Err(Response::error(
                    400,
                    "the connection closed before the request was complete",
                ))
            }
            Ok(_) => {}
            Err(e) => {
                return Err(Response::error(
                    400,
                    &format!("reading the request failed: {e}"),
                ))
            }
        }
    }
}

/// Writes `response`, ends the sending side and lingers briefly; dropping
/// the stream then closes it.
async fn reply(mut stream: TcpStream, response: Response) {
    let written = monoio::time::timeout(WRITE_DEADLINE, async {
        let (res, _) = stream.write_all(response.to_bytes()).await;
        res?;
        stream.shutdown().await
    })
    .await;
    if let Ok(Ok(())) = written {
        let _ = monoio::time::timeout(LINGER, drain(&mut stream)).await;
    }
}

/// Reads and discards until the peer closes, up to `LINGER_BYTES`.
async fn drain(stream: &mut TcpStream) -> io::Result<()> {
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut total = 0;
    while total < LINGER_BYTES {
        buf.clear();
        let (res, back) = stream.read(buf).await;
        buf = back;
        match res? {
            0 => break,
            n => total += n,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream as StdStream;
    use std::time::Instant;

    use serde_json::{json, Value};

    use super::*;

    fn echo(req: Request, peer: SocketAddr) -> ResponseFuture {
        Box::pin(async move {
            let body = String::from_utf8_lossy(&req.body).into_owned();
            let loopback = peer.ip().is_loopback();
            Response::json(
                200,
                &json!({ "method": req.method, "path": req.path, "body": body, "loopback": loopback }),
            )
        })
    }

    /// Starts a server on a runtime thread of its own; `None` runs `serve`.
    fn start(bounds: Option<Bounds>) -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                .enable_timer()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = TcpListener::from_std(listener).unwrap();
                match bounds {
                    Some(bounds) => serve_within(listener, Rc::new(echo), bounds).await,
                    None => serve(listener, Rc::new(echo)).await,
                }
            });
        });
        addr
    }

    /// Sends `raw` and reads the reply until the server closes.
    fn exchange(addr: SocketAddr, raw: &[u8]) -> (u16, Value) {
        let mut s = StdStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(raw).unwrap();
        let mut reply = Vec::new();
        s.read_to_end(&mut reply).unwrap();
        let text = String::from_utf8(reply).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains("\r\nConnection: close\r\n"), "{head}");
        (
            head[9..12].parse().unwrap(),
            serde_json::from_str(body).unwrap(),
        )
    }

    #[test]
    fn serves_good_malformed_and_oversized_requests() {
        let addr = start(None);
        let (status, body) = exchange(
            addr,
            b"POST /x/y?z HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi",
        );
        assert_eq!(status, 200);
        assert_eq!(
            body,
            json!({ "method": "POST", "path": "/x/y", "body": "hi", "loopback": true })
        );

        let (status, body) = exchange(addr, b"GET /x HTTP/1.1\r\nHost: a\r\nBad Header: 1\r\n\r\n");
        assert_eq!(status, 400);
        assert!(
            body["error"].as_str().unwrap().contains("header name"),
            "{body}"
        );

        let mut big = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n".to_vec();
        big.resize(big.len() + 100_000, b'x');
        assert_eq!(exchange(addr, &big).0, 413);

        let long_head = format!(
            "GET /x HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
            "y".repeat(20_000)
        );
        assert_eq!(exchange(addr, long_head.as_bytes()).0, 431);

        let binary: Vec<u8> = (0..=255).cycle().take(3000).collect();
        assert_eq!(exchange(addr, &binary).0, 400);
    }

    #[test]
    fn refuses_connections_over_the_cap() {
        let bounds = Bounds {
            connections: 2,
            ..Bounds::default()
        };
        let addr = start(Some(bounds));
        let idle: Vec<_> = (0..2).map(|_| StdStream::connect(addr).unwrap()).collect();
        let (status, body) = exchange(addr, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(
            (status, body["error"].as_str().unwrap()),
            (503, "too many admin connections; retry shortly")
        );
        drop(idle);
        // The slots come back once the server has seen the idle ones close.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match exchange(addr, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").0 {
                200 => break,
                503 if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                status => panic!("got {status} after the idle connections closed"),
            }
        }
    }

    #[test]
    fn slow_requests_time_out() {
        let bounds = Bounds {
            read_deadline: Duration::from_millis(200),
            ..Bounds::default()
        };
        let addr = start(Some(bounds));
        let started = Instant::now();
        let (status, body) = exchange(addr, b"GET / HTTP/1.1\r\nHost: a\r\n");
        assert_eq!(status, 408, "{body}");
        assert!(started.elapsed() >= Duration::from_millis(200));
    }
}
