//! The replies the server still owes, in order. Every message forwarded
//! upstream that the server answers leaves an entry here; the relay matches
//! each server message against the head entry, so it knows which client
//! message a reply belongs to, which replies to hide (those of messages pgward
//! injected itself), and where its own synthetic replies go. An entry may
//! carry a ticket: the guard's change waiting for that reply, settled as
//! done, failed or skipped (after an extended-protocol error, the server
//! skips every message until Sync, simple Queries included). While the server takes COPY data
//! from the client it ignores Sync, so a Sync sent then owes nothing. Pure
//! logic.

use std::collections::VecDeque;

use bytes::Bytes;

/// What the server will send for one forwarded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owed {
    /// Simple Query: everything up to ReadyForQuery.
    Query,
    /// Parse, Bind or Close: ParseComplete, BindComplete or CloseComplete.
    One,
    /// Describe of a statement: ParameterDescription then RowDescription or NoData.
    DescribeStatement,
    /// Describe of a portal: RowDescription or NoData.
    DescribePortal,
    /// Execute: rows, then CommandComplete, EmptyQueryResponse or PortalSuspended
    /// (COPY in either direction in between).
    Execute,
    /// Sync: ReadyForQuery.
    Sync,
    /// Nothing: marks where the client ended its COPY data (CopyDone or
    /// CopyFail), so the Syncs the server ignores during COPY are known.
    CopyEnd,
    /// Bytes pgward writes to the client itself, once everything before is answered.
    Synthetic(Bytes),
}

/// Names a change that waits for the server's answer to one message.
pub type Ticket = u64;

/// What the queue tells its owner while routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The fate of a message that carried a ticket.
    Settled(Ticket, Outcome),
    /// A Sync that arrived during COPY FROM STDIN: the server ignores it, so
    /// one ReadyForQuery fewer is owed.
    SyncIgnored,
    /// A simple Query the server discarded while skipping to Sync after an
    /// extended-protocol error: its ReadyForQuery, the first one owed, never
    /// comes.
    QuerySkipped,
    /// The server ended a COPY FROM STDIN with an error after the client
    /// had sent Syncs during it: the server ignored those that came before
    /// the error and answers those after it, and which were which cannot be
    /// told. The reply queue can no longer be trusted.
    LostTrack,
    /// The server finished (or skipped) a statement the audit log follows:
    /// its number in the session, how it ended, and the tag of the
    /// message that ended it (`Z`, `C`, `I`, `s`, `E`; 0 when skipped).
    Audited(u64, Outcome, u8),
}

/// What became of a message that carried a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The server did it (ParseComplete, BindComplete, CloseComplete).
    Done,
    /// The server answered it with an error.
    Failed,
    /// The server skipped it, after an earlier error, until Sync.
    Skipped,
}

/// One entry of the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// What is owed.
    pub owed: Owed,
    /// False for replies to messages pgward injected: they are not forwarded.
    pub visible: bool,
    /// The change to settle when the reply comes.
    pub ticket: Option<Ticket>,
    /// A simple Query whose reply held an error: it failed, at least in part.
    pub failed: bool,
    /// The statement's number in the audit log, when it is followed.
    pub audit: Option<u64>,
}

/// What to do with one server message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Send it to the client.
    Forward,
    /// Drop it: it answers a message the client never sent.
    Hide,
}

/// The queue of owed replies.
#[derive(Debug, Default)]
pub struct Pipeline {
    entries: VecDeque<Entry>,
    /// The server is taking COPY data and the client's end of it has not
    /// been forwarded yet.
    copy_in: bool,
    /// A COPY FROM STDIN started and its own reply has not ended yet.
    copy_open: bool,
    /// Syncs counted as ignored since that COPY started.
    copy_syncs: usize,
    /// An extended-protocol message went upstream since the last Sync the
    /// server takes: it has an implicit transaction open that an error must
    /// abort.
    batch_open: bool,
    /// The server failed an extended-protocol message and skips everything
    /// up to a Sync that has not been forwarded yet: messages forwarded now
    /// get no reply at all.
    skipping: bool,
}

