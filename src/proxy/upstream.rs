//! The upstream leg: connect to the database, negotiate TLS per sslmode, log in
//! with pgward's own credentials (SCRAM-SHA-256, md5 or cleartext), and collect
//! what the client must see (ParameterStatus, notices) until ReadyForQuery.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use monoio::net::TcpStream;
use rustls::pki_types::ServerName;
use thiserror::Error;

use super::buffer::{write_all, FrameReader, ReadError};
use super::stream::Stream;
use crate::auth::md5::md5_response;
use crate::auth::scram;
use crate::auth::scram_client::ScramClient;
use crate::config::{DatabaseConfig, SslMode};
use crate::wire::backend::{AuthRequest, BackendKeyData};
use crate::wire::build;
use crate::wire::error_response::ErrorFields;

/// Largest message read from the upstream during login.
const MAX_LOGIN_MESSAGE: usize = 1 << 20;

/// Why the upstream session could not be opened.
#[derive(Debug, Error)]
pub enum UpstreamError {
    /// The address could not be resolved or reached, or the socket failed.
    #[error("cannot reach {target}: {source}")]
    Io {
        target: String,
        source: std::io::Error,
    },
    /// TLS was required and refused or failed.
    #[error("TLS to {target} failed: {reason}")]
    Tls { target: String, reason: String },
    /// The server refused the login or the session; the frame is its ErrorResponse.
    #[error("upstream refused the session: {message}")]
    Refused {
        message: String,
        code: String,
        frame: Bytes,
    },
    /// The server asked for something pgward cannot do, or broke the protocol.
    #[error("upstream login failed: {0}")]
    Protocol(String),
    /// Login took longer than connect_timeout.
    #[error("timed out connecting to {0}")]
    Timeout(String),
}

impl UpstreamError {
    /// What an agent may be told: never the upstream's host, port or the
    /// login pgward uses (those go to pgward's log).
    pub fn for_client(&self) -> &'static str {
        match self {
            UpstreamError::Io { .. } => "the database server cannot be reached",
            UpstreamError::Tls { .. } => "the TLS connection to the database server failed",
            UpstreamError::Refused { .. } => "the database server refused pgward's login",
            UpstreamError::Protocol(_) => "pgward could not log in to the database server",
            UpstreamError::Timeout(_) => "the database server did not answer in time",
        }
    }
}

/// A logged-in upstream session.
pub struct Upstream {
    /// The connection, with anything it sent after ReadyForQuery.
    pub conn: FrameReader<Stream>,
    /// The socket's descriptor, to wake a pending read at session end.
    pub fd: std::os::fd::RawFd,
    /// The server address (for cancel requests).
    pub addr: SocketAddr,
    /// The backend's process id.
    pub pid: u32,
    /// The backend's cancel secret.
    pub secret: Vec<u8>,
    /// ParameterStatus and NoticeResponse frames to pass on to the client.
    pub greeting: BytesMut,
    /// The transaction status of the first ReadyForQuery.
    pub status: u8,
    /// standard_conforming_strings as the server reported it.
    pub standard_conforming_strings: Option<bool>,
    /// client_encoding as the server reported it.
    pub client_encoding: Option<String>,
    /// server_encoding as the server reported it.
    pub server_encoding: Option<String>,
}

/// Opens and logs in an upstream session with the client's startup parameters.
pub async fn connect(
    db: &DatabaseConfig,
    tls: Option<&Arc<rustls::ClientConfig>>,
    params: &[(String, String)],
    chunk: usize,
) -> Result<Upstream, UpstreamError> {
    let target = format!("{}:{}", db.host, db.port);
    match monoio::time::timeout(
        db.connect_timeout,
        connect_inner(db, tls, params, chunk, &target),
    )
    .await
    {
        Ok(r) => r,
        Err(_) => Err(UpstreamError::Timeout(target)),
    }
}

