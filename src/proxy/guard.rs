//! The statement guard of one session: judges every SQL text and every
//! extended-protocol message against the user's roles before anything reaches
//! the server, and mirrors what the server holds, so a Bind or Execute of a
//! refused or unknown statement or portal is refused too.
//!
//! The mirror changes only when the server confirms a change (ParseComplete,
//! BindComplete, CloseComplete, ReadyForQuery); until then a change waits under
//! a ticket in the reply pipeline, and judging looks at both what the server
//! holds and what it may hold once the changes in flight are done. Prepared
//! statements keep their text and are judged again before a Bind or Describe
//! when the server would analyse them again (the search path, the schema or
//! the catalog changed). And the guard knows when the server may be reading backslashes
//! differently than pgward does (while anything it forwarded still runs), and
//! refuses texts holding one until then.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use super::denial::REFUSAL_NAME;
mod approval;
pub use approval::{approval_required, Answer, Approver, Waiting};

use super::pipeline::{Outcome, Ticket};
use crate::policy::catalog::Catalog;
use crate::policy::decide::decide;
use crate::policy::role::Role;
use crate::policy::{Decision, Denial, SessionView};
use crate::sql::cache::{ClassificationCache, Classified, LookupError};
use crate::sql::classify::ClassifyError;
use crate::sql::encoding::{ClientEncoding, DecodeError};
use crate::sql::fingerprint::Strings;
use crate::sql::settings::split_identifier_list;
use crate::sql::{Classification, CursorChange, Operation};

/// The session's judge.
pub struct Guard {
    roles: Rc<[Role]>,
    database: String,
    upstream_database: String,
    /// Every schema an unqualified name may resolve to (only ever grows).
    search_path: Vec<String>,
    /// Prepared statements the server holds (all of them allowed ones).
    statements: HashMap<Vec<u8>, Statement>,
    /// Portals the server holds.
    portals: HashMap<Vec<u8>, Portal>,
    /// Changes to those two waiting for the server's answer, oldest first.
    pending: VecDeque<(Ticket, Pending)>,
    next_ticket: Ticket,
    /// What the text last judged implies.
    last: Facts,
    /// How the server lexes '...' strings.
    strings: Strings,
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
    /// Counts allowed statements that change the schema.
    ddl_count: u64,
    /// Whether the server may be reading backslashes differently.
    lexing: Lexing,
    /// The upstream login, which `$user` in a search_path names.
    login: String,
    /// Counts policy changes (reloads).
    policy: u64,
    /// The client encoding the server reads texts in.
    encoding: ClientEncoding,
    /// Statement names SQL-level PREPARE may have given the server: a Bind
    /// or Describe of them is refused until they are deallocated.
    unjudged: std::collections::HashSet<Vec<u8>>,
    /// Counts the batches sent (each Query and each Sync ends one).
    batch: u64,
    /// The approval rules of the user's roles.
    approval: Option<Rc<crate::policy::approval::Approval>>,
    /// Who asks for approvals.
    approver: Option<Rc<dyn Approver>>,
    /// The request the statement last judged waits for.
    waiting: Option<Waiting>,
    /// The approval the statement last judged runs under, and its approver.
    granted: Option<(String, Option<String>)>,
}

/// Prepared texts, shared: set once per prepared statement (or DECLARE),
/// so passing them along a Bind or Execute costs a reference count.
pub type Texts = Option<Rc<[Rc<[u8]>]>>;

/// The texts of either of two statements (each text once).
fn either_texts(a: Texts, b: Texts) -> Texts {
    match (a, b) {
        (Some(a), Some(b)) if !Rc::ptr_eq(&a, &b) => {
            let mut all = a.to_vec();
            for t in b.iter() {
                if !all.contains(t) {
                    all.push(t.clone());
                }
            }
            Some(Rc::from(all))
        }
        (a, b) => a.or(b),
    }
}

/// What an allowed Bind or Execute runs, for the audit log.
#[derive(Debug, Clone, Default)]
pub struct Runs {
    /// The prepared texts it may run (none for a cursor).
    pub texts: Texts,
    /// It may change what a portal name runs: code that opens cursors
    /// under names it chooses (a DO block, a function, a write that fires
    /// triggers), or DECLARE and CLOSE.
    pub runs_code: bool,
    /// For an Execute: the audit record of the Bind that made the portal,
    /// when every portal the server may run under its name came from it.
    pub bound: Option<u64>,
}

/// An Execute allowed: the ticket its cursor changes wait under, and what
/// it runs.
pub type Executed = (Option<Ticket>, Runs);

/// What pgward knows of one prepared statement.
#[derive(Debug, Clone)]
struct Statement {
    /// The text, to judge again when the server would analyse it again.
    sql: Rc<[u8]>,
    /// How the server lexed it (at Parse).
    strings: Strings,
    /// The state the last judgement was made in.
    judged: Epoch,
    /// What running it implies.
    facts: Facts,
}

/// What pgward knows of one portal.
#[derive(Debug, Clone)]
struct Portal {
    /// What running it implies (its statement's facts at Bind; for a
    /// cursor, only whether its rows may need masking).
    facts: Facts,
    /// A cursor declared WITH HOLD: it outlives its transaction.
    hold: bool,
    /// The audit record of the Bind that made it (none for a cursor).
    audit: Option<u64>,
}

/// A change to the mirror that waits for the server's answer.
#[derive(Debug)]
enum Pending {
    Parse {
        name: Vec<u8>,
        statement: Statement,
        /// The batch (messages up to a Sync) it was sent in.
        batch: u64,
    },
    Bind {
        name: Vec<u8>,
        portal: Portal,
        /// The batch (messages up to a Sync) it was sent in.
        batch: u64,
    },
    Close {
        kind: u8,
        name: Vec<u8>,
    },
    /// What a Query or Execute does to the server's names, applied once
    /// the server is done with it without an error (cursors declared count
    /// as in flight meanwhile; names dropped are kept until then).
    Runs {
        changes: Vec<NameChange>,
    },
}

/// A change to the server's names that running a statement makes.
#[derive(Debug)]
enum NameChange {
    /// DECLARE: a cursor, a portal of that name.
    Declare(Vec<u8>, Portal),
    /// CLOSE of one portal, or of all (`None`).
    DropPortals(Option<Vec<u8>>),
    /// DEALLOCATE of one prepared statement, or of all (`None`, also DISCARD).
    DropStatements(Option<Vec<u8>>),
}

/// Everything a judgement depends on besides the text and the roles: when
/// any of it changes, the server would analyse a prepared statement again,
/// and pgward judges it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Epoch {
    search_path: usize,
    ddl: u64,
    catalog: Option<u64>,
    policy: u64,
}

/// What an allowed text implies beyond its verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Facts {
    /// It reads a table with masked columns.
    reads_masked: bool,
    /// It changes (or may change) the schema.
    ddl: bool,
    /// DEALLOCATE ALL or DISCARD: every prepared statement is gone.
    forgets_statements: bool,
    /// Prepared statements deallocated by name.
    deallocated: Vec<String>,
    /// Names SQL-level PREPARE gives statements pgward never judges.
    prepared: Vec<String>,
    /// CLOSE ALL or DISCARD: every portal is gone.
    forgets_portals: bool,
    /// Cursors declared and closed, in order.
    cursors: Vec<CursorChange>,
    /// Classifications whose verdict waits for the Bind's parameters
    /// (settings named or set by `$n`).
    bound: Vec<Classified>,
    /// The prepared texts running it may run (more than one when a Parse
    /// of the same name was in flight), for the audit log.
    texts: Texts,
    /// It may run code (a DO block, a function call, a write firing
    /// triggers), which may open cursors under any name, or declares or
    /// closes cursors itself.
    runs_code: bool,
    /// The approval risks it matches (none: it runs without approval).
    needs: Vec<String>,
    /// A prepared statement's declared parameter types (kept only when it
    /// needs approval: an approval is for values of these types).
    param_types: Option<Rc<[u32]>>,
}

impl Facts {
    /// What running either of two statements implies. What they create
    /// counts if either creates it, what they drop only if both drop it:
    /// pgward may know a name the server does not hold, never the other way
    /// round.
    fn or(self, o: Facts) -> Facts {
        let both = |a: &[String], b: &[String]| -> Vec<String> {
            a.iter().filter(|n| b.contains(n)).cloned().collect()
        };
        let declared = |c: &CursorChange| matches!(c, CursorChange::Declare { .. });
        let closes_both: Vec<CursorChange> = self
            .cursors
            .iter()
            .filter(|c| !declared(c) && o.cursors.contains(c))
            .cloned()
            .collect();
        let declares: Vec<CursorChange> = self
            .cursors
            .iter()
            .chain(&o.cursors)
            .filter(|c| declared(c))
            .cloned()
            .collect();
        Facts {
            reads_masked: self.reads_masked || o.reads_masked,
            ddl: self.ddl || o.ddl,
            forgets_statements: self.forgets_statements && o.forgets_statements,
            deallocated: both(&self.deallocated, &o.deallocated),
            prepared: [self.prepared, o.prepared].concat(),
            forgets_portals: self.forgets_portals && o.forgets_portals,
            cursors: [closes_both, declares].concat(),
            bound: [self.bound, o.bound].concat(),
            runs_code: self.runs_code || o.runs_code,
            texts: either_texts(self.texts, o.texts),
            needs: {
                let mut n = self.needs;
                for r in o.needs {
                    if !n.contains(&r) {
                        n.push(r);
                    }
                }
                n
            },
            param_types: match (self.param_types, o.param_types) {
                (Some(a), Some(b)) if a != b => {
                    // Either may be bound: both count (u32::MAX between).
                    Some(
                        a.iter()
                            .chain(&[u32::MAX])
                            .chain(b.iter())
                            .copied()
                            .collect(),
                    )
                }
                (a, b) => a.or(b),
            },
        }
    }
}

