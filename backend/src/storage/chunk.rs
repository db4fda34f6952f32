//! Compacted raw batches: one agent's batches, hundreds at a time, in one compressed value.
//!
//! The log keeps every batch as a row of its own, readable by plain SQL, at some 650 bytes a
//! batch. Once a batch is old enough that it is read rarely, it moves into a chunk: the batches
//! are laid out column by column (each figure next to the same figure of the batch before), each
//! figure as the difference from the previous reading of the same process or machine, and the
//! whole is compressed with zstd. A float that is a decimal with few digits (what most agents
//! send) is stored as that decimal's digits, so it shrinks like an integer; any other float
//! keeps its exact bits. Nothing is rounded: decoding gives back every batch as it was stored.

use protocol::{Event, EventKind};
use std::collections::HashMap;

/// One batch as the log held it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ChunkBatch {
    pub first_id: i64,
    pub ts: String,
    pub ts_ms: i64,
    pub platform: String,
    pub ingested_ms: i64,
    /// The batch id's key (see `sqlite::schema::batch_key`), for finding a resent batch.
    pub key: Option<Vec<u8>>,
    pub events: Vec<Event>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ChunkError {
    #[error("compressing a chunk failed: {0}")]
    Compress(std::io::Error),
    #[error("a chunk is damaged: {0}")]
    Damaged(&'static str),
}

const VERSION: u8 = 1;
const LEVEL: i32 = 9;
/// A decompressed chunk larger than this is refused rather than allocated.
pub(super) const MAX_PLAIN: usize = 64 << 20;

/// The streams of a chunk, each compressed next to its own kind of bytes.
#[derive(Debug, Clone, Copy)]
enum S {
    Batches,
    Texts,
    Keys,
    Kinds,
    Present,
    Whole,
    Floats,
}
const STREAMS: usize = 7;

/// The figures of an event in the order they are written; the first three are floats.
const FLOATS: usize = 3;
const FIGURES: usize = 10;

fn figures(e: &Event) -> ([Option<f64>; FLOATS], [Option<u64>; FIGURES - FLOATS]) {
    (
        [e.cpu, e.net_rx_bps, e.net_tx_bps],
        [
            e.mem_free,
            e.mem_total,
            e.disk_free,
            e.disk_total,
            e.uptime_s,
            e.pid.map(u64::from),
            e.rss,
        ],
    )
}

/// The smallest number of decimals `x` has, if it is exactly such a decimal below 2^53.
fn decimals(x: f64) -> Option<u32> {
    (0..=15u32).find(|&e| digits(x, e).is_some())
}

/// `x`'s digits at `e` decimals, if they give back `x` to the bit (-0.0 does not: no integer
/// keeps its sign).
pub(super) fn digits(x: f64, e: u32) -> Option<i64> {
    let p = 10f64.powi(e as i32);
    let m = (x * p).round();
    if m.abs() >= 9.0e15 {
        return None;
    }
    let m = m as i64;
    ((m as f64 / p).to_bits() == x.to_bits()).then_some(m)
}

pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(super) fn put_signed(out: &mut Vec<u8>, v: i64) {
    put_varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

pub(super) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Interned texts: each new one written once, then its number.
#[derive(Default)]
struct Texts {
    known: HashMap<String, u64>,
}

impl Texts {
    /// Writes `s` and returns its number (0 for none).
    fn put(&mut self, out: &mut Vec<u8>, s: Option<&str>) -> u64 {
        let Some(s) = s else {
            put_varint(out, 0);
            return 0;
        };
        if let Some(&n) = self.known.get(s) {
            put_varint(out, n);
            return n;
        }
        let n = self.known.len() as u64 + 1;
        put_varint(out, n);
        put_bytes(out, s.as_bytes());
        self.known.insert(s.to_owned(), n);
        n
    }
}

/// Where the previous figures of the same machine or process are kept: by kind and name.
type Context = (u64, u64);

/// The chunk of `batches`, all of one agent, in the order given.
pub(crate) fn encode(batches: &[ChunkBatch]) -> Result<Vec<u8>, ChunkError> {
    let mut s: [Vec<u8>; STREAMS] = Default::default();
    let mut texts = Texts::default();
    let mut kind_ids = Texts::default();
    // Each float column's decimals: the most any of its figures needs, or none at all.
    let mut scale = [Some(0u32); FLOATS];
    for e in batches.iter().flat_map(|b| &b.events) {
        for (k, x) in figures(e).0.iter().enumerate() {
            if let Some(x) = x {
                scale[k] = scale[k].zip(decimals(*x)).map(|(a, b)| a.max(b));
            }
        }
    }
    let scale: [Option<u32>; FLOATS] =
        std::array::from_fn(|k| scale[k].filter(|&e| column_fits(batches, k, e)));
    for e in scale {
        s[S::Floats as usize].push(e.map_or(0xff, |e| e as u8));
    }
    let (mut id, mut ts_ms, mut ingested) = (0i64, 0i64, 0i64);
    let mut whole_prev: HashMap<Context, [u64; FIGURES - FLOATS]> = HashMap::new();
    let mut float_prev: HashMap<Context, [u64; FLOATS]> = HashMap::new();
    put_varint(&mut s[S::Batches as usize], batches.len() as u64);
    for b in batches {
        let out = &mut s[S::Batches as usize];
        put_signed(out, b.first_id.wrapping_sub(id));
        put_signed(out, b.ts_ms.wrapping_sub(ts_ms));
        put_signed(out, b.ingested_ms.wrapping_sub(ingested));
        put_varint(out, b.events.len() as u64);
        id = b.first_id.wrapping_add(b.events.len() as i64);
        (ts_ms, ingested) = (b.ts_ms, b.ingested_ms);
        // The time as sent, unless it is the canonical spelling of `ts_ms` (the usual case).
        let canonical = crate::clock::format_ms(b.ts_ms) == b.ts;
        texts.put(&mut s[S::Texts as usize], (!canonical).then_some(b.ts.as_str()));
        texts.put(&mut s[S::Texts as usize], Some(&b.platform));
        // A key is never empty, so an empty one stands for none.
        put_bytes(&mut s[S::Keys as usize], b.key.as_deref().unwrap_or_default());
        for e in &b.events {
            let kind = kind_ids.put(&mut s[S::Kinds as usize], Some(e.kind.as_str()));
            let ctx = (kind, texts.put(&mut s[S::Texts as usize], e.name.as_deref()));
            let (floats, wholes) = figures(e);
            let present = floats
                .iter()
                .map(Option::is_some)
                .chain(wholes.iter().map(Option::is_some))
                .enumerate()
                .fold(0u64, |mask, (k, set)| mask | (u64::from(set) << k));
            put_varint(&mut s[S::Present as usize], present);
            let prev = float_prev.entry(ctx).or_default();
            for (k, x) in floats.iter().enumerate() {
                let Some(x) = x else { continue };
                let out = &mut s[S::Floats as usize];
                match scale[k] {
                    Some(e) => {
                        let m =
                            digits(*x, e).ok_or(ChunkError::Damaged("a float lost its scale"))?;
                        put_signed(out, m.wrapping_sub(prev[k] as i64));
                        prev[k] = m as u64;
                    }
                    None => {
                        out.extend_from_slice(&(x.to_bits() ^ prev[k]).to_le_bytes());
                        prev[k] = x.to_bits();
                    }
                }
            }
            let prev = whole_prev.entry(ctx).or_default();
            for (k, v) in wholes.iter().enumerate() {
                let Some(v) = v else { continue };
                put_signed(&mut s[S::Whole as usize], v.wrapping_sub(prev[k]) as i64);
                prev[k] = *v;
            }
        }
    }
    pack(VERSION, &s)
}

/// A version byte and the streams, each after its length, compressed.
pub(super) fn pack(version: u8, streams: &[Vec<u8>]) -> Result<Vec<u8>, ChunkError> {
    let mut plain = vec![version];
    for stream in streams {
        put_bytes(&mut plain, stream);
    }
    zstd::bulk::compress(&plain, LEVEL).map_err(ChunkError::Compress)
}

/// What [`pack`] compressed.
pub(super) fn unpack(chunk: &[u8]) -> Result<Vec<u8>, ChunkError> {
    zstd::bulk::decompress(chunk, MAX_PLAIN)
        .map_err(|_| ChunkError::Damaged("it does not decompress"))
}

/// The `n` streams of an unpacked value, if it is of `version`.
pub(super) fn streams(plain: &[u8], version: u8, n: usize) -> Result<Vec<Reader<'_>>, ChunkError> {
    let mut r = Reader { b: plain };
    if r.take(1)? != [version] {
        return Err(ChunkError::Damaged("an unknown version"));
    }
    (0..n).map(|_| Ok(Reader { b: r.bytes()? })).collect()
}

/// Whether every figure of float column `k` is a decimal of `e` places below 2^53: each may
/// have few decimals and still overflow at the most any of them needs.
fn column_fits(batches: &[ChunkBatch], k: usize, e: u32) -> bool {
    batches
        .iter()
        .flat_map(|b| &b.events)
        .filter_map(|ev| figures(ev).0[k])
        .all(|x| digits(x, e).is_some())
}

pub(super) struct Reader<'a> {
    pub(super) b: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn varint(&mut self) -> Result<u64, ChunkError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.b.split_first().ok_or(ChunkError::Damaged("cut short"))?;
            self.b = rest;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(ChunkError::Damaged("a number runs on"))
    }

    pub(super) fn signed(&mut self) -> Result<i64, ChunkError> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], ChunkError> {
        if n > self.b.len() {
            return Err(ChunkError::Damaged("cut short"));
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }

    pub(super) fn bytes(&mut self) -> Result<&'a [u8], ChunkError> {
        let n = self.varint()?;
        self.take(usize::try_from(n).map_err(|_| ChunkError::Damaged("a length is too long"))?)
    }
}

