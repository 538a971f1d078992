//! Generated audit logs, sealed as the writer seals them, for the tests,
//! benchmarks and fuzz targets of the reading tools: sessions with allowed,
//! denied and masked statements of realistic size.

use std::io;
use std::path::Path;

use super::chain::Chain;
use super::record::{Kind, Record, Verdict};
use super::segment;
use super::time;

/// A `start` record of `stream` out of `streams`.
pub fn start(t: u64, stream: u32, streams: u32) -> Record<'static> {
    Record {
        t: time::format(t).into(),
        kind: Kind::Start,
        version: Some("0.1.0".into()),
        stream: Some(stream),
        streams: Some(streams),
        ..Record::default()
    }
}

/// One session of `statements` statements from `t` on, a millisecond
/// apart: every 5th denied, every 3rd allowed one masked, the rest allowed.
pub fn session(id: &str, user: &str, t: u64, statements: u64) -> Vec<Record<'static>> {
    let session = || Some(id.to_string().into());
    let mut out = vec![Record {
        t: time::format(t).into(),
        kind: Kind::Connect,
        session: session(),
        user: Some(user.to_string().into()),
        roles: vec!["reader".into()],
        client: Some("10.0.0.7:51234".into()),
        database: Some("shop".into()),
        auth: Some("scram-sha-256".into()),
        tls: Some(true),
        ..Record::default()
    }];
    for n in 1..=statements {
        let at = t + n * 1_000;
        let denied = n % 5 == 0;
        let sql = if denied {
            format!("DELETE FROM public.orders WHERE customer_id = {n} AND status = 'cancelled'")
        } else {
            format!("SELECT o.id, o.total, c.email FROM public.orders o JOIN public.customers c ON c.id = o.customer_id WHERE o.id = {n}")
        };
        out.push(Record {
            t: time::format(at).into(),
            kind: Kind::Statement,
            session: session(),
            n: Some(n),
            user: Some(user.to_string().into()),
            database: Some("shop".into()),
            message: Some("query".into()),
            sql: Some(sql.into()),
            fingerprint: Some("9c1f2e7a4b3d5e60".into()),
            verdict: Some(if denied {
                Verdict::Denied
            } else {
                Verdict::Allowed
            }),
            rule: denied.then(|| "operations".into()),
            reason: denied.then(|| "DELETE is not in the role's operations".into()),
            sqlstate: denied.then(|| "42501".into()),
            policy: Some("5d41402abc4b2a76".into()),
            ..Record::default()
        });
        if !denied {
            let masked = n % 3 == 0;
            out.push(Record {
                t: time::format(at + 400).into(),
                kind: Kind::Result,
                session: session(),
                n: Some(n),
                outcome: Some("ok".into()),
                tags: vec!["SELECT 1".into()],
                rows: Some(1),
                duration_us: Some(350 + n % 100),
                masked: if masked {
                    vec!["public.customers.email".into()]
                } else {
                    Vec::new()
                },
                masked_cells: masked.then_some(1),
                ..Record::default()
            });
        }
    }
    out.push(Record {
        t: time::format(t + (statements + 1) * 1_000).into(),
        kind: Kind::Disconnect,
        session: session(),
        duration_us: Some((statements + 1) * 1_000),
        statements: Some(statements),
        ..Record::default()
    });
    out
}

/// Seals `records` into lines (each ending in `\n`) continuing `chain`.
pub fn seal(records: &[Record<'_>], chain: &mut Chain) -> Vec<Vec<u8>> {
    let mut body = Vec::new();
    records
        .iter()
        .map(|r| {
            body.clear();
            r.write_json(&mut body);
            let mut line = Vec::with_capacity(body.len() + 160);
            chain.seal(&body, &mut line);
            line
        })
        .collect()
}

/// Writes the lines of one stream (seq 1 first) into segments of
/// `per_segment` lines each, named as the writer names them.
pub fn write_stream(
    dir: &Path,
    stream: u32,
    lines: &[Vec<u8>],
    per_segment: usize,
) -> io::Result<()> {
    for (i, chunk) in lines.chunks(per_segment.max(1)).enumerate() {
        let first = (i * per_segment.max(1)) as u64 + 1;
        std::fs::write(dir.join(segment::name(stream, first)), chunk.concat())?;
    }
    Ok(())
}

/// A stream of `sessions` sessions of `statements` statements after a
/// `start` record, sealed.
pub fn stream_lines(
    stream: u32,
    streams: u32,
    t: u64,
    sessions: u64,
    statements: u64,
) -> Vec<Vec<u8>> {
    let mut records = vec![start(t, stream, streams)];
    for s in 0..sessions {
        let at = t + 1_000 + s * (statements + 2) * 1_000;
        records.extend(session(&format!("w{stream}-s{s}"), "agent", at, statements));
    }
    seal(&records, &mut Chain::default())
}
