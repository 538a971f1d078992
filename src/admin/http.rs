//! The admin API's HTTP/1.1: a strict parser for one request held in a buffer
//! and a writer for one reply. No I/O here; `server` owns the sockets.
//!
//! Strict means anything a proxy in front of us might read differently is
//! refused: obsolete line folding, bare LF, duplicate or malformed
//! Content-Length, Transfer-Encoding, non-ASCII targets or header values.

use memchr::memmem;

/// Size limits for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Request line and headers, including the blank line that ends them.
    pub max_head: usize,
    /// Body, as announced by Content-Length.
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: 16 * 1024,
            max_body: 64 * 1024,
        }
    }
}

/// One parsed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The target before `?`, not decoded.
    pub path: String,
    /// The target after `?`, not decoded; empty when there is none.
    pub query: String,
    /// Headers in arrival order, names as sent, values without surrounding blanks.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The first header named `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The token of `Authorization: Bearer <token>`; `None` when the header is
    /// missing, repeated, of another scheme or not a well-formed token.
    pub fn bearer(&self) -> Option<&str> {
        let mut auth = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("authorization"));
        let (_, value) = auth.next()?;
        if auth.next().is_some() {
            return None;
        }
        let (scheme, token) = value.split_once(' ')?;
        let token = token.trim_start_matches(' ');
        // RFC 6750 b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
        let chars = token.trim_end_matches('=');
        let b64 = |b: u8| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
        (scheme.eq_ignore_ascii_case("bearer") && !chars.is_empty() && chars.bytes().all(b64))
            .then_some(token)
    }
}

/// What a buffer holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A whole request, and how many bytes of the buffer it took.
    Complete(Request, usize),
    /// A valid prefix of a request: read more.
    Need,
    /// Not a request we accept: the status to reply with, and why.
    Bad(u16, String),
}

/// Most headers one request may carry.
const MAX_HEADERS: usize = 100;

type Reject = (u16, String);

fn bad(status: u16, why: impl Into<String>) -> Reject {
    (status, why.into())
}

/// Parses the request at the start of `buf`.
pub fn parse_request(buf: &[u8], limits: &Limits) -> Parsed {
    match parse(buf, limits) {
        Ok(Some((req, used))) => Parsed::Complete(req, used),
        Ok(None) => Parsed::Need,
        Err((status, why)) => Parsed::Bad(status, why),
    }
}

fn parse(buf: &[u8], limits: &Limits) -> Result<Option<(Request, usize)>, Reject> {
    let window = &buf[..buf.len().min(limits.max_head)];
    if let Some(lf) = memchr::memchr(b'\n', window) {
        request_line(line_before(window, lf)?)?;
    }
    let Some(end) = memmem::find(window, b"\r\n\r\n") else {
        if let Some(lf) =
            memchr::memchr_iter(b'\n', window).find(|&i| i == 0 || window[i - 1] != b'\r')
        {
            return Err(bad(
                400,
                format!("bare LF at byte {lf}; lines must end in CRLF"),
            ));
        }
        if buf.len() > limits.max_head {
            return Err(too_long_head(limits));
        }
        return Ok(None);
    };
    let head_len = end + 4;
    // Up to the CR that ends the last header line, so each line ends in CR.
    let mut lines = buf[..end + 1].split(|&b| b == b'\n');
    let first = lines.next().unwrap_or_default();
    let (method, target, http11) = request_line(&first[..first.len().saturating_sub(1)])?;
    let mut headers = Vec::new();
    for line in lines {
        let Some(line) = line.strip_suffix(b"\r") else {
            return Err(bad(400, "bare LF in the headers; lines must end in CRLF"));
        };
        if headers.len() == MAX_HEADERS {
            return Err(bad(431, format!("more than {MAX_HEADERS} headers")));
        }
        headers.push(header_line(line)?);
    }
    let body_len = framing(&headers, http11, limits)?;
    if buf.len() < head_len + body_len {
        return Ok(None);
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let request = Request {
        method: method.to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        headers,
        body: buf[head_len..head_len + body_len].to_vec(),
    };
    Ok(Some((request, head_len + body_len)))
}

fn too_long_head(limits: &Limits) -> Reject {
    bad(
        431,
        format!("request head is larger than {} bytes", limits.max_head),
    )
}

/// The line ending at the LF at `lf`, which must follow a CR.
fn line_before(buf: &[u8], lf: usize) -> Result<&[u8], Reject> {
    match lf.checked_sub(1).map(|cr| buf[cr]) {
        Some(b'\r') => Ok(&buf[..lf - 1]),
        _ => Err(bad(400, "the request line must end in CRLF")),
    }
}

/// `METHOD SP origin-form SP HTTP/1.x`; gives the method, the target and
/// whether the version is 1.1.
fn request_line(line: &[u8]) -> Result<(&str, &str, bool), Reject> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad(
            400,
            "the request line is not `METHOD /target HTTP/1.1`",
        ));
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(bad(400, "the method is not a token"));
    }
    if !target.iter().all(|&b| (0x21..0x7f).contains(&b)) {
        return Err(bad(
            400,
            "the request target must be printable ASCII (percent-encode the rest)",
        ));
    }
    if !target.starts_with(b"/") || target.contains(&b'#') {
        return Err(bad(
            400,
            "the request target must be a path such as /metrics, without a fragment",
        ));
    }
    let http11 = match version {
        b"HTTP/1.1" => true,
        b"HTTP/1.0" => false,
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            return Err(bad(505, "only HTTP/1.0 and HTTP/1.1 are supported"));
        }
        _ => return Err(bad(400, "the request line does not end in an HTTP version")),
    };
    Ok((ascii(method), ascii(target), http11))
}

