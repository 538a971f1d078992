//! A blocking HTTP/1.1 caller over std::net for the CLI and for webhooks:
//! plain `http://` only, one request per connection, one deadline for all.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use memchr::memmem;

/// Largest reply accepted.
const MAX_RESPONSE: usize = 8 * 1024 * 1024;

/// Sends `method` to `url` with an optional bearer `token` and JSON `body`;
/// gives the status and body. The whole exchange must end within `timeout`.
pub fn call(
    url: &str,
    method: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), String> {
    exchange(url, method, token, body, timeout).map_err(|e| format!("{method} {url}: {e}"))
}

/// GETs an `https://` URL, the server's certificate checked against
/// `tls`'s roots and the URL's host name (JWKS of identity providers).
pub fn get_https(
    url: &str,
    tls: std::sync::Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), String> {
    exchange_over(url, "GET", None, None, timeout, Some(tls)).map_err(|e| format!("GET {url}: {e}"))
}

fn exchange(
    url: &str,
    method: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), String> {
    exchange_over(url, method, token, body, timeout, None)
}

/// A TCP stream, or TLS over one.
enum Wire {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Wire {
    fn socket(&self) -> &TcpStream {
        match self {
            Wire::Plain(s) => s,
            Wire::Tls(t) => &t.sock,
        }
    }

    fn set_write_timeout(&self, d: Option<Duration>) -> std::io::Result<()> {
        self.socket().set_write_timeout(d)
    }

    fn set_read_timeout(&self, d: Option<Duration>) -> std::io::Result<()> {
        self.socket().set_read_timeout(d)
    }

    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Wire::Plain(s) => s.write_all(b),
            Wire::Tls(t) => t.write_all(b).and_then(|_| t.flush()),
        }
    }

    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Wire::Plain(s) => s.read(b),
            // A server closing without close_notify ends the body all
            // the same (Content-Length or chunking says whether it is whole).
            Wire::Tls(t) => match t.read(b) {
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
                other => other,
            },
        }
    }
}

fn exchange_over(
    url: &str,
    method: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
    timeout: Duration,
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
) -> Result<(u16, Vec<u8>), String> {
    let target = Target::parse(url, tls.is_some())?;
    let request = request_bytes(&target, method, token, body)?;
    // Capped so that adding it to now cannot overflow.
    let deadline = Instant::now() + timeout.min(Duration::from_secs(365 * 24 * 3600));
    let left = || match deadline.checked_duration_since(Instant::now()) {
        Some(d) if !d.is_zero() => Ok(d),
        _ => Err(format!("timed out after {timeout:?}")),
    };
    let tcp = connect(&target, &left)?;
    let mut stream = match tls {
        None => Wire::Plain(tcp),
        Some(config) => {
            let name = rustls::pki_types::ServerName::try_from(target.host.to_string())
                .map_err(|_| format!("{:?} is not a TLS server name", target.host))?;
            let conn =
                rustls::ClientConnection::new(config, name).map_err(|e| format!("TLS: {e}"))?;
            Wire::Tls(Box::new(rustls::StreamOwned::new(conn, tcp)))
        }
    };
    stream
        .set_write_timeout(Some(left()?))
        .map_err(|e| format!("setting a write timeout: {e}"))?;
    stream
        .write_all(&request)
        .map_err(|e| format!("sending the request: {}", io_why(&e, timeout)))?;
    let head_only = method.eq_ignore_ascii_case("HEAD");
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 16 * 1024];
    loop {
        stream
            .set_read_timeout(Some(left()?))
            .map_err(|e| format!("setting a read timeout: {e}"))?;
        let n = stream
            .read(&mut chunk)
            .map_err(|e| format!("reading the response: {}", io_why(&e, timeout)))?;
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_RESPONSE {
            return Err(format!("the response is larger than {MAX_RESPONSE} bytes"));
        }
        if let Some(done) = decode(&buf, n == 0, head_only)? {
            return Ok(done);
        }
    }
}

/// A read or write error, saying "timed out" for a timeout.
fn io_why(e: &std::io::Error, timeout: Duration) -> String {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            format!("timed out after {timeout:?}")
        }
        _ => e.to_string(),
    }
}

