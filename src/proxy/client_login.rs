//! The client side of a session's start: TLS negotiation, the startup packet,
//! SCRAM-SHA-256 against `[[users]]`, and the checks PostgreSQL makes before a
//! session exists (user, database, replication, protocol version).

use std::sync::Arc;

use bytes::BytesMut;
use monoio::net::TcpStream;

use super::buffer::{write_all, FrameReader, ReadError};
use super::stream::Stream;
use crate::auth::scram::{self, hmac_sha256, Verifier};
use crate::auth::scram_server::{Binding, ScramServer};
use crate::auth::AuthError;
use crate::config::{Config, UserConfig};
use crate::wire::build;
use crate::wire::error_response::PgError;
use crate::wire::frontend::SaslInitialResponse;
use crate::wire::startup::{check_startup, parse_startup, StartupPacket};
use crate::wire::WireError;

/// Largest message accepted during authentication.
const MAX_AUTH_MESSAGE: usize = 16 * 1024;

/// What a new client connection turned out to be.
pub enum Hello {
    /// An authenticated client that wants a session.
    Login(Box<Login>),
    /// A request to cancel another session's query.
    Cancel { pid: u32, secret: Vec<u8> },
}

/// An authenticated client, ready for its upstream session.
pub struct Login {
    /// The connection, with anything it sent after authenticating.
    pub conn: FrameReader<Stream>,
    /// The authenticated user.
    pub user: Arc<UserConfig>,
    /// The database named in the startup packet.
    pub database: String,
    /// Startup parameters to pass upstream (user and database excluded).
    pub params: Vec<(String, String)>,
    /// The SASL mechanism the client authenticated with (`token` for a
    /// token given as the password).
    pub auth: &'static str,
    /// The token's identity, for a token login.
    pub token: Option<crate::auth::token::TokenIdentity>,
}

/// Why a login failed: what to tell the client, and what to log.
pub struct LoginError {
    /// The FATAL error for the client, when it can still receive one.
    pub reply: Option<PgError>,
    /// The reason, for the log.
    pub reason: String,
    /// The connection, when a reply can still be written to it.
    pub conn: Option<FrameReader<Stream>>,
    /// The user name and database the client gave, once known.
    pub claimed: Option<(String, String)>,
}

impl LoginError {
    fn fatal(conn: FrameReader<Stream>, reply: PgError, reason: impl Into<String>) -> Self {
        LoginError {
            reply: Some(reply),
            reason: reason.into(),
            conn: Some(conn),
            claimed: None,
        }
    }

    fn gone(reason: impl Into<String>) -> Self {
        LoginError {
            reply: None,
            reason: reason.into(),
            conn: None,
            claimed: None,
        }
    }

    fn from_read(conn: FrameReader<Stream>, e: ReadError, during: &str) -> Self {
        match e {
            ReadError::Eof => {
                LoginError::gone(format!("client closed the connection during {during}"))
            }
            ReadError::Io(e) => LoginError::gone(format!("read failed during {during}: {e}")),
            ReadError::Wire(e) => protocol_error(conn, e),
        }
    }
}

fn protocol_error(conn: FrameReader<Stream>, e: WireError) -> LoginError {
    LoginError::fatal(
        conn,
        PgError::fatal("08P01", format!("invalid startup packet: {e}")),
        format!("protocol violation: {e}"),
    )
}

/// What login needs from the gateway.
pub struct LoginContext {
    /// The configuration.
    pub config: Arc<Config>,
    /// Client-facing TLS, when configured.
    pub tls: Option<monoio_rustls::TlsAcceptor>,
    /// Users, shared, so sessions keep a cheap handle.
    pub users: std::collections::HashMap<String, Arc<UserConfig>>,
    /// Key for the deterministic salts of unknown users.
    pub mock_key: [u8; 32],
    /// Read chunk size.
    pub chunk: usize,
    /// Channel-binding data of pgward's certificate, when TLS is configured.
    pub end_point: Option<Vec<u8>>,
}

