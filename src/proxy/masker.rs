//! The session's result masking: builds a column plan from each
//! RowDescription (table OID and attribute number, looked up in the catalog
//! snapshot, never the column's name) and rewrites DataRows under it straight
//! into the batch being sent; keeps what it masked per result for the audit log.

use std::collections::VecDeque;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};

use crate::mask::scan::Entities;
use crate::mask::{rewrite_row, ColumnMask, HashKey, Strategy};
use crate::policy::catalog::Catalog;
use crate::policy::masks::Masks;
use crate::wire::backend::RowDescription;
use crate::wire::error_response::ErrorFields;
use crate::wire::WireError;

/// Type OIDs whose binary form is their text (text, varchar, bpchar, name, unknown).
const TEXT_LIKE: &[u32] = &[25, 1043, 1042, 19, 705];

/// What masking did to one result, kept for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskedResult {
    /// The masked columns, as `schema.table.column` (or `scan` for entity scans).
    pub columns: Vec<String>,
    /// Rows rewritten.
    pub rows: u64,
    /// Cells masked.
    pub cells: u64,
}

/// How many finished results are kept until the audit log takes them.
const KEPT_RESULTS: usize = 64;

/// What to do with one server message.
pub enum Masked {
    /// Send it as it is.
    Keep,
    /// Send this instead (a scrubbed error).
    Replace(Bytes),
    /// A row to rewrite with `Masker::rewrite`.
    Rewrite,
}

/// Result masking for one session.
pub struct Masker {
    masks: Rc<Masks>,
    scan: Entities,
    unmask: Vec<(String, String)>,
    key: HashKey,
    catalog: Option<Rc<Catalog>>,
    plan: Vec<Option<ColumnMask>>,
    active: bool,
    /// What the current result masked so far.
    current: MaskedResult,
    /// Set when a result named a table the catalog snapshot does not know.
    unknown_table: std::cell::Cell<bool>,
    /// Finished results that masked something, oldest first.
    pub results: VecDeque<MaskedResult>,
    /// The worker's metrics (masked results and cells).
    pub metrics: Option<std::rc::Rc<crate::admin::metrics::WorkerMetrics>>,
}

impl MaskedResult {
    fn empty() -> Self {
        MaskedResult {
            columns: Vec::new(),
            rows: 0,
            cells: 0,
        }
    }
}

impl Masker {
    /// A masker for the configured masks, the user's unmasked columns and
    /// entity scan.
    pub fn new(
        masks: Rc<Masks>,
        unmask: Vec<(String, String)>,
        scan: Entities,
        key: Option<HashKey>,
    ) -> Self {
        Masker {
            masks,
            scan,
            unmask,
            // Config validation requires a key whenever a hash mask exists.
            key: key.unwrap_or_else(|| HashKey::new(b"unused")),
            catalog: None,
            plan: Vec::new(),
            active: false,
            current: MaskedResult::empty(),
            results: VecDeque::new(),
            metrics: None,
            unknown_table: std::cell::Cell::new(false),
        }
    }

    /// True when some column is masked for this user.
    pub fn is_enabled(&self) -> bool {
        !self.masks.is_empty() || !self.scan.is_empty()
    }

    /// Takes up a reloaded configuration's masks and the user's roles' unmasked
    /// columns and scans, from the next result on.
    pub fn set_policy(&mut self, masks: Rc<Masks>, unmask: Vec<(String, String)>, scan: Entities) {
        self.masks = masks;
        self.unmask = unmask;
        self.scan = scan;
    }

    /// True while the current result has masked columns.
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// True (once) when a result named a table the snapshot does not know.
    pub fn take_unknown_table(&self) -> bool {
        self.unknown_table.replace(false)
    }

    /// Uses a newer catalog snapshot.
    pub fn set_catalog(&mut self, catalog: Rc<Catalog>) {
        self.catalog = Some(catalog);
    }

