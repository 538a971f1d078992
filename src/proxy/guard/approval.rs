//! The guard's part in approvals: an allowed statement that matches a risk
//! of the user's roles runs only if the session's approver grants it; else
//! it is refused (retry mode) or held by the relay (hold mode). The text and
//! parameters asked about are the ones the server will run.

use std::rc::Rc;

use super::Guard;
use crate::policy::approval::{Approval, Mode};
use crate::policy::role::Role;
use crate::policy::Denial;

/// What a session's approver answers for one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// An approval of this identical statement was used.
    Granted {
        /// The request.
        id: String,
        /// Who approved it.
        by: Option<String>,
    },
    /// A request waits for a reviewer.
    Wait {
        /// The request.
        id: String,
        /// Whether it was made just now (not named again).
        new: bool,
    },
    /// No request could be made.
    Refused(Denial),
}

/// Asks for approvals on the session's behalf.
pub trait Approver {
    /// Asks for `sql` (with `params`, for a Bind), which matched `reasons`
    /// of `rules`; `context` is how the server reads them (string mode,
    /// parameter types and formats), part of what is approved.
    fn ask(
        &self,
        rules: &Approval,
        sql: &str,
        params: Option<Vec<Option<String>>>,
        reasons: &[String],
        context: &str,
    ) -> Answer;
}

/// A request the statement last judged waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// The request.
    pub id: String,
    /// How it waits.
    pub mode: Mode,
    /// Whether it was made just now.
    pub new: bool,
    /// How long a held statement waits.
    pub timeout: std::time::Duration,
}

/// The approval rules of a user with `roles`.
pub fn rules_of(roles: &[Role]) -> Option<Rc<Approval>> {
    let roles: Vec<&Role> = roles.iter().collect();
    Approval::of(&roles).map(Rc::new)
}

/// The refusal while a request waits: SQLSTATE PW001, naming the request.
pub fn approval_required(id: &str, rules: &Approval, reasons: &[String]) -> Denial {
    let ttl = rules.grant_ttl.as_secs();
    Denial {
        code: "PW001",
        message: format!("pgward: approval required (request {id})"),
        detail: format!(
            "rule: approval; the statement matches {} in the user's roles",
            reasons.join(", ")
        ),
        hint: format!(
            "a reviewer approves it with: pgward approvals approve {id}; then send the identical statement again within {ttl} s"
        ),
    }
}

impl Guard {
    /// Sets who asks for approvals (none: statements that need one are
    /// refused).
    pub fn set_approver(&mut self, approver: Rc<dyn Approver>) {
        self.approver = Some(approver);
    }

    /// How the server will read a statement, beyond its text: whether
    /// backslashes escape in strings, and for a Bind the declared parameter
    /// types and which values are binary. The same bytes under another
    /// reading are another statement.
    /// Bind values as reviewers see them and as the server reads them: a
    /// text value converted from the client encoding (`t`), or in hex when
    /// it cannot be (`h`) or is binary (`b`); the letters go in the context,
    /// so no two readings share a key.
    pub(super) fn shown_parameters(
        &self,
        values: Vec<(bool, Option<Vec<u8>>)>,
    ) -> (String, Vec<Option<String>>) {
        let mut formats = String::new();
        let shown = values
            .into_iter()
            .map(|(binary, v)| {
                let text = match (binary, v.as_deref().map(|b| self.encoding.decode(b))) {
                    (false, Some(Ok(t))) => Some(('t', t.into_owned())),
                    (_, None) => None,
                    _ => v.as_deref().map(|b| {
                        let kind = if binary { 'b' } else { 'h' };
                        (kind, crate::approval::request::shown_param(b, true))
                    }),
                };
                formats.push(
                    text.as_ref()
                        .map_or(if binary { 'b' } else { 't' }, |t| t.0),
                );
                text.map(|t| t.1)
            })
            .collect();
        (formats, shown)
    }

    pub(super) fn approval_context(&self, types: Option<&[u32]>, formats: &str) -> String {
        let strings = match self.strings {
            crate::sql::fingerprint::Strings::Standard => "standard",
            crate::sql::fingerprint::Strings::Escaped => "escape",
        };
        let mut out = format!("strings {strings}; encoding {:?}", self.encoding);
        if let Some(types) = types {
            let shown: Vec<String> = types.iter().map(u32::to_string).collect();
            out += &format!("; types {}", shown.join(","));
        }
        if !formats.is_empty() {
            out += &format!("; formats {formats}");
        }
        out
    }