/// Runs the startup phase on a fresh connection.
pub async fn login(tcp: TcpStream, ctx: &LoginContext) -> Result<Hello, LoginError> {
    let loopback = tcp.peer_addr().is_ok_and(|a| a.ip().is_loopback());
    let mut conn = FrameReader::new(Stream::Plain(tcp), BytesMut::with_capacity(1024), ctx.chunk);
    let mut tls_done = false;
    let startup = loop {
        let len = match read_startup_packet(&mut conn).await {
            Ok(len) => len,
            Err(e) => return Err(LoginError::from_read(conn, e, "startup")),
        };
        let packet = conn.take(len);
        let decoded = match parse_startup(&packet) {
            Ok(p) => p,
            Err(e) => return Err(protocol_error(conn, e)),
        };
        match decoded {
            StartupPacket::SslRequest | StartupPacket::GssEncRequest if !conn.buf.is_empty() => {
                // Bytes sent before the server's answer could be injected into the
                // encrypted stream (CVE-2021-23214); refuse like PostgreSQL does.
                return Err(LoginError::fatal(
                    conn,
                    PgError::fatal("08P01", "received unencrypted data after SSL request"),
                    "data after SSLRequest",
                ));
            }
            StartupPacket::SslRequest if !tls_done && ctx.tls.is_some() => {
                let (stream, buf) = conn.into_parts();
                let Stream::Plain(mut tcp) = stream else {
                    return Err(LoginError::gone("TLS requested twice"));
                };
                write_all(&mut tcp, bytes::Bytes::from_static(b"S"))
                    .await
                    .map_err(|e| LoginError::gone(format!("write failed: {e}")))?;
                let acceptor = ctx.tls.as_ref().expect("checked above");
                let tls = acceptor
                    .accept(tcp)
                    .await
                    .map_err(|e| LoginError::gone(format!("TLS handshake failed: {e}")))?;
                conn = FrameReader::new(Stream::ServerTls(tls), buf, ctx.chunk);
                tls_done = true;
            }
            StartupPacket::SslRequest | StartupPacket::GssEncRequest => {
                write_all(conn.io_mut(), bytes::Bytes::from_static(b"N"))
                    .await
                    .map_err(|e| LoginError::gone(format!("write failed: {e}")))?;
            }
            StartupPacket::Cancel { pid, secret } => {
                return Ok(Hello::Cancel {
                    pid,
                    secret: secret.to_vec(),
                })
            }
            StartupPacket::Startup(s) => {
                let params: Vec<(String, String)> = s
                    .params()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                break (s.minor, params);
            }
        }
    };
    let (minor, params) = startup;
    authenticate(conn, ctx, minor, params, loopback).await
}

async fn read_startup_packet(conn: &mut FrameReader<Stream>) -> Result<usize, ReadError> {
    /// A Terminate message: some drivers send it on a connection they give
    /// up on before starting up. PostgreSQL closes quietly; so does pgward.
    const TERMINATE: [u8; 5] = [b'X', 0, 0, 0, 4];
    loop {
        if conn.buf.first() == Some(&b'X') {
            if conn.buf.len() < TERMINATE.len() && TERMINATE.starts_with(&conn.buf) {
                if conn.fill(TERMINATE.len()).await? == 0 {
                    return Err(ReadError::Eof);
                }
                continue;
            }
            if conn.buf.starts_with(&TERMINATE) {
                return Err(ReadError::Eof);
            }
        }
        if let Some(len) = check_startup(&conn.buf)? {
            return Ok(len);
        }
        if conn.fill(8).await? == 0 {
            return Err(ReadError::Eof);
        }
    }
}