/// The parts of an `http://host[:port][/path]` URL.
#[derive(Debug, PartialEq, Eq)]
struct Target<'a> {
    /// As written in the URL, for the Host header.
    authority: &'a str,
    /// Without brackets around an IPv6 address.
    host: &'a str,
    port: u16,
    path: String,
}

impl<'a> Target<'a> {
    /// Reads an `http://` URL, or with `https` an `https://` one.
    fn parse(url: &'a str, https: bool) -> Result<Self, String> {
        let scheme = |s: &str| {
            url.get(..s.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(s))
        };
        let rest = if https {
            if !scheme("https://") {
                return Err("only https://host[:port]/path URLs are supported here".into());
            }
            &url["https://".len()..]
        } else {
            if scheme("https://") {
                return Err("https is not supported; use an http:// URL (a TLS-terminating proxy on the same host can forward to https)".into());
            }
            if !scheme("http://") {
                return Err("only http://host:port/path URLs are supported".into());
            }
            &url["http://".len()..]
        };
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if !path.bytes().all(|b| (0x21..0x7f).contains(&b)) {
            return Err(
                "the path must be printable ASCII without spaces (percent-encode the rest)".into(),
            );
        }
        let path = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        if authority.contains('@') {
            return Err("credentials in the URL are not supported; pass a token instead".into());
        }
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (host, after) = v6
                    .split_once(']')
                    .ok_or("an IPv6 address needs its closing ]")?;
                match after {
                    "" => (host, None),
                    _ => (
                        host,
                        Some(
                            after
                                .strip_prefix(':')
                                .ok_or("expected :port after the IPv6 address")?,
                        ),
                    ),
                }
            }
            None => match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        if host.is_empty()
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b))
        {
            return Err(format!("{host:?} is not a host name or address"));
        }
        let port = match port {
            None if https => 443,
            None => 80,
            Some(p) => p
                .parse()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| format!("{p:?} is not a port"))?,
        };
        Ok(Target {
            authority,
            host,
            port,
            path,
        })
    }
}

/// Connects to the first of the host's addresses that answers before the
/// time `left` runs out.
fn connect(
    target: &Target,
    left: &dyn Fn() -> Result<Duration, String>,
) -> Result<TcpStream, String> {
    let addrs = (target.host, target.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", target.host))?;
    let mut last = format!("{} resolved to no address", target.host);
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, left()?) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = format!("cannot connect to {addr}: {e}"),
        }
    }
    Err(last)
}

fn request_bytes(
    target: &Target,
    method: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
) -> Result<Vec<u8>, String> {
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if method.is_empty() || !method.bytes().all(tchar) {
        return Err(format!("{method:?} is not an HTTP method"));
    }
    let mut head = format!(
        "{method} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: pgward/{}\r\nAccept: */*\r\nConnection: close\r\n",
        target.path,
        target.authority,
        env!("CARGO_PKG_VERSION")
    );
    if let Some(token) = token {
        if !token.bytes().all(|b| (0x21..0x7f).contains(&b)) {
            return Err("the token must be printable ASCII".into());
        }
        head += &format!("Authorization: Bearer {token}\r\n");
    }
    match body {
        Some(body) => {
            head += &format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            )
        }
        None if ["POST", "PUT", "PATCH"]
            .iter()
            .any(|m| method.eq_ignore_ascii_case(m)) =>
        {
            head += "Content-Length: 0\r\n"
        }
        None => {}
    }
    head += "\r\n";
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.unwrap_or_default());
    Ok(bytes)
}

