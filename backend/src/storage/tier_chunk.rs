//! Compacted tier buckets: one agent's per-minute buckets of a day in one compressed value.
//!
//! A bucket holds sums, counts and maxima (see [`crate::storage::rollup`]). The sums of decimal
//! figures are not decimals themselves (binary rounding), but they lie within a few units of
//! the last place of one: each is stored as that decimal's digits, as the difference from the
//! previous row's, and the few units that remain, so that it takes some three bytes instead of
//! eight and decodes to the same bits.

use super::chunk::{
    ChunkError, MAX_PLAIN, Reader, pack, put_bytes, put_signed, put_varint, streams, unpack,
};
use super::rollup::Sum;
use std::collections::HashMap;

/// One bucket of one figure set: the machine's (no name) or one process's.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TierRow {
    pub name: Option<String>,
    pub bucket_ms: i64,
    pub sums: Vec<Sum>,
}

const VERSION: u8 = 1;
/// How a float column is kept: the bits of each, each as a difference from the previous one's.
const BITS: u8 = 0xff;

/// The digits of `x` at `e` decimals and how far its bits are from theirs.
fn near(x: f64, e: u32) -> Option<(i64, i64)> {
    let p = 10f64.powi(e as i32);
    let m = (x * p).round();
    if !m.is_finite() || m.abs() >= 9.0e15 {
        return None;
    }
    let base = (m as i64) as f64 / p;
    Some((m as i64, (x.to_bits() as i64).wrapping_sub(base.to_bits() as i64)))
}

fn varint_len(v: i64) -> usize {
    let z = ((v << 1) ^ (v >> 63)) as u64;
    (64 - z.leading_zeros() as usize).max(1).div_ceil(7)
}

/// A float column: the decimals (0-12) that cost fewest bytes, or the bits.
fn put_floats(out: &mut Vec<u8>, xs: &[f64]) {
    let cost = |e: u32| -> Option<usize> {
        let mut prev = 0i64;
        xs.iter().try_fold(0usize, |acc, &x| {
            let (m, r) = near(x, e)?;
            let c = varint_len(m.wrapping_sub(prev)) + varint_len(r);
            prev = m;
            Some(acc + c)
        })
    };
    let best = (0..=12u32).filter_map(|e| cost(e).map(|c| (c, e))).min();
    match best {
        Some((c, e)) if c < 8 * xs.len() => {
            out.push(e as u8);
            let mut prev = 0i64;
            for &x in xs {
                let (m, r) = near(x, e).expect("costed");
                put_signed(out, m.wrapping_sub(prev));
                put_signed(out, r);
                prev = m;
            }
        }
        _ => {
            out.push(BITS);
            let mut prev = 0u64;
            for &x in xs {
                out.extend_from_slice(&(x.to_bits() ^ prev).to_le_bytes());
                prev = x.to_bits();
            }
        }
    }
}

fn floats(r: &mut Reader<'_>, n: usize) -> Result<Vec<f64>, ChunkError> {
    let mode = r.take(1)?[0];
    let mut out = Vec::with_capacity(n);
    if mode == BITS {
        let mut prev = 0u64;
        for _ in 0..n {
            prev ^= u64::from_le_bytes(r.take(8)?.try_into().expect("eight bytes"));
            out.push(f64::from_bits(prev));
        }
    } else {
        let p = 10f64.powi(i32::from(mode));
        let mut m = 0i64;
        for _ in 0..n {
            m = m.wrapping_add(r.signed()?);
            let base = m as f64 / p;
            out.push(f64::from_bits((base.to_bits() as i64).wrapping_add(r.signed()?) as u64));
        }
    }
    Ok(out)
}

/// The chunk of `rows`, each with `width` sums; rows of one name are best kept together, in
/// time order (the differences are then small).
pub(crate) fn encode(rows: &[TierRow], width: usize) -> Result<Vec<u8>, ChunkError> {
    let mut keys = Vec::new();
    let mut counts = Vec::new();
    let mut names: HashMap<&str, u64> = HashMap::new();
    put_varint(&mut keys, rows.len() as u64);
    put_varint(&mut keys, width as u64);
    let mut bucket = 0i64;
    for row in rows {
        if row.sums.len() != width {
            return Err(ChunkError::Damaged("rows of different widths"));
        }
        match row.name.as_deref() {
            None => put_varint(&mut keys, 0),
            Some(n) if names.contains_key(n) => put_varint(&mut keys, names[n]),
            Some(n) => {
                let next = names.len() as u64 + 1;
                put_varint(&mut keys, next);
                put_bytes(&mut keys, n.as_bytes());
                names.insert(n, next);
            }
        }
        put_signed(&mut keys, row.bucket_ms.wrapping_sub(bucket));
        bucket = row.bucket_ms;
        for s in &row.sums {
            put_varint(&mut counts, s.n as u64);
            counts.push(u8::from(s.max.is_some()));
        }
    }
    let mut figures = Vec::new();
    for k in 0..width {
        let sums: Vec<f64> = rows.iter().map(|r| r.sums[k].sum).collect();
        put_floats(&mut figures, &sums);
        let maxima: Vec<f64> = rows.iter().filter_map(|r| r.sums[k].max).collect();
        put_floats(&mut figures, &maxima);
    }
    pack(VERSION, &[keys, counts, figures])
}