async fn authenticate(
    mut conn: FrameReader<Stream>,
    ctx: &LoginContext,
    minor: u16,
    params: Vec<(String, String)>,
    loopback: bool,
) -> Result<Hello, LoginError> {
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let Some(user_name) = get("user").filter(|u| !u.is_empty()).map(str::to_string) else {
        return Err(LoginError::fatal(
            conn,
            PgError::fatal(
                "28000",
                "no PostgreSQL user name specified in startup packet",
            ),
            "startup packet without user",
        ));
    };
    let database = get("database")
        .filter(|d| !d.is_empty())
        .unwrap_or(&user_name)
        .to_string();
    if let Some(r) = get("replication") {
        if !matches!(
            r.to_ascii_lowercase().as_str(),
            "false" | "off" | "no" | "0"
        ) {
            return Err(LoginError::fatal(
                conn,
                PgError::fatal("0A000", "pgward: replication connections are not supported")
                    .with_hint("connect to the database directly for replication"),
                "replication connection refused",
            ));
        }
    }

    let mut out = BytesMut::with_capacity(256);
    let unrecognized: Vec<&str> = params
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| k.starts_with("_pq_."))
        .collect();
    if minor > 0 || !unrecognized.is_empty() {
        build::negotiate_protocol_version(&mut out, 0, &unrecognized);
    }
    // With tokens on, over TLS (or loopback when allowed), every name is
    // asked the same: for its password in clear. A [[users]] password is
    // checked against its SCRAM verifier, anything else as a token, so the
    // first reply never tells which names exist.
    let tokens = ctx.config.auth.as_ref().filter(|a| !a.issuers.is_empty());
    if let Some(auth) = tokens {
        let plain_ok = loopback && auth.allow_plaintext_loopback;
        if conn.io().is_tls() || plain_ok {
            let t = TokenLogin {
                auth,
                user_name,
                database,
            };
            return t.run(conn, ctx, out, params).await;
        }
    }
    // On TLS, SCRAM-SHA-256-PLUS binds the login to this very connection.
    let end_point = ctx.end_point.as_deref().filter(|_| conn.io().is_tls());
    if end_point.is_some() {
        build::auth_sasl(&mut out, &[scram::MECHANISM_PLUS, scram::MECHANISM]);
    } else {
        build::auth_sasl(&mut out, &[scram::MECHANISM]);
    }
    send(&mut conn, &mut out).await?;

    let user = ctx.users.get(&user_name).cloned();
    let verifier = match &user {
        Some(u) => u.verifier.clone(),
        // Unknown users go through the same exchange with a stable fake salt, so
        // a client cannot tell which user names exist.
        None => mock_verifier(ctx, &user_name),
    };
    // (Off TLS a token login cannot succeed; every failure says so alike.)
    let hint = tokens.map(|_| "a token is accepted as the password only over TLS");
    let failed = |conn, reason: String| LoginError {
        claimed: Some((user_name.clone(), database.clone())),
        ..LoginError::fatal(
            conn,
            PgError {
                hint: hint.map(str::to_string),
                ..PgError::fatal(
                    "28P01",
                    format!("password authentication failed for user \"{user_name}\""),
                )
            },
            reason,
        )
    };

    let first = match read_password_message(&mut conn).await {
        Ok(b) => b,
        Err(e) => return Err(LoginError::from_read(conn, e, "authentication")),
    };
    let initial = match SaslInitialResponse::parse(&first[5..]) {
        Ok(r) => r,
        Err(e) => return Err(protocol_error(conn, e)),
    };
    let plus = initial.mechanism == scram::MECHANISM_PLUS && end_point.is_some();
    if initial.mechanism != scram::MECHANISM && !plus {
        return Err(LoginError::fatal(
            conn,
            PgError::fatal("28000", "pgward offers only SCRAM-SHA-256 authentication"),
            format!("client chose SASL mechanism {}", initial.mechanism),
        ));
    }
    let binding = end_point.map(|e| Binding { end_point: e, plus });
    let (server, server_first) =
        match ScramServer::start(verifier, initial.data, &scram::nonce(), binding) {
            Ok(x) => x,
            Err(e) => return Err(failed(conn, format!("SCRAM client-first refused: {e}"))),
        };
    build::auth_sasl_continue(&mut out, server_first.as_bytes());
    send(&mut conn, &mut out).await?;

    let fin = match read_password_message(&mut conn).await {
        Ok(b) => b,
        Err(e) => return Err(LoginError::from_read(conn, e, "authentication")),
    };
    let server_final = match server.finish(&fin[5..]) {
        Ok(v) => v,
        Err(AuthError::WrongPassword) => {
            let reason = if user.is_some() {
                "wrong password"
            } else {
                "unknown user"
            };
            return Err(failed(conn, reason.to_string()));
        }
        Err(e) => return Err(failed(conn, format!("SCRAM client-final refused: {e}"))),
    };
    let Some(user) = user else {
        return Err(failed(conn, "unknown user".into()));
    };
    build::auth_sasl_final(&mut out, server_final.as_bytes());
    build::auth_ok(&mut out);
    send(&mut conn, &mut out).await?;

    let auth = if plus {
        scram::MECHANISM_PLUS
    } else {
        scram::MECHANISM
    };
    logged_in(conn, ctx, user, database, params, auth, None)
}

