//! One client session from accept to close: login, the upstream session, the
//! greeting the client sees, the relay, and a clean end whichever side stops.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::rc::Rc;

use bytes::BytesMut;
use futures_util::lock::Mutex;
use monoio::io::{OwnedWriteHalf, Splitable};
use monoio::net::TcpStream;
use tracing::{info, warn, Instrument};

use super::approvals::{Requester, SessionApprover};
use super::audit_trail::{login_failed, session_id, Identity, SessionAudit};
use super::buffer::{write_all, FrameReader};
use super::cancel::{self, CancelKey};
use super::client_login::{login, Hello, Login, LoginError};
use super::denial::Raiser;
use super::guard::Guard;
use super::masker::Masker;
use super::relay::{
    upstream_to_client, CatalogSource, ClientPump, ClientSink, Holds, RelayEnd, Reloads,
    SessionState,
};
use super::session_policy::SessionPolicy;
use super::startup_options::{
    client_encoding_refusal, is_supported_client_encoding, startup_settings, unsupported_encoding,
    INVALID_SWITCH,
};
use super::stream::Stream;
use super::upstream::{self, UpstreamError};
use super::worker::{Live, WorkerContext};
use crate::policy::builtins::{is_harmless_setting, is_superuser_setting};
use crate::policy::limits::SessionLimits;
use crate::policy::role::Role;
use crate::sql::classification::SettingValue;
use crate::sql::Operation;
use crate::wire::build;
use crate::wire::error_response::PgError;

/// Serves one accepted connection to its end.
pub async fn serve(tcp: TcpStream, peer: SocketAddr, ctx: Rc<WorkerContext>, id: u64) {
    let span = tracing::info_span!("session", id, %peer, user = tracing::field::Empty, database = tracing::field::Empty);
    async move {
        let _ = tcp.set_nodelay(true);
        let client_fd = tcp.as_raw_fd();
        // The configuration in force when the client arrived.
        let live = ctx.live();
        let hello =
            match monoio::time::timeout(live.config.server.login_timeout, login(tcp, &live.login))
                .await
            {
                Err(_) => {
                    info!("login timed out");
                    return;
                }
                Ok(Err(e)) => {
                    // (A client that leaves before naming a user, a port
                    // probe say, did not try to log in.)
                    let probe = e.conn.is_none() && e.claimed.is_none();
                    if !probe {
                        ctx.metrics.login_failed();
                    }
                    if let Some(stream) = ctx.audit.as_ref().filter(|_| !probe) {
                        let (user, db) = e.claimed.clone().unzip();
                        login_failed(
                            stream,
                            &peer.to_string(),
                            user.as_deref(),
                            db.as_deref(),
                            &e.reason,
                        );
                    }
                    return refuse(e).await;
                }
                Ok(Ok(h)) => h,
            };
        match hello {
            Hello::Cancel { pid, secret } => forward_cancel(pid, &secret).await,
            Hello::Login(login) => run(*login, client_fd, &ctx, live, peer, id).await,
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
            info!(
                pid,
                upstream_pid = t.upstream_pid,
                "forwarding cancel request"
            );
            // A statement held for approval is withdrawn.
            super::registry::cancelled(pid);
            if let Err(e) =
                upstream::send_cancel(t.upstream, t.upstream_pid, &t.upstream_secret).await
            {
                warn!(error = %e, "cancel request could not reach the upstream");
            }
        }
        None => info!(pid, "cancel request for no known session"),
    }
}

