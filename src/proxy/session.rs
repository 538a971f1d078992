//! One client session from accept to close: login, the upstream session, the
//! greeting the client sees, the relay, and a clean end whichever side stops.

use std::net::SocketAddr;
use std::rc::Rc;

use bytes::BytesMut;
use futures_util::lock::Mutex;
use monoio::io::Splitable;
use monoio::net::TcpStream;
use tracing::{debug, info, warn, Instrument};

use super::buffer::{write_all, FrameReader};
use super::cancel::{self, CancelKey};
use super::client_login::{login, Hello, Login, LoginError};
use super::relay::{client_to_upstream, upstream_to_client, RelayEnd, SessionState};
use super::upstream::{self, UpstreamError};
use super::worker::WorkerContext;
use crate::wire::build;
use crate::wire::error_response::PgError;

/// Serves one accepted connection to its end.
pub async fn serve(tcp: TcpStream, peer: SocketAddr, ctx: Rc<WorkerContext>, id: u64) {
    let span = tracing::info_span!("session", id, %peer, user = tracing::field::Empty, database = tracing::field::Empty);
    async move {
        let _ = tcp.set_nodelay(true);
        let hello = match monoio::time::timeout(ctx.config.server.login_timeout, login(tcp, &ctx.login)).await {
            Err(_) => {
                info!("login timed out");
                return;
            }
            Ok(Err(e)) => return refuse(e).await,
            Ok(Ok(h)) => h,
        };
        match hello {
            Hello::Cancel { pid, secret } => forward_cancel(pid, &secret).await,
            Hello::Login(login) => run(login, &ctx).await,
        }
    }
    .instrument(span)
    .await
}

async fn refuse(e: LoginError) {
    info!(reason = %e.reason, "login refused");
    if let (Some(reply), Some(mut conn)) = (e.reply, e.conn) {
        let _ = write_all(conn.io_mut(), reply.to_frame().freeze()).await;
    }
}

async fn forward_cancel(pid: u32, secret: &[u8]) {
    match cancel::lookup(pid, secret) {
        Some(t) => {
            info!(pid, upstream_pid = t.upstream_pid, "forwarding cancel request");
            if let Err(e) = upstream::send_cancel(t.upstream, t.upstream_pid, &t.upstream_secret).await {
                warn!(error = %e, "cancel request could not reach the upstream");
            }
        }
        None => info!(pid, "cancel request for no known session"),
    }
}

async fn run(login: Login, ctx: &WorkerContext) {
    let Login {
        mut conn,
        user,
        database,
        params,
    } = login;
    let span = tracing::Span::current();
    span.record("user", user.name.as_str());
    span.record("database", database.as_str());
    let db = &ctx.config.databases[&database];
    let up = match upstream::connect(db, ctx.upstream_tls.get(&database), &params, ctx.config.server.buffer_size).await {
        Ok(u) => u,
        Err(e) => {
            warn!(error = %e, "upstream session failed");
            let frame = match e {
                // The server's own reason (a bad parameter value, too many
                // connections, ...) is the client's business; a failed login
                // with pgward's credentials is not.
                UpstreamError::Refused { frame, code, .. } if !code.starts_with("28") => frame,
                other => PgError::fatal(
                    "08006",
                    format!("pgward: cannot open a session on database \"{database}\""),
                )
                .with_detail(other.to_string())
                .to_frame()
                .freeze(),
            };
            let _ = write_all(conn.io_mut(), frame).await;
            return;
        }
    };
    let key = CancelKey::register(up.addr, up.pid, &up.secret);
    let mut greeting = up.greeting;
    build::backend_key_data(&mut greeting, key.pid, u32::from_be_bytes(key.secret));
    build::ready_for_query(&mut greeting, up.status);
    if write_all(conn.io_mut(), greeting.freeze()).await.is_err() {
        return;
    }
    info!(upstream_pid = up.pid, tls = conn.io().is_tls(), "session started");

    let (client_stream, client_buf) = conn.into_parts();
    let (up_stream, up_buf) = up.conn.into_parts();
    let (client_rd, client_wr) = client_stream.into_split();
    let (up_rd, mut up_wr) = up_stream.into_split();
    let chunk = ctx.config.server.buffer_size;
    let mut client_rd = FrameReader::new(client_rd, client_buf, chunk);
    let mut up_rd = FrameReader::new(up_rd, up_buf, chunk);
    let sink = Rc::new(Mutex::new(client_wr));
    let state = SessionState::default();
    state.tx_status.set(up.status);

    let end = {
        let front = client_to_upstream(&mut client_rd, &mut up_wr, ctx.config.server.max_message_size);
        let back = upstream_to_client(&mut up_rd, &sink, &state);
        monoio::select! {
            e = front => e,
            e = back => e,
        }
    };
    finish(end, &sink, &mut up_wr).await;
    drop(key);
}

/// Closes both legs after the relay, telling the client why when it can listen.
async fn finish(
    end: RelayEnd,
    sink: &super::relay::ClientSink,
    upstream: &mut monoio::io::OwnedWriteHalf<super::stream::Stream>,
) {
    let tell_client = |e: PgError| async move {
        let mut w = sink.lock().await;
        let _ = write_all(&mut *w, e.to_frame().freeze()).await;
    };
    let mut terminate = BytesMut::new();
    build::terminate(&mut terminate);
    match end {
        RelayEnd::ClientTerminated => debug!("client terminated the session"),
        RelayEnd::ClientGone(e) => {
            debug!(error = ?e, "client connection closed");
            let _ = write_all(upstream, terminate.freeze()).await;
        }
        RelayEnd::ClientProtocol(e) => {
            warn!(error = %e, "client protocol violation; closing the session");
            tell_client(PgError::fatal("08P01", format!("pgward: invalid message from client: {e}"))).await;
            let _ = write_all(upstream, terminate.freeze()).await;
        }
        RelayEnd::UpstreamGone { error, explained } => {
            warn!(error = ?error, explained, "upstream connection closed");
            if !explained {
                tell_client(
                    PgError::fatal("08006", "pgward: lost the connection to the upstream server")
                        .with_hint("reconnect to start a new session"),
                )
                .await;
            }
        }
        RelayEnd::UpstreamProtocol(e) => {
            warn!(error = %e, "upstream protocol violation; closing the session");
            tell_client(PgError::fatal("08P01", format!("pgward: invalid message from the server: {e}"))).await;
        }
    }
    use monoio::io::AsyncWriteRent;
    let _ = sink.lock().await.shutdown().await;
    let _ = upstream.shutdown().await;
}
