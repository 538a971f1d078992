//! The session's result masking: builds a column plan from each
//! RowDescription (table OID and attribute number, looked up in the catalog
//! snapshot, never the column's name) and rewrites DataRows under it, into a
//! scratch buffer reused across rows.

use std::rc::Rc;

use bytes::{BufMut, Bytes, BytesMut};

use crate::mask::scan::Entities;
use crate::mask::{rewrite_row, ColumnMask, HashKey, Strategy};
use crate::policy::catalog::Catalog;
use crate::policy::masks::Masks;
use crate::wire::backend::RowDescription;
use crate::wire::build;
use crate::wire::error_response::ErrorFields;
use crate::wire::WireError;

/// Type OIDs whose binary form is their text (text, varchar, bpchar, name, unknown).
const TEXT_LIKE: &[u32] = &[25, 1043, 1042, 19, 705];

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
    /// Cells masked in this session (for the audit log).
    pub masked_cells: u64,
}

impl Masker {
    /// A masker for the configured masks and the user's unmasked columns.
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
            masked_cells: 0,
        }
    }

    /// True when some column is masked for this user.
    pub fn is_enabled(&self) -> bool {
        !self.masks.is_empty() || !self.scan.is_empty()
    }

    /// True while the current result has masked columns.
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Uses a newer catalog snapshot.
    pub fn set_catalog(&mut self, catalog: Rc<Catalog>) {
        self.catalog = Some(catalog);
    }

    fn plan_for(&self, d: &RowDescription) -> Result<Vec<Option<ColumnMask>>, WireError> {
        let catalog = self.catalog.as_deref();
        let mut plan = Vec::with_capacity(d.len());
        for f in d.fields() {
            let f = f?;
            let base = (f.table_oid != 0)
                .then(|| catalog?.column(f.table_oid, f.attnum))
                .flatten()
                .map(|(table, column)| {
                    // A view's column is masked as the base column it shows.
                    catalog
                        .and_then(|c| c.view_base(table, f.attnum))
                        .unwrap_or_else(|| (table.to_string(), column.to_string()))
                });
            let rule = base.and_then(|(table, column)| {
                let unmasked = self.unmask.iter().any(|(t, c)| *t == table && *c == column);
                (!unmasked)
                    .then(|| self.masks.rule(&table, &column))
                    .flatten()
            });
            let text_like = TEXT_LIKE.contains(&f.type_oid);
            let strategy = match rule {
                Some(r) => Some(r.strategy.clone()),
                // Unmasked text may still hold personal data the role's scan finds.
                None if text_like && !self.scan.is_empty() => Some(Strategy::Scan(self.scan)),
                None => None,
            };
            plan.push(strategy.map(|strategy| ColumnMask {
                strategy,
                binary: f.format == 1,
                text_like,
            }));
        }
        Ok(plan)
    }

    /// An error or notice about a table with masked columns may quote their
    /// values (`Failing row contains (...)`, `Key (email)=(...)`): its DETAIL
    /// and WHERE are replaced, the rest (SQLSTATE, message) kept.
    fn scrub(&mut self, tag: u8, body: &[u8]) -> Result<Option<Bytes>, WireError> {
        if tag == b'E' {
            self.active = false;
            self.plan.clear();
        }
        let fields = ErrorFields::parse(body)?;
        let (Some(schema), Some(table)) = (fields.get(b's'), fields.get(b't')) else {
            return Ok(None);
        };
        let qualified = format!(
            "{}.{}",
            String::from_utf8_lossy(schema),
            String::from_utf8_lossy(table)
        );
        let masked = self.masks.rules.keys().any(|(t, c)| {
            *t == qualified
                && !self
                    .unmask
                    .iter()
                    .any(|(ut, uc)| *ut == qualified && uc == c)
        });
        if !masked || (fields.get(b'D').is_none() && fields.get(b'W').is_none()) {
            return Ok(None);
        }
        let mut out = BytesMut::with_capacity(body.len() + 64);
        build::message(&mut out, tag, |b| {
            for (f, v) in fields.iter().flatten() {
                match f {
                    b'W' => continue,
                    b'D' => {
                        b.put_u8(b'D');
                        build::cstr(b, b"pgward: detail removed; it may hold masked values");
                    }
                    _ => {
                        b.put_u8(f);
                        build::cstr(b, v);
                    }
                }
            }
            b.put_u8(0);
        });
        Ok(Some(out.freeze()))
    }

    /// Rewrites a DataRow under the current plan, appending it to `out`.
    pub fn rewrite(&mut self, body: &[u8], out: &mut BytesMut) -> Result<(), WireError> {
        let stats = rewrite_row(body, &self.plan, &self.key, out)?;
        self.masked_cells += stats.masked as u64;
        Ok(())
    }

    /// Sees one server message (hidden ones too) and says what the client gets.
    pub fn on_message(&mut self, tag: u8, body: &[u8]) -> Result<Masked, WireError> {
        if !self.is_enabled() {
            return Ok(Masked::Keep);
        }
        match tag {
            b'T' => {
                self.plan = self.plan_for(&RowDescription::parse(body)?)?;
                tracing::debug!(plan = ?self.plan, catalog = self.catalog.is_some(), "result columns");
                self.active = self.plan.iter().any(Option::is_some);
                Ok(Masked::Keep)
            }
            b'E' | b'N' => Ok(match self.scrub(tag, body)? {
                Some(frame) => Masked::Replace(frame),
                None => Masked::Keep,
            }),
            b'D' if self.active => Ok(Masked::Rewrite),
            // A result ends; PortalSuspended keeps the plan for the next Execute.
            b'C' | b'I' | b'Z' => {
                self.active = false;
                self.plan.clear();
                Ok(Masked::Keep)
            }
            _ => Ok(Masked::Keep),
        }
    }
}