async fn connect_inner(
    db: &DatabaseConfig,
    tls: Option<&Arc<rustls::ClientConfig>>,
    params: &[(String, String)],
    chunk: usize,
    target: &str,
) -> Result<Upstream, UpstreamError> {
    let io_err = |source| UpstreamError::Io {
        target: target.to_string(),
        source,
    };
    let addrs: Vec<SocketAddr> = (db.host.as_str(), db.port)
        .to_socket_addrs()
        .map_err(io_err)?
        .collect();
    let mut last = None;
    let mut tcp = None;
    for a in addrs {
        match TcpStream::connect_addr(a).await {
            Ok(s) => {
                tcp = Some((s, a));
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let (mut tcp, addr) = match tcp {
        Some(t) => t,
        None => {
            return Err(io_err(last.unwrap_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "no address")
            })))
        }
    };
    tcp.set_nodelay(true).map_err(io_err)?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&tcp);

    let stream = match (db.sslmode, tls) {
        (SslMode::Disable, _) | (_, None) => Stream::Plain(tcp),
        (mode, Some(config)) => {
            let mut out = BytesMut::new();
            build::ssl_request(&mut out);
            write_all(&mut tcp, out.freeze()).await.map_err(io_err)?;
            let mut answer = FrameReader::new(tcp, BytesMut::with_capacity(1), 1);
            if answer.fill(1).await.map_err(io_err)? == 0 {
                return Err(io_err(std::io::ErrorKind::UnexpectedEof.into()));
            }
            let (tcp, buf) = answer.into_parts();
            match buf.first() {
                Some(b'S') if buf.len() == 1 => {
                    let name =
                        ServerName::try_from(db.host.clone()).map_err(|e| UpstreamError::Tls {
                            target: target.to_string(),
                            reason: format!("bad server name: {e}"),
                        })?;
                    let connector = monoio_rustls::TlsConnector::from(config.clone());
                    let s = connector
                        .connect(name, tcp)
                        .await
                        .map_err(|e| UpstreamError::Tls {
                            target: target.to_string(),
                            reason: e.to_string(),
                        })?;
                    Stream::ClientTls(s)
                }
                Some(b'N') if mode == SslMode::Prefer => Stream::Plain(tcp),
                Some(b'N') => {
                    return Err(UpstreamError::Tls {
                        target: target.to_string(),
                        reason: "the server does not support TLS".into(),
                    })
                }
                _ => {
                    return Err(UpstreamError::Protocol(
                        "unexpected answer to SSLRequest".into(),
                    ))
                }
            }
        }
    };

    let mut conn = FrameReader::new(stream, BytesMut::with_capacity(chunk), chunk);
    let mut out = BytesMut::with_capacity(256);
    let mut startup: Vec<(&str, &str)> = vec![("user", &db.user), ("database", &db.dbname)];
    startup.extend(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    build::startup(&mut out, startup);
    write_all(conn.io_mut(), out.split().freeze())
        .await
        .map_err(io_err)?;
    login(conn, db, addr, fd, io_err).await
}

