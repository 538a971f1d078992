//! The statement guard of one session: judges every SQL text and every
//! extended-protocol message against the user's roles before anything reaches
//! the server, and remembers which prepared statements and portals were
//! allowed, so a Bind or Execute of a refused or unknown one is refused too.

use std::collections::HashMap;
use std::rc::Rc;

use crate::policy::catalog::Catalog;
use crate::policy::decide::decide;
use crate::policy::role::Role;
use crate::policy::{Decision, Denial, SessionView};
use crate::sql::cache::{ClassificationCache, Classified, LookupError};
use crate::sql::fingerprint::Strings;

/// The session's judge.
pub struct Guard {
    roles: Rc<[Role]>,
    database: String,
    upstream_database: String,
    /// Every schema an unqualified name may resolve to (only ever grows).
    search_path: Vec<String>,
    /// Allowed statements, and whether each reads a table with masked columns.
    statements: HashMap<Vec<u8>, bool>,
    /// Bound portals, and whether each reads a table with masked columns.
    portals: HashMap<Vec<u8>, bool>,
    /// Whether the text last judged reads a table with masked columns.
    last_reads_masked: bool,
    /// How the session lexes '...' strings.
    pub strings: Strings,
    /// Decisions already made in this session, by classification (the entry
    /// keeps its classification alive, so the address cannot be reused).
    decisions: HashMap<usize, Remembered>,
    /// The upstream catalog snapshot decisions are made with.
    catalog: Option<Rc<Catalog>>,
    /// Masked columns.
    masks: Option<Rc<crate::policy::masks::Masks>>,
    /// Why no snapshot could be had, when none could.
    catalog_error: Option<String>,
    /// Set when an allowed statement changes the schema.
    ddl_allowed: bool,
}

/// A decision made in this session, with what it implies.
struct Remembered {
    /// Keeps the classification alive, so its address (the key) is not reused.
    _classification: Classified,
    decision: Decision,
    reads_masked: bool,
    ddl_allowed: bool,
}

/// Decisions remembered per session before starting over.
const SESSION_DECISIONS: usize = 1024;

