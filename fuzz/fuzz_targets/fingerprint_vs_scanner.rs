//! The fingerprint lexer against PostgreSQL's scanner (libpg_query) on any
//! text, in both standard_conforming_strings modes: the same tokens, or the
//! server refuses the text (see `tests/scanner_oracle`). The input may hold
//! two texts separated by a 0xFF byte; when their fingerprint keys are
//! equal, the scanner must read them as the same tokens up to literal values.
#![no_main]

#[allow(dead_code)]
#[path = "../../tests/scanner_oracle/mod.rs"]
mod scanner_oracle;

use libfuzzer_sys::fuzz_target;
use pgward::sql::fingerprint::Strings;
use scanner_oracle::{compare, key, signature};

fuzz_target!(|data: &[u8]| {
    let mut texts = data.splitn(2, |&b| b == 0xff);
    let texts: Vec<&str> = texts
        .by_ref()
        .filter_map(|t| std::str::from_utf8(t).ok())
        .filter(|t| !t.contains('\0'))
        .collect();
    for sql in &texts {
        for strings in [Strings::Standard, Strings::Escaped] {
            if let Err(e) = compare(sql, strings) {
                panic!("{strings:?} {sql:?}: {e}");
            }
        }
    }
    if let [a, b] = texts[..] {
        let (Some(ka), Some(kb)) = (key(a, Strings::Standard), key(b, Strings::Standard)) else {
            return;
        };
        if ka == kb {
            if let (Some(sa), Some(sb)) = (signature(a), signature(b)) {
                assert_eq!(sa, sb, "same key, different tokens: {a:?} / {b:?}");
            }
        }
    }
});
