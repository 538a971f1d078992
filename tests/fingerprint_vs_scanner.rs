//! Differential property test: the decision cache's fingerprint lexer
//! against PostgreSQL's scanner (libpg_query). For every generated text both
//! read, the tokens must agree (literal or not, and where each token starts
//! and ends); where the scanner refuses a text, the parser must refuse it too
//! (so classification fails closed); the lexer must never refuse what the
//! server reads. And two texts with the same fingerprint key must be, to the
//! scanner, the same tokens up to literal values. Texts come from a token
//! grammar (random whitespace, comments, newlines, quotes, backslashes,
//! dollars, operators) and from mutations of real statements; the seed is
//! fixed and the count bounded. `fuzz/fuzz_targets/fingerprint_vs_scanner.rs`
//! runs the same comparison on fuzzer input. See `scanner_oracle` for how
//! standard_conforming_strings off is checked without a scanner option.

mod scanner_oracle;

use std::collections::HashMap;

use pgward::sql::fingerprint::Strings;
use scanner_oracle::{compare, key, signature, Agreement, Signature};

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

/// Pieces of SQL chosen for where scanners go wrong.
const FRAGMENTS: &[&str] = &[
    // Words, prefixes and keywords that change what follows.
    "SELECT",
    "select",
    "FROM",
    "api_keys",
    "AS",
    "x",
    "e",
    "E",
    "b",
    "B",
    "X",
    "n",
    "N",
    "u",
    "U",
    "U&",
    "u&",
    "UESCAPE",
    "uescape",
    "nchar",
    "café",
    "é",
    "a$b",
    "_",
    "_x",
    "\u{a0}",
    // Numbers and their junk.
    "1",
    "0",
    "00",
    "0x1F",
    "0x",
    "0b1",
    "0o7",
    "1_000",
    "1_",
    "_0",
    "1.5",
    ".5",
    "1.",
    "1e5",
    "1e",
    "1e+5",
    "1e-",
    "e5",
    ".",
    "..",
    "0x_1",
    // Parameters and dollars.
    "$",
    "$1",
    "$12",
    "$$",
    "$a$",
    "$A$",
    "$1a",
    "$_$",
    "$é$",
    // Quotes and escapes.
    "'",
    "''",
    "'a'",
    "\"",
    "\"\"",
    "\"a\"",
    "E'",
    "e'",
    "B'",
    "X'",
    "x'",
    "N'",
    "U&'",
    "U&\"",
    "\\",
    "\\\\",
    "\\'",
    "'\\'",
    "E'\\''",
    "'it''s'",
    "B'01'",
    "X'1f'",
    // Continuations.
    "'a'\n'b'",
    "'a' -- c\n 'b'",
    "'a'\n-- c\n'b'",
    "E'a'\n'\\''",
    "'a'\r'b'",
    "'a'\n\t\r\n'b'",
    // Operators and punctuation.
    "+",
    "-",
    "*",
    "/",
    "<",
    ">",
    "=",
    "~",
    "!",
    "@",
    "#",
    "%",
    "^",
    "&",
    "|",
    "`",
    "?",
    "=-",
    "*-+",
    "@-",
    "?-",
    "<=",
    "!=",
    "<>",
    "=>",
    "::",
    ":=",
    ":",
    ",",
    "(",
    ")",
    "[",
    "]",
    ";",
    "{",
    "}",
    // Comments.
    "--",
    "-- c\n",
    "/*",
    "*/",
    "/* c */",
    "/* /* */ */",
    "/*/",
    "**/",
    // Whitespace.
    " ",
    " ",
    " ",
    "\n",
    "\n",
    "\r",
    "\r\n",
    "\t",
    "\x0b",
    "\x0c",
];

/// Real statements to mutate.
const STATEMENTS: &[&str] = &[
    "SELECT id, email FROM customers WHERE id = 42 AND city = 'Berlin'",
    "SELECT 'a'\n'b' AS x, 'c'",
    "SELECT E'a'\n'\\' AS x, ' , key_value FROM api_keys --'",
    "SELECT B'0'', key_value FROM api_keys --'",
    "SELECT U&'d!0061t!+000061' UESCAPE '!', U&\"a\" FROM t",
    "SELECT N'x', n 'y', nchar 'z'",
    "SELECT $q$ body ' \" $$ $q$, $$x$$ FROM t WHERE a = $1 AND b = $2",
    "SELECT a=-1, b*-+2, c@-3, d?-4, e|/5, f!=6, g<>7 FROM t -- tail",
    "SELECT 1_000, 0x1F, 0o17, 0b101, 1.5e-3, .5, 1., 1..2 FROM t",
    "/* lead /* nested */ */ SELECT count(*) FROM orders o JOIN customers c ON c.id = o.customer_id",
    "SELECT f(a := 1, b => 2), x::text, arr[1:2] FROM t",
    "WITH x AS (SELECT * FROM orders WHERE status = 'paid') SELECT count(*) FROM x",
    "INSERT INTO orders (customer_id, status) VALUES (1, E'it\\'s') RETURNING id",
    "UPDATE orders SET status = 'x''y' WHERE id IN (SELECT id FROM order_items)",
    "SELECT 'a' -- c\n  'b', X'0f'\n'ff', b'1'\n'0'",
    "SELECT \"Weird \"\"name\"\"\", café, a$b FROM \"t\"",
    "SET search_path = public; SELECT set_config('role', 'x', false)",
];