async fn run(
    login: Login,
    client_fd: RawFd,
    ctx: &WorkerContext,
    live: Rc<Live>,
    peer: SocketAddr,
    id: u64,
) {
    let Login {
        mut conn,
        user,
        database,
        params,
        auth,
        token,
    } = login;
    // A session refused before its relay starts is a failed login to the audit log.
    let failed = |reason: &str| {
        ctx.metrics.login_failed();
        if let Some(stream) = &ctx.audit {
            login_failed(
                stream,
                &peer.to_string(),
                Some(&user.name),
                Some(&database),
                reason,
            );
        }
    };
    let span = tracing::Span::current();
    span.record("user", user.name.as_str());
    span.record("database", database.as_str());
    let db = &live.config.databases[&database];
    let policy = SessionPolicy::of(&live.config, &live.masks, &user.roles);
    let roles = policy.roles.clone();
    if let Some(refusal) = client_encoding_refusal(&params) {
        info!(reason = %refusal, "login refused: client encoding");
        failed(&refusal);
        let _ = write_all(
            conn.io_mut(),
            PgError::fatal("0A000", refusal)
                .with_hint(ENCODING_HINT)
                .to_frame()
                .freeze(),
        )
        .await;
        return;
    }
    let settings = startup_settings(&params);
    if let Some(refusal) = refuse_startup_settings(&roles, &settings) {
        info!(reason = %refusal, "login refused by policy");
        failed(&refusal);
        let _ = write_all(
            conn.io_mut(),
            PgError::fatal("42501", refusal).to_frame().freeze(),
        )
        .await;
        return;
    }
    // The value the server applies (startup_settings resolved precedence).
    let search_path = settings
        .iter()
        .find(|(k, _)| k == "search_path")
        .map(|(_, v)| v.as_str());
    let limits = SessionLimits::of(&roles.iter().collect::<Vec<_>>());
    let mut guard = Guard::new(roles, &database, &db.dbname, search_path);
    guard.set_masks(policy.masks.clone());
    // The login the user's roles name for this database (or its own).
    let login = db.login_for(&user.roles);
    let up_db = db.as_login(&login);
    // The roles' limits, as startup parameters, unless the client set the
    // same setting itself (checked against the limit above, so it is within it).
    // Always last, so they are what the server applies: a timeout the client
    // set within the ceiling keeps the client's value.
    let mut up_params = params.clone();
    up_params.extend(limits.startup_params().into_iter().map(|(name, value)| {
        let client = settings.iter().find(|(s, _)| *s == name);
        match client {
            Some((_, v)) if crate::policy::limits::TIMEOUTS.contains(&name.as_str()) => {
                (name, v.clone())
            }
            _ => (name, value),
        }
    }));
    let mut up = match upstream::connect(
        &up_db,
        live.upstream_tls.get(&database),
        &up_params,
        live.config.server.buffer_size,
    )
    .await
    {
        Ok(u) => u,
        Err(e) => {
            warn!(error = %e, "upstream session failed");
            failed(&format!("upstream session failed: {e}"));
            let frame = match e {
                // The server's own reason (a bad parameter value, too many
                // connections, ...) is the client's business; a failed login
                // with pgward's credentials is not.
                UpstreamError::Refused { frame, code, .. } if !code.starts_with("28") => frame,
                other => PgError::fatal(
                    "08006",
                    format!("pgward: cannot open a session on database \"{database}\""),
                )
                .with_detail(format!(
                    "{}; the operator finds why in pgward's log",
                    other.for_client()
                ))
                .to_frame()
                .freeze(),
            };
            let _ = write_all(conn.io_mut(), frame).await;
            return;
        }
    };
    // pgward reads statements as the server does once it has converted them
    // to UTF-8: a database in another encoding converts names (and cuts them
    // at 63 bytes) in ways pgward does not follow.
    let server_encoding = up.server_encoding.as_deref().unwrap_or("(not reported)");
    if !server_encoding.eq_ignore_ascii_case("UTF8") {
        info!(server_encoding, "session refused: database encoding");
        failed(&format!("database encoding {server_encoding}"));
        let e = PgError::fatal(
            "0A000",
            format!("pgward: database \"{database}\" is in encoding {server_encoding}; pgward serves UTF8 databases only"),
        )
        .with_hint("ask the operator: pgward reads statements as a UTF8 database does");
        return end_before_relay(&mut up.conn, &mut conn, e).await;
    }
    // The server's own word on the encoding: a default of the database or of
    // pgward's upstream role applies when the client named none.
    let reported = up.client_encoding.as_deref().unwrap_or("(not reported)");
    if !is_supported_client_encoding(reported) {
        info!(
            client_encoding = reported,
            "session refused: client encoding"
        );
        failed(&format!("client encoding {reported}"));
        let e = PgError::fatal("0A000", unsupported_encoding(reported))
            .with_detail("the server reported this client_encoding at login")
            .with_hint(ENCODING_HINT);
        return end_before_relay(&mut up.conn, &mut conn, e).await;
    }
    guard.set_client_encoding(reported);
    // Unqualified names resolve through the path the server really uses:
    // the login's or the database's defaults may have set it.
    let mut raiser = Raiser::DoBlock;
    let learned = match upstream::session_facts(&mut up.conn).await {
        Ok(facts) => {
            if facts.refusal_function {
                raiser = Raiser::Function;
            }
            guard.learn_search_path(&facts.search_path, &login.user)
        }
        Err(e) => Err(e),
    };
    if let Err(e) = learned {
        warn!(error = %e, "session refused: search_path unknown");
        failed(&format!("search_path unknown: {e}"));
        let e = PgError::fatal(
            "08006",
            "pgward: cannot read the session's search_path, so names cannot be checked",
        );
        return end_before_relay(&mut up.conn, &mut conn, e).await;
    }
    let key = CancelKey::register(up.addr, up.pid, &up.secret);
    let mut greeting = up.greeting;
    build::backend_key_data(&mut greeting, key.pid, u32::from_be_bytes(key.secret));
    build::ready_for_query(&mut greeting, up.status);
    if write_all(conn.io_mut(), greeting.freeze()).await.is_err() {
        return;
    }
    info!(
        upstream_pid = up.pid,
        tls = conn.io().is_tls(),
        "session started"
    );

    let client_tls = conn.io().is_tls();
    let (client_stream, client_buf) = conn.into_parts();
    let (up_stream, up_buf) = up.conn.into_parts();
    let (client_rd, client_wr) = client_stream.into_split();
    let (up_rd, mut up_wr) = up_stream.into_split();
    let chunk = live.config.server.buffer_size;
    let mut client_rd = FrameReader::new(client_rd, client_buf, chunk);
    let mut up_rd = FrameReader::new(up_rd, up_buf, chunk);
    let sink = Rc::new(Mutex::new(client_wr));
    {
        let mut sinks = ctx.sinks.borrow_mut();
        sinks.retain(|w| w.strong_count() > 0);
        sinks.push(Rc::downgrade(&sink));
    }
    let masker = Masker::new(
        policy.masks,
        policy.unmask,
        policy.scan,
        live.config.hash_key.clone(),
    );
    let registered = super::registry::register(super::registry::Entry {
        id: session_id(id),
        user: user.name.clone(),
        database: database.clone(),
        client: peer.to_string(),
        backend_pid: up.pid,
        cancel_pid: key.pid,
        fds: (client_fd, up.fd),
    });
    if let Some(t) = &token {
        info!(issuer = %t.issuer, jti = ?t.jti, expires = t.expires, "token session");
    }
    // The session lives as long as its token, or until an operator ends it;
    // then its upstream backend is ended for good.
    monoio::spawn(watch(
        registered.0.clone(),
        token.as_ref().map(|t| t.expires),
        Backend {
            db: up_db.clone(),
            tls: live.upstream_tls.get(&database).cloned(),
            pid: up.pid,
            chunk: live.config.server.buffer_size,
        },
    ));
    let holds = ctx.approvals.as_ref().map(|book| {
        guard.set_approver(SessionApprover::new(
            book.clone(),
            Requester {
                // Two issuers may name one subject: their approvals (and
                // quotas) are kept apart.
                user: match &token {
                    Some(t) => format!("{} ({})", user.name, t.issuer),
                    None => user.name.clone(),
                },
                roles: user.roles.clone(),
                session: session_id(id),
                database: database.clone(),
                client: peer.to_string(),
            },
            ctx.metrics.clone(),
        ));
        Holds {
            book: book.clone(),
            slot: registered.0.clone(),
            client_fd,
        }
    });
    let mut state = SessionState::new(guard, up.status, policy.max_rows, masker);
    state.slot = Some(registered.0.clone());
    state.metrics = Some(ctx.metrics.clone());
    state.masker.borrow_mut().metrics = Some(ctx.metrics.clone());
    ctx.metrics.session_opened();
    state.raiser.set(raiser);
    if let (Some(stream), Some(settings)) = (&ctx.audit, &ctx.audit_settings) {
        let who = Identity {
            session: session_id(id),
            user: user.name.clone(),
            roles: user.roles.clone(),
            client: peer.to_string(),
            database: database.clone(),
        };
        let mut trail = SessionAudit::new(
            stream.clone(),
            settings.durability,
            settings.record_params,
            who,
            live.config.version.clone(),
        );
        trail.connect(auth, client_tls, token.as_ref());
        *state.audit.borrow_mut() = Some(trail);
    }
    if let Some(scs) = up.standard_conforming_strings {
        state
            .guard
            .borrow_mut()
            .set_standard_conforming_strings(scs);
    }
    let wake = Wake {
        client: client_fd,
        upstream: up.fd,
    };

    // Both pumps run to completion: an in-flight read or write is never
    // dropped (TLS streams do not survive that). Whichever ends first wakes the
    // other by shutting down the read side of the other pump's socket.
    let front = async {
        let catalog = CatalogSource {
            cache: &ctx.catalogs,
            name: &database,
            db,
            tls: live.upstream_tls.get(&database),
        };
        let reloads = Reloads {
            ctx,
            user: &user.name,
            generation: live.generation,
            token: token.as_ref().map(|t| (t.issuer.clone(), t.roles.clone())),
        };
        let mut pump = ClientPump::new(
            &state,
            &ctx.cache,
            catalog,
            reloads,
            &sink,
            live.config.server.max_message_size,
        );
        if let Some(h) = holds {
            pump = pump.with_holds(h);
        }
        let end = pump.run(&mut client_rd, &mut up_wr).await;
        let first = !state.closing.replace(true);
        if first {
            client_side_end(&end, &state, &mut up_wr).await;
        }
        // A client that left needs no more replies; otherwise the server gets
        // to answer what was already forwarded, then closes after Terminate.
        if matches!(end, RelayEnd::ClientGone(_)) {
            wake.upstream();
        }
        (first, end)
    };
    let back = async {
        let end = upstream_to_client(&mut up_rd, &sink, &state).await;
        let first = !state.closing.replace(true);
        upstream_side_end(&end, first, &state, &sink).await;
        wake.client();
        (first, end)
    };
    let ((front_first, front_end), (_, back_end)) = monoio::join!(front, back);
    let cause = if front_first { front_end } else { back_end };
    ctx.metrics.session_closed();
    let terminated = registered.0.is_terminated();
    let expired = registered.0.is_expired();
    // From here on the sockets may close: an operator can no longer reach them.
    drop(registered);
    let cause = if terminated {
        // What the server is still running for it stops too.
        if let Err(e) = upstream::send_cancel(up.addr, up.pid, &up.secret).await {
            warn!(error = %e, "cancel for a terminated session could not reach the upstream");
        }
        let why = if expired {
            PgError::fatal("28000", "pgward: the session's token expired")
                .with_hint("log in again with a fresh token")
        } else {
            PgError::fatal(
                "57P01",
                "terminating connection due to administrator command",
            )
            .with_detail("a pgward operator terminated this session")
        };
        tell_client(&sink, why.clone()).await;
        RelayEnd::Halted(why)
    } else {
        cause
    };
    log_end(&cause);
    if let Some(trail) = &mut *state.audit.borrow_mut() {
        trail.disconnect(&end_reason(&cause));
    }
    if matches!(cause, RelayEnd::Halted(_)) {
        let mut terminate = BytesMut::new();
        build::terminate(&mut terminate);
        let _ = write_all(&mut up_wr, terminate.freeze()).await;
    }
    use monoio::io::AsyncWriteRent;
    let _ = sink.lock().await.shutdown().await;
    let _ = up_wr.shutdown().await;
    drop(key);
}

