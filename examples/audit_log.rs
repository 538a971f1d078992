//! Writes a generated audit log of about a given size, for measuring
//! `pgward audit verify` on large logs:
//!
//! `cargo run --release --example audit_log -- DIR MEGABYTES [STREAMS]`
//!
//! Each stream gets sessions of 50 statements (see `audit::sample`) in
//! segments of 64 MB, sealed as the writer seals them.

use std::io::Write;
use std::path::PathBuf;

use pgward::audit::chain::Chain;
use pgward::audit::{sample, segment};

const SEGMENT: u64 = 64 << 20;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: audit_log DIR MEGABYTES [STREAMS]";
    let dir = PathBuf::from(args.next().ok_or(usage)?);
    let megabytes: u64 = args.next().ok_or(usage)?.parse()?;
    let streams: u32 = args.next().map_or(Ok(2), |s| s.parse())?;
    std::fs::create_dir_all(&dir)?;
    let per_stream = (megabytes << 20) / u64::from(streams);
    let t = 1_796_000_000_000_000;
    let mut total = 0;
    for stream in 0..streams {
        let mut chain = Chain::default();
        let mut written = 0u64;
        let mut in_segment = 0u64;
        let mut file = std::io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(dir.join(segment::name(stream, 1)))?,
        );
        let mut batch = vec![sample::start(t, stream, streams)];
        let mut s = 0u64;
        while written < per_stream {
            batch.extend(sample::session(
                &format!("w{stream}-s{s}"),
                "agent",
                t + s * 60_000,
                50,
            ));
            let first = chain.seq;
            for (i, line) in sample::seal(&batch, &mut chain).into_iter().enumerate() {
                if in_segment >= SEGMENT {
                    file.flush()?;
                    file = std::io::BufWriter::with_capacity(
                        1 << 20,
                        std::fs::File::create(dir.join(segment::name(stream, first + i as u64)))?,
                    );
                    in_segment = 0;
                }
                file.write_all(&line)?;
                in_segment += line.len() as u64;
                written += line.len() as u64;
                total += 1;
            }
            batch.clear();
            s += 1;
        }
        file.flush()?;
    }
    println!("{total} records in {}", dir.display());
    Ok(())
}