fn grammar_text(rng: &mut Rng) -> String {
    let n = 1 + rng.below(14);
    let mut s = String::new();
    for _ in 0..n {
        s.push_str(rng.pick(FRAGMENTS));
        if rng.below(3) == 0 {
            s.push_str(rng.pick(&[" ", "\n", " -- c\n", "/**/"]));
        }
    }
    s
}

fn char_boundary(rng: &mut Rng, s: &str) -> usize {
    let mut i = rng.below(s.len() + 1);
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn mutation(rng: &mut Rng) -> String {
    let mut s = rng.pick(STATEMENTS).to_string();
    for _ in 0..1 + rng.below(3) {
        let i = char_boundary(rng, &s);
        match rng.below(4) {
            0 => s.insert_str(i, rng.pick(FRAGMENTS)),
            1 => {
                let mut j = (i + 1 + rng.below(4)).min(s.len());
                while !s.is_char_boundary(j) {
                    j += 1;
                }
                s.replace_range(i..j, "");
            }
            2 => {
                let j = char_boundary(rng, &s);
                let piece = s[i.min(j)..i.max(j)].to_string();
                s.insert_str(i.max(j), &piece);
            }
            _ => {
                let j = (i + 1..=s.len()).find(|&j| s.is_char_boundary(j));
                if let Some(j) = j {
                    let c = rng.pick(&[
                        "'", "\"", "\\", "$", "\n", "-", "/", "*", "e", "E", "_", "1", "&", "U",
                        " ",
                    ]);
                    s.replace_range(i..j, c);
                }
            }
        }
    }
    s
}

/// Runs the comparison on `count` texts of each source in `strings` mode;
/// panics on the first divergence, and checks key soundness in Standard mode.
fn run(strings: Strings, seed: u64, count: usize) -> HashMap<&'static str, usize> {
    let mut rng = Rng(seed);
    let mut tally: HashMap<&'static str, usize> = HashMap::new();
    let mut buckets: HashMap<Vec<u8>, (String, Signature)> = HashMap::new();
    for n in 0..count {
        let sql = if n % 2 == 0 {
            grammar_text(&mut rng)
        } else {
            mutation(&mut rng)
        };
        let outcome = compare(&sql, strings).unwrap_or_else(|e| panic!("{strings:?} {sql:?}: {e}"));
        *tally
            .entry(match outcome {
                Agreement::Same => "same tokens",
                Agreement::ScannerRefuses => "scanner refuses, lexer reads",
                Agreement::BothRefuse => "both refuse",
            })
            .or_default() += 1;
        if strings != Strings::Standard || outcome != Agreement::Same {
            continue;
        }
        let (Some(k), Some(sig)) = (key(&sql, strings), signature(&sql)) else {
            continue;
        };
        match buckets.get(&k) {
            Some((first, first_sig)) => {
                *tally.entry("key shared with an earlier text").or_default() += 1;
                assert_eq!(
                    first_sig,
                    &sig,
                    "same key {:?}, different tokens to the scanner:\n{first:?}\n{sql:?}",
                    String::from_utf8_lossy(&k)
                );
            }
            None => {
                buckets.insert(k, (sql, sig));
            }
        }
    }
    tally
}

#[test]
fn lexer_reads_tokens_as_the_scanner_does_standard_strings() {
    let tally = run(Strings::Standard, 0x5eed_1e55_0000_0001, 40_000);
    eprintln!("standard_conforming_strings on: {tally:?}");
    assert!(tally["same tokens"] > 15_000, "{tally:?}");
    assert!(
        tally["key shared with an earlier text"] > 1_000,
        "{tally:?}"
    );
}

#[test]
fn lexer_reads_tokens_as_the_scanner_does_escaped_strings() {
    let tally = run(Strings::Escaped, 0x5eed_1e55_0000_0002, 40_000);
    eprintln!("standard_conforming_strings off: {tally:?}");
    assert!(tally["same tokens"] > 15_000, "{tally:?}");
}

#[test]
fn known_divergences_stay_fixed() {
    // Each was a divergence between the old lexer and the scanner.
    for sql in [
        "SELECT 'a'\n'b' AS x, 'c'",
        "SELECT E'a'\n'\\' AS x, ' , key_value FROM api_keys --'",
        "SELECT B'0'', key_value FROM api_keys --'",
        "SELECT X'1''2'",
        "SELECT N'x'",
        "SELECT a=-1, b*-+2, c<=-3",
        "SELECT f(a := 1)",
        "SELECT 1..2",
        "SELECT 1$1",
        "SELECT 1__0",
        "SELECT 1._5",
        "SELECT 1e5$",
        "SELECT $1abc",
        "SELECT 0x1__2",
    ] {
        for strings in [Strings::Standard, Strings::Escaped] {
            compare(sql, strings).unwrap_or_else(|e| panic!("{strings:?} {sql:?}: {e}"));
        }
    }
}