/// The status and body once `buf` holds a whole response; `eof` says the
/// server has closed, so nothing more will come.
fn decode(buf: &[u8], eof: bool, head_only: bool) -> Result<Option<(u16, Vec<u8>)>, String> {
    let mut start = 0;
    loop {
        let Some(end) = memmem::find(&buf[start..], b"\r\n\r\n") else {
            return if eof {
                Err("the connection closed before the response head ended".into())
            } else {
                Ok(None)
            };
        };
        let head = std::str::from_utf8(&buf[start..start + end])
            .map_err(|_| "the response head is not text")?;
        let body = &buf[start + end + 4..];
        let mut lines = head.split("\r\n");
        let status = status_line(lines.next().unwrap_or_default())?;
        if (100..200).contains(&status) {
            // An interim reply such as 100 Continue; the real one follows.
            start += end + 4;
            continue;
        }
        let mut length = None;
        let mut chunked = false;
        for line in lines {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| format!("bad response header {line:?}"))?;
            if name.eq_ignore_ascii_case("content-length") {
                let n = value
                    .trim()
                    .parse::<usize>()
                    .map_err(|_| format!("bad Content-Length {value:?}"))?;
                length = Some(n);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().contains("chunked");
            }
        }
        if head_only || status == 204 || status == 304 {
            return Ok(Some((status, Vec::new())));
        }
        let body = if chunked {
            dechunk(body)?
        } else if let Some(n) = length {
            body.get(..n).map(<[u8]>::to_vec)
        } else {
            eof.then(|| body.to_vec())
        };
        return match body {
            Some(body) => Ok(Some((status, body))),
            None if eof => Err("the connection closed before the response body ended".into()),
            None => Ok(None),
        };
    }
}

/// `HTTP/1.x NNN reason`.
fn status_line(line: &str) -> Result<u16, String> {
    let rest = line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| line.strip_prefix("HTTP/1.0 "));
    rest.and_then(|r| r.get(..3))
        .filter(|code| code.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("bad status line {line:?}"))
}

