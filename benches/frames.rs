//! Frame splitting: how fast pgward finds message boundaries in a read buffer,
//! for a pgbench-like reply stream (small frames) and a wide result (large
//! DataRows). Reports bytes per second; compare the two shapes in one run.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pgward::wire::frame::Frame;

fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// One pgbench -S reply: RowDescription, DataRow, CommandComplete, ReadyForQuery.
fn select_reply() -> Vec<u8> {
    let mut v = frame(
        b'T',
        b"\0\x01abalance\0\0\0\0\0\0\0\0\0\0\x17\0\x04\xff\xff\xff\xff\0\0",
    );
    v.extend(frame(b'D', b"\0\x01\0\0\0\x044242"));
    v.extend(frame(b'C', b"SELECT 1\0"));
    v.extend(frame(b'Z', b"I"));
    v
}

fn wide_rows() -> Vec<u8> {
    let mut body = vec![0, 8];
    for _ in 0..8 {
        body.extend_from_slice(&64u32.to_be_bytes());
        body.extend_from_slice(&[b'x'; 64]);
    }
    frame(b'D', &body)
}

fn split_all(buf: &[u8]) -> usize {
    let mut n = 0;
    for f in Frame::iter(buf, 1 << 26) {
        n += f.map(|f| f.body.len()).unwrap_or(0);
    }
    n
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame_split");
    for (name, unit, count) in [
        ("select_reply", select_reply(), 1000),
        ("wide_datarow", wide_rows(), 1000),
    ] {
        let buf: Vec<u8> = unit
            .iter()
            .copied()
            .cycle()
            .take(unit.len() * count)
            .collect();
        group.throughput(Throughput::Bytes(buf.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), &buf, |b, buf| {
            b.iter(|| split_all(black_box(buf)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
