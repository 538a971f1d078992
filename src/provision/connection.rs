//! The provisioning session: one upstream connection (the admin DSN's login
//! or the database's own) and simple queries over it. The only I/O of
//! `provision`; everything it returns is rows of text.

use bytes::BytesMut;

use super::catalog::Row;
use crate::config::DatabaseConfig;
use crate::proxy::buffer::{write_all, ReadError};
use crate::proxy::tls;
use crate::proxy::upstream::{self, Upstream};
use crate::wire::backend::DataRow;
use crate::wire::build;
use crate::wire::error_response::ErrorFields;

/// What a query returned.
#[derive(Debug, Default)]
pub struct Reply {
    /// The rows of every statement, in order.
    pub rows: Vec<Row>,
    /// Notices and warnings the server sent (`WARNING: ...`).
    pub notices: Vec<String>,
}

/// A logged-in session.
pub struct Connection {
    up: Upstream,
}

impl Connection {
    /// Connects and logs in. The session's search_path is empty, so names
    /// the server prints come back schema-qualified.
    pub async fn open(db: &DatabaseConfig) -> Result<Connection, String> {
        let tls = tls::client_config(db.sslmode, db.ca_file.as_deref())?;
        let params = vec![
            ("search_path".to_string(), String::new()),
            (
                "application_name".to_string(),
                "pgward provision".to_string(),
            ),
        ];
        let up = upstream::connect(db, tls.as_ref(), &params, 64 * 1024)
            .await
            .map_err(|e| {
                format!(
                    "cannot log in to {}:{} as {}: {e}",
                    db.host, db.port, db.user
                )
            })?;
        Ok(Connection { up })
    }

    /// Runs `sql` by the simple protocol (several statements run as one
    /// implicit transaction unless they say otherwise). An error from the
    /// server ends the query: its SQLSTATE and message are returned.
    pub async fn query(&mut self, sql: &str) -> Result<Reply, String> {
        let conn = &mut self.up.conn;
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
                    let row = DataRow::parse(body).map_err(|e| e.to_string())?;
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

    /// Ends the session politely.
    pub async fn close(mut self) {
        let mut out = BytesMut::new();
        build::terminate(&mut out);
        let _ = write_all(self.up.conn.io_mut(), out.freeze()).await;
    }
}
