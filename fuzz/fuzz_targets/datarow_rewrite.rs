//! The DataRow rewriter on any input: it either appends one valid DataRow
//! frame (with the planned number of columns) or fails and appends nothing.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pgward::mask::{rewrite_row, ColumnMask, HashKey, Strategy};
use pgward::wire::backend::DataRow;
use pgward::wire::Frame;

fuzz_target!(|data: &[u8]| {
    let Some((&shape, body)) = data.split_first() else { return };
    let strategies = [
        Strategy::Email,
        Strategy::Partial { keep_last: 4 },
        Strategy::Redact,
        Strategy::Null,
        Strategy::Hash,
    ];
    let columns = (shape & 7) as usize;
    let plan: Vec<Option<ColumnMask>> = (0..columns)
        .map(|i| {
            (shape >> 3 & (1 << (i % 5)) != 0).then(|| ColumnMask {
                strategy: strategies[i % 5].clone(),
                binary: i % 2 == 0,
                text_like: i % 3 != 0,
            })
        })
        .collect();
    let mut out = BytesMut::new();
    let key = HashKey::new(b"fuzz");
    match rewrite_row(body, &plan, &key, &mut out) {
        Ok(_) => {
            let f = Frame::first(&out, 1 << 30).unwrap().expect("a complete frame");
            assert_eq!(f.tag, b'D');
            assert_eq!(f.body.len() + 5, out.len());
            let row = DataRow::parse(f.body).expect("a valid DataRow");
            assert_eq!(row.len(), columns);
        }
        Err(_) => assert!(out.is_empty()),
    }
});