async fn login(
    mut conn: FrameReader<Stream>,
    db: &DatabaseConfig,
    addr: SocketAddr,
    fd: std::os::fd::RawFd,
    io_err: impl Fn(std::io::Error) -> UpstreamError,
) -> Result<Upstream, UpstreamError> {
    let mut out = BytesMut::with_capacity(256);
    let mut greeting = BytesMut::new();
    let mut key: Option<(u32, Vec<u8>)> = None;
    let mut scram: Option<ScramClient> = None;
    let mut scs = None;
    let mut client_encoding = None;
    let mut server_encoding = None;
    let password = || {
        db.password.as_deref().ok_or_else(|| {
            UpstreamError::Protocol(format!(
                "the server asks for a password and databases.{} has none",
                db.dbname
            ))
        })
    };
    loop {
        let h = conn
            .next_frame(MAX_LOGIN_MESSAGE)
            .await
            .map_err(|e| match e {
                ReadError::Eof => io_err(std::io::ErrorKind::UnexpectedEof.into()),
                ReadError::Io(e) => io_err(e),
                ReadError::Wire(e) => UpstreamError::Protocol(e.to_string()),
            })?;
        let frame = conn.take(h.total);
        let body = &frame[5..];
        let protocol = |e: crate::wire::WireError| UpstreamError::Protocol(e.to_string());
        match h.tag {
            b'R' => match AuthRequest::parse(body).map_err(protocol)? {
                AuthRequest::Ok => {}
                AuthRequest::Cleartext => build::password(&mut out, password()?.as_bytes()),
                AuthRequest::Md5 { salt } => {
                    build::password(&mut out, md5_response(&db.user, password()?, salt).as_bytes())
                }
                req @ AuthRequest::Sasl { .. } => {
                    if !req.offers(scram::MECHANISM) {
                        return Err(UpstreamError::Protocol(
                            "the server offers no SASL mechanism pgward supports".into(),
                        ));
                    }
                    let client = ScramClient::new(password()?, &scram::nonce());
                    build::sasl_initial_response(
                        &mut out,
                        scram::MECHANISM,
                        client.client_first().as_bytes(),
                    );
                    scram = Some(client);
                }
                AuthRequest::SaslContinue { data } => {
                    let client = scram
                        .as_mut()
                        .ok_or_else(|| UpstreamError::Protocol("unexpected SASLContinue".into()))?;
                    let fin = client
                        .handle_server_first(data)
                        .map_err(|e| UpstreamError::Protocol(e.to_string()))?;
                    build::sasl_response(&mut out, fin.as_bytes());
                }
                AuthRequest::SaslFinal { data } => {
                    scram
                        .as_mut()
                        .ok_or_else(|| UpstreamError::Protocol("unexpected SASLFinal".into()))?
                        .verify_server_final(data)
                        .map_err(|e| UpstreamError::Protocol(format!("server proof: {e}")))?;
                }
                AuthRequest::Unsupported(code) => {
                    return Err(UpstreamError::Protocol(format!(
                        "the server asks for authentication method {code}, which pgward does not support"
                    )))
                }
            },
            b'S' | b'N' => {
                if h.tag == b'S' {
                    if let Ok(p) = crate::wire::backend::ParameterStatus::parse(body) {
                        match p.name {
                            "standard_conforming_strings" => scs = Some(p.value == b"on"),
                            "client_encoding" => {
                                client_encoding =
                                    Some(String::from_utf8_lossy(p.value).into_owned())
                            }
                            "server_encoding" => {
                                server_encoding =
                                    Some(String::from_utf8_lossy(p.value).into_owned())
                            }
                            _ => {}
                        }
                    }
                }
                greeting.extend_from_slice(&frame)
            }
            b'K' => {
                let k = BackendKeyData::parse(body).map_err(protocol)?;
                key = Some((k.pid, k.secret.to_vec()));
            }
            b'v' => {} // The server declined protocol options we never send.
            b'E' => {
                let fields = ErrorFields::parse(body).map_err(protocol)?;
                return Err(UpstreamError::Refused {
                    message: fields.message(),
                    code: fields.code().unwrap_or("XX000").to_string(),
                    frame: frame.freeze(),
                });
            }
            b'Z' => {
                let status = crate::wire::backend::ready_for_query_status(body).map_err(protocol)?;
                let (pid, secret) = key.unwrap_or((0, vec![0; 4]));
                return Ok(Upstream {
                    conn,
                    fd,
                    addr,
                    pid,
                    secret,
                    greeting,
                    status,
                    standard_conforming_strings: scs,
                    client_encoding,
                    server_encoding,
                });
            }
            other => {
                return Err(UpstreamError::Protocol(format!(
                    "unexpected message {:?} during login",
                    other as char
                )))
            }
        }
        if !out.is_empty() {
            write_all(conn.io_mut(), out.split().freeze())
                .await
                .map_err(&io_err)?;
        }
    }
}

/// Sends a CancelRequest to an upstream backend over a fresh connection.
pub async fn send_cancel(addr: SocketAddr, pid: u32, secret: &[u8]) -> std::io::Result<()> {
    let mut tcp = TcpStream::connect_addr(addr).await?;
    let mut out = BytesMut::with_capacity(16 + secret.len());
    build::cancel_request(&mut out, pid, secret);
    write_all(&mut tcp, out.freeze()).await?;
    // The server closes without answering; wait for that so the request is read.
    let mut r = FrameReader::new(tcp, BytesMut::with_capacity(16), 16);
    let _ = monoio::time::timeout(std::time::Duration::from_secs(5), r.fill(1)).await;
    Ok(())
}

