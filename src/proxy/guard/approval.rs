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
    /// of `rules`.
    fn ask(
        &self,
        rules: &Approval,
        sql: &str,
        params: Option<Vec<Option<String>>>,
        reasons: &[String],
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

    /// Lets a statement that matched `reasons` run only once approved.
    pub(super) fn approve(
        &mut self,
        reasons: &[String],
        sql: &str,
        params: Option<Vec<Option<String>>>,
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
        match approver.ask(&rules, sql, params, reasons) {
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