/// The facts a classification implies (all but reads_masked, which depends
/// on the session). The one place that reads these classification fields.
fn facts_of(c: &Classification) -> Facts {
    let ops = &c.operations;
    Facts {
        reads_masked: false,
        // Code (a DO block, say) may change the schema as well.
        ddl: ops.contains(&Operation::Ddl) || ops.contains(&Operation::Code),
        forgets_statements: c.deallocated.contains(&None),
        deallocated: c.deallocated.iter().flatten().cloned().collect(),
        prepared: c.prepared.clone(),
        forgets_portals: c.cursors.contains(&CursorChange::Close(None)),
        cursors: c.cursors.clone(),
        bound: Vec::new(),
        texts: None,
        needs: Vec::new(),
        param_types: None,
        // (DECLARE and CLOSE change what a portal name runs, too.)
        runs_code: ops.contains(&Operation::Code)
            || !c.functions.is_empty()
            || !c.writes.is_empty()
            || !c.cursors.is_empty(),
    }
}

/// Whether the server may read backslashes differently than pgward: any
/// statement still running may change standard_conforming_strings or
/// client_encoding (a SET, and as well a function, view, trigger, row
/// security policy or domain check calling set_config, which pgward cannot
/// see), and the server reports such a change only just before its
/// ReadyForQuery, after the replies to whatever it ran in the meantime.
#[derive(Debug, Default)]
struct Lexing {
    /// The ReadyForQuery messages the server owes (one per Query and per
    /// Sync), in order, each true when what it ends may run code (a Query,
    /// or a Sync after a Bind or Execute); a Sync after only Parse, Describe
    /// or Close runs nothing that could change a setting.
    owed: VecDeque<bool>,
    /// A Bind or Execute was forwarded since the last Sync (planning at
    /// Bind may run functions too).
    running: bool,
}

impl Lexing {
    fn uncertain(&self) -> bool {
        self.running || self.owed.iter().any(|&runs| runs)
    }
}

/// A decision made in this session, with what it implies.
struct Remembered {
    /// Keeps the classification alive, so its address (the key) is not reused.
    _classification: Classified,
    decision: Decision,
    facts: Facts,
}

/// Decisions remembered per session before starting over.
const SESSION_DECISIONS: usize = 1024;

impl Guard {
    /// A guard for a user's roles; `startup_search_path` is the search_path
    /// the server applies from the client's startup packet, when it set one.
    pub fn new(
        roles: Rc<[Role]>,
        database: &str,
        upstream_database: &str,
        startup_search_path: Option<&str>,
    ) -> Guard {
        let mut search_path = vec!["public".to_string()];
        if let Some(p) = startup_search_path {
            // Unparsable text is refused by the server at login.
            for s in split_identifier_list(p).unwrap_or_default() {
                if !search_path.contains(&s) {
                    search_path.push(s);
                }
            }
        }
        Guard {
            database: database.to_string(),
            upstream_database: upstream_database.to_string(),
            search_path,
            statements: HashMap::new(),
            portals: HashMap::new(),
            pending: VecDeque::new(),
            next_ticket: 0,
            last: Facts::default(),
            strings: Strings::Standard,
            decisions: HashMap::new(),
            catalog: None,
            masks: None,
            catalog_error: None,
            ddl_allowed: false,
            ddl_count: 0,
            lexing: Lexing::default(),
            login: String::new(),
            policy: 0,
            encoding: ClientEncoding::Utf8,
            unjudged: std::collections::HashSet::new(),
            batch: 0,
            approval: approval::rules_of(&roles),
            approver: None,
            waiting: None,
            granted: None,
            roles,
        }
    }

    /// Adds the search_path the upstream session reported at its start (the
    /// login's and the database's defaults apply there), with `$user` as
    /// the upstream login. An unreadable value is an error: names could not
    /// be resolved as the server does.
    pub fn learn_search_path(&mut self, text: &str, login: &str) -> Result<(), String> {
        self.login = login.to_string();
        let schemas = split_identifier_list(text)
            .ok_or_else(|| format!("the server's search_path {text:?} cannot be read"))?;
        for s in schemas {
            self.add_schema(s);
        }
        Ok(())
    }

