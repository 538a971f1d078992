//! The DataRow rewriter: applies a column plan to one row, writing the new
//! frame straight into the outgoing buffer. Unmasked columns are copied as
//! slices; nothing is allocated per row. Any input either becomes a valid
//! frame or an error (and nothing is written).

use bytes::{BufMut, BytesMut};

use super::strategy::{HashKey, Strategy};
use crate::wire::frame::Cursor;
use crate::wire::WireError;

/// How one result column is masked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnMask {
    /// The strategy.
    pub strategy: Strategy,
    /// True when the column is sent in binary format.
    pub binary: bool,
    /// True for text-like types (text, varchar, char, name), whose binary
    /// form is their text: masked values stay valid in either format. Other
    /// types in binary format become NULL.
    pub text_like: bool,
}

/// What a rewrite did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowStats {
    /// Cells masked in this row.
    pub masked: u32,
}

/// Rewrites the DataRow `body` under `plan` (one entry per column, `None` for
/// columns sent as they are) and appends the whole new 'D' frame to `out`.
pub fn rewrite_row(
    body: &[u8],
    plan: &[Option<ColumnMask>],
    key: &HashKey,
    out: &mut BytesMut,
) -> Result<RowStats, WireError> {
    let start = out.len();
    let result = rewrite_into(body, plan, key, out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn rewrite_into(
    body: &[u8],
    plan: &[Option<ColumnMask>],
    key: &HashKey,
    out: &mut BytesMut,
) -> Result<RowStats, WireError> {
    let mut c = Cursor::new(body, "DataRow");
    let columns = c.i16()?;
    if columns < 0 || columns as usize != plan.len() {
        return Err(WireError::malformed(
            "DataRow",
            "column count does not match the row description",
        ));
    }
    let frame_start = out.len();
    out.reserve(body.len() + 5);
    out.put_u8(b'D');
    out.put_u32(0);
    out.put_i16(columns);
    let mut stats = RowStats::default();
    for mask in plan {
        let len = c.i32()?;
        let value = match len {
            -1 => None,
            n if n >= 0 => Some(c.bytes(n as usize)?),
            _ => return Err(WireError::malformed("DataRow", "negative value length")),
        };
        match (value, mask) {
            (None, _) => out.put_i32(-1),
            (Some(v), None) => {
                out.put_i32(v.len() as i32);
                out.put_slice(v);
            }
            (Some(v), Some(m)) => {
                stats.masked += 1;
                if m.binary && !m.text_like {
                    // No masked form is a valid value of an arbitrary binary type.
                    out.put_i32(-1);
                    continue;
                }
                let len_at = out.len();
                out.put_i32(0);
                if m.strategy.apply(v, key, out) {
                    let n = (out.len() - len_at - 4) as i32;
                    out[len_at..len_at + 4].copy_from_slice(&n.to_be_bytes());
                } else {
                    out.truncate(len_at);
                    out.put_i32(-1);
                }
            }
        }
    }
    c.finish()?;
    let len = (out.len() - frame_start - 1) as u32;
    out[frame_start + 1..frame_start + 5].copy_from_slice(&len.to_be_bytes());
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::backend::DataRow;
    use crate::wire::Frame;

    fn row(values: &[Option<&[u8]>]) -> Vec<u8> {
        let mut b = (values.len() as i16).to_be_bytes().to_vec();
        for v in values {
            match v {
                None => b.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(v) => {
                    b.extend_from_slice(&(v.len() as i32).to_be_bytes());
                    b.extend_from_slice(v);
                }
            }
        }
        b
    }

    fn mask(strategy: Strategy, binary: bool, text_like: bool) -> Option<ColumnMask> {
        Some(ColumnMask {
            strategy,
            binary,
            text_like,
        })
    }

    #[test]
    fn masks_planned_columns_and_keeps_the_rest() {
        let body = row(&[
            Some(b"7"),
            Some(b"jane@example.com"),
            None,
            Some(b"1990-01-01"),
            Some(b"\x00\x00\x1f\x40"),
        ]);
        let plan = vec![
            None,
            mask(Strategy::Email, false, true),
            mask(Strategy::Redact, false, true),
            mask(Strategy::Null, false, false),
            mask(Strategy::Redact, true, false),
        ];
        let mut out = BytesMut::new();
        let stats = rewrite_row(&body, &plan, &HashKey::new(b"k"), &mut out).unwrap();
        assert_eq!(stats.masked, 3);
        let f = Frame::first(&out, 1 << 20).unwrap().unwrap();
        assert_eq!(f.tag, b'D');
        let values: Vec<_> = DataRow::parse(f.body)
            .unwrap()
            .values()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            values,
            vec![
                Some(&b"7"[..]),
                Some(&b"j***@example.com"[..]),
                None,
                None,
                None
            ]
        );
    }

    #[test]
    fn bad_rows_write_nothing() {
        let mut out = BytesMut::from(&b"keep"[..]);
        let key = HashKey::new(b"k");
        for bad in [
            row(&[Some(b"a")])[..5].to_vec(),
            row(&[Some(b"a"), Some(b"b")]),
            vec![0xff, 0xff],
            row(&[Some(b"a")]).into_iter().chain([1]).collect(),
        ] {
            assert!(rewrite_row(&bad, &[None], &key, &mut out).is_err());
            assert_eq!(&out[..], b"keep");
        }
    }
}
