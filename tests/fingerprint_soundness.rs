//! Soundness of the decision cache: two texts with the same fingerprint (and,
//! for literal-sensitive classifications, the same literals) classify the same.
//! Property tests with a seeded generator: variants of real statements that
//! only change literal values, case, whitespace and comments must keep their
//! fingerprint and classification; random token soup is bucketed by
//! fingerprint and every bucket must agree.

use std::collections::HashMap;

use pgward::sql::classify;
use pgward::sql::fingerprint::{fingerprint, Fingerprint, Strings};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const TEMPLATES: &[&str] = &[
    "SELECT id, email FROM customers WHERE id = {n} AND city = {s}",
    "select * from orders o join customers c on c.id = o.customer_id where o.total_cents > {n} limit {n}",
    "WITH x AS (SELECT * FROM orders WHERE status = {s}) SELECT count(*) FROM x",
    "INSERT INTO orders (customer_id, status, total_cents) VALUES ({n}, {s}, {n}) RETURNING id",
    "UPDATE orders SET status = {s} WHERE id IN (SELECT id FROM order_items WHERE quantity > {n})",
    "DELETE FROM order_items WHERE order_id = {n}",
    "SELECT abalance FROM pgbench_accounts WHERE aid = {n};",
    "SELECT lower({s}), {n} + {n}, now() - interval {s}",
    "SELECT * FROM products WHERE tags @> ARRAY[{s}] AND attributes ->> {s} = {s}",
    "COPY (SELECT id FROM orders WHERE status = {s}) TO STDOUT",
];

fn literal(rng: &mut Rng, kind: char) -> String {
    match kind {
        'n' => match rng.below(4) {
            0 => rng.below(1000).to_string(),
            1 => format!("{}.{}", rng.below(100), rng.below(100)),
            2 => format!("{}e{}", rng.below(9) + 1, rng.below(5)),
            _ => "0".to_string(),
        },
        _ => {
            let body = rng.pick(&[
                "x",
                "it''s",
                "--not a comment",
                "/* no */",
                "$$",
                "\\",
                "",
                "Berlin",
                "a;b",
            ]);
            match rng.below(3) {
                0 => format!("'{body}'"),
                1 => format!("E'{}'", body.replace('\\', "\\\\").replace("''", "\\'")),
                _ => format!("$q${}$q$", body.replace("''", "'")),
            }
        }
    }
}

fn instantiate(rng: &mut Rng, template: &str, noise: bool) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(p) = rest.find('{') {
        out.push_str(&decorate(rng, &rest[..p], noise));
        let kind = rest.as_bytes()[p + 1] as char;
        out.push_str(&literal(rng, kind));
        rest = &rest[p + 3..];
    }
    out.push_str(&decorate(rng, rest, noise));
    out
}

/// Changes case of words and the whitespace between them, and adds comments.
fn decorate(rng: &mut Rng, text: &str, noise: bool) -> String {
    if !noise {
        return text.to_string();
    }
    let mut out = String::new();
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push_str(rng.pick(&[" ", "  ", "\n", "\t", " /* c /* nested */ */ ", " -- c\n"]));
        }
        let w: String = if rng.below(2) == 0 {
            word.to_uppercase()
        } else {
            word.to_lowercase()
        };
        out.push_str(&w);
    }
    out
}

fn key(sql: &str) -> Option<Fingerprint> {
    let mut f = Fingerprint::default();
    fingerprint(sql.as_bytes(), Strings::Standard, &mut f).ok()?;
    Some(f)
}

#[test]
fn literal_case_and_space_variants_keep_fingerprint_and_classification() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for t in TEMPLATES {
        let base = instantiate(&mut rng, t, false);
        let base_key = key(&base).unwrap_or_else(|| panic!("lexer refused {base}"));
        let base_class = classify(&base).unwrap_or_else(|e| panic!("{base}: {e}"));
        for _ in 0..60 {
            let v = instantiate(&mut rng, t, true);
            let k = key(&v).unwrap_or_else(|| panic!("lexer refused {v}"));
            assert_eq!(k.key, base_key.key, "fingerprint changed:\n{base}\n{v}");
            let c = classify(&v).unwrap_or_else(|e| panic!("{v}: {e}"));
            if base_class.literal_sensitive {
                // The cache keys such texts by their literals as well.
                assert!(c.literal_sensitive, "sensitivity changed:\n{base}\n{v}");
                continue;
            }
            assert_eq!(c, base_class, "classification changed:\n{base}\n{v}");
        }
    }
}

#[test]
fn random_texts_with_one_fingerprint_classify_alike() {
    const FRAGMENTS: &[&str] = &[
        "SELECT",
        "select",
        "FROM",
        "WHERE",
        "api_keys",
        "orders",
        "x",
        "1",
        "2.5",
        "'a'",
        "'b''c'",
        "E'\\''",
        "$$d$$",
        "$t$ ' $t$",
        "\"Q\"",
        "--",
        "/*",
        "*/",
        "\n",
        " ",
        ",",
        "(",
        ")",
        ";",
        "*",
        "=",
        "-",
        "$1",
        "$",
        "e",
        "E",
        "U&",
        "pg_read_file",
        "DROP",
        "TABLE",
        ".",
        "::",
        "int",
        "'x'",
    ];
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut buckets: HashMap<Vec<u8>, (String, Option<pgward::sql::Classification>, Vec<u8>)> =
        HashMap::new();
    let mut compared = 0;
    for _ in 0..50_000 {
        let n = 1 + rng.below(12);
        let mut s = String::new();
        for _ in 0..n {
            s.push_str(rng.pick(FRAGMENTS));
            if rng.below(2) == 0 {
                s.push(' ');
            }
        }
        let Some(k) = key(&s) else { continue };
        let c = classify(&s).ok();
        match buckets.get(&k.key) {
            None => {
                buckets.insert(k.key.clone(), (s, c, k.literals));
            }
            Some((first, fc, lits)) => {
                let sensitive = fc.as_ref().is_some_and(|c| c.literal_sensitive)
                    || c.as_ref().is_some_and(|c| c.literal_sensitive);
                if sensitive && *lits != k.literals {
                    continue;
                }
                compared += 1;
                assert_eq!(
                    fc, &c,
                    "same fingerprint, different classification:\n{first:?}\n{s:?}"
                );
            }
        }
    }
    assert!(compared > 1000, "too few collisions to compare: {compared}");
}
