//! The statement policy's cost per statement, on pgbench's statements: a cold
//! classification (libpg_query), a fingerprint plus cache hit, and a hit plus
//! the decision, and the session guard's path (fingerprint, cache hit and the
//! session's remembered decision), in one run so the ratios show what the
//! caches save.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use pgward::policy::decide::decide;
use pgward::policy::{Policy, SessionView};
use pgward::sql::cache::ClassificationCache;
use pgward::sql::classify;
use pgward::sql::fingerprint::Strings;

const PGBENCH: &[&str] = &[
    "SELECT abalance FROM pgbench_accounts WHERE aid = 42;",
    "UPDATE pgbench_accounts SET abalance = abalance + -1234 WHERE aid = 42;",
    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (7, 1, 42, -1234, CURRENT_TIMESTAMP);",
    "SELECT abalance FROM pgbench_accounts WHERE aid = $1",
];

const ROLES: &str = r#"
[roles.bench]
operations = ["select", "insert", "update", "delete", "transaction"]
read = ["public.pgbench_*"]
write = ["public.pgbench_*"]
"#;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("policy");
    g.bench_function("classify_cold/pgbench_select", |b| {
        b.iter(|| classify(black_box(PGBENCH[0])).unwrap())
    });
    g.bench_function("classify_cold/pgbench_update", |b| {
        b.iter(|| classify(black_box(PGBENCH[1])).unwrap())
    });

    let mut cache = ClassificationCache::new(1000);
    for s in PGBENCH {
        cache.classify(s.as_bytes(), Strings::Standard).unwrap();
    }
    for (name, sql) in [
        ("pgbench_select", PGBENCH[0]),
        ("pgbench_insert", PGBENCH[2]),
        ("prepared_select", PGBENCH[3]),
    ] {
        g.bench_function(format!("fingerprint_and_hit/{name}"), |b| {
            b.iter(|| {
                cache
                    .classify(black_box(sql.as_bytes()), Strings::Standard)
                    .unwrap()
            })
        });
    }

    let policy = Policy::from_toml(ROLES).unwrap();
    let roles = policy.roles_of(&["bench".to_string()]);
    let path = vec!["public".to_string()];
    let view = SessionView {
        catalog: None,
        masks: None,
        database: "bench",
        upstream_database: "bench",
        search_path: &path,
    };
    g.bench_function("hit_and_decide/pgbench_select", |b| {
        b.iter(|| {
            let c = cache
                .classify(black_box(PGBENCH[0].as_bytes()), Strings::Standard)
                .unwrap();
            decide(&roles, c.as_ref().as_ref().unwrap(), &view)
        })
    });
    let roles: std::rc::Rc<[pgward::policy::role::Role]> = policy
        .roles_of(&["bench".to_string()])
        .into_iter()
        .cloned()
        .collect();
    let mut guard = pgward::proxy::guard::Guard::new(roles, "bench", "bench", None);
    g.bench_function("session_guard_hit/pgbench_select", |b| {
        b.iter(|| guard.check_sql(&mut cache, black_box(PGBENCH[0].as_bytes())))
    });
    g.bench_function("session_guard_hit/prepared_select", |b| {
        b.iter(|| guard.check_sql(&mut cache, black_box(PGBENCH[3].as_bytes())))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