/// The reading side of [`Texts`].
#[derive(Default)]
struct Known {
    texts: Vec<String>,
}

impl Known {
    fn get(&mut self, r: &mut Reader<'_>) -> Result<Option<(u64, &str)>, ChunkError> {
        let n = r.varint()?;
        if n == 0 {
            return Ok(None);
        }
        if n == self.texts.len() as u64 + 1 {
            let s = std::str::from_utf8(r.bytes()?).map_err(|_| ChunkError::Damaged("a text"))?;
            self.texts.push(s.to_owned());
        }
        let s = self.texts.get(n as usize - 1).ok_or(ChunkError::Damaged("an unknown text"))?;
        Ok(Some((n, s)))
    }
}

/// Every batch of the chunk, in the order they were encoded.
pub(crate) fn decode(chunk: &[u8]) -> Result<Vec<ChunkBatch>, ChunkError> {
    let plain = unpack(chunk)?;
    let mut s = streams(&plain, VERSION, STREAMS)?;
    let mut scale = [None; FLOATS];
    for e in &mut scale {
        let b = s[S::Floats as usize].take(1)?[0];
        *e = (b != 0xff).then_some(u32::from(b));
    }
    let (mut texts, mut kinds) = (Known::default(), Known::default());
    let mut whole_prev: HashMap<Context, [u64; FIGURES - FLOATS]> = HashMap::new();
    let mut float_prev: HashMap<Context, [u64; FLOATS]> = HashMap::new();
    let (mut id, mut ts_ms, mut ingested) = (0i64, 0i64, 0i64);
    let n = s[S::Batches as usize].varint()?;
    let mut out = Vec::with_capacity(n.min(1 << 16) as usize);
    for _ in 0..n {
        let b = &mut s[S::Batches as usize];
        let first_id = id.wrapping_add(b.signed()?);
        ts_ms = ts_ms.wrapping_add(b.signed()?);
        ingested = ingested.wrapping_add(b.signed()?);
        let count = b.varint()?;
        id = first_id.wrapping_add(count as i64);
        let ts = match texts.get(&mut s[S::Texts as usize])? {
            Some((_, t)) => t.to_owned(),
            None => crate::clock::format_ms(ts_ms),
        };
        let platform = texts.get(&mut s[S::Texts as usize])?.map(|(_, p)| p.to_owned());
        let platform = platform.ok_or(ChunkError::Damaged("a batch without a platform"))?;
        let key = match s[S::Keys as usize].bytes()? {
            [] => None,
            k => Some(k.to_vec()),
        };
        let mut events = Vec::with_capacity(count.min(1024) as usize);
        for _ in 0..count {
            let (kind, kind_name) =
                kinds.get(&mut s[S::Kinds as usize])?.ok_or(ChunkError::Damaged("a kind"))?;
            let kind_name = kind_name.to_owned();
            let (name_n, name) = match texts.get(&mut s[S::Texts as usize])? {
                Some((n, t)) => (n, Some(t.to_owned())),
                None => (0, None),
            };
            let present = s[S::Present as usize].varint()?;
            let ctx = (kind, name_n);
            let prev = float_prev.entry(ctx).or_default();
            let mut floats = [None; FLOATS];
            for (k, slot) in floats.iter_mut().enumerate() {
                if present & (1 << k) == 0 {
                    continue;
                }
                let f = &mut s[S::Floats as usize];
                *slot = Some(match scale[k] {
                    Some(e) => {
                        let m = (prev[k] as i64).wrapping_add(f.signed()?);
                        prev[k] = m as u64;
                        m as f64 / 10f64.powi(e as i32)
                    }
                    None => {
                        let raw: [u8; 8] = f.take(8)?.try_into().expect("eight bytes");
                        prev[k] ^= u64::from_le_bytes(raw);
                        f64::from_bits(prev[k])
                    }
                });
            }
            let prev = whole_prev.entry(ctx).or_default();
            let mut wholes = [None; FIGURES - FLOATS];
            for (k, slot) in wholes.iter_mut().enumerate() {
                if present & (1 << (FLOATS + k)) != 0 {
                    prev[k] = prev[k].wrapping_add(s[S::Whole as usize].signed()? as u64);
                    *slot = Some(prev[k]);
                }
            }
            let [cpu, net_rx_bps, net_tx_bps] = floats;
            let [mem_free, mem_total, disk_free, disk_total, uptime_s, pid, rss] = wholes;
            events.push(Event {
                kind: EventKind::parse(&kind_name),
                cpu,
                mem_free,
                mem_total,
                disk_free,
                disk_total,
                net_rx_bps,
                net_tx_bps,
                uptime_s,
                pid: pid.map(u32::try_from).transpose().map_err(|_| ChunkError::Damaged("pid"))?,
                name,
                rss,
            });
        }
        out.push(ChunkBatch { first_id, ts, ts_ms, platform, ingested_ms: ingested, key, events });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn batch(first_id: i64, ts_ms: i64, cpu: f64) -> ChunkBatch {
        ChunkBatch {
            first_id,
            ts: crate::clock::format_ms(ts_ms),
            ts_ms,
            platform: "windows".into(),
            ingested_ms: ts_ms + 40,
            key: Some(vec![7; 24]),
            events: vec![
                Event {
                    cpu: Some(cpu),
                    mem_free: Some(5 << 30),
                    mem_total: Some(16 << 30),
                    net_rx_bps: Some(1234.5),
                    ..Event::empty(EventKind::Metric)
                },
                Event::process(4242, "chrome.exe", cpu / 3.0, 300 << 20),
            ],
        }
    }

    #[test]
    fn decimals_are_found_exactly_and_other_floats_keep_their_bits() {
        assert_eq!(decimals(0.25), Some(2));
        assert_eq!(decimals(1234.0), Some(0));
        assert_eq!(decimals(0.1234), Some(4));
        assert_eq!(decimals(0.1 + 0.2), None);
        assert_eq!(decimals(-0.0), None);
        let batches: Vec<_> =
            (0..100).map(|i| batch(i * 2, i * 5000, 0.1 + i as f64 * 0.3)).collect();
        assert_eq!(decode(&encode(&batches).unwrap()).unwrap(), batches);
    }

    #[test]
    fn a_steady_agent_costs_a_few_bytes_a_batch() {
        let batches: Vec<_> =
            (0..720).map(|i| batch(i * 2, i * 5000, f64::from(i as u32 % 97) / 100.0)).collect();
        let chunk = encode(&batches).unwrap();
        assert!(chunk.len() < 720 * 12, "{} bytes", chunk.len());
    }

    #[test]
    fn a_damaged_chunk_is_an_error() {
        let mut chunk = encode(&[batch(1, 0, 0.5)]).unwrap();
        assert!(decode(&chunk[..chunk.len() - 1]).is_err());
        chunk[0] ^= 0xff;
        assert!(decode(&chunk).is_err());
        assert!(decode(b"").is_err());
    }

    fn figure() -> impl Strategy<Value = Option<f64>> {
        prop_oneof![
            Just(None),
            Just(Some(-0.0)),
            (0u32..10_000).prop_map(|n| Some(f64::from(n) / 100.0)),
            any::<f64>().prop_filter("finite", |x| x.is_finite()).prop_map(Some),
        ]
    }

    fn event() -> impl Strategy<Value = Event> {
        let kind = prop_oneof![
            Just(EventKind::Metric),
            Just(EventKind::Proc),
            "[a-z]{1,8}".prop_map(|s| EventKind::parse(&s)),
        ];
        let names = prop::option::of(prop_oneof![Just("a.exe".to_owned()), "[a-z.]{1,12}"]);
        let wholes = prop::array::uniform7(prop::option::of(any::<u64>()));
        (kind, figure(), figure(), figure(), wholes, names, any::<Option<u32>>()).prop_map(
            |(kind, cpu, rx, tx, w, name, pid)| Event {
                kind,
                cpu,
                mem_free: w[0],
                mem_total: w[1],
                disk_free: w[2],
                disk_total: w[3],
                net_rx_bps: rx,
                net_tx_bps: tx,
                uptime_s: w[4],
                pid,
                name,
                rss: w[6],
            },
        )
    }

    fn batches() -> impl Strategy<Value = Vec<ChunkBatch>> {
        let one = (
            any::<i64>(),
            any::<i64>(),
            prop::option::of("[ -~]{0,30}"),
            any::<i64>(),
            prop::option::of(prop::collection::vec(any::<u8>(), 1..30)),
            prop::collection::vec(event(), 0..8),
        );
        prop::collection::vec(one, 0..20).prop_map(|v| {
            v.into_iter()
                .map(|(first_id, ts_ms, ts, ingested_ms, key, events)| {
                    // Times the clock can spell, so that the canonical spelling is tried.
                    let ts_ms = ts_ms.rem_euclid(4_000_000_000_000);
                    ChunkBatch {
                        first_id,
                        ts: ts.unwrap_or_else(|| crate::clock::format_ms(ts_ms)),
                        ts_ms,
                        platform: "linux".into(),
                        ingested_ms,
                        key,
                        events,
                    }
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn every_batch_comes_back_as_it_was(batches in batches()) {
            let chunk = encode(&batches).unwrap();
            prop_assert_eq!(decode(&chunk).unwrap(), batches);
        }
    }
}