/// Every row of the chunk, in the order they were encoded.
pub(crate) fn decode(chunk: &[u8]) -> Result<Vec<TierRow>, ChunkError> {
    let plain = unpack(chunk)?;
    let [mut keys, mut counts, mut figures]: [Reader<'_>; 3] =
        streams(&plain, VERSION, 3)?.try_into().map_err(|_| ChunkError::Damaged("streams"))?;
    let n = usize::try_from(keys.varint()?).map_err(|_| ChunkError::Damaged("a count"))?;
    let width = usize::try_from(keys.varint()?).map_err(|_| ChunkError::Damaged("a width"))?;
    if n.saturating_mul(width) > MAX_PLAIN {
        return Err(ChunkError::Damaged("too many rows"));
    }
    let mut names: Vec<String> = Vec::new();
    let (mut rows, mut bucket) = (Vec::with_capacity(n), 0i64);
    for _ in 0..n {
        let name = match keys.varint()? {
            0 => None,
            k if k == names.len() as u64 + 1 => {
                let s = std::str::from_utf8(keys.bytes()?)
                    .map_err(|_| ChunkError::Damaged("a name"))?;
                names.push(s.to_owned());
                Some(s.to_owned())
            }
            k => Some(names.get(k as usize - 1).ok_or(ChunkError::Damaged("a name"))?.clone()),
        };
        bucket = bucket.wrapping_add(keys.signed()?);
        let mut sums = Vec::with_capacity(width);
        for _ in 0..width {
            let n = counts.varint()? as i64;
            let has_max = counts.take(1)?[0] != 0;
            // The max is filled in below; a placeholder marks where one belongs.
            sums.push(Sum { sum: 0.0, n, max: has_max.then_some(0.0) });
        }
        rows.push(TierRow { name, bucket_ms: bucket, sums });
    }
    for k in 0..width {
        for (row, sum) in rows.iter_mut().zip(floats(&mut figures, n)?) {
            row.sums[k].sum = sum;
        }
        let with_max = rows.iter().filter(|r| r.sums[k].max.is_some()).count();
        let mut maxima = floats(&mut figures, with_max)?.into_iter();
        for row in rows.iter_mut().filter(|r| r.sums[k].max.is_some()) {
            row.sums[k].max = maxima.next();
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sum(sum: f64, n: i64, max: Option<f64>) -> Sum {
        Sum { sum, n, max }
    }

    #[test]
    fn sums_of_decimals_cost_a_few_bytes_and_keep_their_bits() {
        // A minute of readings at 5 s, to 0.01 %: the sums are not decimals.
        let rows: Vec<TierRow> = (0..1440)
            .map(|i| {
                let readings: Vec<f64> =
                    (0..12).map(|k| f64::from((i * 37 + k * 101) % 10_000) / 10_000.0).collect();
                let total: f64 = readings.iter().sum();
                let max = readings.iter().copied().fold(0.0, f64::max);
                TierRow {
                    name: None,
                    bucket_ms: 1_762_948_800_000 + i64::from(i) * 60_000,
                    sums: vec![sum(total, 12, Some(max)), sum(4096.0 * f64::from(i), 12, None)],
                }
            })
            .collect();
        let decimal = |x: f64| crate::storage::chunk::digits(x, 4).is_some();
        assert!(rows.iter().any(|r| !decimal(r.sums[0].sum)), "not all decimals");
        let chunk = encode(&rows, 2).unwrap();
        assert_eq!(decode(&chunk).unwrap(), rows);
        assert!(chunk.len() < 1440 * 10, "{} bytes", chunk.len());
    }

    #[test]
    fn a_damaged_chunk_is_an_error() {
        let rows =
            [TierRow { name: Some("a".into()), bucket_ms: 0, sums: vec![sum(1.0, 1, None)] }];
        let chunk = encode(&rows, 1).unwrap();
        assert!(decode(&chunk[..chunk.len() - 1]).is_err());
        assert!(encode(&rows, 2).is_err());
    }

    fn rows() -> impl Strategy<Value = (usize, Vec<TierRow>)> {
        let figure = prop_oneof![
            any::<f64>(),
            (0u32..1_000_000).prop_map(|n| f64::from(n) / 10_000.0),
            (0u32..100).prop_map(|n| (0..n).map(|k| f64::from(k) * 0.1).sum::<f64>()),
        ];
        let one_sum = (figure.clone(), any::<i64>(), prop::option::of(figure))
            .prop_map(|(s, n, m)| sum(s, n, m));
        (1usize..4).prop_flat_map(move |width| {
            let row = (
                prop::option::of(prop_oneof![Just("x.exe".to_owned()), "[a-z]{1,6}"]),
                any::<i64>(),
                prop::collection::vec(one_sum.clone(), width),
            )
                .prop_map(|(name, bucket_ms, sums)| TierRow { name, bucket_ms, sums });
            (Just(width), prop::collection::vec(row, 0..40))
        })
    }

    proptest! {
        #[test]
        fn every_row_comes_back_to_the_bit((width, rows) in rows()) {
            let chunk = encode(&rows, width).unwrap();
            let back = decode(&chunk).unwrap();
            prop_assert_eq!(back.len(), rows.len());
            for (b, r) in back.iter().zip(&rows) {
                prop_assert_eq!(&b.name, &r.name);
                prop_assert_eq!(b.bucket_ms, r.bucket_ms);
                for (x, y) in b.sums.iter().zip(&r.sums) {
                    prop_assert_eq!(x.sum.to_bits(), y.sum.to_bits());
                    prop_assert_eq!(x.n, y.n);
                    prop_assert_eq!(x.max.map(f64::to_bits), y.max.map(f64::to_bits));
                }
            }
        }
    }
}
