//! A raw protocol client over a blocking socket, for sending what real clients
//! never would: malformed, truncated and oversized frames.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use pgward::auth::scram_client::ScramClient;

/// A message as read off the wire.
#[derive(Debug, Clone)]
pub struct Msg {
    pub tag: u8,
    pub body: Vec<u8>,
}

impl Msg {
    /// The SQLSTATE of an ErrorResponse or NoticeResponse.
    pub fn code(&self) -> Option<String> {
        self.field(b'C')
    }

    /// One field of an ErrorResponse or NoticeResponse.
    pub fn field(&self, f: u8) -> Option<String> {
        let mut rest = &self.body[..];
        while let Some((&t, r)) = rest.split_first() {
            if t == 0 {
                break;
            }
            let end = r.iter().position(|&b| b == 0)?;
            if t == f {
                return Some(String::from_utf8_lossy(&r[..end]).into_owned());
            }
            rest = &r[end + 1..];
        }
        None
    }
}

/// A raw connection.
pub struct Raw {
    pub s: TcpStream,
    /// The process id of BackendKeyData, once logged in.
    pub backend_pid: Option<u32>,
}

/// A tagged frame.
pub fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// Parse of `sql` as statement `name`, without parameter types.
pub fn parse(name: &str, sql: &str) -> Vec<u8> {
    let mut body = cstr(name);
    body.extend(cstr(sql));
    body.extend([0, 0]);
    frame(b'P', &body)
}

/// Bind of statement `statement` to `portal`, no parameters, text results.
pub fn bind(portal: &str, statement: &str) -> Vec<u8> {
    let mut body = cstr(portal);
    body.extend(cstr(statement));
    body.extend([0, 0, 0, 0, 0, 0]);
    frame(b'B', &body)
}

/// Describe of a statement (`b'S'`) or portal (`b'P'`).
pub fn describe(kind: u8, name: &str) -> Vec<u8> {
    let mut body = vec![kind];
    body.extend(cstr(name));
    frame(b'D', &body)
}

/// Execute of `portal`, at most `max_rows` rows (0: all).
pub fn execute(portal: &str, max_rows: i32) -> Vec<u8> {
    let mut body = cstr(portal);
    body.extend(max_rows.to_be_bytes());
    frame(b'E', &body)
}

/// Sync.
pub fn sync() -> Vec<u8> {
    frame(b'S', &[])
}

/// A simple Query.
pub fn query(sql: &str) -> Vec<u8> {
    frame(b'Q', &cstr(sql))
}

/// Close of a statement (`b'S'`) or portal (`b'P'`).
pub fn close(kind: u8, name: &str) -> Vec<u8> {
    let mut body = vec![kind];
    body.extend(cstr(name));
    frame(b'C', &body)
}

/// The tags of messages, as a string (`"TDCZ"`).
pub fn tags(reply: &[Msg]) -> String {
    reply.iter().map(|m| m.tag as char).collect()
}