impl Guard {
    /// A guard for a user's roles; `startup_search_path` comes from the
    /// client's startup options, when it set one.
    pub fn new(
        roles: Rc<[Role]>,
        database: &str,
        upstream_database: &str,
        startup_search_path: Option<&str>,
    ) -> Guard {
        let mut search_path = vec!["public".to_string()];
        if let Some(p) = startup_search_path {
            for s in p.split(',') {
                let s = s.trim();
                let s = match s.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
                    Some(q) => q.to_string(),
                    None => s.to_lowercase(),
                };
                if !s.is_empty() && !search_path.contains(&s) {
                    search_path.push(s);
                }
            }
        }
        Guard {
            roles,
            database: database.to_string(),
            upstream_database: upstream_database.to_string(),
            search_path,
            statements: HashMap::new(),
            portals: HashMap::new(),
            last_reads_masked: false,
            strings: Strings::Standard,
            decisions: HashMap::new(),
            catalog: None,
            masks: None,
            catalog_error: None,
            ddl_allowed: false,
        }
    }

    fn view(&self) -> SessionView<'_> {
        SessionView {
            masks: self.masks.as_deref(),
            catalog: self.catalog.as_deref(),
            database: &self.database,
            upstream_database: &self.upstream_database,
            search_path: &self.search_path,
        }
    }

    /// Applies the configured masks to decisions.
    pub fn set_masks(&mut self, masks: Rc<crate::policy::masks::Masks>) {
        self.decisions.clear();
        self.masks = Some(masks);
    }

    /// Uses a newer catalog snapshot; decisions made with the old one are dropped.
    pub fn set_catalog(&mut self, catalog: Rc<Catalog>) {
        self.catalog_error = None;
        if self.catalog.as_ref().map(|c| c.version) != Some(catalog.version) {
            self.decisions.clear();
            self.catalog = Some(catalog);
        }
    }

    /// Records that no catalog snapshot could be read: statements that read
    /// user relations are refused until one can (views could not be checked).
    pub fn catalog_unavailable(&mut self, why: String) {
        if self.catalog.is_none() {
            self.decisions.clear();
            self.catalog_error = Some(why);
        }
    }

    /// True (once) after an allowed statement that changes the schema.
    pub fn take_ddl_allowed(&mut self) -> bool {
        std::mem::take(&mut self.ddl_allowed)
    }

    /// The catalog snapshot in use.
    pub fn catalog(&self) -> Option<&Rc<Catalog>> {
        self.catalog.as_ref()
    }

    /// Judges one SQL text (a simple Query or a Parse).
    pub fn check_sql(&mut self, cache: &mut ClassificationCache, sql: &[u8]) -> Decision {
        let classified = match cache.classify(sql, self.strings) {
            Ok(c) => c,
            Err(LookupError::NotUtf8) => {
                return refuse(
                    "pgward: the statement is not valid UTF-8",
                    "rule: built-in; pgward analyses UTF-8 text only",
                    "connect with client_encoding UTF8",
                )
            }
            Err(LookupError::Lex(e)) => {
                return refuse(
                    format!("pgward: the statement cannot be analysed: {e}"),
                    "rule: built-in; statements pgward cannot analyse are refused",
                    "check the quoting of strings, identifiers and comments",
                )
            }
        };
        let key = Rc::as_ptr(&classified) as usize;
        if let Some(r) = self.decisions.get(&key) {
            // The side effects of a decision apply on every use, cached or not.
            self.last_reads_masked = r.reads_masked;
            self.ddl_allowed |= r.ddl_allowed;
            return r.decision.clone();
        }
        let c = match classified.as_ref() {
            Ok(c) => c,
            Err(e) => {
                return refuse(
                    format!("pgward: {e}"),
                    "rule: built-in; statements pgward cannot analyse are refused",
                    "rewrite it with plain SQL that names its tables and functions",
                )
            }
        };
        if let Some(why) = &self.catalog_error {
            if c.reads.iter().chain(&c.writes).any(|n| {
                !n.name.starts_with("pg_") && n.schema.as_deref() != Some("information_schema")
            }) {
                return refuse(
                    format!("pgward: the catalog of database {} cannot be read, so views cannot be checked", self.database),
                    &format!("rule: built-in; {why}"),
                    "retry in a moment; pgward fetches the catalog again on the next statement",
                );
            }
        }
        let reads_masked = self.reads_masked(c);
        self.last_reads_masked = reads_masked;
        let roles: Vec<&Role> = self.roles.iter().collect();
        let decision = decide(&roles, c, &self.view());
        let ddl_allowed =
            decision.is_allowed() && c.operations.contains(&crate::sql::Operation::Ddl);
        self.ddl_allowed |= ddl_allowed;
        let mut path_changed = false;
        if decision.is_allowed() {
            for s in &c.search_path {
                if !self.search_path.contains(s) {
                    self.search_path.push(s.clone());
                    path_changed = true;
                }
            }
        }
        if path_changed || self.decisions.len() >= SESSION_DECISIONS {
            // Names may resolve differently now: decide everything afresh.
            self.decisions.clear();
        }
        if !path_changed {
            self.decisions.insert(
                key,
                Remembered {
                    _classification: classified.clone(),
                    decision: decision.clone(),
                    reads_masked,
                    ddl_allowed,
                },
            );
        }
        decision
    }

    /// True when the classification reads a table with masked columns.
    fn reads_masked(&self, c: &crate::sql::Classification) -> bool {
        crate::policy::decide::reads_masked(c, &self.view())
    }

    /// Judges a Parse; an allowed statement may then be bound.
    pub fn on_parse(
        &mut self,
        cache: &mut ClassificationCache,
        name: &[u8],
        sql: &[u8],
    ) -> Decision {
        let d = self.check_sql(cache, sql);
        if d.is_allowed() {
            self.statements
                .insert(name.to_vec(), self.last_reads_masked);
        } else {
            self.statements.remove(name);
        }
        d
    }

    /// Judges a Bind: its statement must have been allowed.
    pub fn on_bind(&mut self, portal: &[u8], statement: &[u8]) -> Option<Denial> {
        if let Some(&masked) = self
            .statements
            .get(statement)
            .filter(|_| portal != super::denial::REFUSAL_NAME)
        {
            self.portals.insert(portal.to_vec(), masked);
            None
        } else {
            self.portals.remove(portal);
            Some(unknown("prepared statement", statement))
        }
    }

    /// Judges an Execute: its portal must have been bound from an allowed statement.
    pub fn on_execute(&self, portal: &[u8]) -> Option<Denial> {
        (!self.portals.contains_key(portal)).then(|| unknown("portal", portal))
    }

    /// Judges a Describe of a statement (`S`) or portal (`P`).
    pub fn on_describe(&self, kind: u8, name: &[u8]) -> Option<Denial> {
        let known = match kind {
            b'S' => self.statements.contains_key(name),
            _ => self.portals.contains_key(name),
        };
        (!known).then(|| {
            unknown(
                if kind == b'S' {
                    "prepared statement"
                } else {
                    "portal"
                },
                name,
            )
        })
    }

    /// True when a portal's rows may need masking, so its description must
    /// be known before its rows arrive.
    pub fn portal_reads_masked(&self, portal: &[u8]) -> bool {
        self.portals.get(portal).copied().unwrap_or(false)
    }

    /// Forgets a closed statement or portal.
    pub fn on_close(&mut self, kind: u8, name: &[u8]) {
        match kind {
            b'S' => self.statements.remove(name),
            _ => self.portals.remove(name),
        };
    }

    /// Sets how strings are lexed, from the server's ParameterStatus.
    pub fn set_standard_conforming_strings(&mut self, on: bool) {
        self.strings = if on {
            Strings::Standard
        } else {
            Strings::Escaped
        };
    }
}

fn refuse(message: impl Into<String>, detail: &str, hint: &str) -> Decision {
    Decision::Deny(Denial {
        message: message.into(),
        detail: detail.into(),
        hint: hint.into(),
    })
}

fn unknown(what: &str, name: &[u8]) -> Denial {
    let name = String::from_utf8_lossy(name);
    let shown = if name.is_empty() {
        "(unnamed)".into()
    } else {
        format!("\"{name}\"")
    };
    Denial {
        message: format!("pgward: {what} {shown} was refused or does not exist"),
        detail: "rule: built-in; only statements pgward allowed at Parse may be bound and executed"
            .into(),
        hint: "send Parse again with an allowed statement".into(),
    }
}