    /// The base (table, column) a RowDescription field shows, through views.
    fn base_column(&self, table_oid: u32, attnum: i16) -> Option<(String, String)> {
        let catalog = self.catalog.as_deref()?;
        if table_oid == 0 {
            return None;
        }
        let (table, column) = catalog.column(table_oid, attnum)?;
        // A view's column is masked as the base column it shows.
        Some(
            catalog
                .view_base(table, attnum)
                .unwrap_or_else(|| (table.to_string(), column.to_string())),
        )
    }

    /// The column plan of a RowDescription and the names of what it masks.
    fn plan_for(
        &self,
        d: &RowDescription,
    ) -> Result<(Vec<Option<ColumnMask>>, Vec<String>), WireError> {
        let mut plan = Vec::with_capacity(d.len());
        let mut columns = Vec::new();
        for f in d.fields() {
            let f = f?;
            let text_like = TEXT_LIKE.contains(&f.type_oid);
            let known = f.table_oid == 0
                || self
                    .catalog
                    .as_ref()
                    .is_some_and(|c| c.column(f.table_oid, f.attnum).is_some());
            if !known && !self.masks.is_empty() {
                // A table newer than the snapshot: it may have masked columns
                // pgward cannot identify yet. Redact rather than guess, and
                // have the catalog read again before the next statement.
                self.unknown_table.set(true);
                columns.push("unknown".to_string());
                plan.push(Some(ColumnMask {
                    strategy: Strategy::Redact,
                    binary: f.format == 1,
                    text_like,
                }));
                continue;
            }
            let rule = self
                .base_column(f.table_oid, f.attnum)
                .and_then(|(table, column)| {
                    // A partition or inheriting table is masked as its parents are.
                    let mut tables = vec![table];
                    if let Some(c) = self.catalog.as_deref() {
                        tables.extend(c.ancestors(&tables[0]));
                    }
                    let (table, rule) = tables.into_iter().find_map(|t| {
                        let unmasked = self.unmask.iter().any(|(ut, c)| {
                            ut.eq_ignore_ascii_case(&t) && c.eq_ignore_ascii_case(&column)
                        });
                        let rule = (!unmasked)
                            .then(|| self.masks.rule(&t, &column))
                            .flatten()?;
                        Some((t, rule))
                    })?;
                    columns.push(format!("{table}.{column}"));
                    Some(rule)
                });
            let strategy = match rule {
                Some(r) => Some(r.strategy.clone()),
                // Unmasked text may still hold personal data the role's scan finds.
                None if text_like && !self.scan.is_empty() => {
                    columns.push("scan".to_string());
                    Some(Strategy::Scan(self.scan))
                }
                None => None,
            };
            plan.push(strategy.map(|strategy| ColumnMask {
                strategy,
                binary: f.format == 1,
                text_like,
            }));
        }
        Ok((plan, columns))
    }

    /// Closes the current result, keeping its record if it masked anything.
    fn finish_result(&mut self) {
        let done = std::mem::replace(&mut self.current, MaskedResult::empty());
        if self.active && done.rows > 0 {
            tracing::debug!(columns = ?done.columns, rows = done.rows, cells = done.cells, "result masked");
            if let Some(m) = &self.metrics {
                m.masked(done.cells);
                m.statement(crate::admin::metrics::Verdict::Masked, None);
            }
            if self.results.len() == KEPT_RESULTS {
                self.results.pop_front();
            }
            self.results.push_back(done);
        }
        self.active = false;
        self.plan.clear();
    }