/// A whole chunked body, or `None` while it is incomplete.
fn dechunk(mut data: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = memmem::find(data, b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&data[..eol]).unwrap_or_default();
        let size = line.split(';').next().unwrap_or_default().trim();
        let size =
            usize::from_str_radix(size, 16).map_err(|_| format!("bad chunk size {line:?}"))?;
        data = &data[eol + 2..];
        if size == 0 {
            // Trailer lines up to an empty one.
            while let Some(eol) = memmem::find(data, b"\r\n") {
                if eol == 0 {
                    return Ok(Some(out));
                }
                data = &data[eol + 2..];
            }
            return Ok(None);
        }
        if size > MAX_RESPONSE {
            return Err(format!(
                "a chunk of {size} bytes is larger than {MAX_RESPONSE}"
            ));
        }
        let Some(chunk) = data.get(..size + 2) else {
            return Ok(None);
        };
        if !chunk.ends_with(b"\r\n") {
            return Err("a chunk does not end in CRLF".into());
        }
        out.extend_from_slice(&chunk[..size]);
        data = &data[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::thread::JoinHandle;

    use super::*;
    use crate::admin::http::{parse_request, Limits, Parsed, Request};

    /// A one-shot server: reads one request with pgward's own parser, replies
    /// with `reply` and closes; joining gives the request.
    fn server(reply: &'static [u8]) -> (u16, JoinHandle<Request>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            let request = loop {
                let n = s.read(&mut chunk).unwrap();
                buf.extend_from_slice(&chunk[..n]);
                match parse_request(&buf, &Limits::default()) {
                    Parsed::Complete(req, _) => break req,
                    Parsed::Need if n > 0 => {}
                    other => panic!("{other:?}"),
                }
            };
            s.write_all(reply).unwrap();
            request
        });
        (port, handle)
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn posts_json_with_a_token() {
        let (port, server) = server(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nokIGNORED");
        let url = format!("http://127.0.0.1:{port}/approvals/3?x=1");
        let got = call(&url, "POST", Some("s3cret"), Some(b"{}"), 5 * SECOND).unwrap();
        assert_eq!(got, (201, b"ok".to_vec()));
        let req = server.join().unwrap();
        assert_eq!(
            (req.method.as_str(), req.path.as_str(), req.query.as_str()),
            ("POST", "/approvals/3", "x=1")
        );
        assert_eq!(req.bearer(), Some("s3cret"));
        assert_eq!(req.header("content-type"), Some("application/json"));
        assert_eq!(
            req.header("host"),
            Some(format!("127.0.0.1:{port}").as_str())
        );
        assert_eq!(req.body, b"{}");
    }

    #[test]
    fn names_are_resolved_and_bodies_read_until_close() {
        let (port, server) = server(b"HTTP/1.0 200 OK\r\nX: y\r\n\r\nall of it");
        let got = call(
            &format!("http://localhost:{port}"),
            "GET",
            None,
            None,
            5 * SECOND,
        )
        .unwrap();
        assert_eq!(got, (200, b"all of it".to_vec()));
        let req = server.join().unwrap();
        assert_eq!(
            (
                req.path.as_str(),
                req.bearer(),
                req.header("content-length")
            ),
            ("/", None, None)
        );
    }

    #[test]
    fn chunked_and_interim_replies() {
        let (port, _server) =
            server(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\nA\r\n0123456789\r\n0\r\nT: 1\r\n\r\n");
        let got = call(
            &format!("http://127.0.0.1:{port}/"),
            "POST",
            None,
            None,
            5 * SECOND,
        )
        .unwrap();
        assert_eq!(got, (200, b"abc0123456789".to_vec()));
    }

    #[test]
    fn truncated_replies_are_errors() {
        let (port, _server) = server(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort");
        let url = format!("http://127.0.0.1:{port}/");
        let err = call(&url, "GET", None, None, 5 * SECOND).unwrap_err();
        assert_eq!(
            err,
            format!("GET {url}: the connection closed before the response body ended")
        );
    }

    #[test]
    fn a_silent_server_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let started = Instant::now();
        let err = call(&url, "POST", None, Some(b"{}"), Duration::from_millis(200)).unwrap_err();
        assert!(
            err.starts_with(&format!("POST {url}: ")) && err.contains("timed out"),
            "{err}"
        );
        assert!(started.elapsed() < 5 * SECOND);
    }

    #[test]
    fn no_time_at_all_and_no_end_of_time() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/");
        let err = call(&url, "GET", None, None, Duration::ZERO).unwrap_err();
        assert_eq!(err, format!("GET {url}: timed out after 0ns"));
        let err = call(&url, "GET", None, None, Duration::MAX).unwrap_err();
        assert!(err.contains("cannot connect"), "{err}");
    }

    #[test]
    fn a_closed_port_names_the_address() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = call(
            &format!("http://127.0.0.1:{port}/"),
            "GET",
            None,
            None,
            SECOND,
        )
        .unwrap_err();
        assert!(
            err.contains(&format!("cannot connect to 127.0.0.1:{port}")),
            "{err}"
        );
    }

    #[test]
    fn urls() {
        let t = Target::parse("HTTP://[::1]:9000?q#frag", false).unwrap();
        assert_eq!(
            t,
            Target {
                authority: "[::1]:9000",
                host: "::1",
                port: 9000,
                path: "/?q".into()
            }
        );
        assert_eq!(Target::parse("http://example.org", false).unwrap().port, 80);
        for (url, why) in [
            ("https://h/", "https is not supported; "),
            ("ftp://h/", "only http://"),
            ("h:80/", "only http://"),
            ("http:///x", "is not a host"),
            ("http://h:0/", "is not a port"),
            ("http://h:99999/", "is not a port"),
            ("http://h:/", "is not a port"),
            ("http://u:p@h/", "credentials"),
            ("http://[::1/", "closing ]"),
            ("http://[::1]x/", "expected :port"),
            ("http://h/a b", "printable ASCII"),
            ("http://h\r\nX: y/", "is not a host"),
        ] {
            let err = Target::parse(url, false).unwrap_err();
            assert!(err.contains(why), "{url}: {err}");
        }
    }

    #[test]
    fn request_headers_cannot_be_injected() {
        let t = Target::parse("http://h/", false).unwrap();
        assert!(request_bytes(&t, "GET /x", None, None).is_err());
        assert!(request_bytes(&t, "GET", Some("a\r\nX: y"), None).is_err());
        let bytes = request_bytes(&t, "PUT", None, None).unwrap();
        assert!(String::from_utf8(bytes)
            .unwrap()
            .ends_with("Content-Length: 0\r\n\r\n"));
    }

    #[test]
    fn partial_responses_need_more() {
        let full = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n";
        for n in 0..full.len() {
            assert_eq!(decode(&full[..n], false, false), Ok(None), "{n}");
        }
        assert_eq!(decode(full, false, false), Ok(Some((200, b"ab".to_vec()))));
        assert_eq!(
            decode(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", false, true),
            Ok(Some((200, vec![])))
        );
        assert!(decode(b"HTTP/2 200\r\n\r\n", false, false).is_err());
        assert!(decode(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            false,
            false
        )
        .is_err());
    }
}