/// The end of a login: the database must be served; startup parameters
/// the session passes upstream are kept. (The error holds the connection,
/// as every login step's does.)
#[allow(clippy::result_large_err)]
fn logged_in(
    conn: FrameReader<Stream>,
    ctx: &LoginContext,
    user: Arc<UserConfig>,
    database: String,
    params: Vec<(String, String)>,
    auth: &'static str,
    token: Option<crate::auth::token::TokenIdentity>,
) -> Result<Hello, LoginError> {
    if !ctx.config.databases.contains_key(&database) {
        return Err(LoginError {
            claimed: Some((user.name.clone(), database.clone())),
            ..LoginError::fatal(
                conn,
                PgError::fatal("3D000", format!("database \"{database}\" does not exist"))
                    .with_hint("pgward serves only the databases in its [databases] config"),
                format!("unknown database {database:?}"),
            )
        });
    }
    let params = params
        .into_iter()
        .filter(|(k, _)| {
            !matches!(k.as_str(), "user" | "database" | "replication") && !k.starts_with("_pq_.")
        })
        .collect();
    Ok(Hello::Login(Box::new(Login {
        conn,
        user,
        database,
        params,
        auth,
        token,
    })))
}

/// A login with the password in clear (tokens on): a token, or a
/// `[[users]]` password.
struct TokenLogin<'a> {
    auth: &'a crate::config::AuthConfig,
    user_name: String,
    database: String,
}

/// Whether a password has a compact JWS's shape (three base64url parts).
fn token_shaped(p: &str) -> bool {
    let ok = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.';
    p.split('.').count() == 3 && p.bytes().all(ok)
}

