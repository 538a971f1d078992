//! What issue 11 adds to every statement on the data path, in nanoseconds:
//! the worker's metrics (a statement counted, the time pgward added and
//! the upstream's recorded, two clock reads), the session registry (the
//! activity set twice, the statement text noted), and the approval rules
//! matched against a classified statement that needs none. Also how long
//! a scrape takes to merge and render eight workers' metrics.

use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use pgward::admin::metrics::{render, Metrics, Verdict, WorkerMetrics};
use pgward::policy::approval::{Approval, ApprovalConfig};
use pgward::policy::SessionView;
use pgward::proxy::registry::{register, Activity, Entry};
use pgward::sql::classify::classify;

fn per_statement(c: &mut Criterion) {
    let metrics = WorkerMetrics::new();
    c.bench_function("metrics: one statement counted and timed", |b| {
        b.iter(|| {
            let started = Instant::now();
            metrics.statement(black_box(Verdict::Allowed), None);
            metrics.pgward_time(Verdict::Allowed, started.elapsed());
            metrics.upstream_time(Verdict::Allowed, black_box(Duration::from_micros(180)));
        })
    });
    let slot = register(Entry {
        id: "bench-1".into(),
        user: "agent".into(),
        database: "shop".into(),
        client: "127.0.0.1:1".into(),
        backend_pid: 1,
        cancel_pid: 1,
        fds: (-1, -1),
    });
    let sql = b"SELECT abalance FROM pgbench_accounts WHERE aid = 42;";
    c.bench_function("registry: a statement's activity and text", |b| {
        b.iter(|| {
            slot.0.set_activity(Activity::Active);
            slot.0.set_statement(black_box(sql));
            slot.0.set_activity(Activity::idle(b'I'));
        })
    });
    let rules = Approval::compile(&ApprovalConfig {
        require: [
            "truncate",
            "delete_without_where",
            "unbounded_select:public.customers",
        ]
        .map(String::from)
        .to_vec(),
        ..Default::default()
    })
    .unwrap();
    let classified = classify(std::str::from_utf8(sql).unwrap()).unwrap();
    let path = ["public".to_string()];
    let view = SessionView {
        database: "shop",
        upstream_database: "shop",
        masks: None,
        catalog: None,
        search_path: &path,
    };
    c.bench_function(
        "approval: risks matched for a statement needing none",
        |b| b.iter(|| black_box(rules.reasons(black_box(&classified), &view))),
    );
    let workers: Vec<Arc<Mutex<Metrics>>> = (0..8)
        .map(|_| {
            let w = WorkerMetrics::new();
            for i in 0..10_000u64 {
                w.statement(Verdict::Allowed, None);
                w.pgward_time(Verdict::Allowed, Duration::from_nanos(2_000 + i));
                w.upstream_time(Verdict::Allowed, Duration::from_micros(100 + i % 500));
            }
            w.fold();
            w.shared()
        })
        .collect();
    c.bench_function("scrape: eight workers merged and rendered", |b| {
        b.iter(|| black_box(render(&workers, &[("sessions", "Sessions open now.", 3.0)])))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = per_statement
}
criterion_main!(benches);