/// Views bytes already checked to be ASCII as text.
fn ascii(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or_default()
}

/// `name: value`, with the name a token and the value printable ASCII.
fn header_line(line: &[u8]) -> Result<(String, String), Reject> {
    if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
        return Err(bad(400, "obsolete line folding is not accepted"));
    }
    let Some(colon) = memchr::memchr(b':', line) else {
        return Err(bad(400, "a header line has no colon"));
    };
    let name = &line[..colon];
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(bad(
            400,
            "a header name is not a token (no blanks before the colon)",
        ));
    }
    let name = ascii(name);
    let value = trim_blanks(&line[colon + 1..]);
    if !value
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
    {
        return Err(bad(
            400,
            format!("header {name} has a control or non-ASCII byte"),
        ));
    }
    Ok((name.to_owned(), ascii(value).to_owned()))
}

/// Without leading and trailing spaces and tabs (RFC 9110 OWS).
fn trim_blanks(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

/// Checks Host and the body framing headers; gives the body length.
fn framing(headers: &[(String, String)], http11: bool, limits: &Limits) -> Result<usize, Reject> {
    let named = |name: &'static str| {
        headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
    };
    match named("host").count() {
        0 if http11 => return Err(bad(400, "an HTTP/1.1 request needs a Host header")),
        0 | 1 => {}
        _ => return Err(bad(400, "more than one Host header")),
    }
    let mut lengths = named("content-length").map(|(_, v)| v.as_str());
    let length = lengths.next();
    if lengths.next().is_some() {
        return Err(bad(400, "more than one Content-Length header"));
    }
    if named("transfer-encoding").next().is_some() {
        return Err(match length {
            Some(_) => bad(400, "both Transfer-Encoding and Content-Length"),
            None => bad(
                501,
                "Transfer-Encoding is not supported; send a Content-Length",
            ),
        });
    }
    let Some(length) = length else { return Ok(0) };
    if length.is_empty() || !length.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(
            400,
            format!("Content-Length {length:?} is not a number"),
        ));
    }
    match length.parse::<usize>() {
        Ok(n) if n <= limits.max_body => Ok(n),
        _ => Err(bad(
            413,
            format!("the body is larger than {} bytes", limits.max_body),
        )),
    }
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The non-empty `/`-separated parts of a path: `/a//b/` gives `["a", "b"]`.
pub fn path_segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

/// One reply; the connection closes after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Headers beyond the ones `to_bytes` always writes.
    pub headers: Vec<(&'static str, String)>,
}

impl Response {
    /// A JSON reply.
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Self::with_body(status, "application/json", value.to_string().into_bytes())
    }

    /// A plain-text reply.
    pub fn text(status: u16, body: String) -> Self {
        Self::with_body(status, "text/plain; charset=utf-8", body.into_bytes())
    }

    /// A 200 reply in the Prometheus text exposition format.
    pub fn prometheus(body: String) -> Self {
        Self::with_body(
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            body.into_bytes(),
        )
    }

    /// `{"error": why}` with `status`.
    pub fn error(status: u16, why: &str) -> Self {
        Self::json(status, &serde_json::json!({ "error": why }))
    }

    /// Adds a header, such as `WWW-Authenticate: Bearer`.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn with_body(status: u16, content_type: &'static str, body: Vec<u8>) -> Self {
        Response {
            status,
            content_type,
            body,
            headers: Vec::new(),
        }
    }

    /// The reply as sent: status line, headers, blank line, body. A status
    /// outside 100..=599 is sent as 500, and control bytes in header values
    /// as spaces, so a reply can never split into two.
    pub fn to_bytes(&self) -> Vec<u8> {
        let status = if (100..=599).contains(&self.status) {
            self.status
        } else {
            500
        };
        let mut head = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n",
            reason(status),
            self.content_type,
            self.body.len()
        );
        for (name, value) in &self.headers {
            let value: String = value
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            head += &format!("{name}: {value}\r\n");
        }
        head += "\r\n";
        let mut out = head.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

