//! The data path of a live session: two pumps, client to upstream and upstream
//! to client, over split halves of both connections. Complete frames are found
//! by their headers only and relayed as slices of the read buffer; each pump
//! waits for its write before reading more, so a slow reader on either side
//! holds back its peer instead of making pgward buffer without limit.

use std::cell::Cell;
use std::io;
use std::rc::Rc;

use futures_util::lock::Mutex;
use monoio::io::{OwnedReadHalf, OwnedWriteHalf};

use super::buffer::{write_all, FrameReader};
use super::stream::Stream;
use crate::wire::frame::{read_header, HEADER_LEN};
use crate::wire::WireError;

/// The client's writing half, shared by whoever must answer the client.
pub type ClientSink = Rc<Mutex<OwnedWriteHalf<Stream>>>;

/// Frames from the server at least this large are streamed through in pieces
/// instead of being buffered whole (only those pgward never inspects).
const STREAM_THROUGH: usize = 1 << 20;

/// The largest message PostgreSQL itself sends (1 GiB plus its header).
const MAX_BACKEND_MESSAGE: usize = (1 << 30) + 64;

/// How a session's relay ended.
#[derive(Debug)]
pub enum RelayEnd {
    /// The client sent Terminate.
    ClientTerminated,
    /// The client closed its connection or it failed.
    ClientGone(Option<io::Error>),
    /// The client sent a frame that is malformed or too large.
    ClientProtocol(WireError),
    /// The upstream closed its connection or it failed.
    UpstreamGone {
        error: Option<io::Error>,
        /// True when the server said why (a FATAL error) before closing.
        explained: bool,
    },
    /// The upstream sent bytes that are not a valid frame.
    UpstreamProtocol(WireError),
}

/// What the two pumps share.
#[derive(Default)]
pub struct SessionState {
    /// Transaction status from the last ReadyForQuery (`I`, `T`, `E`).
    pub tx_status: Cell<u8>,
    /// True once the server sent a FATAL error.
    pub upstream_fatal: Cell<bool>,
    /// True once either pump has ended and the session is closing.
    pub closing: Cell<bool>,
    /// A FATAL error for the client, sent once the server has finished.
    pub pending_fatal: Cell<Option<crate::wire::error_response::PgError>>,
}

/// Relays client frames to the upstream until one side ends.
pub async fn client_to_upstream(
    client: &mut FrameReader<OwnedReadHalf<Stream>>,
    upstream: &mut OwnedWriteHalf<Stream>,
    max_message: usize,
) -> RelayEnd {
    loop {
        let mut end = 0;
        let mut terminate = false;
        let mut need = HEADER_LEN;
        let mut bad = None;
        while end < client.buf.len() {
            let rest = &client.buf[end..];
            match read_header(rest, max_message) {
                Ok(Some(h)) if rest.len() >= h.total => {
                    end += h.total;
                    if h.tag == b'X' {
                        terminate = true;
                        break;
                    }
                }
                Ok(Some(h)) => {
                    need = h.total - rest.len();
                    break;
                }
                Ok(None) => {
                    need = HEADER_LEN - rest.len();
                    break;
                }
                Err(e) => {
                    bad = Some(e);
                    break;
                }
            }
        }
        if end > 0 {
            let chunk = client.take(end).freeze();
            if let Err(e) = write_all(upstream, chunk).await {
                return RelayEnd::UpstreamGone {
                    error: Some(e),
                    explained: false,
                };
            }
        }
        if terminate {
            return RelayEnd::ClientTerminated;
        }
        if let Some(e) = bad {
            return RelayEnd::ClientProtocol(e);
        }
        match client.fill(need).await {
            Ok(0) => return RelayEnd::ClientGone(None),
            Ok(_) => {}
            Err(e) => return RelayEnd::ClientGone(Some(e)),
        }
    }
}

/// Relays server frames to the client until one side ends.
pub async fn upstream_to_client(
    upstream: &mut FrameReader<OwnedReadHalf<Stream>>,
    client: &ClientSink,
    state: &SessionState,
) -> RelayEnd {
    loop {
        let mut end = 0;
        let mut need = HEADER_LEN;
        let mut stream_through = 0;
        let mut bad = None;
        while end < upstream.buf.len() {
            let rest = &upstream.buf[end..];
            match read_header(rest, MAX_BACKEND_MESSAGE) {
                Ok(Some(h)) if rest.len() >= h.total => {
                    match h.tag {
                        b'Z' => state.tx_status.set(rest[HEADER_LEN]),
                        b'E' => {
                            let body = &rest[HEADER_LEN..h.total];
                            if crate::wire::error_response::ErrorFields::parse(body)
                                .is_ok_and(|f| f.is_fatal())
                            {
                                state.upstream_fatal.set(true);
                            }
                        }
                        _ => {}
                    }
                    end += h.total;
                }
                Ok(Some(h)) => {
                    if h.total >= STREAM_THROUGH && matches!(h.tag, b'D' | b'd') {
                        stream_through = h.total;
                    }
                    need = h.total - rest.len();
                    break;
                }
                Ok(None) => {
                    need = HEADER_LEN - rest.len();
                    break;
                }
                Err(e) => {
                    bad = Some(e);
                    break;
                }
            }
        }
        if stream_through > 0 {
            // Send everything buffered, including the large frame's start, then
            // relay the rest of that frame as it arrives.
            let remaining = stream_through - (upstream.buf.len() - end);
            end = upstream.buf.len();
            if let Err(e) = forward(client, upstream.take(end)).await {
                return RelayEnd::ClientGone(Some(e));
            }
            if let Err(end) = pass_through(upstream, client, remaining).await {
                return end;
            }
            continue;
        }
        if end > 0 {
            if let Err(e) = forward(client, upstream.take(end)).await {
                return RelayEnd::ClientGone(Some(e));
            }
        }
        if let Some(e) = bad {
            return RelayEnd::UpstreamProtocol(e);
        }
        match upstream.fill(need).await {
            Ok(0) => {
                return RelayEnd::UpstreamGone {
                    error: None,
                    explained: state.upstream_fatal.get(),
                }
            }
            Ok(_) => {}
            Err(e) => {
                return RelayEnd::UpstreamGone {
                    error: Some(e),
                    explained: state.upstream_fatal.get(),
                }
            }
        }
    }
}

async fn forward(client: &ClientSink, bytes: bytes::BytesMut) -> io::Result<()> {
    let mut w = client.lock().await;
    write_all(&mut *w, bytes.freeze()).await
}

/// Relays exactly `remaining` more bytes of one frame, in buffer-sized pieces.
async fn pass_through(
    upstream: &mut FrameReader<OwnedReadHalf<Stream>>,
    client: &ClientSink,
    mut remaining: usize,
) -> Result<(), RelayEnd> {
    while remaining > 0 {
        match upstream.fill(1).await {
            Ok(0) => {
                return Err(RelayEnd::UpstreamGone {
                    error: None,
                    explained: false,
                })
            }
            Ok(_) => {}
            Err(e) => {
                return Err(RelayEnd::UpstreamGone {
                    error: Some(e),
                    explained: false,
                })
            }
        }
        let n = upstream.buf.len().min(remaining);
        remaining -= n;
        if let Err(e) = forward(client, upstream.take(n)).await {
            return Err(RelayEnd::ClientGone(Some(e)));
        }
    }
    Ok(())
}