/// A startup packet with the given parameters.
pub fn startup_packet(params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = 196_608u32.to_be_bytes().to_vec();
    for (k, v) in params {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut p = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    p.extend_from_slice(&body);
    p
}

impl Raw {
    /// Connects to a local port.
    pub fn connect(port: u16) -> Raw {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Raw {
            s,
            backend_pid: None,
        }
    }

    /// Writes bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).unwrap();
    }

    /// Reads one message, or None when the peer closed.
    pub fn recv(&mut self) -> Option<Msg> {
        let mut head = [0u8; 5];
        self.s.read_exact(&mut head).ok()?;
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut body = vec![0u8; len - 4];
        self.s.read_exact(&mut body).ok()?;
        Some(Msg { tag: head[0], body })
    }

    /// Reads messages until one with `tag`, returning it.
    pub fn recv_until(&mut self, tag: u8) -> Msg {
        loop {
            let m = self
                .recv()
                .unwrap_or_else(|| panic!("closed before {:?}", tag as char));
            if m.tag == tag {
                return m;
            }
        }
    }

    /// True when the peer closes the connection (after any pending messages).
    pub fn closed(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        loop {
            match self.s.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }

    /// Logs in with SCRAM and reads up to ReadyForQuery.
    pub fn login(port: u16, user: &str, password: &str, db: &str) -> Raw {
        Raw::login_with(port, user, password, &[("database", db)])
            .unwrap_or_else(|e| panic!("login failed: {e:?} {:?}", e.field(b'M')))
    }

    /// Logs in with SCRAM sending `params` after `user`, and reads up to
    /// ReadyForQuery; an ErrorResponse after authentication is returned as
    /// the error.
    pub fn login_with(
        port: u16,
        user: &str,
        password: &str,
        params: &[(&str, &str)],
    ) -> Result<Raw, Msg> {
        let mut r = Raw::connect(port);
        let mut all = vec![("user", user)];
        all.extend_from_slice(params);
        r.send(&startup_packet(&all));
        let m = r.recv().expect("auth request");
        assert_eq!(m.tag, b'R', "expected AuthenticationSASL, got {m:?}");
        let mut client = ScramClient::new(password, "rawclientnonce");
        let first = client.client_first();
        let mut body = b"SCRAM-SHA-256\0".to_vec();
        body.extend_from_slice(&(first.len() as i32).to_be_bytes());
        body.extend_from_slice(first.as_bytes());
        r.send(&frame(b'p', &body));
        let m = r.recv().expect("SASLContinue");
        let fin = client.handle_server_first(&m.body[4..]).unwrap();
        r.send(&frame(b'p', fin.as_bytes()));
        let m = r.recv().expect("SASLFinal");
        assert_eq!(m.tag, b'R', "login failed: {m:?} {:?}", m.field(b'M'));
        client.verify_server_final(&m.body[4..]).unwrap();
        loop {
            let m = r.recv().expect("a message after authentication");
            match m.tag {
                b'K' if m.body.len() >= 4 => {
                    r.backend_pid = Some(u32::from_be_bytes([
                        m.body[0], m.body[1], m.body[2], m.body[3],
                    ]))
                }
                b'Z' => return Ok(r),
                b'E' => return Err(m),
                _ => {}
            }
        }
    }

    /// Sends extended-protocol messages (ending with a Sync) and collects
    /// the replies through ReadyForQuery.
    pub fn extended(&mut self, messages: &[Vec<u8>]) -> Vec<Msg> {
        self.send(&messages.concat());
        self.replies()
    }

    /// Collects messages through ReadyForQuery.
    pub fn replies(&mut self) -> Vec<Msg> {
        let mut out = Vec::new();
        loop {
            let m = self.recv().expect("a reply");
            let done = m.tag == b'Z';
            out.push(m);
            if done {
                return out;
            }
        }
    }

    /// Sends a simple query and collects messages through ReadyForQuery.
    pub fn query(&mut self, sql: &str) -> Vec<Msg> {
        self.send(&query(sql));
        self.replies()
    }
}

/// The text of every DataRow field of a reply, and the first error message.
pub fn rows(reply: &[Msg]) -> (Vec<String>, Option<String>) {
    let mut out = Vec::new();
    let mut err = None;
    for m in reply {
        match m.tag {
            b'D' => {
                let n = u16::from_be_bytes([m.body[0], m.body[1]]) as usize;
                let mut at = 2;
                for _ in 0..n {
                    let len = i32::from_be_bytes(m.body[at..at + 4].try_into().unwrap());
                    at += 4;
                    if len >= 0 {
                        let len = len as usize;
                        out.push(String::from_utf8_lossy(&m.body[at..at + len]).into_owned());
                        at += len;
                    }
                }
            }
            b'E' if err.is_none() => err = m.field(b'M'),
            _ => {}
        }
    }
    (out, err)
}