impl Pipeline {
    /// Records that the server owes `owed` for a message just forwarded.
    pub fn push(&mut self, owed: Owed, visible: bool) {
        self.push_ticket(owed, visible, None);
    }

    /// True while the server skips messages after an error, until the Sync
    /// the client has yet to send: a message forwarded now owes nothing.
    pub fn is_skipping(&self) -> bool {
        self.skipping
    }

    /// Records an owed reply that settles `ticket`. True when a
    /// ReadyForQuery is owed for it (a Query, or a Sync outside COPY).
    pub fn push_ticket(&mut self, owed: Owed, visible: bool, ticket: Option<Ticket>) -> bool {
        if owed == Owed::Sync {
            self.skipping = false;
        }
        match owed {
            Owed::Sync if self.copy_in => {
                self.copy_syncs += 1;
                return false;
            }
            Owed::CopyEnd if self.copy_in => {
                self.copy_in = false;
                return false;
            }
            _ => {}
        }
        match owed {
            Owed::Sync => self.batch_open = false,
            Owed::One | Owed::DescribeStatement | Owed::DescribePortal | Owed::Execute => {
                self.batch_open = true
            }
            _ => {}
        }
        let ready = matches!(owed, Owed::Query | Owed::Sync);
        self.entries.push_back(Entry {
            owed,
            visible,
            ticket,
            failed: false,
            audit: None,
        });
        ready
    }

    /// Marks the entry just pushed as answering audited statement `n`.
    pub fn audit_last(&mut self, n: u64) {
        if let Some(e) = self.entries.back_mut() {
            e.audit = Some(n);
        }
    }

    /// The audited statement the next server message answers, if any.
    pub fn head_audit(&self) -> Option<u64> {
        self.entries
            .iter()
            .find(|e| e.owed != Owed::CopyEnd)
            .and_then(|e| e.audit)
    }

    /// Drops the markers at the head: they owe nothing.
    fn skip_markers(&mut self) {
        while self
            .entries
            .front()
            .is_some_and(|e| e.owed == Owed::CopyEnd)
        {
            self.entries.pop_front();
        }
    }

    /// The server started taking COPY data (CopyInResponse): the Syncs the
    /// client sent before ending its data are ignored.
    fn copy_started(&mut self, mut event: impl FnMut(Event)) {
        let mut i = 1;
        while i < self.entries.len() {
            match self.entries[i].owed {
                Owed::CopyEnd => {
                    self.entries.remove(i);
                    return;
                }
                Owed::Sync => {
                    // Ignored: the batch before it stays open.
                    self.entries.remove(i);
                    self.copy_syncs += 1;
                    self.batch_open = true;
                    event(Event::SyncIgnored);
                }
                _ => i += 1,
            }
        }
        self.copy_in = true;
    }

    /// The COPY's own reply ended (CommandComplete or ErrorResponse): the
    /// server takes no more COPY data, whatever the client still sends.
    fn copy_ended(&mut self, tag: u8, mut event: impl FnMut(Event)) {
        if tag == b'E' && self.copy_syncs > 0 {
            event(Event::LostTrack);
        }
        self.copy_open = false;
        self.copy_in = false;
        self.copy_syncs = 0;
    }

    /// True while the server may be taking COPY data (a Sync forwarded now
    /// is ignored).
    pub fn in_copy(&self) -> bool {
        self.copy_in
    }

    /// True when the server is idle as far as the client's messages go:
    /// nothing owed, no extended batch without its Sync, no COPY.
    pub fn is_idle(&self) -> bool {
        self.entries.is_empty() && !self.batch_open && !self.copy_in && !self.copy_open
    }

    /// True when nothing is owed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many entries are queued.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when a synthetic reply is next in line.
    pub fn synthetic_next(&self) -> bool {
        self.entries
            .iter()
            .find(|e| e.owed != Owed::CopyEnd)
            .is_some_and(|e| matches!(e.owed, Owed::Synthetic(_)))
    }

