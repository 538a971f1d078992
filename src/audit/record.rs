//! What an audit record says. Every kind shares one flat shape, so a reader
//! needs one type and a field means the same in every record; fields that
//! do not apply are left out. `docs/audit.md` lists them. Pure logic.
//!
//! A statement pgward forwards gets two records: `statement` (who, what, the
//! verdict), on disk before the server sees it, and `result` (command tags,
//! rows, SQLSTATE, duration, what was masked) once the server has answered.
//! A refused statement gets its `statement` record only.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// What a record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// pgward started writing this stream (first record after each start).
    #[default]
    Start,
    /// A client logged in and its session began.
    Connect,
    /// A login or session start was refused.
    LoginFailed,
    /// A statement pgward saw, with its verdict.
    Statement,
    /// What the server answered for a statement it ran.
    Result,
    /// A session ended.
    Disconnect,
    /// The stream is written again after records could not be: `lost`
    /// says how many were not written, `reason` why (their statements
    /// were refused, or, with durability = "async", may have run).
    Recovered,
    /// An approval request was made, decided or ended: `approval` names it,
    /// `outcome` says what happened (`requested`, `held`, `approved`,
    /// `denied`, `expired`, `withdrawn`, `abandoned`), `approver` who
    /// decided, `reason` why.
    Approval,
}

/// The verdict on a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Forwarded to the server.
    Allowed,
    /// Refused by pgward; the server never ran it.
    Denied,
}

/// One record, before it is sealed into the chain.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Record<'a> {
    /// When, RFC 3339 UTC with microseconds.
    #[serde(borrow)]
    pub t: Cow<'a, str>,
    /// What it is about.
    pub kind: Kind,
    /// The session (unique across restarts).
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub session: Option<Cow<'a, str>>,
    /// The statement's number within its session (a `result` has its
    /// statement's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u64>,
    /// The user pgward authenticated (or, for a failed login, claimed).
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub user: Option<Cow<'a, str>>,
    /// The user's roles.
    #[serde(default, borrow, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<Cow<'a, str>>,
    /// The client's address.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub client: Option<Cow<'a, str>>,
    /// The database name the client asked for.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub database: Option<Cow<'a, str>>,
    /// How the client authenticated (`connect`).
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Cow<'a, str>>,
    /// For a token login (`connect`): the token's issuer.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<Cow<'a, str>>,
    /// For a token login: the token's `jti` (the token itself never).
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub jti: Option<Cow<'a, str>>,
    /// Whether the client connection used TLS (`connect`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<bool>,
    /// The protocol message that carried the statement: `query`, `parse`,
    /// `bind`, `describe`, `execute`, `function_call`.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub message: Option<Cow<'a, str>>,
    /// The prepared statement named (extended protocol).
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub statement: Option<Cow<'a, str>>,
    /// The portal named (extended protocol).
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub portal: Option<Cow<'a, str>>,
    /// The SQL text, as the server reads it (in UTF-8).
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub sql: Option<Cow<'a, str>>,
    /// Other texts the server may have run instead (a statement re-prepared
    /// under the same name while a Bind was in flight).
    #[serde(default, borrow, skip_serializing_if = "Vec::is_empty")]
    pub other_sql: Vec<Cow<'a, str>>,
    /// For a long prepared text recorded in full earlier in the session:
    /// the SHA-256 of the whole text (`sql` then holds its start).
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub sql_sha256: Option<Cow<'a, str>>,
    /// For such a text: the `n` of the record that holds it in full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql_in: Option<u64>,
    /// A hash of the text with its literals taken out: equal for the same
    /// statement with other values.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Cow<'a, str>>,
    /// Allowed or denied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// The rule that refused it (`operations`, `read`, `masks`, ...).
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub rule: Option<Cow<'a, str>>,
    /// Why: the refusal's message, or why a login failed or a session ended.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Cow<'a, str>>,
    /// Bind parameters as text (`\x` hex when not UTF-8; null for NULL),
    /// only with `audit.record_params = true`.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub params: Option<Vec<Option<Cow<'a, str>>>>,
    /// The configuration in force: a hash of its text.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Cow<'a, str>>,
    /// How the statement ended (`result`): `ok`, `error`, `suspended` (a
    /// row limit reached), `skipped` (after an earlier error), `unanswered`
    /// (the session ended first).
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Cow<'a, str>>,
    /// The command tags the server sent (`SELECT 3`, `UPDATE 1`).
    #[serde(default, borrow, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Cow<'a, str>>,
    /// Rows returned or affected, summed over the tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// The SQLSTATE of the error, when it failed or was refused.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub sqlstate: Option<Cow<'a, str>>,
    /// Microseconds from forwarding to the server's last reply (`result`),
    /// or the session's length (`disconnect`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_us: Option<u64>,
    /// Columns masked in the result (`schema.table.column`, or `scan`).
    #[serde(default, borrow, skip_serializing_if = "Vec::is_empty")]
    pub masked: Vec<Cow<'a, str>>,
    /// Cells masked in the result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masked_cells: Option<u64>,
    /// Statements the session sent (`disconnect`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statements: Option<u64>,
    /// The approval that let it run, and who approved.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Cow<'a, str>>,
    /// Who approved it.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub approver: Option<Cow<'a, str>>,
    /// Records that could not be written before this one (`recovered`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost: Option<u64>,
    /// pgward's version (`start`).
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub version: Option<Cow<'a, str>>,
    /// The stream (worker) this record is in (`start`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<u32>,
    /// How many streams this start of pgward writes (`start`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streams: Option<u32>,
    /// Which start of pgward (`start`): drawn at random at each start, the
    /// same in every stream it writes, and the prefix of its session ids.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub boot: Option<Cow<'a, str>>,
}

impl Record<'_> {
    /// The record as a JSON object, appended to `out` (no newline).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        // Writing into a Vec cannot fail, and every field serializes.
        let _ = serde_json::to_writer(&mut *out, self);
    }
}

/// A parameter's bytes as a record holds them: the text when it is UTF-8,
/// `\x` and hex otherwise.
pub fn param_text(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.starts_with("\\x") => Cow::Borrowed(s),
        _ => Cow::Owned(param_text_binary(bytes)),
    }
}

/// A binary parameter's bytes as a record holds them: `\x` and hex.
pub fn param_text_binary(bytes: &[u8]) -> String {
    let mut out = b"\\x".to_vec();
    super::chain::push_hex(&mut out, bytes);
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_that_do_not_apply_are_left_out_and_read_back() {
        let r = Record {
            t: "2026-12-01T00:00:00.000000Z".into(),
            kind: Kind::Statement,
            session: Some("ab-1".into()),
            n: Some(3),
            roles: vec!["reader".into()],
            sql: Some("SELECT \"x\"\n".into()),
            verdict: Some(Verdict::Denied),
            params: Some(vec![Some("1".into()), None]),
            ..Record::default()
        };
        let mut out = Vec::new();
        r.write_json(&mut out);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(!text.contains("portal") && !text.contains('\n'), "{text}");
        assert!(text.contains(r#""verdict":"denied""#), "{text}");
        let back: Record = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn parameters_that_are_not_text_are_hex() {
        assert_eq!(param_text(b"abc"), "abc");
        assert_eq!(param_text(&[0xff, 0x00]), "\\xff00");
        assert_eq!(param_text(b"\\x41"), "\\x5c783431");
    }
}
