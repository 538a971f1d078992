//! The decision cache's classification store: SQL texts classified once per
//! worker and found again by fingerprint, so a repeated statement never
//! reaches the parser. Bounded, single-threaded (one per worker), no locks.
//! Sound by construction: an entry is found only by the exact normalized
//! form, which the fingerprint lexer writes from the tokens the server's
//! scanner reads (tests/fingerprint_vs_scanner.rs), and classifications that
//! depended on literal values are found only with the same literals.

use std::collections::HashMap;
use std::rc::Rc;

use super::classify::{classify_with, ClassifyError};
use super::fingerprint::{fingerprint, Fingerprint, LexError, Strings};
use super::Classification;

/// A cached outcome of classification.
pub type Classified = Rc<Result<Classification, ClassifyError>>;

/// Why a text could not be looked up at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// The text is not valid UTF-8.
    NotUtf8,
    /// The lexer refused it: the server's scanner would refuse it too
    /// (an unterminated string or comment, a number running into a name),
    /// or it is a U&'' string under standard_conforming_strings off.
    Lex(LexError),
}

/// Per-worker classifications by fingerprint.
pub struct ClassificationCache {
    by_key: HashMap<Vec<u8>, Classified>,
    by_key_and_literals: HashMap<(Vec<u8>, Vec<u8>), Classified>,
    capacity: usize,
    scratch: Fingerprint,
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that ran the classifier.
    pub misses: u64,
}

impl ClassificationCache {
    /// An empty cache holding at most `capacity` texts.
    pub fn new(capacity: usize) -> Self {
        ClassificationCache {
            by_key: HashMap::new(),
            by_key_and_literals: HashMap::new(),
            capacity: capacity.max(1),
            scratch: Fingerprint::default(),
            hits: 0,
            misses: 0,
        }
    }

    /// Classifies `sql`, from the cache when possible.
    pub fn classify(&mut self, sql: &[u8], strings: Strings) -> Result<Classified, LookupError> {
        fingerprint(sql, strings, &mut self.scratch).map_err(LookupError::Lex)?;
        if let Some(c) = self.by_key.get(self.scratch.key.as_slice()) {
            self.hits += 1;
            return Ok(c.clone());
        }
        let with_literals = (self.scratch.key.clone(), self.scratch.literals.clone());
        if let Some(c) = self.by_key_and_literals.get(&with_literals) {
            self.hits += 1;
            return Ok(c.clone());
        }
        self.misses += 1;
        let text = std::str::from_utf8(sql).map_err(|_| LookupError::NotUtf8)?;
        let classified: Classified = Rc::new(classify_with(text, strings));
        if self.by_key.len() + self.by_key_and_literals.len() >= self.capacity {
            // Rare: a workload with more distinct statements than the cache
            // holds. Starting over is cheaper than tracking recency per hit.
            self.by_key.clear();
            self.by_key_and_literals.clear();
        }
        let sensitive = classified
            .as_ref()
            .as_ref()
            .is_ok_and(|c| c.literal_sensitive);
        if sensitive {
            self.by_key_and_literals
                .insert(with_literals, classified.clone());
        } else {
            self.by_key.insert(with_literals.0, classified.clone());
        }
        Ok(classified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_skip_the_parser_and_literals_matter_when_they_must() {
        let mut cache = ClassificationCache::new(100);
        let a = cache
            .classify(
                b"SELECT abalance FROM pgbench_accounts WHERE aid = 1",
                Strings::Standard,
            )
            .unwrap();
        let b = cache
            .classify(
                b"select abalance from pgbench_accounts where aid = 77",
                Strings::Standard,
            )
            .unwrap();
        assert!(Rc::ptr_eq(&a, &b));
        assert_eq!((cache.hits, cache.misses), (1, 1));

        let role = cache
            .classify(b"SELECT set_config('role', 'x', false)", Strings::Standard)
            .unwrap();
        let timeout = cache
            .classify(
                b"SELECT set_config('statement_timeout', '1s', false)",
                Strings::Standard,
            )
            .unwrap();
        assert!(!role.as_ref().as_ref().unwrap().forbidden.is_empty());
        assert!(timeout.as_ref().as_ref().unwrap().forbidden.is_empty());

        // A LIMIT's value bounds the rows read (approvals depend on it).
        let bound = |cache: &mut ClassificationCache, sql: &[u8]| {
            let c = cache.classify(sql, Strings::Standard).unwrap();
            let c = c.as_ref().as_ref().unwrap();
            c.row_bounds.values().next().copied().flatten()
        };
        assert_eq!(
            bound(&mut cache, b"SELECT * FROM customers LIMIT 5"),
            Some(5)
        );
        assert_eq!(
            bound(&mut cache, b"SELECT * FROM customers LIMIT 5000"),
            Some(5000)
        );
        assert_eq!(
            bound(&mut cache, b"SELECT * FROM customers LIMIT 5e3"),
            None
        );
        assert_eq!(
            bound(&mut cache, b"SELECT * FROM customers LIMIT 7"),
            Some(7)
        );

        // Which parameter names the setting matters too.
        let first = cache
            .classify(b"SELECT current_setting($1), $2::int", Strings::Standard)
            .unwrap();
        let second = cache
            .classify(b"SELECT current_setting($2), $1::int", Strings::Standard)
            .unwrap();
        let read = |c: &Classified| c.as_ref().as_ref().unwrap().bound_settings.clone();
        use crate::sql::classification::BoundSetting;
        assert_eq!(read(&first), [BoundSetting::Read(1)]);
        assert_eq!(read(&second), [BoundSetting::Read(2)]);
    }

    #[test]
    fn stays_bounded() {
        let mut cache = ClassificationCache::new(10);
        for i in 0..100 {
            cache
                .classify(format!("SELECT c{i} FROM t").as_bytes(), Strings::Standard)
                .unwrap();
        }
        assert!(cache.by_key.len() <= 10);
    }
}