    /// Adds a schema unqualified names may now resolve in; true if new.
    fn add_schema(&mut self, schema: String) -> bool {
        let schema = if schema == "$user" && !self.login.is_empty() {
            self.login.clone()
        } else {
            schema
        };
        if self.search_path.contains(&schema) {
            return false;
        }
        self.search_path.push(schema);
        true
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

    fn epoch(&self) -> Epoch {
        Epoch {
            search_path: self.search_path.len(),
            ddl: self.ddl_count,
            catalog: self.catalog.as_ref().map(|c| c.version),
            policy: self.policy,
        }
    }

    /// Applies the configured masks to decisions.
    pub fn set_masks(&mut self, masks: Rc<crate::policy::masks::Masks>) {
        self.decisions.clear();
        self.masks = Some(masks);
    }

    /// Takes up a reloaded policy: the user's roles and the masks as they are
    /// now. Prepared statements are judged again before their next use;
    /// portals bound under the old policy are forgotten (the server keeps
    /// them, but pgward refuses to run them until bound again).
    pub fn set_policy(&mut self, roles: Rc<[Role]>, masks: Rc<crate::policy::masks::Masks>) {
        self.approval = approval::rules_of(&roles);
        self.roles = roles;
        self.masks = Some(masks);
        self.decisions.clear();
        self.policy += 1;
        self.forget_portals();
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

    /// How the server lexes '...' strings, as far as pgward knows.
    pub fn strings(&self) -> Strings {
        self.strings
    }

    /// Follows the client encoding the server reports (at login and in
    /// every ParameterStatus); a name pgward cannot read in ends the session
    /// elsewhere, and meanwhile only plain ASCII is read.
    pub fn set_client_encoding(&mut self, name: &str) {
        self.encoding =
            crate::sql::encoding::client_encoding(name).unwrap_or(ClientEncoding::AsciiOnly);
    }

    /// The client encoding texts are read in.
    pub fn client_encoding(&self) -> ClientEncoding {
        self.encoding
    }

    /// Judges one SQL text the server is about to lex (a simple Query or a
    /// Parse).
    pub fn check_sql(&mut self, cache: &mut ClassificationCache, sql: &[u8]) -> Decision {
        match self.check_text(cache, sql) {
            Ok((decision, _)) => decision,
            Err(d) => Decision::Deny(d),
        }
    }

    /// Judges a text as the server will read it, and returns that text (in
    /// UTF-8) with the decision. A text holding a backslash, or any byte
    /// outside ASCII, is refused while anything forwarded before it is still
    /// running: it may change how the server reads backslashes or the client
    /// encoding, and pgward would learn of that only afterwards.
    fn check_text<'a>(
        &mut self,
        cache: &mut ClassificationCache,
        sql: &'a [u8],
    ) -> Result<(Decision, std::borrow::Cow<'a, str>), Denial> {
        if self.lexing.uncertain() && (memchr::memchr(b'\\', sql).is_some() || !sql.is_ascii()) {
            return Err(refuse_denial(
                "pgward: the statement holds a backslash or a non-ASCII character while earlier statements are still running",
                "rule: built-in; a running statement may change standard_conforming_strings or client_encoding (by SET, or by a function, view or trigger calling set_config), and the server reports that only when it is done: until then pgward cannot tell how the server will read a backslash or a non-ASCII byte",
                "send it once the earlier results have arrived (after their ReadyForQuery), or write it in plain ASCII without backslashes (values can go as bind parameters)",
            ));
        }
        let text = match self.encoding.decode(sql) {
            Ok(t) => t,
            Err(DecodeError::NotUtf8) => {
                return Err(refuse_denial(
                    "pgward: the statement is not valid UTF-8",
                    "rule: built-in; in a UTF8 session pgward reads statements as UTF-8, as the server does",
                    "send UTF-8 text, or set client_encoding to the encoding you send",
                ))
            }
            Err(DecodeError::NotAscii) => {
                return Err(refuse_denial(
                    "pgward: in this client encoding statements must be plain ASCII",
                    "rule: built-in; pgward reads UTF8, LATIN1 and LATIN9 statements as the server converts them; in the other encodings only ASCII reads the same everywhere",
                    "send non-ASCII values as bind parameters, or connect with client_encoding UTF8",
                ))
            }
        };
        let decision = self.judge(cache, text.as_bytes(), self.strings);
        Ok((decision, text))
    }

    /// Judges `sql` as the server lexes it under `strings`.
    fn judge(&mut self, cache: &mut ClassificationCache, sql: &[u8], strings: Strings) -> Decision {
        let classified = match cache.classify(sql, strings) {
            Ok(c) => c,
            Err(LookupError::NotUtf8) => {
                return refuse(
                    "pgward: the statement is not valid UTF-8",
                    "rule: built-in; pgward analyses UTF-8 text only",
                    "connect with client_encoding UTF8",
                )
            }
            Err(LookupError::Lex(e)) => {
                return syntax_error(
                    format!("pgward: syntax error: {e}"),
                    "check the quoting of strings, identifiers and comments, and that no number or parameter runs into a name (1abc, $1abc)",
                )
            }
        };
        let key = Rc::as_ptr(&classified) as usize;
        if let Some(r) = self.decisions.get(&key) {
            // The side effects of a decision apply on every use, cached or not.
            let (decision, facts) = (r.decision.clone(), r.facts.clone());
            let ddl = facts.ddl;
            self.last = facts;
            if decision.is_allowed() && ddl {
                self.schema_changes();
            }
            return decision;
        }
        let c = match classified.as_ref() {
            Ok(c) => c,
            Err(ClassifyError::Parse(e)) => {
                return syntax_error(
                    format!("pgward: syntax error: {e}"),
                    "fix the statement; PostgreSQL's own parser rejects it",
                )
            }
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
        let facts = Facts {
            reads_masked: self.reads_masked(c),
            bound: if c.bound_settings.is_empty() {
                Vec::new()
            } else {
                vec![classified.clone()]
            },
            ..facts_of(c)
        };
        let roles: Vec<&Role> = self.roles.iter().collect();
        let decision = decide(&roles, c, &self.view());
        let facts = match (&self.approval, decision.is_allowed()) {
            (Some(a), true) => Facts {
                needs: a.reasons(c, &self.view()),
                ..facts
            },
            _ => facts,
        };
        self.last = facts.clone();
        if decision.is_allowed() && facts.ddl {
            self.schema_changes();
        }
        let mut path_changed = false;
        if decision.is_allowed() {
            for s in &c.search_path {
                path_changed |= self.add_schema(s.clone());
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
                    facts,
                },
            );
        }
        decision
    }

    /// Notes an allowed statement that changes the schema.
    fn schema_changes(&mut self) {
        self.ddl_allowed = true;
        self.ddl_count += 1;
    }

    /// True when the classification reads a table with masked columns.
    fn reads_masked(&self, c: &Classification) -> bool {
        crate::policy::decide::reads_masked(c, &self.view())
    }

    /// What running an allowed statement or portal does to the mirror: its
    /// changes to the server's names wait under the returned ticket, and
    /// apply only if the server runs it without an error (a CLOSE or
    /// DEALLOCATE the server never ran must not make pgward forget a name
    /// the server still holds). Names SQL-level PREPARE creates are marked
    /// at once.
    fn runs(&mut self, f: &Facts) -> Option<Ticket> {
        for name in &f.prepared {
            self.unjudged.insert(server_name(name.as_bytes()).to_vec());
        }
        let mut changes = Vec::new();
        if f.forgets_statements {
            changes.push(NameChange::DropStatements(None));
        }
        for name in &f.deallocated {
            let name = server_name(name.as_bytes()).to_vec();
            changes.push(NameChange::DropStatements(Some(name)));
        }
        if f.forgets_portals {
            changes.push(NameChange::DropPortals(None));
        }
        for change in &f.cursors {
            changes.push(match change {
                CursorChange::Declare { name, hold } => {
                    // Fetching from it returns what its query reads (and
                    // runs what its query runs).
                    let facts = Facts {
                        reads_masked: f.reads_masked,
                        runs_code: f.runs_code,
                        texts: f.texts.clone(),
                        ..Facts::default()
                    };
                    let portal = Portal {
                        facts,
                        hold: *hold,
                        audit: None,
                    };
                    NameChange::Declare(server_name(name.as_bytes()).to_vec(), portal)
                }
                CursorChange::Close(name) => NameChange::DropPortals(
                    name.as_ref().map(|n| server_name(n.as_bytes()).to_vec()),
                ),
            });
        }
        (!changes.is_empty()).then(|| self.pend(Pending::Runs { changes }))
    }

    /// Applies the name changes of a statement the server ran.
    fn apply(&mut self, changes: Vec<NameChange>) {
        for change in changes {
            match change {
                NameChange::Declare(name, portal) => self.add_portal(name, portal),
                NameChange::DropPortals(Some(name)) => {
                    self.portals.remove(&name);
                }
                // The unnamed portal may be the one running the CLOSE ALL.
                NameChange::DropPortals(None) => self.portals.retain(|n, _| n.is_empty()),
                NameChange::DropStatements(Some(name)) => {
                    self.statements.remove(&name);
                    self.unjudged.remove(&name);
                }
                // DEALLOCATE ALL and DISCARD ALL keep the unnamed statement.
                NameChange::DropStatements(None) => {
                    self.statements.retain(|n, _| n.is_empty());
                    self.unjudged.clear();
                }
            }
        }
    }

    /// Forgets every portal at once, and every Bind and DECLARE in flight
    /// (a reload: pgward refuses to run what it judged under the old policy).
    fn forget_portals(&mut self) {
        self.portals.clear();
        self.pending
            .retain(|(_, p)| !matches!(p, Pending::Bind { .. }));
        for (_, p) in &mut self.pending {
            if let Pending::Runs { changes } = p {
                changes.retain(|c| !matches!(c, NameChange::Declare(..)));
            }
        }
    }

    /// Records a portal the server confirmed; a name pgward already knows
    /// keeps what it knew as well (a DECLARE of an existing name fails, and
    /// pgward cannot tell whether it did).
    fn add_portal(&mut self, name: Vec<u8>, portal: Portal) {
        let merged = match self.portals.remove(&name) {
            Some(old) => Portal {
                facts: old.facts.or(portal.facts),
                hold: old.hold || portal.hold,
                audit: old.audit.filter(|&n| portal.audit == Some(n)),
            },
            None => portal,
        };
        self.portals.insert(name, merged);
    }

    fn pend(&mut self, p: Pending) -> Ticket {
        let t = self.next_ticket;
        self.next_ticket += 1;
        self.pending.push_back((t, p));
        t
    }

    /// Whether the text last judged may run code (a DO block, a function,
    /// a write firing triggers), which may open cursors under any name.
    pub fn last_runs_code(&self) -> bool {
        self.last.runs_code
    }

    /// Judges a simple Query; the cursors an allowed one declares wait
    /// under the returned ticket for its ReadyForQuery.
    pub fn on_query(
        &mut self,
        cache: &mut ClassificationCache,
        sql: &[u8],
    ) -> (Decision, Option<Ticket>) {
        // (The server runs a Query's statements in the unnamed portal, which
        // is gone afterwards; pgward keeps its record of it: a stale record
        // is harmless, a missing one is not, and a Query the server skips
        // drops nothing.)
        let (d, text) = match self.check_text(cache, sql) {
            Ok((d, text)) => (d, Some(text)),
            Err(d) => (Decision::Deny(d), None),
        };
        let mut ticket = None;
        if d.is_allowed() && !self.last.needs.is_empty() {
            let needs = self.last.needs.clone();
            let context = self.approval_context(None, "");
            let sql = text.as_deref().unwrap_or_default();
            if let Err(denial) = self.approve(&needs, sql, None, &context) {
                return (Decision::Deny(denial), None);
            }
        }
        if d.is_allowed() {
            let mut facts = self.last.clone();
            let declares = facts
                .cursors
                .iter()
                .any(|c| matches!(c, CursorChange::Declare { .. }));
            if let (true, Some(text)) = (declares, text) {
                // The cursors' record names the text that declared them.
                facts.texts = Some(Rc::from([Rc::from(text.as_bytes())]));
            }
            ticket = self.runs(&facts);
        }
        (d, ticket)
    }

    /// Judges a Parse; an allowed one waits for ParseComplete under the
    /// returned ticket. `param_type` gives the declared type of `$n`.
    pub fn on_parse(
        &mut self,
        cache: &mut ClassificationCache,
        name: &[u8],
        sql: &[u8],
        param_type: &dyn Fn(usize) -> u32,
    ) -> Result<Ticket, Denial> {
        let name = self.name_key(name)?;
        let name = &*name;
        if name == REFUSAL_NAME {
            return Err(reserved());
        }
        let strings = self.strings;
        // The server keeps the text converted to its encoding: so does pgward.
        let sql = match self.check_text(cache, sql) {
            Ok((Decision::Allow { .. }, text)) => text,
            // (The server keeps its unnamed statement: it never sees this
            // Parse. pgward keeps its record too: forgetting what the server
            // holds would let a later Parse in flight stand for it.)
            Ok((Decision::Deny(d), _)) | Err(d) => return Err(d),
        };
        let sql = sql.as_bytes();
        for classified in &self.last.bound {
            let Ok(c) = classified.as_ref() else { continue };
            for n in c.setting_parameters() {
                if !TEXT_PARAMETER_TYPES.contains(&param_type(n)) {
                    return Err(refuse_denial(
                        format!("pgward: bind parameter ${n} names a setting but is not declared as text"),
                        "rule: built-in; a parameter naming a setting must reach the server as text exactly as pgward reads it (char and name types change it on the way)",
                        "leave its type unspecified, or declare it text",
                    ));
                }
            }
        }
        // A client re-parsing the same text under the same name (the unnamed
        // statement, usually) shares the stored text.
        let (sql, texts) = match self.statements.get(name) {
            Some(s) if *s.sql == *sql => (s.sql.clone(), s.facts.texts.clone()),
            _ => {
                let sql: Rc<[u8]> = Rc::from(sql);
                (sql.clone(), Some(Rc::from([sql])))
            }
        };
        let statement = Statement {
            sql,
            strings,
            judged: self.epoch(),
            facts: Facts {
                texts,
                ..self.last.clone()
            },
        };
        let batch = self.batch;
        Ok(self.pend(Pending::Parse {
            name: name.to_vec(),
            statement,
            batch,
        }))
    }

    /// Judges a Bind: every statement the server may bind under that name
    /// must have been allowed, and must still be if judged again. An allowed
    /// Bind waits for BindComplete under the returned ticket; what it runs
    /// (planning may call functions) goes to the audit log.
    /// `parameter` gives `$n` as text (`None` for NULL), for statements
    /// whose verdict depends on it.
    pub fn on_bind(
        &mut self,
        cache: &mut ClassificationCache,
        portal: &[u8],
        statement: &[u8],
        parameter: &dyn Fn(usize) -> Result<Option<Vec<u8>>, String>,
        parameters: &dyn Fn() -> Vec<(bool, Option<Vec<u8>>)>,
    ) -> Result<(Ticket, Runs), Denial> {
        let (portal, statement) = (self.name_key(portal)?, self.name_key(statement)?);
        let (portal, statement) = (&*portal, &*statement);
        if portal == REFUSAL_NAME {
            return Err(reserved());
        }
        let mut facts = self.statement_facts(cache, statement)?;
        self.judge_parameters(&facts, parameter)?;
        if !facts.needs.is_empty() {
            // The approval is for the text and the values the server runs.
            let texts = facts.texts.as_deref().unwrap_or_default();
            if texts.is_empty() {
                return Err(refuse_denial(
                    "pgward: this statement needs approval, but pgward does not know its text",
                    "rule: approval; a reviewer must see the text that runs",
                    "prepare the statement again with Parse",
                ));
            }
            let sql: Vec<String> = texts
                .iter()
                .map(|t| String::from_utf8_lossy(t).into_owned())
                .collect();
            let needs = facts.needs.clone();
            let (formats, values) = self.shown_parameters(parameters());
            let context = self.approval_context(facts.param_types.as_deref(), &formats);
            self.approve(&needs, &sql.join("\n"), Some(values), &context)?;
        }
        if facts.ddl {
            // Running prepared DDL changes the schema again.
            self.schema_changes();
        }
        self.lexing.running = true;
        let runs = Runs {
            texts: std::mem::take(&mut facts.texts),
            runs_code: facts.runs_code,
            bound: None,
        };
        let batch = self.batch;
        let ticket = self.pend(Pending::Bind {
            batch,
            name: portal.to_vec(),
            portal: Portal {
                facts,
                hold: false,
                audit: None,
            },
        });
        Ok((ticket, runs))
    }

    /// Judges the statements whose verdict waits for the Bind's parameters,
    /// with the settings the parameters name or set written in; an allowed
    /// search_path change counts from here on.
    fn judge_parameters(
        &mut self,
        facts: &Facts,
        parameter: &dyn Fn(usize) -> Result<Option<Vec<u8>>, String>,
    ) -> Result<(), Denial> {
        // A parameter's text as the server converts it from the client
        // encoding (outside ASCII only while the encoding cannot be changing).
        let encoding = self.encoding;
        let uncertain = self.lexing.uncertain();
        let text = |n: usize| -> Result<Option<String>, String> {
            match parameter(n)? {
                None => Ok(None),
                Some(bytes) if uncertain && !bytes.is_ascii() => Err(format!(
                    "bind parameter ${n} is not ASCII while earlier statements still run (they may change the client encoding)"
                )),
                Some(bytes) => encoding
                    .decode(&bytes)
                    .map(|t| Some(t.into_owned()))
                    .map_err(|_| {
                        format!("bind parameter ${n} cannot be read in the client encoding")
                    }),
            }
        };
        for classified in &facts.bound {
            let Ok(c) = classified.as_ref() else { continue };
            let full = c.with_parameters(&text).map_err(|why| {
                refuse_denial(
                    format!("pgward: {why}"),
                    "rule: built-in; a setting named by a bind parameter is judged at Bind, with the parameter's value",
                    "pass the setting's plain name as text",
                )
            })?;
            let roles: Vec<&Role> = self.roles.iter().collect();
            if let Decision::Deny(d) = decide(&roles, &full, &self.view()) {
                return Err(d);
            }
            let mut path_changed = false;
            for s in &full.search_path {
                path_changed |= self.add_schema(s.clone());
            }
            if path_changed {
                self.decisions.clear();
            }
        }
        Ok(())
    }

    /// What running the statement `name` may imply: the one the server
    /// holds and any Parse of it in flight, each judged again first if the
    /// server would analyse it again; a denial when none is known or one is
    /// refused now.
    fn statement_facts(
        &mut self,
        cache: &mut ClassificationCache,
        statement: &[u8],
    ) -> Result<Facts, Denial> {
        if self.unjudged.contains(statement) {
            return Err(refuse_denial(
                format!(
                    "pgward: prepared statement {} was made by SQL PREPARE, which pgward does not judge",
                    shown(statement)
                ),
                "rule: built-in; a statement prepared in SQL runs only by EXECUTE, which is refused",
                "prepare it with the protocol's Parse instead (any driver does)",
            ));
        }
        // The server drops the unnamed statement as each Parse of it starts:
        // a Bind in the same batch binds the last one (if that Parse fails
        // or is skipped, so is the Bind). Across a Sync it may be the held
        // one (a Parse skipped) as well.
        if statement.is_empty() {
            let current = self.batch;
            let last = self.pending.iter().rev().find_map(|(t, p)| match p {
                Pending::Parse { name, batch, .. } if name.is_empty() => Some((*t, *batch)),
                _ => None,
            });
            if let Some((t, batch)) = last {
                if batch == current {
                    return self.current_facts(cache, statement, Some(t));
                }
            }
        }
        // The statement the server holds, and any Parse of it in flight.
        let mut found = false;
        let mut facts = Facts::default();
        if self.statements.contains_key(statement) {
            found = true;
            facts = self.current_facts(cache, statement, None)?;
        }
        // (By index: judging never changes what is pending.)
        for i in 0..self.pending.len() {
            let t = match &self.pending[i] {
                (t, Pending::Parse { name, .. }) if name == statement => *t,
                _ => continue,
            };
            found = true;
            facts = facts.or(self.current_facts(cache, statement, Some(t))?);
        }
        if !found {
            return Err(unknown("prepared statement", statement));
        }
        Ok(facts)
    }

    /// What running a statement held (`None`) or in flight (under a ticket)
    /// implies now, judging it again first when the server would analyse it
    /// again; a denial when it is refused now.
    fn current_facts(
        &mut self,
        cache: &mut ClassificationCache,
        name: &[u8],
        at: Option<Ticket>,
    ) -> Result<Facts, Denial> {
        let now = self.epoch();
        let Some(s) = self.statement_mut(name, at) else {
            return Ok(Facts::default());
        };
        if s.judged == now {
            return Ok(s.facts.clone());
        }
        let (sql, strings) = (s.sql.clone(), s.strings);
        // The server analyses the statement again: so does pgward.
        if let Decision::Deny(d) = self.judge(cache, &sql, strings) {
            return Err(Denial {
                detail: format!(
                    "{}; prepared statement {} was judged again, as the server analyses it again: the search path, the schema or the catalog changed since it was prepared",
                    d.detail,
                    shown(name)
                ),
                ..d
            });
        }
        let judged = self.epoch();
        let types = self
            .statement_mut(name, at)
            .and_then(|s| s.facts.param_types.clone());
        let facts = Facts {
            texts: Some(Rc::from([sql])),
            param_types: types,
            ..self.last.clone()
        };
        if let Some(s) = self.statement_mut(name, at) {
            s.judged = judged;
            s.facts = facts.clone();
        }
        Ok(facts)
    }

    /// The record of a statement held (`None`) or in flight under a ticket.
    fn statement_mut(&mut self, name: &[u8], at: Option<Ticket>) -> Option<&mut Statement> {
        match at {
            None => self.statements.get_mut(name),
            Some(t) => self.pending.iter_mut().find_map(|(pt, p)| match p {
                Pending::Parse { statement, .. } if *pt == t => Some(statement),
                _ => None,
            }),
        }
    }

    /// Every portal the server may hold under `name`: pgward's record of
    /// it, then each Bind or DECLARE of it in flight, oldest first, each
    /// with the batch a Bind was sent in.
    fn portal_candidates<'a>(
        &'a self,
        name: &'a [u8],
    ) -> impl Iterator<Item = (&'a Portal, Option<u64>)> + 'a {
        let held = self.portals.get(name).map(|p| (p, None));
        let flying = self.pending.iter().flat_map(move |(_, p)| {
            let (bound, changes) = match p {
                Pending::Bind {
                    name: n,
                    portal,
                    batch,
                } if n == name => (Some((portal, Some(*batch))), &[][..]),
                Pending::Runs { changes } => (None, &changes[..]),
                _ => (None, &[][..]),
            };
            let declared = changes.iter().filter_map(move |c| match c {
                NameChange::Declare(n, p) if n == name => Some((p, None)),
                _ => None,
            });
            bound.into_iter().chain(declared)
        });
        held.into_iter().chain(flying)
    }

    /// The audit record of the Bind that made portal `name`, when every
    /// portal the server may hold under that name came from that one Bind
    /// (or the last is a Bind of this batch: if it fails, the server skips
    /// the Execute).
    fn portal_audit(&self, name: &[u8]) -> Option<u64> {
        let last = self.portal_candidates(name).last()?;
        if last.1 == Some(self.batch) {
            return last.0.audit;
        }
        let first = self.portal_candidates(name).next()?.0.audit?;
        self.portal_candidates(name)
            .all(|(p, _)| p.audit == Some(first))
            .then_some(first)
    }

    /// Whether the text last judged needs approval to run.
    pub fn last_needs_approval(&self) -> bool {
        !self.last.needs.is_empty()
    }

    /// Notes the declared parameter types of the Parse waiting under
    /// `ticket` (an approval is for values of these types).
    pub fn note_parse_types(&mut self, ticket: Ticket, types: Rc<[u32]>) {
        for (t, p) in &mut self.pending {
            if let (true, Pending::Parse { statement, .. }) = (*t == ticket, p) {
                statement.facts.param_types = Some(types.clone());
            }
        }
    }

    /// Notes the audit record of the Bind waiting under `ticket`.
    pub fn note_bind_record(&mut self, ticket: Ticket, n: u64) {
        for (t, p) in &mut self.pending {
            if let (true, Pending::Bind { portal, .. }) = (*t == ticket, p) {
                portal.audit = Some(n);
            }
        }
    }

    /// What running a portal may imply: its record and any Bind or DECLARE
    /// of it in flight; `None` when pgward knows of no such portal.
    fn portal_facts(&self, name: &[u8]) -> Option<Facts> {
        self.portal_candidates(name)
            .map(|(p, _)| p.facts.clone())
            .reduce(Facts::or)
    }

    /// Judges an Execute: its portal must have been bound from an allowed
    /// statement or declared by an allowed DECLARE. The cursors running it
    /// declares wait under the returned ticket.
    /// Also returns what the portal runs, for the audit log.
    pub fn on_execute(&mut self, portal: &[u8]) -> Result<Executed, Denial> {
        let portal = self.name_key(portal)?;
        let portal = &*portal;
        let mut f = self
            .portal_facts(portal)
            .ok_or_else(|| unknown("portal", portal))?;
        self.lexing.running = true;
        let runs = Runs {
            texts: std::mem::take(&mut f.texts),
            runs_code: f.runs_code,
            bound: self.portal_audit(portal),
        };
        Ok((self.runs(&f), runs))
    }

    /// Judges a Describe of a statement (`S`), which the server analyses
    /// again as it would for a Bind, or of a portal (`P`).
    pub fn on_describe(
        &mut self,
        cache: &mut ClassificationCache,
        kind: u8,
        name: &[u8],
    ) -> Option<Denial> {
        let name = match self.name_key(name) {
            Ok(n) => n,
            Err(d) => return Some(d),
        };
        let name = &*name;
        match kind {
            b'S' => self.statement_facts(cache, name).err(),
            _ => self
                .portal_facts(name)
                .is_none()
                .then(|| unknown("portal", name)),
        }
    }

    /// True when a portal's rows may need masking: the union over every
    /// statement the server may run under that name. (The relay describes
    /// every Execute when masks apply; tests check the union with it.)
    #[cfg(test)]
    pub fn portal_reads_masked(&self, portal: &[u8]) -> bool {
        let Ok(portal) = self.name_key(portal) else {
            return true;
        };
        self.portal_facts(&portal).is_some_and(|f| f.reads_masked)
    }

    /// A Close of a statement or portal, applied at CloseComplete. A name
    /// pgward cannot read as the server does changes nothing: pgward may then
    /// know a name the server dropped, never the other way round.
    pub fn on_close(&mut self, kind: u8, name: &[u8]) -> Option<Ticket> {
        let name = self.name_key(name).ok()?.into_owned();
        Some(self.pend(Pending::Close { kind, name }))
    }

    /// The name the server files a statement or portal under, as bytes of
    /// its UTF-8 text: converted from the client encoding as the server
    /// converts it, then cut at 63 bytes. A name pgward cannot read as the
    /// server does (another encoding's bytes, or any non-ASCII name while
    /// the encoding may be changing) is refused.
    fn name_key<'a>(&self, name: &'a [u8]) -> Result<std::borrow::Cow<'a, [u8]>, Denial> {
        use std::borrow::Cow;
        if name.is_ascii() {
            return Ok(Cow::Borrowed(server_name(name)));
        }
        let unreadable = || {
            refuse_denial(
                format!("pgward: the name {} cannot be read as the server reads it", shown(name)),
                "rule: built-in; statement and portal names outside ASCII are read in the client encoding, which is changing or not one pgward converts",
                "use ASCII names for prepared statements and portals",
            )
        };
        if self.lexing.uncertain() {
            return Err(unreadable());
        }
        match self.encoding.decode(name).map_err(|_| unreadable())? {
            Cow::Borrowed(text) => Ok(Cow::Borrowed(server_name(text.as_bytes()))),
            Cow::Owned(text) => Ok(Cow::Owned(server_name(text.as_bytes()).to_vec())),
        }
    }

    /// Applies (or drops) the change waiting under `ticket` once the server
    /// answered its message, failed it, or skipped it after an earlier error.
    pub fn settle(&mut self, ticket: Ticket, outcome: Outcome) {
        let Some(i) = self.pending.iter().position(|(t, _)| *t == ticket) else {
            // Forgotten meanwhile (DEALLOCATE, DISCARD, a Query).
            return;
        };
        let Some((_, p)) = self.pending.remove(i) else {
            return;
        };
        match (p, outcome) {
            (
                Pending::Parse {
                    name, statement, ..
                },
                Outcome::Done,
            ) => {
                // A named statement is never replaced (the server refuses a
                // Parse of an existing name), so this is new or the unnamed one.
                self.statements.insert(name, statement);
            }
            (Pending::Parse { name, .. }, Outcome::Failed) if name.is_empty() => {
                // The server drops the unnamed statement before parsing.
                self.statements.remove(&name);
            }
            (Pending::Bind { name, portal, .. }, Outcome::Done) => {
                self.portals.insert(name, portal);
            }

            (Pending::Close { kind: b'S', name }, Outcome::Done) => {
                self.statements.remove(&name);
            }
            (Pending::Close { name, .. }, Outcome::Done) => {
                self.portals.remove(&name);
            }
            (Pending::Runs { changes }, Outcome::Done) => self.apply(changes),
            // A failed Query may still have run some of its statements
            // (a DECLARE before SAVEPOINT and ROLLBACK TO, a WITH HOLD
            // cursor before COMMIT): its cursors count, its drops do not.
            (Pending::Runs { changes }, Outcome::Failed) => self.apply(
                changes
                    .into_iter()
                    .filter(|c| matches!(c, NameChange::Declare(..)))
                    .collect(),
            ),
            _ => {}
        }
    }

    /// Counts a message the server answers with ReadyForQuery (a Query,
    /// pgward's own or the client's, or a Sync), once forwarded.
    pub fn owe_ready(&mut self, query: bool) {
        self.batch += 1;
        let runs = query || self.lexing.running;
        self.lexing.owed.push_back(runs);
        self.lexing.running = false;
    }

    /// Takes back a Sync counted by `owe_ready` that the server ignored
    /// (it came during COPY FROM STDIN).
    pub fn sync_ignored(&mut self) {
        // One fewer ReadyForQuery comes; what the ignored Sync covered is
        // covered by the next one instead.
        if self.lexing.owed.pop_back() == Some(true) {
            match self.lexing.owed.back_mut() {
                Some(last) => *last = true,
                None => self.lexing.running = true,
            }
        }
    }

    /// Takes back the ReadyForQuery of a Query the server discarded while
    /// skipping to Sync: the first one owed. What it covered is covered by
    /// the next one instead.
    pub fn query_skipped(&mut self) {
        if self.lexing.owed.pop_front() == Some(true) {
            match self.lexing.owed.front_mut() {
                Some(next) => *next = true,
                None => self.lexing.running = true,
            }
        }
    }

    /// Notes a ReadyForQuery: outside a transaction block only cursors
    /// declared WITH HOLD survive.
    pub fn on_ready_for_query(&mut self, status: u8) {
        self.lexing.owed.pop_front();
        if status == b'I' {
            self.portals.retain(|_, p| p.hold);
        }
    }

    /// Follows the server's standard_conforming_strings (at login and in
    /// every ParameterStatus).
    pub fn set_standard_conforming_strings(&mut self, on: bool) {
        self.strings = if on {
            Strings::Standard
        } else {
            Strings::Escaped
        };
    }
}