impl TokenLogin<'_> {
    fn refuse(&self, conn: FrameReader<Stream>, code: &'static str, message: String) -> LoginError {
        LoginError {
            claimed: Some((self.user_name.clone(), self.database.clone())),
            ..LoginError::fatal(conn, PgError::fatal(code, message.clone()), message)
        }
    }

    /// Asks for the password in clear (the caller checked the channel):
    /// a `[[users]]` password logs its user in; a token logs the client in
    /// as its subject with the roles its claims map to.
    async fn run(
        self,
        mut conn: FrameReader<Stream>,
        ctx: &LoginContext,
        mut out: BytesMut,
        params: Vec<(String, String)>,
    ) -> Result<Hello, LoginError> {
        build::auth_cleartext(&mut out);
        send(&mut conn, &mut out).await?;
        let frame = match read_password_message(&mut conn).await {
            Ok(b) => b,
            Err(e) => return Err(LoginError::from_read(conn, e, "authentication")),
        };
        let body = &frame[5..];
        let token = match body.split_last() {
            Some((0, t)) => std::str::from_utf8(t).unwrap_or_default(),
            _ => "",
        };
        // A [[users]] password (checked against its verifier; an unknown
        // name costs the same work against a stable fake one).
        let user = ctx.users.get(&self.user_name).cloned();
        let verifier = match &user {
            Some(u) => u.verifier.clone(),
            None => mock_verifier(ctx, &self.user_name),
        };
        let derived = scram::Verifier::from_password(token, &verifier.salt, verifier.iterations);
        let failed = |conn| {
            let why = format!(
                "password authentication failed for user \"{}\"",
                self.user_name
            );
            self.refuse(conn, "28P01", why)
        };
        match (
            &user,
            scram::ct_eq(&derived.stored_key, &verifier.stored_key),
        ) {
            (Some(u), true) => {
                build::auth_ok(&mut out);
                send(&mut conn, &mut out).await?;
                return logged_in(
                    conn,
                    ctx,
                    u.clone(),
                    self.database,
                    params,
                    "password",
                    None,
                );
            }
            // Not a password of this name; a token then, if it looks like one.
            _ if !token_shaped(token) => return Err(failed(conn)),
            _ => {}
        }
        let now = crate::audit::time::now_secs();
        let policy = &ctx.config.policy;
        let exists = |r: &str| policy.roles.contains_key(r);
        let verify = || crate::auth::token::verify(self.auth, token, &self.user_name, now, &exists);
        let mut verified = verify();
        if let Err(crate::auth::token::Refused {
            refetch: Some(keys),
            ..
        }) = &verified
        {
            // A key the issuer's set lacks: it may have rotated its keys.
            // (Only while a fetch runs: one refused by the rate limit
            // would find nothing new.)
            let generation = keys.generation();
            let fetching = crate::proxy::jwks::refresh(keys.clone()) || keys.fetching();
            if fetching && crate::proxy::jwks::newer(keys, generation).await {
                verified = verify();
            }
        }
        let id = match verified {
            // (A token never logs in as a [[users]] name.)
            Ok(_) if user.is_some() => return Err(failed(conn)),
            Ok(id) => id,
            Err(r) => return Err(self.refuse(conn, r.code, r.message)),
        };
        // Roles that grant nothing at all leave nothing to do.
        let grants_something = id.roles.iter().any(|r| {
            policy
                .roles
                .get(r)
                .is_some_and(|r| !r.operations.is_empty() || r.catalog)
        });
        if !grants_something {
            let why = format!("pgward: the roles of \"{}\" grant nothing", id.subject);
            return Err(self.refuse(conn, "28000", why));
        }
        let user = Arc::new(UserConfig {
            name: id.subject.clone(),
            verifier: mock_verifier(ctx, &id.subject),
            roles: id.roles.clone(),
        });
        build::auth_ok(&mut out);
        send(&mut conn, &mut out).await?;
        logged_in(conn, ctx, user, self.database, params, "token", Some(id))
    }
}

/// Reads one 'p' message during authentication; returns the whole frame.
async fn read_password_message(conn: &mut FrameReader<Stream>) -> Result<BytesMut, ReadError> {
    let h = conn.next_frame(MAX_AUTH_MESSAGE).await?;
    let frame = conn.take(h.total);
    if h.tag != b'p' {
        return Err(ReadError::Wire(WireError::malformed(
            "authentication",
            "expected a password message",
        )));
    }
    Ok(frame)
}

async fn send(conn: &mut FrameReader<Stream>, out: &mut BytesMut) -> Result<(), LoginError> {
    write_all(conn.io_mut(), out.split().freeze())
        .await
        .map_err(|e| LoginError::gone(format!("write failed during login: {e}")))
}

fn mock_verifier(ctx: &LoginContext, user: &str) -> Verifier {
    let salt = hmac_sha256(&ctx.mock_key, user.as_bytes());
    Verifier {
        iterations: scram::DEFAULT_ITERATIONS,
        salt: salt[..16].to_vec(),
        stored_key: hmac_sha256(&ctx.mock_key, &salt),
        server_key: hmac_sha256(&salt, &ctx.mock_key),
    }
}