    /// An error or notice about a table with masked columns may quote their
    /// values (`Failing row contains (...)`, `Key (email)=(...)`): its DETAIL
    /// and WHERE are replaced, the rest (SQLSTATE, message) kept.
    fn scrub(&mut self, tag: u8, body: &[u8]) -> Result<Option<Bytes>, WireError> {
        if tag == b'E' {
            self.finish_result();
        }
        let fields = ErrorFields::parse(body)?;
        if self.masks.is_empty() {
            return Ok(None);
        }
        // Raised inside a function or trigger: its text may quote any value
        // the function saw, masked columns included. Keep only the SQLSTATE
        // (pgward's own refusals, raised the same way, are left alone).
        let from_function = fields
            .get(b'W')
            .is_some_and(|w| memchr::memmem::find(w, b"function").is_some());
        let ours = fields.get(b'M').is_some_and(|m| m.starts_with(b"pgward:"));
        if from_function && !ours {
            return Ok(Some(fields.rebuild(tag, |f| {
                match f {
                b'M' => Some(Some(&b"pgward: a message raised inside a function was removed; it may hold masked values"[..])),
                b'D' | b'H' | b'W' => Some(None),
                _ => None,
            }
            })));
        }
        if !ours && fields.get(b'C').is_some_and(|c| c.starts_with(b"22")) {
            // A data exception quotes the value it could not take
            // (`invalid input syntax for type integer: "901-23-4567"`), which
            // may be a masked column's, read by a predicate or a cast.
            let message = fields.get(b'M').map(withhold_quoted).unwrap_or_default();
            return Ok(Some(fields.rebuild(tag, |f| match f {
                b'M' => Some(Some(&message[..])),
                b'D' | b'W' => Some(None),
                _ => None,
            })));
        }
        if !ours
            && fields.get(b'C') == Some(&b"44000"[..])
            && (fields.get(b'D').is_some() || fields.get(b'W').is_some())
        {
            // A WITH CHECK OPTION violation quotes the failing row without
            // naming its table: it may be a table with masked columns.
            return Ok(Some(fields.rebuild(tag, |f| match f {
                b'D' => Some(Some(
                    &b"pgward: detail removed; it may hold masked values"[..],
                )),
                b'W' => Some(None),
                _ => None,
            })));
        }
        let (Some(schema), Some(table)) = (fields.get(b's'), fields.get(b't')) else {
            return Ok(None);
        };
        let qualified = format!(
            "{}.{}",
            String::from_utf8_lossy(schema),
            String::from_utf8_lossy(table)
        );
        let mut tables = vec![qualified.clone()];
        if let Some(c) = self.catalog.as_deref() {
            tables.extend(c.ancestors(&qualified));
        }
        let masked = self.masks.rules.keys().any(|(t, c)| {
            tables.iter().any(|x| x.eq_ignore_ascii_case(t))
                && !self
                    .unmask
                    .iter()
                    .any(|(ut, uc)| ut.eq_ignore_ascii_case(&qualified) && uc == c)
        });
        if !masked || (fields.get(b'D').is_none() && fields.get(b'W').is_none()) {
            return Ok(None);
        }
        Ok(Some(fields.rebuild(tag, |f| match f {
            b'D' => Some(Some(
                &b"pgward: detail removed; it may hold masked values"[..],
            )),
            b'W' => Some(None),
            _ => None,
        })))
    }

    /// Rewrites a DataRow under the current plan, appending it to `out`.
    pub fn rewrite(&mut self, body: &[u8], out: &mut BytesMut) -> Result<(), WireError> {
        let stats = rewrite_row(body, &self.plan, &self.key, out)?;
        self.current.rows += 1;
        self.current.cells += stats.masked as u64;
        Ok(())
    }