/// Ends a session refused after its upstream login: Terminate upstream, the
/// FATAL error to the client.
async fn end_before_relay(
    upstream: &mut FrameReader<Stream>,
    client: &mut FrameReader<Stream>,
    e: PgError,
) {
    let mut terminate = BytesMut::new();
    build::terminate(&mut terminate);
    let _ = write_all(upstream.io_mut(), terminate.freeze()).await;
    let _ = write_all(client.io_mut(), e.to_frame().freeze()).await;
}

/// What a client refused for its encoding is told to do.
pub const ENCODING_HINT: &str = "connect with client_encoding=UTF8 (libpq: PGCLIENTENCODING=UTF8)";

/// Startup settings the user's roles do not allow, as a FATAL message.
fn refuse_startup_settings(roles: &[Role], settings: &[(String, String)]) -> Option<String> {
    let limits = SessionLimits::of(&roles.iter().collect::<Vec<_>>());
    for (name, value) in settings {
        if name == INVALID_SWITCH {
            return Some(format!(
                "pgward: the startup option switch {value:?} is not allowed; options may hold only -c name=value and --name=value"
            ));
        }
        if let Some(why) = limits.refuse(name, &SettingValue::Literal(value.clone())) {
            return Some(format!("pgward: the startup option may not {why}"));
        }
        if matches!(name.as_str(), "role" | "session_authorization") || is_superuser_setting(name) {
            return Some(format!(
                "pgward: the startup option {name} is never allowed"
            ));
        }
        if !is_harmless_setting(name)
            && !roles.iter().any(|r| r.operations.contains(&Operation::Set))
        {
            return Some(format!(
                "pgward: the startup option {name} needs the set operation, which the user's roles do not grant"
            ));
        }
    }
    None
}