/// Text PostgreSQL's parser rejects: a syntax error (42601), so an agent can
/// tell a typo from a denial.
fn syntax_error(message: String, hint: &str) -> Decision {
    Decision::Deny(Denial {
        code: "42601",
        message,
        detail: "rule: syntax; the statement does not parse".into(),
        hint: hint.into(),
    })
}

fn refuse(message: impl Into<String>, detail: &str, hint: &str) -> Decision {
    Decision::Deny(refuse_denial(message, detail, hint))
}

fn refuse_denial(message: impl Into<String>, detail: &str, hint: &str) -> Denial {
    Denial {
        code: "42501",
        message: message.into(),
        detail: detail.into(),
        hint: hint.into(),
    }
}

/// Parameter types whose value reaches a text argument unchanged, in text
/// and binary format alike: unspecified (the server infers text), text,
/// unknown, varchar.
const TEXT_PARAMETER_TYPES: &[u32] = &[0, 25, 705, 1043];

/// The longest statement or portal name the server tells apart
/// (NAMEDATALEN - 1 bytes).
const NAME_MAX: usize = 63;

/// The name the server files a statement or portal under: its first 63
/// bytes (cut by bytes, as the server compares them), so names that differ
/// only after that are one name to pgward too.
fn server_name(name: &[u8]) -> &[u8] {
    &name[..name.len().min(NAME_MAX)]
}

