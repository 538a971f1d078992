//! The admin connection string given on the command line: libpq's
//! `key=value` form or a `postgres://` URL. Only what pgward needs to log in
//! is read; the string itself is never stored or printed.

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use crate::config::{DatabaseConfig, SslMode};

/// Why an admin DSN was refused. Messages never repeat the password.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("--admin-dsn: {0}")]
pub struct DsnError(pub String);

/// The parts of an admin DSN pgward uses.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AdminDsn {
    /// Host name or address (`localhost` when absent).
    pub host: Option<String>,
    /// Port (5432 when absent).
    pub port: Option<u16>,
    /// The login.
    pub user: Option<String>,
    /// Its password.
    pub password: Option<String>,
    /// The database; when absent, the configured database's.
    pub dbname: Option<String>,
    /// TLS mode (libpq's default, `prefer`, when absent).
    pub sslmode: Option<SslMode>,
    /// CA bundle for verify-ca and verify-full.
    pub sslrootcert: Option<PathBuf>,
    /// Seconds to wait for the login.
    pub connect_timeout: Option<u64>,
}

impl std::fmt::Debug for AdminDsn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminDsn")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("dbname", &self.dbname)
            .field("sslmode", &self.sslmode)
            .finish()
    }
}

impl AdminDsn {
    /// Parses either form.
    pub fn parse(text: &str) -> Result<AdminDsn, DsnError> {
        let t = text.trim();
        if t.starts_with("postgres://") || t.starts_with("postgresql://") {
            parse_url(t)
        } else {
            parse_pairs(t)
        }
    }

    /// The configured database `db` reached through this DSN instead of its
    /// own login. A DSN naming another database is refused: provisioning one
    /// database's logins from another's catalog would grant the wrong objects.
    pub fn database(&self, name: &str, db: &DatabaseConfig) -> Result<DatabaseConfig, DsnError> {
        if let Some(d) = &self.dbname {
            if *d != db.dbname {
                return Err(DsnError(format!(
                    "it names database {d:?}, but databases.{name} is {:?}; drop dbname from the DSN or fix it",
                    db.dbname
                )));
            }
        }
        let sslmode = self.sslmode.unwrap_or(SslMode::Prefer);
        if matches!(sslmode, SslMode::VerifyCa | SslMode::VerifyFull) && self.sslrootcert.is_none()
        {
            return Err(DsnError(
                "sslmode verify-ca and verify-full need sslrootcert".into(),
            ));
        }
        Ok(DatabaseConfig {
            host: self.host.clone().unwrap_or_else(|| "localhost".into()),
            port: self.port.unwrap_or(5432),
            dbname: db.dbname.clone(),
            user: self
                .user
                .clone()
                .ok_or_else(|| DsnError("it names no user".into()))?,
            password: self.password.clone(),
            sslmode,
            ca_file: self.sslrootcert.clone(),
            connect_timeout: Duration::from_secs(self.connect_timeout.unwrap_or(10).max(1)),
            logins: Default::default(),
        })
    }

    fn set(&mut self, key: &str, value: String) -> Result<(), DsnError> {
        match key {
            "host" | "hostaddr" => {
                if value.contains(',') {
                    return Err(DsnError("several hosts are not supported".into()));
                }
                if value.starts_with('/') {
                    return Err(DsnError(
                        "Unix-domain sockets are not supported; give a TCP host".into(),
                    ));
                }
                self.host = Some(value)
            }
            "port" => {
                self.port = Some(
                    value
                        .parse()
                        .map_err(|_| DsnError(format!("port {value:?} is not a port number")))?,
                )
            }
            "user" => self.user = Some(value),
            "password" => self.password = Some(value),
            "dbname" => self.dbname = Some(value),
            "sslmode" => {
                self.sslmode = Some(match value.as_str() {
                    "disable" => SslMode::Disable,
                    "prefer" | "allow" => SslMode::Prefer,
                    "require" => SslMode::Require,
                    "verify-ca" => SslMode::VerifyCa,
                    "verify-full" => SslMode::VerifyFull,
                    _ => return Err(DsnError(format!("sslmode {value:?} is not a libpq sslmode"))),
                })
            }
            "sslrootcert" => self.sslrootcert = Some(PathBuf::from(value)),
            "connect_timeout" => {
                self.connect_timeout = Some(value.parse().map_err(|_| {
                    DsnError(format!("connect_timeout {value:?} is not a number of seconds"))
                })?)
            }
            // Harmless for an administrative session.
            "application_name" | "options" | "client_encoding" => {}
            _ => {
                return Err(DsnError(format!(
                    "unsupported key {key:?}; use host, port, user, password, dbname, sslmode, sslrootcert, connect_timeout"
                )))
            }
        }
        Ok(())
    }
}

/// `key=value` pairs separated by spaces; values may be single-quoted, with
/// `\'` and `\\` escapes, as libpq reads them.
fn parse_pairs(text: &str) -> Result<AdminDsn, DsnError> {
    let mut dsn = AdminDsn::default();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(DsnError(format!("{key:?} has no '=value'")));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => return Err(DsnError(format!("the value of {key} ends in '\\'"))),
                    },
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => {
                        return Err(DsnError(format!(
                            "the value of {key} lacks its closing quote"
                        )))
                    }
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        value.push(n);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        dsn.set(&key, value)?;
    }
    Ok(dsn)
}