/// A session's upstream backend, as a watchdog ends it.
struct Backend {
    db: crate::config::DatabaseConfig,
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    pid: u32,
    chunk: usize,
}

/// Watches a session: at its token's expiry it is ended; once it is ended
/// from outside (expiry, an operator), its upstream backend is terminated
/// from a fresh session, so nothing the client queued runs after. Stops
/// when the session ends by itself.
async fn watch(slot: std::sync::Arc<super::registry::Slot>, expires: Option<u64>, b: Backend) {
    loop {
        monoio::time::sleep(std::time::Duration::from_millis(100)).await;
        if !slot.is_open() {
            return;
        }
        let now = crate::audit::time::now_secs();
        if expires.is_some_and(|e| now >= e) {
            slot.expire();
        }
        if slot.is_terminated() {
            if let Err(e) = upstream::terminate_backend(&b.db, b.tls.as_ref(), b.pid, b.chunk).await
            {
                warn!(error = %e, pid = b.pid, "the ended session's upstream backend could not be terminated");
            }
            return;
        }
    }
}

/// Shuts down the read side of a socket so a pending read on it returns.
struct Wake {
    client: RawFd,
    upstream: RawFd,
}

impl Wake {
    fn shut_read(fd: RawFd) {
        // SAFETY: the fd belongs to a socket this session still owns.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let _ = socket2::SockRef::from(&borrowed).shutdown(std::net::Shutdown::Read);
    }

