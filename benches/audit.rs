//! Audit log verify throughput, in records per second, on a generated log
//! of realistic records (statement records of ~400 bytes sealed, with
//! their results and session events): `pgward audit verify` as it runs
//! (simd-json into `Record`, streams in parallel), and one stream read
//! line by line with the hash checked and each line parsed by simd-json
//! into `Record`, by simd-json into a borrowed value, and by serde_json
//! into `Record`, in one run; then parsing alone. Ratios are printed
//! against serde_json.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pgward::audit::reader::{self, Parser, StreamReader};
use pgward::audit::record::Record;
use pgward::audit::{chain, sample, verify};

/// How a line is parsed.
#[derive(Clone, Copy, Debug)]
enum Parse {
    SimdRecord,
    SimdValue,
    SerdeJson,
}

const PARSES: [(&str, Parse); 3] = [
    ("simd_json_record", Parse::SimdRecord),
    ("simd_json_borrowed_value", Parse::SimdValue),
    ("serde_json_record", Parse::SerdeJson),
];

/// Parses one line as `how` says; true when it is a record.
fn parse(
    how: Parse,
    line: &mut [u8],
    parser: &mut Parser,
    buffers: &mut simd_json::Buffers,
) -> bool {
    match how {
        Parse::SimdRecord => parser.record(line).is_ok(),
        Parse::SimdValue => simd_json::to_borrowed_value_with_buffers(line, buffers).is_ok(),
        Parse::SerdeJson => serde_json::from_slice::<Record>(line).is_ok(),
    }
}

/// Reads every stream of `dir`, checking hashes (when `hash`) and parsing;
/// returns the records read.
fn read(dir: &Path, how: Parse, hash: bool) -> u64 {
    let mut parser = Parser::default();
    let mut buffers = simd_json::Buffers::new(4096);
    let mut n = 0;
    for stream in reader::streams(dir).unwrap() {
        let mut lines = StreamReader::new(stream);
        while let Some(l) = lines.next_line(true).unwrap() {
            if hash {
                black_box(chain::open(l.line.bytes).unwrap());
            }
            assert!(parse(how, l.line.bytes, &mut parser, &mut buffers));
            n += 1;
        }
    }
    n
}

/// The best rate of a few runs of `f`, which returns records done.
fn rate(mut f: impl FnMut() -> u64) -> f64 {
    let mut best = Duration::MAX;
    let mut records = 0;
    for _ in 0..5 {
        let start = Instant::now();
        records = f();
        best = best.min(start.elapsed());
    }
    records as f64 / best.as_secs_f64()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    // Two streams as two workers write them: ~60,000 records, ~24 MB.
    let mut bytes = 0;
    for stream in 0..2 {
        let lines = sample::stream_lines(stream, 2, 1_796_000_000_000_000, 500, 50);
        bytes += lines.iter().map(Vec::len).sum::<usize>();
        sample::write_stream(dir.path(), stream, &lines, 20_000).unwrap();
    }
    let records = verify::verify(dir.path()).unwrap().records();
    let statement = sample::stream_lines(0, 1, 0, 1, 1)[2].len();
    println!(
        "audit log: {records} records, {} MB, a statement record is {statement} bytes sealed",
        bytes / 1_000_000
    );

    let serde = rate(|| read(dir.path(), Parse::SerdeJson, true));
    println!("records/s, hash checked and parsed, one thread (ratio to serde_json):");
    for (name, how) in PARSES {
        let r = rate(|| read(dir.path(), how, true));
        println!("  {name:<26} {r:>12.0}  x{:.2}", r / serde);
    }
    let r = rate(|| verify::verify(dir.path()).unwrap().records());
    println!(
        "  {:<26} {r:>12.0}  x{:.2}",
        "pgward audit verify",
        r / serde
    );
    let serde = rate(|| read(dir.path(), Parse::SerdeJson, false));
    println!("records/s, parsed only (ratio to serde_json):");
    for (name, how) in PARSES {
        let r = rate(|| read(dir.path(), how, false));
        println!("  {name:<26} {r:>12.0}  x{:.2}", r / serde);
    }

    let mut g = c.benchmark_group("audit_verify");
    g.throughput(Throughput::Elements(records));
    g.sample_size(10);
    g.bench_function("verify", |b| b.iter(|| verify::verify(dir.path()).unwrap()));
    for (name, how) in PARSES {
        g.bench_function(name, |b| b.iter(|| read(dir.path(), how, true)));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
