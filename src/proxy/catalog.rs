//! Catalog snapshots per worker and database: fetched over a short-lived
//! upstream connection of pgward's own, shared by the worker's sessions,
//! refreshed when older than `CATALOG_MAX_AGE` or after DDL passed through
//! pgward. One fetch at a time per database; sessions that need a snapshot
//! meanwhile wait for that fetch.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_util::future::{FutureExt, Shared};

use super::buffer::{write_all, ReadError};
use super::upstream;
use crate::config::DatabaseConfig;
use crate::policy::catalog::Catalog;
use crate::wire::backend::DataRow;
use crate::wire::build;
use crate::wire::error_response::ErrorFields;

/// A snapshot older than this is fetched again before the next decision.
pub const CATALOG_MAX_AGE: Duration = Duration::from_secs(30);

const CATALOG_SQL: &str = "SELECT n.nspname, c.relname, c.relkind, \
     CASE WHEN c.relkind IN ('v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
          THEN pg_catalog.pg_get_viewdef(c.oid) END \
     FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND n.nspname <> 'pg_toast' \
       AND n.nspname NOT LIKE 'pg\\_temp\\_%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%'";

const ATTRIBUTES_SQL: &str = "SELECT c.oid, n.nspname, c.relname, a.attnum, a.attname \
     FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f') \
       AND n.nspname <> 'pg_toast'";

const INHERITS_SQL: &str = "SELECT cn.nspname, c.relname, pn.nspname, p.relname \
     FROM pg_catalog.pg_inherits i \
     JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid \
     JOIN pg_catalog.pg_namespace cn ON cn.oid = c.relnamespace \
     JOIN pg_catalog.pg_class p ON p.oid = i.inhparent \
     JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace";

const SCHEMAS_SQL: &str = "SELECT nspname FROM pg_catalog.pg_namespace";

type Fetch = Shared<Pin<Box<dyn Future<Output = Result<Rc<Catalog>, String>>>>>;

#[derive(Default)]
struct Entry {
    snapshot: Option<(Rc<Catalog>, Instant)>,
    stale: bool,
    fetching: Option<Fetch>,
}

/// One worker's catalog snapshots, by database name.
#[derive(Default)]
pub struct CatalogCache {
    entries: RefCell<HashMap<String, Entry>>,
    versions: Cell<u64>,
}

impl CatalogCache {
    /// The current snapshot for a database, fetching one when there is none,
    /// it is too old, or it was marked stale.
    pub async fn get(
        &self,
        name: &str,
        db: &DatabaseConfig,
        tls: Option<&Arc<rustls::ClientConfig>>,
    ) -> Result<Rc<Catalog>, String> {
        // The common case, once per batch of client messages: a fresh snapshot.
        if let Some(e) = self.entries.borrow().get(name) {
            if let Some((snap, at)) = &e.snapshot {
                if !e.stale && at.elapsed() < CATALOG_MAX_AGE {
                    return Ok(snap.clone());
                }
            }
        }
        let fetch = {
            let mut entries = self.entries.borrow_mut();
            let e = entries.entry(name.to_string()).or_default();
            match &e.fetching {
                Some(f) => f.clone(),
                None => {
                    let version = self.versions.get() + 1;
                    self.versions.set(version);
                    let db = db.clone();
                    let tls = tls.cloned();
                    let fut: Pin<Box<dyn Future<Output = Result<Rc<Catalog>, String>>>> = Box::pin(
                        async move { fetch(&db, tls.as_ref(), version).await.map(Rc::new) },
                    );
                    let shared = fut.shared();
                    e.fetching = Some(shared.clone());
                    e.stale = false;
                    shared
                }
            }
        };
        let result = fetch.await;
        let mut entries = self.entries.borrow_mut();
        let e = entries.entry(name.to_string()).or_default();
        e.fetching = None;
        match &result {
            Ok(snap) => {
                if e.snapshot
                    .as_ref()
                    .is_none_or(|(s, _)| s.version < snap.version)
                {
                    e.snapshot = Some((snap.clone(), Instant::now()));
                }
            }
            Err(err) => {
                tracing::warn!(database = name, error = %err, "cannot read the upstream catalog")
            }
        }
        result
    }

    /// Marks a database's snapshot stale (after DDL), so the next decision
    /// fetches a new one.
    pub fn invalidate(&self, name: &str) {
        if let Some(e) = self.entries.borrow_mut().get_mut(name) {
            e.stale = true;
        }
    }
}