    /// Lets a statement that matched `reasons` run only once approved.
    pub(super) fn approve(
        &mut self,
        reasons: &[String],
        sql: &str,
        params: Option<Vec<Option<String>>>,
        context: &str,
    ) -> Result<(), Denial> {
        let (Some(rules), Some(approver)) = (self.approval.clone(), self.approver.clone()) else {
            return Err(Denial {
                code: "42501",
                message:
                    "pgward: this statement needs approval, which is not available in this session"
                        .into(),
                detail: format!("rule: approval; it matches {}", reasons.join(", ")),
                hint: "ask the operator to configure [admin] reviewers".into(),
            });
        };
        match approver.ask(&rules, sql, params, reasons, context) {
            Answer::Granted { id, by } => {
                self.granted = Some((id, by));
                Ok(())
            }
            Answer::Wait { id, new } => {
                let denial = approval_required(&id, &rules, reasons);
                self.waiting = Some(Waiting {
                    id,
                    mode: rules.mode,
                    new,
                    timeout: rules.hold_timeout,
                });
                Err(denial)
            }
            Answer::Refused(d) => Err(d),
        }
    }

    /// The request the statement last judged waits for, if any.
    pub fn take_waiting(&mut self) -> Option<Waiting> {
        self.waiting.take()
    }

    /// The approval the statement last judged ran under, and who gave it.
    pub fn take_granted(&mut self) -> Option<(String, Option<String>)> {
        self.granted.take()
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::policy::Decision;
    use crate::policy::Policy;
    use crate::sql::cache::ClassificationCache;

    /// One question: the text, the parameters, the reasons.
    type Asked = (String, Option<Vec<Option<String>>>, Vec<String>);

    /// Answers from a script and notes what it was asked.
    struct Scripted {
        answers: RefCell<Vec<Answer>>,
        asked: RefCell<Vec<Asked>>,
    }

    impl Approver for Scripted {
        fn ask(
            &self,
            _: &Approval,
            sql: &str,
            params: Option<Vec<Option<String>>>,
            reasons: &[String],
            _: &str,
        ) -> Answer {
            self.asked
                .borrow_mut()
                .push((sql.to_string(), params, reasons.to_vec()));
            self.answers.borrow_mut().remove(0)
        }
    }

    fn guard(answers: Vec<Answer>) -> (Guard, ClassificationCache, Rc<Scripted>) {
        let policy = Policy::from_toml(
            "[roles.w]\noperations = [\"select\", \"delete\", \"truncate\"]\nread = [\"public.*\"]\nwrite = [\"public.*\"]\n[roles.w.approval]\nrequire = [\"truncate\"]\nmode = \"retry\"\n",
        )
        .unwrap();
        let roles: Rc<[Role]> = policy
            .roles_of(&["w".to_string()])
            .into_iter()
            .cloned()
            .collect();
        let mut g = Guard::new(roles, "shop", "shop", None);
        let scripted = Rc::new(Scripted {
            answers: RefCell::new(answers),
            asked: RefCell::new(Vec::new()),
        });
        g.set_approver(scripted.clone());
        (g, ClassificationCache::new(100), scripted)
    }

    #[test]
    fn a_risky_statement_runs_only_when_granted() {
        let (mut g, mut c, s) = guard(vec![
            Answer::Wait {
                id: "aaaaaaaaaaaa".into(),
                new: true,
            },
            Answer::Granted {
                id: "aaaaaaaaaaaa".into(),
                by: Some("dba".into()),
            },
        ]);
        // Statements that match no risk never ask.
        assert!(g
            .on_query(&mut c, b"DELETE FROM t WHERE id = 1")
            .0
            .is_allowed());
        assert!(s.asked.borrow().is_empty());
        let (d, ticket) = g.on_query(&mut c, b"TRUNCATE t");
        match d {
            Decision::Deny(d) => {
                assert_eq!(d.code, "PW001");
                assert!(d.message.contains("aaaaaaaaaaaa"));
            }
            other => panic!("{other:?}"),
        }
        assert!(ticket.is_none());
        let w = g.take_waiting().unwrap();
        assert_eq!((w.id.as_str(), w.mode), ("aaaaaaaaaaaa", Mode::Retry));
        assert!(g.take_waiting().is_none());
        assert!(g.on_query(&mut c, b"TRUNCATE t").0.is_allowed());
        assert_eq!(
            g.take_granted(),
            Some(("aaaaaaaaaaaa".to_string(), Some("dba".to_string())))
        );
        let asked = s.asked.borrow();
        assert_eq!(asked.len(), 2);
        assert_eq!(
            asked[0],
            ("TRUNCATE t".to_string(), None, vec!["truncate".to_string()])
        );
    }

    #[test]
    fn without_an_approver_a_risky_statement_is_refused() {
        let (g, mut c, _) = guard(Vec::new());
        let mut g = Guard {
            approver: None,
            ..g
        };
        match g.on_query(&mut c, b"TRUNCATE t").0 {
            Decision::Deny(d) => assert_eq!(d.code, "42501"),
            other => panic!("{other:?}"),
        }
        assert!(g.take_waiting().is_none());
    }
}
