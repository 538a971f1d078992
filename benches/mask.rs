//! Masked cells per second: a customers-like row of eight columns with three
//! masked (email, partial phone, redacted SSN), against the same row copied
//! unmasked through the same rewriter, in one run.

use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use pgward::mask::{rewrite_row, ColumnMask, HashKey, Strategy};

fn row() -> Vec<u8> {
    let values: [&[u8]; 8] = [
        b"12345",
        b"Jane Example",
        b"jane.example@example.com",
        b"555-0123",
        b"900-12-3456",
        b"1990-04-01",
        b"Springfield",
        b"US",
    ];
    let mut b = 8i16.to_be_bytes().to_vec();
    for v in values {
        b.extend_from_slice(&(v.len() as i32).to_be_bytes());
        b.extend_from_slice(v);
    }
    b
}

fn bench(c: &mut Criterion) {
    let body = row();
    let key = HashKey::new(b"bench");
    let text = |s| {
        Some(ColumnMask {
            strategy: s,
            binary: false,
            text_like: true,
        })
    };
    let masked: Vec<Option<ColumnMask>> = vec![
        None,
        None,
        text(Strategy::Email),
        text(Strategy::Partial { keep_last: 4 }),
        text(Strategy::Redact),
        None,
        None,
        None,
    ];
    let unmasked: Vec<Option<ColumnMask>> = vec![None; 8];
    let hashed: Vec<Option<ColumnMask>> = (0..8)
        .map(|i| if i == 4 { text(Strategy::Hash) } else { None })
        .collect();
    let mut g = c.benchmark_group("mask_row");
    g.throughput(Throughput::Elements(1));
    let mut out = BytesMut::with_capacity(1 << 16);
    for (name, plan) in [
        ("three_masked", &masked),
        ("unmasked_copy", &unmasked),
        ("one_hashed", &hashed),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                if out.len() > 60_000 {
                    out.clear();
                }
                rewrite_row(black_box(&body), plan, &key, &mut out).unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