/// A statement or portal name as messages show it.
fn shown(name: &[u8]) -> String {
    if name.is_empty() {
        "(unnamed)".into()
    } else {
        format!("\"{}\"", String::from_utf8_lossy(name))
    }
}

fn reserved() -> Denial {
    Denial {
        code: "42501",
        message: format!(
            "pgward: the name \"{}\" is reserved for pgward's own refusals",
            String::from_utf8_lossy(REFUSAL_NAME)
        ),
        detail: "rule: built-in; pgward raises refusals under this statement and portal name"
            .into(),
        hint: "use another name".into(),
    }
}

fn unknown(what: &str, name: &[u8]) -> Denial {
    let shown = shown(name);
    Denial {
        code: "42501",
        message: format!("pgward: {what} {shown} was refused or does not exist"),
        detail: "rule: built-in; only statements pgward allowed at Parse may be bound and executed"
            .into(),
        hint: "send Parse again with an allowed statement".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::masks::{MaskSpec, Masks};
    use crate::policy::Policy;

    fn guard(role: &str) -> (Guard, ClassificationCache) {
        let policy = Policy::from_toml(include_str!("../../examples/policy.toml")).unwrap();
        let roles: Rc<[Role]> = policy
            .roles_of(&[role.to_string()])
            .into_iter()
            .cloned()
            .collect();
        let mut g = Guard::new(roles, "shop", "shop", None);
        let raw = [(
            "public.customers.email".to_string(),
            MaskSpec::Name("email".into()),
        )];
        g.set_masks(Rc::new(Masks::compile(&raw.into_iter().collect()).unwrap()));
        (g, ClassificationCache::new(100))
    }

    #[test]
    fn user_schemas_of_the_path_are_the_upstream_login() {
        let (mut g, mut c) = guard("reader");
        let catalog = Catalog::from_rows(
            [
                ("public", "orders", b'r', None),
                ("svc", "orders", b'r', None),
                ("public", "pg_notes", b'r', None),
            ],
            1,
        );
        g.set_catalog(Rc::new(catalog));
        g.learn_search_path("\"$user\", public", "svc").unwrap();
        assert!(g.learn_search_path("a b", "svc").is_err());
        // The reader may read public.* only: `orders` may be svc.orders.
        let (d, _) = g.on_query(&mut c, b"SELECT * FROM orders");
        assert!(!d.is_allowed(), "{d:?}");
        // A later SET search_path naming $user means the login too.
        let (mut g, mut c) = guard("reader");
        g.learn_search_path("public", "svc").unwrap();
        assert!(g.on_query(&mut c, b"SELECT 1").0.is_allowed());
        g.on_query(&mut c, b"SET search_path = \"$user\", public");
        assert!(g.view().search_path.contains(&"svc".to_string()));
    }

    #[test]
    fn a_user_relation_named_pg_something_is_checked_as_itself() {
        let (mut g, mut c) = guard("reader");
        let catalog = Catalog::from_rows(
            [
                ("internal", "pg_notes", b'r', None),
                ("pg_catalog", "pg_class", b'r', None),
            ],
            1,
        );
        g.set_catalog(Rc::new(catalog));
        g.learn_search_path("internal, public", "svc").unwrap();
        // internal.pg_notes is not readable; pg_catalog has no pg_notes.
        assert!(!g.on_query(&mut c, b"SELECT * FROM pg_notes").0.is_allowed());
        assert!(g
            .on_query(&mut c, b"SELECT relname FROM pg_class")
            .0
            .is_allowed());
    }

    fn parse(g: &mut Guard, c: &mut ClassificationCache, name: &str, sql: &str) -> Ticket {
        g.on_parse(c, name.as_bytes(), sql.as_bytes(), &|_| 0)
            .unwrap_or_else(|d| panic!("{sql}: {}", d.message))
    }

    fn bind(
        g: &mut Guard,
        c: &mut ClassificationCache,
        portal: &str,
        stmt: &str,
    ) -> Result<Ticket, Denial> {
        g.on_bind(
            c,
            portal.as_bytes(),
            stmt.as_bytes(),
            &|n| Err(format!("no parameter ${n}")),
            &Vec::new,
        )
        .map(|(t, _)| t)
    }

    #[test]
    fn records_change_only_when_the_server_confirms() {
        let (mut g, mut c) = guard("reader");
        // Parse then Bind in flight: the Bind may use the statement.
        let p = parse(&mut g, &mut c, "s", "SELECT email FROM customers");
        let b = bind(&mut g, &mut c, "p", "s").unwrap();
        assert!(g.portal_reads_masked(b"p"));
        g.settle(p, Outcome::Done);
        g.settle(b, Outcome::Done);
        // Parse of the existing name with an unmasked text: the server will
        // refuse it (42P05), so until then a Bind may get either statement.
        let again = parse(&mut g, &mut c, "s", "SELECT 1");
        let b = bind(&mut g, &mut c, "q", "s").unwrap();
        assert!(
            g.portal_reads_masked(b"q"),
            "the masked statement may be the one bound"
        );
        g.settle(again, Outcome::Failed);
        g.settle(b, Outcome::Done);
        let b = bind(&mut g, &mut c, "r", "s").unwrap();
        assert!(
            g.portal_reads_masked(b"r"),
            "the server kept the masked statement"
        );
        g.settle(b, Outcome::Done);
        // A Close the server skipped (an error before it) leaves the statement.
        let close = g.on_close(b'S', b"s").unwrap();
        g.settle(close, Outcome::Skipped);
        assert!(bind(&mut g, &mut c, "", "s").is_ok());
        // One it did forgets it.
        let close = g.on_close(b'S', b"s").unwrap();
        assert!(
            bind(&mut g, &mut c, "", "s").is_ok(),
            "the Close is still in flight"
        );
        g.settle(close, Outcome::Done);
        assert!(bind(&mut g, &mut c, "", "s").is_err());
    }

    #[test]
    fn skipped_and_failed_messages_change_nothing() {
        let (mut g, mut c) = guard("reader");
        let p = parse(&mut g, &mut c, "s", "SELECT 1");
        g.settle(p, Outcome::Skipped);
        assert!(
            bind(&mut g, &mut c, "", "s").is_err(),
            "a skipped Parse made nothing"
        );
        let p = parse(&mut g, &mut c, "s", "SELECT 1");
        g.settle(p, Outcome::Failed);
        assert!(
            bind(&mut g, &mut c, "", "s").is_err(),
            "a failed Parse made nothing"
        );
        // The unnamed statement is dropped before the server parses, so a
        // failed unnamed Parse leaves none.
        let p = parse(&mut g, &mut c, "", "SELECT 1");
        g.settle(p, Outcome::Done);
        let p = parse(&mut g, &mut c, "", "SELECT 2");
        g.settle(p, Outcome::Failed);
        assert!(bind(&mut g, &mut c, "", "").is_err());
        // A skipped Bind binds nothing.
        let p = parse(&mut g, &mut c, "t", "SELECT 1");
        g.settle(p, Outcome::Done);
        let b = bind(&mut g, &mut c, "p", "t").unwrap();
        g.settle(b, Outcome::Skipped);
        assert!(g.on_execute(b"p").is_err());
        // The reserved name is never the client's.
        assert!(g
            .on_parse(&mut c, REFUSAL_NAME, b"SELECT 1", &|_| 0)
            .is_err());
        assert!(bind(&mut g, &mut c, "pgward_refusal", "t").is_err());
    }

    #[test]
    fn portals_end_with_the_transaction_and_with_queries() {
        let (mut g, mut c) = guard("reader");
        let p = parse(&mut g, &mut c, "s", "SELECT 1");
        g.settle(p, Outcome::Done);
        let b = bind(&mut g, &mut c, "named", "s").unwrap();
        g.settle(b, Outcome::Done);
        let b = bind(&mut g, &mut c, "", "s").unwrap();
        g.settle(b, Outcome::Done);
        // Inside a transaction block both live on.
        g.on_ready_for_query(b'T');
        assert!(g.on_execute(b"named").is_ok());
        assert!(g.on_execute(b"").is_ok());
        // A simple Query runs in the unnamed portal (the server's is gone
        // after it; pgward's stale record is harmless: the server refuses).
        let _ = g.on_query(&mut c, b"SELECT 2");
        assert!(g.on_execute(b"named").is_ok());
        // Outside a block, Sync ends every portal.
        g.on_ready_for_query(b'I');
        assert!(g.on_execute(b"named").is_err());
        // The statement lives on.
        assert!(bind(&mut g, &mut c, "", "s").is_ok());
    }

    /// Binds the unnamed statement with text parameters.
    fn bind_with(
        g: &mut Guard,
        c: &mut ClassificationCache,
        params: &[Option<&str>],
    ) -> Result<Ticket, Denial> {
        let parameter = |n: usize| match params.get(n - 1) {
            Some(v) => Ok(v.map(|s| s.as_bytes().to_vec())),
            None => Err(format!("no parameter ${n}")),
        };
        g.on_bind(c, b"", b"", &parameter, &Vec::new)
            .map(|(t, _)| t)
    }

    #[test]
    fn settings_named_by_parameters_are_judged_at_bind() {
        let (mut g, mut c) = guard("reader");
        let p = parse(&mut g, &mut c, "", "SELECT current_setting($1)");
        g.settle(p, Outcome::Done);
        assert!(bind_with(&mut g, &mut c, &[Some("work_mem")]).is_ok());
        assert!(
            bind_with(&mut g, &mut c, &[None]).is_ok(),
            "NULL reads nothing"
        );
        for secret in ["data_directory", "DATA_Directory", "my.secret"] {
            let d = bind_with(&mut g, &mut c, &[Some(secret)]).unwrap_err();
            assert!(
                d.message.contains("data_directory") || d.message.contains("my.secret"),
                "{secret}: {}",
                d.message
            );
        }
        // A name the server might read differently is refused.
        for odd in ["data_directory ", "", "work mem", "work_mem\u{a0}"] {
            assert!(bind_with(&mut g, &mut c, &[Some(odd)]).is_err(), "{odd:?}");
        }
        assert!(bind_with(&mut g, &mut c, &[]).is_err(), "missing parameter");
        // The parameter must reach the server as text, used nowhere else.
        let bpchar = g.on_parse(&mut c, b"", b"SELECT current_setting($1)", &|_| 1042);
        assert!(bpchar.is_err());
        assert!(g
            .on_parse(&mut c, b"", b"SELECT current_setting($1)", &|_| 25)
            .is_ok());
        let twice = g.on_parse(
            &mut c,
            b"",
            b"SELECT $1::bpchar, current_setting($1)",
            &|_| 0,
        );
        assert!(twice.is_err());
    }

    #[test]
    fn texts_are_read_in_the_client_encoding_as_the_server_converts_them() {
        let (mut g, mut c) = guard("migrator");
        g.set_client_encoding("LATIN1");
        // The server holds the text converted: so does the record.
        let p = g
            .on_parse(&mut c, b"s", b"SELECT 'caf\xe9' AS x", &|_| 0)
            .unwrap();
        g.settle(p, Outcome::Done);
        assert_eq!(
            &*g.statements[&b"s"[..]].sql,
            "SELECT 'café' AS x".as_bytes()
        );
        // A parameter's value is converted too.
        let p = parse(
            &mut g,
            &mut c,
            "",
            "SELECT set_config('search_path', $1, false)",
        );
        g.settle(p, Outcome::Done);
        let latin1 = |n: usize| match n {
            1 => Ok(Some(b"sch\xe9ma, public".to_vec())),
            _ => Err("no such parameter".to_string()),
        };
        assert!(g.on_bind(&mut c, b"", b"", &latin1, &Vec::new).is_ok());
        assert!(
            g.search_path.contains(&"schéma".to_string()),
            "{:?}",
            g.search_path
        );
        // (The Bind's Sync is answered.)
        g.owe_ready(false);
        g.on_ready_for_query(b'I');
        // In other server encodings only plain ASCII is read.
        g.set_client_encoding("EUC_JP");
        assert!(g.check_sql(&mut c, b"SELECT 1").is_allowed());
        assert!(!g.check_sql(&mut c, b"SELECT '\xa4\xa2'").is_allowed());
        // UTF8 again: LATIN1 bytes are not UTF-8.
        g.set_client_encoding("UTF8");
        assert!(!g.check_sql(&mut c, b"SELECT 'caf\xe9'").is_allowed());
        assert!(g.check_sql(&mut c, "SELECT 'café'".as_bytes()).is_allowed());
        // While anything runs, a non-ASCII byte waits like a backslash.
        g.owe_ready(true);
        assert!(!g.check_sql(&mut c, "SELECT 'café'".as_bytes()).is_allowed());
        assert!(g.check_sql(&mut c, b"SELECT 'cafe'").is_allowed());
    }

    #[test]
    fn settings_changed_by_parameters_are_judged_at_bind() {
        let (mut g, mut c) = guard("migrator");
        let p = parse(&mut g, &mut c, "", "SELECT set_config($1, $2, false)");
        g.settle(p, Outcome::Done);
        assert!(bind_with(&mut g, &mut c, &[Some("work_mem"), Some("8MB")]).is_ok());
        let d = bind_with(&mut g, &mut c, &[Some("role"), Some("postgres")]).unwrap_err();
        assert!(d.message.contains("role"), "{}", d.message);
        assert!(bind_with(&mut g, &mut c, &[Some("log_statement"), Some("none")]).is_err());
        assert!(bind_with(&mut g, &mut c, &[Some("client_encoding"), Some("SJIS")]).is_err());
        assert!(bind_with(&mut g, &mut c, &[Some("search_path"), None]).is_err());
        // An allowed search_path change counts for what follows.
        assert!(!g.search_path.contains(&"internal".to_string()));
        assert!(bind_with(
            &mut g,
            &mut c,
            &[Some("search_path"), Some("internal, public")]
        )
        .is_ok());
        assert!(g.search_path.contains(&"internal".to_string()));
        // A literal name with a parameter value.
        let p = parse(&mut g, &mut c, "", "SELECT set_config('role', $1, false)");
        g.settle(p, Outcome::Done);
        assert!(bind_with(&mut g, &mut c, &[Some("x")]).is_err());
    }

    /// Runs a simple Query and its ReadyForQuery.
    fn query_done(g: &mut Guard, c: &mut ClassificationCache, sql: &str, status: u8) {
        let (d, ticket) = g.on_query(c, sql.as_bytes());
        assert!(d.is_allowed(), "{sql}: {d:?}");
        if let Some(t) = ticket {
            g.settle(t, Outcome::Done);
        }
        g.on_ready_for_query(status);
    }

    #[test]
    fn a_declared_cursor_is_a_portal_until_closed_or_its_transaction_ends() {
        let (mut g, mut c) = guard("reader");
        query_done(&mut g, &mut c, "BEGIN", b'T');
        // In flight: Describe and Execute may follow at once (pipelined).
        let (d, ticket) = g.on_query(&mut c, b"DECLARE Cur CURSOR FOR SELECT * FROM products");
        assert!(d.is_allowed(), "{d:?}");
        assert!(g.on_describe(&mut c, b'P', b"cur").is_none());
        assert!(g.on_describe(&mut c, b'P', b"Cur").is_some(), "names fold");
        g.settle(
            ticket.expect("a DECLARE waits for its reply"),
            Outcome::Done,
        );
        g.on_ready_for_query(b'T');
        assert!(g.on_execute(b"cur").is_ok());
        // FETCH and MOVE keep it; CLOSE of another name too.
        query_done(&mut g, &mut c, "FETCH 2 FROM cur", b'T');
        query_done(&mut g, &mut c, "MOVE ABSOLUTE 0 IN cur", b'T');
        query_done(&mut g, &mut c, "CLOSE other", b'T');
        assert!(g.on_execute(b"cur").is_ok());
        query_done(&mut g, &mut c, "CLOSE cur", b'T');
        assert!(g.on_execute(b"cur").is_err());
        // The end of the transaction ends it, unless WITH HOLD.
        query_done(&mut g, &mut c, "DECLARE a CURSOR FOR SELECT 1", b'T');
        query_done(
            &mut g,
            &mut c,
            "DECLARE h CURSOR WITH HOLD FOR SELECT 1",
            b'T',
        );
        query_done(&mut g, &mut c, "COMMIT", b'I');
        assert!(g.on_execute(b"a").is_err());
        assert!(g.on_execute(b"h").is_ok());
        query_done(&mut g, &mut c, "CLOSE ALL", b'I');
        assert!(g.on_execute(b"h").is_err());
        // A refused DECLARE declares nothing.
        let (d, ticket) = g.on_query(
            &mut c,
            b"DECLARE s CURSOR FOR SELECT * FROM internal.salaries",
        );
        assert!(!d.is_allowed() && ticket.is_none());
        assert!(g.on_execute(b"s").is_err());
    }

    #[test]
    fn a_cursor_declared_by_execute_exists_once_the_execute_succeeds() {
        let (mut g, mut c) = guard("reader");
        let p = parse(
            &mut g,
            &mut c,
            "",
            "DECLARE c CURSOR FOR SELECT * FROM products",
        );
        g.settle(p, Outcome::Done);
        let b = bind(&mut g, &mut c, "", "").unwrap();
        g.settle(b, Outcome::Done);
        let failed = g
            .on_execute(b"")
            .unwrap()
            .0
            .expect("a DECLARE waits for its reply");
        // A failed Execute may still have declared it (pgward may know more
        // names than the server, never fewer).
        g.settle(failed, Outcome::Failed);
        assert!(g.on_execute(b"c").is_ok());
        let skipped = g.on_execute(b"").unwrap().0.unwrap();
        g.settle(skipped, Outcome::Skipped);
        let b = bind(&mut g, &mut c, "", "").unwrap();
        g.settle(b, Outcome::Done);
        let done = g.on_execute(b"").unwrap().0.unwrap();
        g.settle(done, Outcome::Done);
        assert!(g.on_execute(b"c").is_ok());
        // A CLOSE the server ran forgets it; one in a failed Query does not.
        let (_, failed) = g.on_query(&mut c, b"SELECT 1/0; CLOSE c");
        g.settle(failed.unwrap(), Outcome::Failed);
        assert!(g.on_execute(b"c").is_ok());
        query_done(&mut g, &mut c, "CLOSE c", b'T');
        assert!(g.on_execute(b"c").is_err());
    }

    #[test]
    fn names_are_the_servers_first_63_bytes() {
        let (mut g, mut c) = guard("reader");
        let long = |end: &str| format!("{}{end}", "a".repeat(63));
        let p = parse(&mut g, &mut c, &long("X"), "SELECT 1");
        g.settle(p, Outcome::Done);
        // Closing `...Z` closes `...X` on the server: pgward forgets it too.
        let close = g.on_close(b'S', long("Z").as_bytes()).unwrap();
        g.settle(close, Outcome::Done);
        assert!(bind(&mut g, &mut c, "", &long("X")).is_err());
        // A statement parsed as `...Y` is the one `...X` binds.
        let p = parse(&mut g, &mut c, &long("Y"), "SELECT * FROM products");
        g.settle(p, Outcome::Done);
        let b = bind(&mut g, &mut c, &long("P"), &long("X")).unwrap();
        g.settle(b, Outcome::Done);
        g.on_ready_for_query(b'T');
        assert!(g.on_execute(long("Q").as_bytes()).is_ok());
        assert!(g
            .on_describe(&mut c, b'P', &long("R").as_bytes()[..63])
            .is_none());
        assert!(g
            .on_describe(&mut c, b'P', &long("R").as_bytes()[..62])
            .is_some());
    }

    #[test]
    fn a_parse_of_the_unnamed_statement_replaces_it_at_once() {
        let (mut g, mut c) = guard("migrator");
        let p = parse(
            &mut g,
            &mut c,
            "",
            "SELECT set_config('search_path', $1, false)",
        );
        g.settle(p, Outcome::Done);
        // A new Parse in flight: the Bind binds it, not the one held.
        let _flying = parse(&mut g, &mut c, "", "SELECT $1::text");
        // Text, but no search_path the server could read.
        let only_text = |n: usize| match n {
            1 => Ok(Some(b"a b".to_vec())),
            _ => Err(format!("no parameter ${n}")),
        };
        assert!(g.on_bind(&mut c, b"", b"", &only_text, &Vec::new).is_ok());
        // Across a Sync the Parse in flight may have been skipped: the held
        // statement counts too (its parameter is a setting's value).
        g.owe_ready(false);
        assert!(g.on_bind(&mut c, b"", b"", &only_text, &Vec::new).is_err());
        // A refused Parse never reaches the server: the held one stays.
        let (mut g, mut c) = guard("reader");
        let p = parse(&mut g, &mut c, "", "SELECT 1");
        g.settle(p, Outcome::Done);
        assert!(g
            .on_parse(&mut c, b"", b"SELECT * FROM internal.salaries", &|_| 0)
            .is_err());
        assert!(bind(&mut g, &mut c, "", "").is_ok());
    }

    #[test]
    fn parameters_outside_ascii_wait_while_the_encoding_may_change() {
        let (mut g, mut c) = guard("migrator");
        g.set_client_encoding("LATIN1");
        let p = parse(
            &mut g,
            &mut c,
            "",
            "SELECT set_config('search_path', $1, false)",
        );
        g.settle(p, Outcome::Done);
        let value = |n: usize| match n {
            1 => Ok(Some("données, public".as_bytes().to_vec())),
            _ => Err("none".to_string()),
        };
        // A Query still running (SET client_encoding = UTF8, say).
        g.owe_ready(true);
        let d = g.on_bind(&mut c, b"", b"", &value, &Vec::new).unwrap_err();
        assert!(d.message.contains("not ASCII"), "{}", d.message);
        g.on_ready_for_query(b'I');
        assert!(g.on_bind(&mut c, b"", b"", &value, &Vec::new).is_ok());
    }

    #[test]
    fn names_sql_prepare_makes_are_never_bound() {
        let (mut g, mut c) = guard("migrator");
        g.runs(&facts_of(
            &crate::sql::classify("PREPARE s(text) AS SELECT 1").unwrap(),
        ));
        // A Parse of the name in flight (the server refuses it: 42P05).
        let flying = parse(&mut g, &mut c, "s", "SELECT $1::text");
        g.owe_ready(false);
        let d = bind(&mut g, &mut c, "", "s").unwrap_err();
        assert!(d.message.contains("SQL PREPARE"), "{}", d.message);
        g.settle(flying, Outcome::Failed);
        let t = g
            .runs(&facts_of(&crate::sql::classify("DEALLOCATE s").unwrap()))
            .unwrap();
        g.settle(t, Outcome::Done);
        assert!(bind(&mut g, &mut c, "", "s").is_err(), "no record of s");
    }

    #[test]
    fn names_are_read_in_the_client_encoding() {
        let (mut g, mut c) = guard("reader");
        g.set_client_encoding("LATIN1");
        // 32 LATIN1 bytes are 64 UTF-8 bytes: cut at 63, two names are one.
        let a = vec![0xe9u8; 32];
        let mut b = a.clone();
        b.push(b'x');
        let p = g.on_parse(&mut c, &a, b"SELECT 1", &|_| 0).unwrap();
        g.settle(p, Outcome::Done);
        let close = g.on_close(b'S', &b).unwrap();
        g.settle(close, Outcome::Done);
        assert!(g
            .on_bind(&mut c, b"", &a, &|_| Err("none".into()), &Vec::new)
            .is_err());
        // And `é` by protocol is `"é"` in SQL.
        let p = g.on_parse(&mut c, b"\xe9", b"SELECT 1", &|_| 0).unwrap();
        g.settle(p, Outcome::Done);
        let t = g
            .runs(&facts_of(
                &crate::sql::classify("DEALLOCATE \"é\"").unwrap(),
            ))
            .unwrap();
        g.settle(t, Outcome::Done);
        assert!(g
            .on_bind(&mut c, b"", b"\xe9", &|_| Err("none".into()), &Vec::new)
            .is_err());
        // In an encoding pgward does not convert, such names are refused.
        g.set_client_encoding("EUC_JP");
        assert!(g
            .on_parse(&mut c, b"\xa4\xa2", b"SELECT 1", &|_| 0)
            .is_err());
        assert!(g.on_parse(&mut c, b"plain", b"SELECT 1", &|_| 0).is_ok());
    }

    #[test]
    fn deallocate_forgets_only_the_statement_it_names() {
        let (mut g, mut c) = guard("migrator");
        for name in ["s1", "s2"] {
            let p = parse(&mut g, &mut c, name, "SELECT 1");
            g.settle(p, Outcome::Done);
        }
        g.owe_ready(false);
        g.on_ready_for_query(b'I');
        let t = g
            .runs(&facts_of(&crate::sql::classify("DEALLOCATE s2").unwrap()))
            .unwrap();
        // Until the server has run it, s2 may still be there.
        assert!(bind(&mut g, &mut c, "", "s2").is_ok());
        g.settle(t, Outcome::Done);
        assert!(bind(&mut g, &mut c, "", "s1").is_ok());
        assert!(bind(&mut g, &mut c, "", "s2").is_err());
        let t = g
            .runs(&facts_of(&crate::sql::classify("DEALLOCATE ALL").unwrap()))
            .unwrap();
        g.settle(t, Outcome::Done);
        assert!(bind(&mut g, &mut c, "", "s1").is_err());
    }

    #[test]
    fn a_declare_of_a_known_name_keeps_what_was_known() {
        let (mut g, mut c) = guard("migrator");
        query_done(&mut g, &mut c, "BEGIN", b'T');
        let p = parse(&mut g, &mut c, "s", "CREATE TABLE t (a int)");
        g.settle(p, Outcome::Done);
        let b = bind(&mut g, &mut c, "p", "s").unwrap();
        g.settle(b, Outcome::Done);
        // The server refuses this DECLARE (the name is taken); pgward cannot
        // tell, so portal p keeps its DDL fact.
        query_done(&mut g, &mut c, "DECLARE p CURSOR FOR SELECT 1", b'T');
        assert!(g.on_execute(b"p").is_ok());
        let f = g.portal_facts(b"p").unwrap();
        assert!(f.ddl, "{f:?}");
    }

    #[test]
    fn sql_level_names_changes_forget_what_they_may_replace() {
        let (mut g, mut c) = guard("migrator");
        let p = parse(&mut g, &mut c, "s", "SELECT 1");
        g.settle(p, Outcome::Done);
        let b = bind(&mut g, &mut c, "p", "s").unwrap();
        g.settle(b, Outcome::Done);
        // A Parse sent before DISCARD ALL is done before it: forgotten too;
        // one sent after it stays.
        let before = parse(&mut g, &mut c, "t", "SELECT 1");
        let discard = g
            .runs(&Facts {
                forgets_statements: true,
                forgets_portals: true,
                ..Facts::default()
            })
            .unwrap();
        let after = parse(&mut g, &mut c, "u", "SELECT 1");
        g.settle(before, Outcome::Done);
        g.settle(discard, Outcome::Done);
        g.settle(after, Outcome::Done);
        assert!(bind(&mut g, &mut c, "", "s").is_err());
        assert!(bind(&mut g, &mut c, "", "t").is_err());
        assert!(bind(&mut g, &mut c, "", "u").is_ok());
        assert!(g.on_execute(b"p").is_err());
    }

    #[test]
    fn facts_follow_the_classification() {
        let f = |sql: &str| facts_of(&crate::sql::classify(sql).unwrap());
        assert!(f("DEALLOCATE ALL").forgets_statements);
        assert!(!f("PREPARE p AS SELECT 1").forgets_statements);
        assert!(!f("DEALLOCATE p").forgets_statements);
        assert_eq!(f("DEALLOCATE \"P\"; DEALLOCATE q").deallocated, ["P", "q"]);
        assert!(f("CLOSE ALL").forgets_portals);
        assert!(!f("DECLARE c CURSOR FOR SELECT 1").forgets_portals);
        assert!(!f("FETCH 10 FROM c").forgets_portals);
        assert!(!f("CLOSE c").forgets_portals);
        assert_eq!(
            f("DECLARE \"Mixed\" CURSOR WITH HOLD FOR SELECT 1; CLOSE c").cursors,
            vec![
                CursorChange::Declare {
                    name: "Mixed".into(),
                    hold: true
                },
                CursorChange::Close(Some("c".into()))
            ]
        );
        assert!(f("DISCARD ALL").forgets_statements && f("DISCARD ALL").forgets_portals);
        assert!(f("CREATE TABLE t (a int)").ddl);
        assert!(f("DO $$ BEGIN CREATE TABLE t (a int); END $$").ddl);
        assert_eq!(f("SELECT 1; SET search_path = x"), Facts::default());
    }

    #[test]
    fn a_statement_is_judged_again_when_its_names_may_resolve_elsewhere() {
        let (mut g, mut c) = guard("reader");
        let p = parse(&mut g, &mut c, "s", "SELECT * FROM customers");
        g.settle(p, Outcome::Done);
        assert!(bind(&mut g, &mut c, "", "s").is_ok());
        assert!(g
            .on_query(&mut c, b"SET search_path = internal, public")
            .0
            .is_allowed());
        let d = bind(&mut g, &mut c, "", "s").unwrap_err();
        assert_eq!(
            d.message,
            "pgward: role reader may not read internal.customers"
        );
        assert!(d.detail.contains("judged again"), "{}", d.detail);
        // A qualified one still binds.
        let p = parse(&mut g, &mut c, "q", "SELECT * FROM public.customers");
        g.settle(p, Outcome::Done);
        assert!(bind(&mut g, &mut c, "", "q").is_ok());
    }

    #[test]
    fn backslashes_wait_while_anything_runs() {
        let (mut g, mut c) = guard("migrator");
        let tricky = b"SELECT '\\' AS x, ' , 1 --'";
        // Pipelined behind a SET of standard_conforming_strings: refused.
        assert!(g
            .on_query(&mut c, b"SET standard_conforming_strings = off")
            .0
            .is_allowed());
        g.owe_ready(true);
        let d = g.check_sql(&mut c, tricky);
        assert!(
            matches!(&d, Decision::Deny(d) if d.message.contains("backslash")),
            "{d:?}"
        );
        // Without a backslash the text reads the same either way.
        assert!(g.check_sql(&mut c, b"SELECT 'plain'").is_allowed());
        // The report, then the SET's ReadyForQuery: settled, in the new mode.
        g.set_standard_conforming_strings(false);
        g.on_ready_for_query(b'I');
        assert_eq!(g.strings(), Strings::Escaped);
        assert!(g.check_sql(&mut c, tricky).is_allowed());
        // Behind anything at all (a view or a trigger may call set_config).
        assert!(g
            .on_query(&mut c, b"SELECT * FROM customers")
            .0
            .is_allowed());
        g.owe_ready(true);
        assert!(!g.check_sql(&mut c, b"SELECT E'\\\\'").is_allowed());
        g.on_ready_for_query(b'I');
        assert!(g.check_sql(&mut c, b"SELECT E'\\\\'").is_allowed());
    }

    #[test]
    fn in_the_extended_protocol_bind_and_execute_run_until_sync() {
        let (mut g, mut c) = guard("migrator");
        let p = parse(&mut g, &mut c, "", "SET standard_conforming_strings = off");
        // Parses alone run nothing.
        assert!(g.check_sql(&mut c, b"SELECT E'\\\\'").is_allowed());
        let b = bind(&mut g, &mut c, "", "").unwrap();
        assert!(!g.check_sql(&mut c, b"SELECT E'\\\\'").is_allowed());
        assert!(g.on_execute(b"").is_ok());
        assert!(!g.check_sql(&mut c, b"SELECT E'\\\\'").is_allowed());
        g.settle(p, Outcome::Done);
        g.settle(b, Outcome::Done);
        g.owe_ready(false); // the Sync, after a Bind and an Execute
        assert!(!g.check_sql(&mut c, b"SELECT E'\\\\'").is_allowed());
        g.on_ready_for_query(b'I');
        assert!(g.check_sql(&mut c, b"SELECT E'\\\\'").is_allowed());
        // A Sync the server ignored (during COPY) is not waited for.
        g.owe_ready(false);
        g.sync_ignored();
        assert!(g.check_sql(&mut c, b"SELECT E'\\\\'").is_allowed());
        // A Sync after only Parse, Describe or Close runs nothing: drivers
        // close statements in the background, and that must not hold texts.
        let _ = parse(&mut g, &mut c, "s", "SELECT 1");
        g.owe_ready(false);
        assert!(g.check_sql(&mut c, b"SELECT E'\\\\'").is_allowed());
        // But an ignored Sync that ended a Bind hands that on.
        let _ = bind(&mut g, &mut c, "", "s").unwrap();
        g.owe_ready(false);
        g.sync_ignored();
        assert!(!g.check_sql(&mut c, b"SELECT E'\\\\'").is_allowed());
    }

    #[test]
    fn strings_are_read_as_the_server_reads_them() {
        let (mut g, mut c) = guard("reader");
        // Under off, the table name is code; under on, it is in a string.
        let trick = b"SELECT '\\' AS x, ' , key_value FROM api_keys --'";
        assert!(g.check_sql(&mut c, trick).is_allowed());
        g.set_standard_conforming_strings(false);
        let d = g.check_sql(&mut c, trick);
        assert!(
            matches!(&d, Decision::Deny(d) if d.message == "pgward: role reader may not read public.api_keys"),
            "{d:?}"
        );
        assert!(g.check_sql(&mut c, b"SELECT 'it\\'s'").is_allowed());
        // A statement prepared under off is judged again under off.
        let p = parse(&mut g, &mut c, "s", "SELECT '\\' AS x, ' , 1 --'");
        g.settle(p, Outcome::Done);
        g.set_standard_conforming_strings(true);
        assert!(g.on_query(&mut c, b"SET search_path = x").0.is_allowed());
        assert!(bind(&mut g, &mut c, "", "s").is_ok());
    }
}