/// `postgres://user:password@host:port/dbname?key=value&...`.
fn parse_url(text: &str) -> Result<AdminDsn, DsnError> {
    let mut dsn = AdminDsn::default();
    let rest = text.split_once("://").map(|(_, r)| r).unwrap_or_default();
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (rest, None),
    };
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    if let Some(u) = userinfo {
        let (user, password) = match u.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (u, None),
        };
        if !user.is_empty() {
            dsn.set("user", decode(user)?)?;
        }
        if let Some(p) = password {
            dsn.set("password", decode(p)?)?;
        }
    }
    if !hostport.is_empty() {
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| DsnError("an IPv6 host lacks its ']'".into()))?;
            (h, after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if !host.is_empty() {
            dsn.set("host", decode(host)?)?;
        }
        if let Some(p) = port.filter(|p| !p.is_empty()) {
            dsn.set("port", p.to_string())?;
        }
    }
    if let Some(p) = path.filter(|p| !p.is_empty()) {
        dsn.set("dbname", decode(p)?)?;
    }
    for pair in query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| DsnError(format!("URL parameter {pair:?} has no '='")))?;
        dsn.set(&decode(k)?, decode(v)?)?;
    }
    Ok(dsn)
}

/// Percent-decoding of one URL part.
fn decode(part: &str) -> Result<String, DsnError> {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| DsnError("a URL holds a bad %-escape".into()))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| DsnError("a URL part is not UTF-8 once decoded".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_pairs_as_libpq_reads_them() {
        let d = AdminDsn::parse(
            "host=db.example port = 6543 user=admin password='it''s \\'q\\' \\\\' dbname=shop sslmode=require",
        );
        // libpq has no '' escape inside quotes: the value ends at the second quote.
        assert!(d.is_err());
        let d = AdminDsn::parse(
            "host=db.example port = 6543 user=admin password='s p\\'q\\\\' dbname=shop sslmode=verify-full sslrootcert=/ca.crt",
        )
        .unwrap();
        assert_eq!(d.host.as_deref(), Some("db.example"));
        assert_eq!(d.port, Some(6543));
        assert_eq!(d.user.as_deref(), Some("admin"));
        assert_eq!(d.password.as_deref(), Some("s p'q\\"));
        assert_eq!(d.dbname.as_deref(), Some("shop"));
        assert_eq!(d.sslmode, Some(SslMode::VerifyFull));
        assert_eq!(d.sslrootcert, Some(PathBuf::from("/ca.crt")));
        assert!(!format!("{d:?}").contains("s p"));
    }

    #[test]
    fn urls_with_escapes_and_parameters() {
        let d = AdminDsn::parse(
            "postgresql://ad%40min:p%3Ass@[::1]:5433/shop?sslmode=disable&connect_timeout=3",
        )
        .unwrap();
        assert_eq!(d.user.as_deref(), Some("ad@min"));
        assert_eq!(d.password.as_deref(), Some("p:ss"));
        assert_eq!(d.host.as_deref(), Some("::1"));
        assert_eq!(d.port, Some(5433));
        assert_eq!(d.dbname.as_deref(), Some("shop"));
        assert_eq!(d.sslmode, Some(SslMode::Disable));
        assert_eq!(d.connect_timeout, Some(3));
        let d = AdminDsn::parse("postgres://admin@localhost").unwrap();
        assert_eq!(
            (d.user.as_deref(), d.port, d.dbname),
            (Some("admin"), None, None)
        );
    }

    #[test]
    fn refusals_name_the_problem_not_the_password() {
        for (dsn, needle) in [
            ("host=a port=x", "port"),
            ("host=a,b", "several hosts"),
            ("host=/tmp user=x", "Unix-domain"),
            ("user=x password='secret", "closing quote"),
            ("user=x gssencmode=disable", "unsupported key"),
            ("user", "no '=value'"),
            ("postgres://x:secret@h/%zz", "%-escape"),
            ("sslmode=sometimes", "sslmode"),
        ] {
            let e = AdminDsn::parse(dsn).unwrap_err().to_string();
            assert!(e.contains(needle), "{dsn}: {e}");
            assert!(!e.contains("secret"), "{dsn}: {e}");
        }
    }

    #[test]
    fn the_dsn_reaches_the_configured_database_only() {
        let db = DatabaseConfig {
            host: "h".into(),
            port: 5432,
            dbname: "shop".into(),
            user: "svc".into(),
            password: None,
            sslmode: SslMode::Disable,
            ca_file: None,
            connect_timeout: Duration::from_secs(10),
            logins: Default::default(),
        };
        let d = AdminDsn::parse("host=127.0.0.1 user=admin password=pw").unwrap();
        let c = d.database("shop", &db).unwrap();
        assert_eq!(
            (c.host.as_str(), c.user.as_str(), c.dbname.as_str()),
            ("127.0.0.1", "admin", "shop")
        );
        assert_eq!(c.sslmode, SslMode::Prefer);
        let other = AdminDsn::parse("user=admin dbname=other").unwrap();
        assert!(other.database("shop", &db).unwrap_err().0.contains("other"));
        assert!(AdminDsn::parse("host=h")
            .unwrap()
            .database("shop", &db)
            .is_err());
        assert!(AdminDsn::parse("user=a sslmode=verify-ca")
            .unwrap()
            .database("shop", &db)
            .is_err());
    }
}