    /// Takes the synthetic replies now at the head of the queue, in order.
    pub fn take_synthetic(&mut self, out: &mut Vec<Bytes>) {
        self.skip_markers();
        while let Some(Entry {
            owed: Owed::Synthetic(_),
            ..
        }) = self.entries.front()
        {
            if let Some(Entry {
                owed: Owed::Synthetic(b),
                ..
            }) = self.entries.pop_front()
            {
                out.push(b);
            }
        }
    }

    /// True when an error answering the head entry (`owed`, a hidden one)
    /// must reach the client anyway: after it the server skips the client's
    /// own messages up to the Sync, which then get no reply of their own (a
    /// refusal raised in an aborted transaction, or pgward's Describe of a
    /// portal that does not exist, fails in place of the client's Execute).
    fn error_shows(&self, owed: &Owed) -> bool {
        if matches!(owed, Owed::Query | Owed::Sync) {
            return false;
        }
        self.entries
            .iter()
            .skip(1)
            .take_while(|e| !matches!(e.owed, Owed::Sync | Owed::Synthetic(_)))
            .any(|e| e.visible && e.owed != Owed::CopyEnd)
    }

    /// Routes one server message by its tag and updates the queue; what the
    /// owner must know (tickets settled, Syncs ignored) goes to `event`.
    pub fn route(&mut self, tag: u8, mut event: impl FnMut(Event)) -> Route {
        // Asynchronous messages belong to no request.
        if matches!(tag, b'N' | b'A' | b'S') {
            return Route::Forward;
        }
        self.skip_markers();
        if tag == b'G' {
            self.copy_open = true;
            self.copy_syncs = 0;
            self.copy_started(&mut event);
        } else if self.copy_open && matches!(tag, b'C' | b'E') {
            self.copy_ended(tag, &mut event);
        }
        let Some(head) = self.entries.front_mut() else {
            // Nothing owed (a FATAL error before shutdown, say): pass it on.
            return Route::Forward;
        };
        if head.owed == Owed::Query && tag == b'E' {
            head.failed = true;
        }
        let head = &self.entries[0];
        let route = if head.visible || (tag == b'E' && self.error_shows(&head.owed)) {
            Route::Forward
        } else {
            Route::Hide
        };
        let done = match (&head.owed, tag) {
            (Owed::Query, b'Z') | (Owed::Sync, b'Z') => true,
            (Owed::Query, _) => false,
            (Owed::One, _) => true,
            (Owed::DescribeStatement, b't') => false,
            (Owed::DescribeStatement, _) | (Owed::DescribePortal, _) => true,
            (Owed::Execute, b'C' | b'I' | b's' | b'E') => true,
            (Owed::Execute, _) => false,
            (Owed::Sync, _) => false,
            (Owed::Synthetic(_), _) | (Owed::CopyEnd, _) => false,
        };
        if done {
            let extended_error = tag == b'E' && !matches!(head.owed, Owed::Query | Owed::Sync);
            if let Some(t) = head.ticket {
                let outcome = if tag == b'E' || head.failed {
                    Outcome::Failed
                } else {
                    Outcome::Done
                };
                event(Event::Settled(t, outcome));
            }
            if let Some(n) = head.audit {
                let outcome = if tag == b'E' || head.failed {
                    Outcome::Failed
                } else {
                    Outcome::Done
                };
                event(Event::Audited(n, outcome, tag));
            }
            self.entries.pop_front();
            if extended_error {
                // The server skips every message up to the next Sync, simple
                // Queries included.
                while let Some(e) = self.entries.front() {
                    if matches!(e.owed, Owed::Sync | Owed::Synthetic(_)) {
                        break;
                    }
                    if let Some(t) = e.ticket {
                        event(Event::Settled(t, Outcome::Skipped));
                    }
                    if let Some(n) = e.audit {
                        event(Event::Audited(n, Outcome::Skipped, 0));
                    }
                    if e.owed == Owed::Query {
                        event(Event::QuerySkipped);
                    }
                    self.entries.pop_front();
                }
                // No Sync forwarded yet: whatever comes before it is skipped too.
                self.skipping = !self.entries.iter().any(|e| e.owed == Owed::Sync);
            }
        }
        route
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(p: &mut Pipeline, tags: &[u8]) -> String {
        tags.iter()
            .map(|&t| match p.route(t, |_| {}) {
                Route::Forward => (t as char).to_string(),
                Route::Hide => "-".to_string(),
            })
            .collect()
    }

    #[test]
    fn hides_replies_to_injected_messages_only() {
        let mut p = Pipeline::default();
        // Client: Parse, Bind, Execute; pgward injects a hidden Parse and Bind,
        // a visible Execute; then the client's Sync.
        for (o, v) in [
            (Owed::One, true),
            (Owed::One, true),
            (Owed::Execute, true),
            (Owed::One, false),
            (Owed::One, false),
            (Owed::Execute, true),
            (Owed::Sync, true),
        ] {
            p.push(o, v);
        }
        assert_eq!(routes(&mut p, b"12DDC12EZ"), "12DDC--EZ");
        assert!(p.is_empty());
    }

    #[test]
    fn an_error_in_a_hidden_reply_is_shown_when_the_clients_messages_are_skipped() {
        let mut p = Pipeline::default();
        // A refusal raised in an aborted transaction: the hidden Parse fails.
        for (o, v) in [
            (Owed::One, false),
            (Owed::One, false),
            (Owed::One, false),
            (Owed::One, false),
            (Owed::Execute, true),
            (Owed::Sync, true),
        ] {
            p.push(o, v);
        }
        assert_eq!(routes(&mut p, b"33EZ"), "--EZ");
        assert!(p.is_empty());
        // An error of a hidden message whose skipped followers are hidden
        // too stays hidden (nothing of the client's was lost).
        for (o, v) in [(Owed::One, false), (Owed::One, false), (Owed::Sync, true)] {
            p.push(o, v);
        }
        assert_eq!(routes(&mut p, b"EZ"), "-Z");
    }

    #[test]
    fn a_query_sent_while_the_server_skips_to_sync_owes_nothing() {
        let mut p = Pipeline::default();
        for (o, t) in [
            (Owed::One, None),
            (Owed::One, None),
            (Owed::Execute, None),
            (Owed::Query, Some(7)),
            (Owed::Sync, None),
        ] {
            p.push_ticket(o, true, t);
        }
        let mut events = Vec::new();
        for tag in *b"12EZ" {
            p.route(tag, |e| events.push(e));
        }
        assert!(p.is_empty(), "{:?}", p.entries);
        assert_eq!(
            events,
            [Event::Settled(7, Outcome::Skipped), Event::QuerySkipped]
        );
    }

    #[test]
    fn a_query_whose_reply_held_an_error_failed() {
        let mut p = Pipeline::default();
        p.push_ticket(Owed::Query, true, Some(1));
        p.push_ticket(Owed::Query, true, Some(2));
        let mut events = Vec::new();
        for tag in *b"CEZCZ" {
            p.route(tag, |e| events.push(e));
        }
        assert_eq!(
            events,
            [
                Event::Settled(1, Outcome::Failed),
                Event::Settled(2, Outcome::Done)
            ]
        );
    }

    #[test]
    fn an_error_skips_to_sync() {
        let mut p = Pipeline::default();
        for o in [
            Owed::One,
            Owed::One,
            Owed::DescribePortal,
            Owed::Execute,
            Owed::Sync,
        ] {
            p.push(o, true);
        }
        assert_eq!(routes(&mut p, b"EZ"), "EZ");
        assert!(p.is_empty());
    }

    #[test]
    fn after_an_error_messages_before_the_sync_owe_nothing() {
        let mut p = Pipeline::default();
        p.push(Owed::One, true);
        assert_eq!(routes(&mut p, b"E"), "E");
        assert!(p.is_skipping());
        // The client's next Sync ends it; what follows is answered again.
        p.push(Owed::Sync, true);
        assert!(!p.is_skipping());
        p.push(Owed::One, true);
        assert_eq!(routes(&mut p, b"Z1"), "Z1");
        // An error with the Sync already forwarded: nothing more is skipped.
        p.push(Owed::One, true);
        p.push(Owed::Sync, true);
        assert_eq!(routes(&mut p, b"E"), "E");
        assert!(!p.is_skipping());
    }

    #[test]
    fn describe_statement_takes_two_messages_and_notices_pass() {
        let mut p = Pipeline::default();
        p.push(Owed::DescribeStatement, false);
        p.push(Owed::Query, true);
        assert_eq!(routes(&mut p, b"tNTTDCZ"), "-N-TDCZ");
    }

    #[test]
    fn tickets_settle_as_the_server_answers() {
        let mut p = Pipeline::default();
        // Parse 0, Bind 1, Sync; Parse 2, Bind 3, Close 4, Sync.
        for (o, t) in [
            (Owed::One, Some(0)),
            (Owed::One, Some(1)),
            (Owed::Sync, None),
            (Owed::One, Some(2)),
            (Owed::One, Some(3)),
            (Owed::One, Some(4)),
            (Owed::Sync, None),
        ] {
            p.push_ticket(o, true, t);
        }
        let mut settled = Vec::new();
        // Done, done; then the Parse fails and the rest is skipped.
        for tag in *b"12ZEZ" {
            p.route(tag, |e| {
                if let Event::Settled(t, o) = e {
                    settled.push((t, o))
                }
            });
        }
        assert_eq!(
            settled,
            [
                (0, Outcome::Done),
                (1, Outcome::Done),
                (2, Outcome::Failed),
                (3, Outcome::Skipped),
                (4, Outcome::Skipped),
            ]
        );
        assert!(p.is_empty());
    }

    #[test]
    fn syncs_sent_during_copy_in_are_not_owed() {
        // Bind, Execute (COPY FROM STDIN), Sync sent at once; the data and
        // CopyDone follow CopyInResponse, then a Sync.
        let mut p = Pipeline::default();
        assert!(!p.push_ticket(Owed::One, true, None));
        assert!(!p.push_ticket(Owed::Execute, true, None));
        assert!(p.push_ticket(Owed::Sync, true, None));
        let mut ignored = 0;
        let mut count = |e: Event| ignored += usize::from(e == Event::SyncIgnored);
        assert_eq!(p.route(b'2', &mut count), Route::Forward);
        p.route(b'G', &mut count);
        assert!(
            !p.push_ticket(Owed::Sync, true, None),
            "ignored during COPY"
        );
        assert!(!p.push_ticket(Owed::CopyEnd, true, None));
        assert!(p.push_ticket(Owed::Sync, true, None));
        for tag in *b"CZ" {
            p.route(tag, &mut count);
        }
        assert!(p.is_empty());
        assert_eq!(ignored, 1);
        // All at once, CopyDone before CopyInResponse arrives: only the Sync
        // before CopyDone is ignored.
        let mut p = Pipeline::default();
        for o in [Owed::Query, Owed::Sync, Owed::CopyEnd, Owed::Sync] {
            p.push_ticket(o, true, None);
        }
        let mut ignored = 0;
        for tag in *b"GCZZ" {
            p.route(tag, |e| ignored += usize::from(e == Event::SyncIgnored));
        }
        assert!(p.is_empty());
        assert_eq!(ignored, 1);
        // A COPY that fails to start ignores nothing; the markers owe nothing.
        let mut p = Pipeline::default();
        for o in [Owed::Execute, Owed::Sync, Owed::CopyEnd, Owed::Sync] {
            p.push_ticket(o, true, None);
        }
        assert_eq!(routes(&mut p, b"EZZ"), "EZZ");
        assert!(p.is_empty());
    }

    #[test]
    fn synthetic_replies_wait_their_turn() {
        let mut p = Pipeline::default();
        p.push(Owed::Query, true);
        p.push(Owed::Synthetic(Bytes::from_static(b"x")), true);
        let mut out = Vec::new();
        p.take_synthetic(&mut out);
        assert!(out.is_empty());
        assert_eq!(routes(&mut p, b"CZ"), "CZ");
        p.take_synthetic(&mut out);
        assert_eq!(out, vec![Bytes::from_static(b"x")]);
    }
}
