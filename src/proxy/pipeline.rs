//! The replies the server still owes, in order. Every message forwarded
//! upstream that the server answers leaves an entry here; the relay matches
//! each server message against the head entry, so it knows which client
//! message a reply belongs to, which replies to hide (those of messages pgward
//! injected itself), and where its own synthetic replies go. Pure logic.

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
    /// Bytes pgward writes to the client itself, once everything before is answered.
    Synthetic(Bytes),
}

/// One entry of the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// What is owed.
    pub owed: Owed,
    /// False for replies to messages pgward injected: they are not forwarded.
    pub visible: bool,
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
}

impl Pipeline {
    /// Records that the server owes `owed` for a message just forwarded.
    pub fn push(&mut self, owed: Owed, visible: bool) {
        self.entries.push_back(Entry { owed, visible });
    }

    /// True when nothing is owed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many entries are queued.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Takes the synthetic replies now at the head of the queue, in order.
    pub fn take_synthetic(&mut self, out: &mut Vec<Bytes>) {
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

    /// Routes one server message by its tag and updates the queue.
    pub fn route(&mut self, tag: u8) -> Route {
        // Asynchronous messages belong to no request.
        if matches!(tag, b'N' | b'A' | b'S') {
            return Route::Forward;
        }
        let Some(head) = self.entries.front() else {
            // Nothing owed (a FATAL error before shutdown, say): pass it on.
            return Route::Forward;
        };
        let route = if head.visible {
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
            (Owed::Synthetic(_), _) => false,
        };
        if done {
            let extended_error = tag == b'E' && !matches!(head.owed, Owed::Query | Owed::Sync);
            self.entries.pop_front();
            if extended_error {
                // The server skips every extended message up to the next Sync.
                while let Some(e) = self.entries.front() {
                    if matches!(e.owed, Owed::Sync | Owed::Query | Owed::Synthetic(_)) {
                        break;
                    }
                    self.entries.pop_front();
                }
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
            .map(|&t| match p.route(t) {
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
    fn describe_statement_takes_two_messages_and_notices_pass() {
        let mut p = Pipeline::default();
        p.push(Owed::DescribeStatement, false);
        p.push(Owed::Query, true);
        assert_eq!(routes(&mut p, b"tNTTDCZ"), "-N-TDCZ");
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
