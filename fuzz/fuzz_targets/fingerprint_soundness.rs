//! Same fingerprint implies same classification: the input is two SQL texts
//! separated by a 0xFF byte. When their fingerprints (and, for
//! literal-sensitive classifications, their literals) are equal, the
//! classifier must say the same of both, or the decision cache would apply one
//! text's verdict to the other.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgward::sql::classify;
use pgward::sql::fingerprint::{fingerprint, Fingerprint, Strings};

fuzz_target!(|data: &[u8]| {
    let Some(split) = data.iter().position(|&b| b == 0xff) else { return };
    let (a, b) = (&data[..split], &data[split + 1..]);
    let (Ok(a), Ok(b)) = (std::str::from_utf8(a), std::str::from_utf8(b)) else { return };
    let (mut fa, mut fb) = (Fingerprint::default(), Fingerprint::default());
    if fingerprint(a.as_bytes(), Strings::Standard, &mut fa).is_err()
        || fingerprint(b.as_bytes(), Strings::Standard, &mut fb).is_err()
        || fa.key != fb.key
    {
        return;
    }
    let (ca, cb) = (classify(a).ok(), classify(b).ok());
    let sensitive = ca.as_ref().is_some_and(|c| c.literal_sensitive) || cb.as_ref().is_some_and(|c| c.literal_sensitive);
    if sensitive && fa.literals != fb.literals {
        return;
    }
    assert_eq!(ca, cb, "same fingerprint, different classification: {a:?} / {b:?}");
});