    fn client(&self) {
        Wake::shut_read(self.client);
    }

    fn upstream(&self) {
        Wake::shut_read(self.upstream);
    }
}

async fn tell_client(sink: &ClientSink, e: PgError) {
    let mut w = sink.lock().await;
    let _ = write_all(&mut *w, e.to_frame().freeze()).await;
}

/// The client ended the relay: end the upstream session with Terminate. A
/// client that broke the protocol is told why once the server has answered
/// what came before the bad frame.
async fn client_side_end(
    end: &RelayEnd,
    state: &SessionState,
    upstream: &mut OwnedWriteHalf<Stream>,
) {
    if let RelayEnd::ClientProtocol(e) = end {
        state.pending_fatal.replace(Some(PgError::fatal(
            "08P01",
            format!("pgward: invalid message from client: {e}"),
        )));
    }
    if let RelayEnd::Halted(e) = end {
        // pgward ended it before the next statement (a reload removed the
        // user): the client hears why once the server has closed.
        state.pending_fatal.replace(Some(e.clone()));
    }
    if matches!(
        end,
        RelayEnd::ClientGone(_) | RelayEnd::ClientProtocol(_) | RelayEnd::Halted(_)
    ) {
        let mut terminate = BytesMut::new();
        build::terminate(&mut terminate);
        let _ = write_all(upstream, terminate.freeze()).await;
    }
}

/// The upstream ended the relay: tell the client why, unless the server did or
/// the client is the one leaving.
async fn upstream_side_end(end: &RelayEnd, first: bool, state: &SessionState, sink: &ClientSink) {
    if let RelayEnd::Halted(e) = end {
        return tell_client(sink, e.clone()).await;
    }
    if let Some(e) = state.pending_fatal.take() {
        return tell_client(sink, e).await;
    }
    if !first {
        return;
    }
    match end {
        RelayEnd::UpstreamGone {
            explained: false, ..
        } => {
            tell_client(
                sink,
                PgError::fatal(
                    "08006",
                    "pgward: lost the connection to the upstream server",
                )
                .with_hint("reconnect to start a new session"),
            )
            .await
        }
        RelayEnd::UpstreamProtocol(e) => {
            tell_client(
                sink,
                PgError::fatal(
                    "08P01",
                    format!("pgward: invalid message from the server: {e}"),
                ),
            )
            .await
        }
        _ => {}
    }
}

/// Why a session ended, for its disconnect record.
fn end_reason(end: &RelayEnd) -> String {
    match end {
        RelayEnd::ClientTerminated => "client terminated".into(),
        RelayEnd::ClientGone(_) => "client connection closed".into(),
        RelayEnd::ClientProtocol(e) => format!("client protocol violation: {e}"),
        RelayEnd::UpstreamGone { .. } => "upstream connection closed".into(),
        RelayEnd::UpstreamProtocol(e) => format!("upstream protocol violation: {e}"),
        RelayEnd::Halted(e) => format!("halted: {}", e.message),
    }
}

fn log_end(end: &RelayEnd) {
    match end {
        RelayEnd::ClientTerminated => info!("session ended by the client"),
        RelayEnd::ClientGone(e) => info!(error = ?e, "client connection closed"),
        RelayEnd::ClientProtocol(e) => {
            warn!(error = %e, "client protocol violation; session closed")
        }
        RelayEnd::UpstreamGone { error, explained } => {
            warn!(error = ?error, explained, "upstream connection closed")
        }
        RelayEnd::UpstreamProtocol(e) => {
            warn!(error = %e, "upstream protocol violation; session closed")
        }
        RelayEnd::Halted(e) => warn!(reason = %e.message, "session halted by pgward"),
    }
}