/// What a simple query returned.
#[derive(Debug, Default)]
pub struct Reply {
    /// The rows of every statement, in order, as text.
    pub rows: Vec<Vec<Option<String>>>,
    /// Notices and warnings the server sent (`WARNING: ...`).
    pub notices: Vec<String>,
}

/// Ends upstream backend `pid` for good, from a fresh session of the same
/// login (a role may end its own backends): statements a client queued in
/// the connection's buffers before it was terminated, or before its token
/// expired, never run. A cancel alone stops only the one running.
pub async fn terminate_backend(
    db: &DatabaseConfig,
    tls: Option<&Arc<rustls::ClientConfig>>,
    pid: u32,
    chunk: usize,
) -> Result<(), String> {
    let mut up = connect(db, tls, &[], chunk)
        .await
        .map_err(|e| e.to_string())?;
    simple_query(&mut up.conn, &format!("SELECT pg_terminate_backend({pid})")).await?;
    let mut out = BytesMut::new();
    build::terminate(&mut out);
    let _ = write_all(up.conn.io_mut(), out.freeze()).await;
    Ok(())
}

/// Runs `sql` by the simple protocol on a session of pgward's own (the
/// catalog's, provisioning's, a session's start) and reads up to
/// ReadyForQuery. An error from the server is returned as its severity,
/// message and SQLSTATE.
pub async fn simple_query(conn: &mut FrameReader<Stream>, sql: &str) -> Result<Reply, String> {
    let mut out = BytesMut::new();
    build::message(&mut out, b'Q', |b| build::cstr(b, sql.as_bytes()));
    write_all(conn.io_mut(), out.freeze())
        .await
        .map_err(|e| e.to_string())?;
    let mut reply = Reply::default();
    let mut error = None;
    loop {
        let h = conn.next_frame(1 << 30).await.map_err(|e| match e {
            ReadError::Eof => "the server closed the session".to_string(),
            ReadError::Io(e) => e.to_string(),
            ReadError::Wire(e) => e.to_string(),
        })?;
        let frame = conn.take(h.total);
        let body = &frame[5..];
        match h.tag {
            b'D' => {
                let row = crate::wire::backend::DataRow::parse(body).map_err(|e| e.to_string())?;
                let mut values = Vec::with_capacity(row.len());
                for v in row.values() {
                    values.push(
                        v.map_err(|e| e.to_string())?
                            .map(|b| String::from_utf8_lossy(b).into_owned()),
                    );
                }
                reply.rows.push(values);
            }
            b'E' | b'N' => {
                let f = ErrorFields::parse(body).map_err(|e| e.to_string())?;
                let severity = f
                    .get(b'V')
                    .or_else(|| f.get(b'S'))
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .unwrap_or_default();
                let text = format!("{severity}: {} ({})", f.message(), f.code().unwrap_or("?"));
                if h.tag == b'E' {
                    error = Some(text);
                } else {
                    reply.notices.push(text);
                }
            }
            b'Z' => break,
            _ => {}
        }
    }
    match error {
        Some(e) => Err(e),
        None => Ok(reply),
    }
}

/// Asks a fresh upstream session for its search_path, which the login's and
/// the database's own defaults may have set (the guard must resolve
/// unqualified names against the path the server uses), and whether it may
/// raise refusals through `pgward.refuse`, in one round trip.
pub async fn session_facts(conn: &mut FrameReader<Stream>) -> Result<SessionFacts, String> {
    let sql = format!(
        "SELECT pg_catalog.current_setting('search_path'), {}",
        super::denial::RAISER_PROBE
    );
    let reply = simple_query(conn, &sql).await?;
    let row = reply
        .rows
        .into_iter()
        .next()
        .ok_or_else(|| "the session's search_path query returned no row".to_string())?;
    let mut cells = row.into_iter();
    let search_path = cells
        .next()
        .flatten()
        .ok_or_else(|| "the session's search_path is NULL".to_string())?;
    let refusal_function = cells.next().flatten().as_deref() == Some("t");
    Ok(SessionFacts {
        search_path,
        refusal_function,
    })
}

/// What pgward reads from a new upstream session before serving it.
pub struct SessionFacts {
    /// The search_path the server applies (login and database defaults count).
    pub search_path: String,
    /// True when the login may call `pgward.refuse` (see `denial::Raiser`).
    pub refusal_function: bool,
}