    /// Sees one server message (hidden ones too) and says what the client gets.
    pub fn on_message(&mut self, tag: u8, body: &[u8]) -> Result<Masked, WireError> {
        if !self.is_enabled() {
            return Ok(Masked::Keep);
        }
        match tag {
            b'T' => {
                let (plan, columns) = self.plan_for(&RowDescription::parse(body)?)?;
                self.active = plan.iter().any(Option::is_some);
                self.plan = plan;
                self.current = MaskedResult {
                    columns,
                    rows: 0,
                    cells: 0,
                };
                Ok(Masked::Keep)
            }
            b'E' | b'N' => Ok(match self.scrub(tag, body)? {
                Some(frame) => Masked::Replace(frame),
                None => Masked::Keep,
            }),
            b'D' if self.active => Ok(Masked::Rewrite),
            // A result ends, or pauses (PortalSuspended): the next Execute
            // of a portal with masked columns is described again, and the
            // next portal may be another one.
            b'C' | b'I' | b's' | b'Z' => {
                self.finish_result();
                Ok(Masked::Keep)
            }
            _ => Ok(Masked::Keep),
        }
    }
}

/// A message with every double-quoted part replaced by `"[value withheld]"`.
fn withhold_quoted(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len());
    let mut parts = message.split(|&b| b == b'"');
    if let Some(first) = parts.next() {
        out.extend_from_slice(first);
    }
    let mut inside = true;
    for part in parts {
        if inside {
            out.extend_from_slice(b"\"[value withheld]\"");
        } else {
            out.extend_from_slice(part);
        }
        inside = !inside;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::Strategy;
    use crate::policy::masks::MaskRule;

    fn row_description(fields: &[(&str, u32, i16, u32)]) -> Vec<u8> {
        let mut b = (fields.len() as i16).to_be_bytes().to_vec();
        for (name, oid, attnum, ty) in fields {
            b.extend_from_slice(name.as_bytes());
            b.push(0);
            b.extend_from_slice(&oid.to_be_bytes());
            b.extend_from_slice(&attnum.to_be_bytes());
            b.extend_from_slice(&ty.to_be_bytes());
            b.extend_from_slice(&(-1i16).to_be_bytes());
            b.extend_from_slice(&(-1i32).to_be_bytes());
            b.extend_from_slice(&0i16.to_be_bytes());
        }
        b
    }

    fn data_row(values: &[&[u8]]) -> Vec<u8> {
        let mut b = (values.len() as i16).to_be_bytes().to_vec();
        for v in values {
            b.extend_from_slice(&(v.len() as i32).to_be_bytes());
            b.extend_from_slice(v);
        }
        b
    }

    #[test]
    fn plans_by_oid_and_attnum_and_records_results() {
        let mut masks = Masks::default();
        masks.rules.insert(
            ("public.customers".into(), "ssn".into()),
            MaskRule {
                strategy: Strategy::Redact,
                allow_predicates: false,
            },
        );
        let mut catalog = Catalog::from_rows([("public", "customers", b'r', None)], 1);
        catalog.add_attributes([
            (100, "public.customers", 1, "id"),
            (100, "public.customers", 2, "ssn"),
        ]);
        let mut m = Masker::new(Rc::new(masks), Vec::new(), Entities::default(), None);
        m.set_catalog(Rc::new(catalog));
        // The client calls the column "x": identity, not name, decides.
        let t = row_description(&[("id", 100, 1, 23), ("x", 100, 2, 25)]);
        assert!(matches!(m.on_message(b'T', &t).unwrap(), Masked::Keep));
        assert!(m.is_active());
        assert!(matches!(m.on_message(b'D', b"").unwrap(), Masked::Rewrite));
        let mut out = BytesMut::new();
        m.rewrite(&data_row(&[b"1", b"901-23-4567"]), &mut out)
            .unwrap();
        assert!(out.ends_with(b"[redacted]"));
        m.on_message(b'C', b"SELECT 1\0").unwrap();
        assert_eq!(
            m.results.back(),
            Some(&MaskedResult {
                columns: vec!["public.customers.ssn".into()],
                rows: 1,
                cells: 1
            })
        );
        // A computed column (table OID 0) is never taken for a masked one.
        let t = row_description(&[("ssn", 0, 0, 25)]);
        m.on_message(b'T', &t).unwrap();
        assert!(!m.is_active());
    }
}