/// Reads the catalog over a connection of pgward's own.
async fn fetch(
    db: &DatabaseConfig,
    tls: Option<&Arc<rustls::ClientConfig>>,
    version: u64,
) -> Result<Catalog, String> {
    // An empty search_path makes pg_get_viewdef qualify every name.
    let params = vec![
        ("search_path".to_string(), String::new()),
        ("application_name".to_string(), "pgward catalog".to_string()),
    ];
    let mut up = upstream::connect(db, tls, &params, 64 * 1024)
        .await
        .map_err(|e| e.to_string())?;
    let mut out = BytesMut::new();
    build::message(&mut out, b'Q', |b| build::cstr(b, CATALOG_SQL.as_bytes()));
    build::message(&mut out, b'Q', |b| {
        build::cstr(b, ATTRIBUTES_SQL.as_bytes())
    });
    build::message(&mut out, b'Q', |b| build::cstr(b, INHERITS_SQL.as_bytes()));
    build::message(&mut out, b'Q', |b| build::cstr(b, SCHEMAS_SQL.as_bytes()));
    build::terminate(&mut out);
    let conn = &mut up.conn;
    write_all(conn.io_mut(), out.freeze())
        .await
        .map_err(|e| e.to_string())?;
    let mut rows: Vec<(String, String, u8, Option<String>)> = Vec::new();
    let mut attributes: Vec<(u32, String, i16, String)> = Vec::new();
    let mut parents: Vec<(String, String)> = Vec::new();
    let mut schemas: Vec<String> = Vec::new();
    let mut results = 0;
    loop {
        let h = conn.next_frame(1 << 30).await.map_err(|e| match e {
            ReadError::Eof => "the server closed the catalog connection".to_string(),
            ReadError::Io(e) => e.to_string(),
            ReadError::Wire(e) => e.to_string(),
        })?;
        let frame = conn.take(h.total);
        let body = &frame[5..];
        match h.tag {
            b'D' => {
                let row = DataRow::parse(body).map_err(|e| e.to_string())?;
                let v: Vec<Option<&[u8]>> = row
                    .values()
                    .collect::<Result<_, _>>()
                    .map_err(|e| e.to_string())?;
                let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
                if results == 3 {
                    match v.as_slice() {
                        [Some(n)] => schemas.push(String::from_utf8_lossy(n).into_owned()),
                        _ => return Err("unexpected schema row".into()),
                    }
                    continue;
                }
                if results == 2 {
                    match v.as_slice() {
                        [Some(cs), Some(c), Some(ps), Some(p)] => parents.push((
                            format!(
                                "{}.{}",
                                String::from_utf8_lossy(cs),
                                String::from_utf8_lossy(c)
                            ),
                            format!(
                                "{}.{}",
                                String::from_utf8_lossy(ps),
                                String::from_utf8_lossy(p)
                            ),
                        )),
                        _ => return Err("unexpected inheritance row".into()),
                    }
                    continue;
                }
                if results == 1 {
                    let num = |b: &[u8]| {
                        std::str::from_utf8(b)
                            .ok()
                            .and_then(|s| s.parse::<i64>().ok())
                    };
                    match v.as_slice() {
                        [Some(oid), Some(schema), Some(table), Some(attnum), Some(name)] => {
                            attributes.push((
                                num(oid).ok_or("bad oid")? as u32,
                                format!(
                                    "{}.{}",
                                    String::from_utf8_lossy(schema),
                                    String::from_utf8_lossy(table)
                                ),
                                num(attnum).ok_or("bad attnum")? as i16,
                                String::from_utf8_lossy(name).into_owned(),
                            ))
                        }
                        _ => return Err("unexpected attribute row".into()),
                    }
                    continue;
                }
                match v.as_slice() {
                    [Some(schema), Some(name), Some(kind), def] => rows.push((
                        text(Some(schema)).unwrap_or_default(),
                        text(Some(name)).unwrap_or_default(),
                        kind.first().copied().unwrap_or(b'?'),
                        text(*def),
                    )),
                    _ => return Err("unexpected catalog row".into()),
                }
            }
            b'E' => {
                let f = ErrorFields::parse(body).map_err(|e| e.to_string())?;
                return Err(f.message());
            }
            b'Z' => {
                results += 1;
                if results == 4 {
                    break;
                }
            }
            _ => {}
        }
    }
    let mut catalog = Catalog::from_rows(
        rows.iter()
            .map(|(s, n, k, d)| (s.as_str(), n.as_str(), *k, d.as_deref())),
        version,
    );
    catalog.add_schemas(schemas.iter().map(String::as_str));
    catalog.add_parents(parents.iter().map(|(c, p)| (c.as_str(), p.as_str())));
    catalog.add_attributes(
        attributes
            .iter()
            .map(|(o, t, a, n)| (*o, t.as_str(), *a, n.as_str())),
    );
    Ok(catalog)
}
