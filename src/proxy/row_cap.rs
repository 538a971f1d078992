//! The per-result row cap (`max_rows`): counts the rows of each result as
//! they pass, and once a result goes over the cap, replaces the rest of it
//! with one error. Never a silent truncation. Pure logic.

use bytes::Bytes;

use crate::wire::error_response::PgError;

/// What to do with one server message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CapAction {
    /// Forward it.
    Pass,
    /// Drop it (a row or the end of a result that was cut).
    Drop,
    /// Drop it and send this error instead (the first row over the cap).
    Refuse(Bytes),
}

/// Row counting for one session.
#[derive(Debug, Default)]
pub struct RowCap {
    cap: Option<u64>,
    rows: u64,
    cut: bool,
}

impl RowCap {
    /// A cap of `cap` rows per result, or none.
    pub fn new(cap: Option<u64>) -> Self {
        RowCap {
            cap,
            rows: 0,
            cut: false,
        }
    }

    /// Changes the cap (after a reload); a result under way keeps its count.
    pub fn set_cap(&mut self, cap: Option<u64>) {
        self.cap = cap;
    }

    /// Judges one server message by its tag.
    pub fn on_message(&mut self, tag: u8) -> CapAction {
        let Some(cap) = self.cap else {
            return CapAction::Pass;
        };
        match tag {
            // DataRow, and CopyData in COPY TO STDOUT.
            b'D' | b'd' => {
                if self.cut {
                    return CapAction::Drop;
                }
                self.rows += 1;
                if self.rows <= cap {
                    return CapAction::Pass;
                }
                self.cut = true;
                let e = PgError::error(
                    "54000",
                    format!("pgward: the result exceeds the role's max_rows of {cap}; {cap} rows were sent"),
                )
                .with_detail("rule: max_rows")
                .with_hint("add a LIMIT or a narrower WHERE clause");
                CapAction::Refuse(e.to_frame().freeze())
            }
            // The end of a result: CommandComplete, PortalSuspended, an error,
            // EmptyQueryResponse, CopyDone, ReadyForQuery.
            b'C' | b's' | b'E' | b'I' | b'c' | b'Z' => {
                let was_cut = self.cut;
                if tag != b'c' {
                    self.rows = 0;
                    self.cut = false;
                }
                if was_cut && tag != b'Z' {
                    CapAction::Drop
                } else {
                    CapAction::Pass
                }
            }
            _ => CapAction::Pass,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(cap: &mut RowCap, tags: &[u8]) -> String {
        tags.iter()
            .map(|&t| match cap.on_message(t) {
                CapAction::Pass => (t as char).to_string(),
                CapAction::Drop => "-".into(),
                CapAction::Refuse(_) => "!".into(),
            })
            .collect()
    }

    #[test]
    fn cuts_results_over_the_cap_and_resets_per_result() {
        let mut cap = RowCap::new(Some(2));
        assert_eq!(run(&mut cap, b"TDDCZ"), "TDDCZ");
        assert_eq!(run(&mut cap, b"TDDDDCZ"), "TDD!--Z");
        assert_eq!(run(&mut cap, b"TDCTDDDCZ"), "TDCTDD!-Z");
        assert_eq!(run(&mut cap, b"HdddcCZ"), "Hdd!--Z");
        let mut none = RowCap::new(None);
        assert_eq!(run(&mut none, b"TDDDDDCZ"), "TDDDDDCZ");
    }
}
