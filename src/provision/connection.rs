//! The provisioning session: one upstream connection (the admin DSN's login
//! or the database's own) and simple queries over it. The only I/O of
//! `provision`; everything it returns is rows of text.

use bytes::BytesMut;

use crate::config::DatabaseConfig;
use crate::proxy::buffer::write_all;
use crate::proxy::tls;
use crate::proxy::upstream::{self, Upstream};
use crate::wire::build;

/// What a query returned.
pub use crate::proxy::upstream::Reply;

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
        upstream::simple_query(&mut self.up.conn, sql).await
    }

    /// Ends the session politely.
    pub async fn close(mut self) {
        let mut out = BytesMut::new();
        build::terminate(&mut out);
        let _ = write_all(self.up.conn.io_mut(), out.freeze()).await;
    }
}
