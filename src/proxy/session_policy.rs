//! What a user's roles make of one session: the roles, the masks, the
//! columns they unmask, the entity scans and the result cap. Built at login
//! from the configuration in force, and again at the next statement after a
//! reload (SIGHUP) brought a new one.

use std::rc::Rc;

use crate::config::Config;
use crate::mask::scan::Entities;
use crate::policy::masks::Masks;
use crate::policy::role::Role;

/// One session's policy.
pub struct SessionPolicy {
    /// The user's roles.
    pub roles: Rc<[Role]>,
    /// The configured masks.
    pub masks: Rc<Masks>,
    /// Masked columns one of the roles sees in clear, as (table, column).
    pub unmask: Vec<(String, String)>,
    /// Personal data the roles scan unmasked text for.
    pub scan: Entities,
    /// The smallest result cap among the roles that set one.
    pub max_rows: Option<u64>,
}

impl SessionPolicy {
    /// The policy of a user with `roles` under `config`.
    pub fn of(config: &Config, masks: &Rc<Masks>, roles: &[String]) -> SessionPolicy {
        let roles: Rc<[Role]> = config.policy.roles_of(roles).into_iter().cloned().collect();
        SessionPolicy {
            unmask: roles
                .iter()
                .flat_map(|r| r.unmask.iter().cloned())
                .collect(),
            scan: roles
                .iter()
                .fold(Entities::default(), |acc, r| acc.union(r.scan_entities)),
            max_rows: roles.iter().filter_map(|r| r.max_rows).min(),
            masks: masks.clone(),
            roles,
        }
    }
}
