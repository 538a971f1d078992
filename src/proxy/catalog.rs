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

use super::buffer::write_all;
use super::upstream;
use crate::config::DatabaseConfig;
use crate::policy::catalog::Catalog;
use crate::wire::build;

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

const FUNCTIONS_SQL: &str = "SELECT DISTINCT n.nspname, p.proname FROM pg_catalog.pg_proc p \
     JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
     WHERE n.nspname <> 'information_schema'";

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
    let conn = &mut up.conn;
    let relations = upstream::simple_query(conn, CATALOG_SQL).await?.rows;
    let attributes = upstream::simple_query(conn, ATTRIBUTES_SQL).await?.rows;
    let inherits = upstream::simple_query(conn, INHERITS_SQL).await?.rows;
    let schemas = upstream::simple_query(conn, SCHEMAS_SQL).await?.rows;
    let functions = upstream::simple_query(conn, FUNCTIONS_SQL).await?.rows;
    let mut bye = BytesMut::new();
    build::terminate(&mut bye);
    let _ = write_all(conn.io_mut(), bye.freeze()).await;

    let text = |v: &Option<String>| v.clone().ok_or("a catalog value is NULL");
    let mut rows = Vec::with_capacity(relations.len());
    for r in &relations {
        match r.as_slice() {
            [schema, name, kind, def] => rows.push((
                text(schema)?,
                text(name)?,
                text(kind)?.bytes().next().unwrap_or(b'?'),
                def.clone(),
            )),
            _ => return Err("unexpected catalog row".into()),
        }
    }
    let mut catalog = Catalog::from_rows(
        rows.iter()
            .map(|(s, n, k, d)| (s.as_str(), n.as_str(), *k, d.as_deref())),
        version,
    );
    let mut attrs = Vec::with_capacity(attributes.len());
    for r in &attributes {
        match r.as_slice() {
            [oid, schema, table, attnum, name] => attrs.push((
                text(oid)?.parse::<u32>().map_err(|_| "bad oid")?,
                format!("{}.{}", text(schema)?, text(table)?),
                text(attnum)?.parse::<i16>().map_err(|_| "bad attnum")?,
                text(name)?,
            )),
            _ => return Err("unexpected attribute row".into()),
        }
    }
    let pair = |r: &Vec<Option<String>>, what: &str| -> Result<(String, String), String> {
        match r.as_slice() {
            [a, b] => Ok((text(a)?, text(b)?)),
            _ => Err(format!("unexpected {what} row")),
        }
    };
    let mut parents = Vec::with_capacity(inherits.len());
    for r in &inherits {
        match r.as_slice() {
            [cs, c, ps, p] => parents.push((
                format!("{}.{}", text(cs)?, text(c)?),
                format!("{}.{}", text(ps)?, text(p)?),
            )),
            _ => return Err("unexpected inheritance row".into()),
        }
    }
    let mut schema_names = Vec::with_capacity(schemas.len());
    for r in &schemas {
        match r.as_slice() {
            [n] => schema_names.push(text(n)?),
            _ => return Err("unexpected schema row".into()),
        }
    }
    let mut function_names = Vec::with_capacity(functions.len());
    for r in &functions {
        let (n, f) = pair(r, "function")?;
        function_names.push(format!("{n}.{f}"));
    }
    catalog.add_schemas(schema_names.iter().map(String::as_str));
    catalog.add_functions(function_names.iter().map(String::as_str));
    catalog.add_parents(parents.iter().map(|(c, p)| (c.as_str(), p.as_str())));
    catalog.add_attributes(
        attrs
            .iter()
            .map(|(o, t, a, n)| (*o, t.as_str(), *a, n.as_str())),
    );
    Ok(catalog)
}