/// The reason phrase for `status`.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => match status / 100 {
            1 => "Informational",
            2 => "Success",
            3 => "Redirection",
            4 => "Client Error",
            _ => "Server Error",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Parsed {
        parse_request(raw.as_bytes(), &Limits::default())
    }

    #[test]
    fn complete_request_with_body() {
        let raw = "POST /approvals/7/approve?by=ann HTTP/1.1\r\nHost: x\r\nauthorization: bearer abc.DEF-_~+/==\r\nContent-Length: 4\r\n\r\n{\"a\"}extra";
        let Parsed::Complete(req, used) = parse(raw) else {
            panic!("{:?}", parse(raw))
        };
        assert_eq!(used, raw.len() - "}extra".len());
        assert_eq!(
            (req.method.as_str(), req.path.as_str(), req.query.as_str()),
            ("POST", "/approvals/7/approve", "by=ann")
        );
        assert_eq!(req.body, b"{\"a\"");
        assert_eq!(req.header("HOST"), Some("x"));
        assert_eq!(req.header("content-length"), Some("4"));
        assert_eq!(req.bearer(), Some("abc.DEF-_~+/=="));
        assert_eq!(path_segments(&req.path), ["approvals", "7", "approve"]);
    }

    #[test]
    fn http10_needs_no_host_and_values_are_trimmed() {
        let Parsed::Complete(req, _) = parse("GET /metrics HTTP/1.0\r\nX-A: \t v w \t\r\n\r\n")
        else {
            panic!()
        };
        assert_eq!(req.headers, [("X-A".to_owned(), "v w".to_owned())]);
        assert_eq!((req.query.as_str(), req.body.len()), ("", 0));
    }

    #[test]
    fn every_prefix_of_a_valid_request_needs_more() {
        let raw = "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";
        for n in 0..raw.len() {
            assert_eq!(parse(&raw[..n]), Parsed::Need, "{:?}", &raw[..n]);
        }
        assert!(matches!(parse(raw), Parsed::Complete(_, n) if n == raw.len()));
    }

    #[test]
    fn refusals() {
        let host = "Host: x\r\n";
        for (raw, status) in [
            ("GET /a HTTP/1.1\r\n\r\n".to_owned(), 400),
            (format!("GET /a HTTP/1.1\r\n{host}{host}\r\n"), 400),
            ("GET /a HTTP/2.0\r\n".to_owned(), 505),
            ("GET /a HTTP/1.1 \r\n".to_owned(), 400),
            ("GET  /a HTTP/1.1\r\n".to_owned(), 400),
            ("GET /a HTTX/1.1\r\n".to_owned(), 400),
            ("GET /a HTTP/1.1\n".to_owned(), 400),
            ("G(T /a HTTP/1.1\r\n".to_owned(), 400),
            ("GET a HTTP/1.1\r\n".to_owned(), 400),
            ("GET http://h/a HTTP/1.1\r\n".to_owned(), 400),
            ("GET /a#f HTTP/1.1\r\n".to_owned(), 400),
            ("GET /caf\u{e9} HTTP/1.1\r\n".to_owned(), 400),
            (format!("GET /a HTTP/1.1\r\n{host}X: a\nY: b\r\n\r\n"), 400),
            (format!("GET /a HTTP/1.1\r\n{host}X: a\r\n b\r\n\r\n"), 400),
            (format!("GET /a HTTP/1.1\r\n{host}X : a\r\n\r\n"), 400),
            (format!("GET /a HTTP/1.1\r\n{host}: a\r\n\r\n"), 400),
            (format!("GET /a HTTP/1.1\r\n{host}X\r\n\r\n"), 400),
            (format!("GET /a HTTP/1.1\r\n{host}X: a\rb\r\n\r\n"), 400),
            (format!("GET /a HTTP/1.1\r\n{host}X: a\x0c\r\n\r\n"), 400),
            (format!("GET /a HTTP/1.1\r\n{host}X: \0\r\n\r\n"), 400),
            (format!("GET /a HTTP/1.1\r\n{host}X: caf\u{e9}\r\n\r\n"), 400),
            (format!("POST /a HTTP/1.1\r\n{host}Content-Length: 1\r\nContent-Length: 1\r\n\r\n"), 400),
            (format!("POST /a HTTP/1.1\r\n{host}Content-Length: -1\r\n\r\n"), 400),
            (format!("POST /a HTTP/1.1\r\n{host}Content-Length: 1,1\r\n\r\n"), 400),
            (format!("POST /a HTTP/1.1\r\n{host}Content-Length:\r\n\r\n"), 400),
            (format!("POST /a HTTP/1.1\r\n{host}Content-Length: 65537\r\n\r\n"), 413),
            (format!("POST /a HTTP/1.1\r\n{host}Content-Length: 99999999999999999999999999\r\n\r\n"), 413),
            (format!("POST /a HTTP/1.1\r\n{host}Transfer-Encoding: chunked\r\n\r\n"), 501),
            (format!("POST /a HTTP/1.1\r\n{host}Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"), 400),
            (format!("GET /a HTTP/1.1\r\n{host}{}\r\n", "X: y\r\n".repeat(101)), 431),
        ] {
            assert!(matches!(parse(&raw), Parsed::Bad(s, _) if s == status), "{raw:?} gave {:?}", parse(&raw));
        }
    }

    #[test]
    fn mutated_requests_never_panic() {
        let raw = b"POST /a/b?c=d HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nContent-Length: 5\r\n\r\nhello";
        let limits = Limits {
            max_head: 96,
            max_body: 8,
        };
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let mut buf = raw.to_vec();
            for _ in 0..=next() % 4 {
                let at = next() as usize % buf.len();
                match next() % 3 {
                    0 => buf[at] = next() as u8,
                    1 => buf.insert(at, b"\r\n :\t?/0123456789"[next() as usize % 17]),
                    _ => buf.truncate(at.max(1)),
                }
            }
            if let Parsed::Complete(req, used) = parse_request(&buf, &limits) {
                assert!(used <= buf.len() && req.body.len() <= limits.max_body);
                assert!(req.path.starts_with('/'));
            }
        }
    }

    #[test]
    fn head_limit() {
        let limits = Limits {
            max_head: 64,
            max_body: 8,
        };
        let head = format!(
            "GET /a HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
            "y".repeat(31)
        );
        assert_eq!(head.len(), 64);
        assert!(matches!(
            parse_request(head.as_bytes(), &limits),
            Parsed::Complete(..)
        ));
        let long = head.replacen("yy", "yyy", 1);
        assert!(matches!(
            parse_request(long.as_bytes(), &limits),
            Parsed::Bad(431, _)
        ));
        // An unfinished head says so as soon as it passes the limit.
        assert_eq!(parse_request(&long.as_bytes()[..64], &limits), Parsed::Need);
        assert!(matches!(
            parse_request(&long.as_bytes()[..65], &limits),
            Parsed::Bad(431, _)
        ));
    }

    #[test]
    fn bad_request_line_is_refused_before_the_head_ends() {
        assert!(matches!(
            parse("GET /a HTTP/3.0\r\nHost: x\r\n"),
            Parsed::Bad(505, _)
        ));
    }

    #[test]
    fn bearer_tokens() {
        let with = |values: &[&str]| Request {
            method: "GET".into(),
            path: "/".into(),
            query: String::new(),
            headers: values
                .iter()
                .map(|v| ("Authorization".to_owned(), v.to_string()))
                .collect(),
            body: Vec::new(),
        };
        assert_eq!(with(&["Bearer t0k=="]).bearer(), Some("t0k=="));
        assert_eq!(with(&["BEARER  t"]).bearer(), Some("t"));
        for bad in [
            &[][..],
            &["Basic dXNlcg=="],
            &["Bearer"],
            &["Bearer "],
            &["Bearer a b"],
            &["Bearer =="],
            &["Bearer a=b"],
            &["Bearer a", "Bearer a"],
        ] {
            assert_eq!(with(bad).bearer(), None, "{bad:?}");
        }
    }

    #[test]
    fn segments() {
        assert_eq!(path_segments("/"), Vec::<&str>::new());
        assert_eq!(path_segments("/a//b/"), ["a", "b"]);
    }

    #[test]
    fn response_bytes() {
        let r = Response::error(401, "no token").with_header("WWW-Authenticate", "Bearer");
        let text = String::from_utf8(r.to_bytes()).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: 20\r\nConnection: close\r\nCache-Control: no-store\r\nWWW-Authenticate: Bearer\r\n\r\n{\"error\":\"no token\"}"
        );
        let p = Response::prometheus("a 1\n".into());
        assert!(String::from_utf8(p.to_bytes()).unwrap().starts_with(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: 4\r\n"
        ));
    }

    #[test]
    fn response_cannot_be_split_or_malformed() {
        let r = Response::text(42, "x".into()).with_header("X-Echo", "a\r\nSet-Cookie: b");
        let bytes = r.to_bytes();
        let parsed = String::from_utf8(bytes).unwrap();
        assert!(parsed.starts_with("HTTP/1.1 500 Internal Server Error\r\n"));
        assert!(parsed.contains("X-Echo: a  Set-Cookie: b\r\n"));
        assert_eq!(parsed.matches("\r\n").count(), 7);
    }
}
