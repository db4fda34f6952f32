//! How `batch_log.events` holds a batch's events, in both stores: JSON, so that the `events`
//! view and anyone with a SQL shell can read them, but positional where an event carries only its kind's
//! figures. A metric is `[cpu, mem_free, mem_total, disk_free, disk_total, net_rx_bps,
//! net_tx_bps, uptime_s]`, a process `[pid, name, cpu, rss]`, `null` where a figure is missing;
//! anything else (another type, a metric with a pid) keeps the wire's keyed object. The keys
//! were half of every row; an object written by an older backend still reads, so the log needs
//! no rewrite and turns compact as its rows age out.

use super::chunk::ChunkBatch;
use super::jobs::Columns;
use crate::clock::format_ms;
use protocol::{Event, EventKind, EventRow, IngestBatch};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

pub(crate) const KIND_METRIC: i64 = 1;
pub(crate) const KIND_PROC: i64 = 2;
/// Any type but metric and proc: stored and listed, never charted.
pub(crate) const KIND_OTHER: i64 = 4;

/// Which kinds of event a batch holds, as a bit set (a log row's `kinds`).
pub(crate) fn kinds(events: &[Event]) -> i64 {
    events.iter().fold(0, |k, e| {
        k | match e.kind {
            EventKind::Metric => KIND_METRIC,
            EventKind::Proc => KIND_PROC,
            EventKind::Other(_) => KIND_OTHER,
        }
    })
}

/// The kinds a batch must hold to have events of `event_type`.
pub(crate) fn kind_mask(event_type: Option<&str>) -> i64 {
    match event_type {
        Some("metric") => KIND_METRIC,
        Some("proc") => KIND_PROC,
        Some(_) => KIND_OTHER,
        None => KIND_METRIC | KIND_PROC | KIND_OTHER,
    }
}

/// A logged batch's events as rows, newest first: the batch's ids are `first_id` onwards.
pub(crate) fn rows(agent_id: String, b: ChunkBatch) -> Vec<EventRow> {
    let ingested_at = format_ms(b.ingested_ms);
    let batch = IngestBatch {
        agent_id,
        ts: b.ts,
        platform: b.platform,
        batch_id: None,
        events: vec![],
        agent: None,
        drives: None,
        host: None,
        notices: None,
        services: None,
    };
    let mut out: Vec<_> = (b.first_id..)
        .zip(&b.events)
        .map(|(id, e)| Columns::of(e).to_row(&batch, id, &ingested_at))
        .collect();
    out.reverse();
    out
}

/// Items of a positional metric and of a positional process; the view tells them apart by this.
const METRIC_ITEMS: usize = 8;
const PROC_ITEMS: usize = 4;

/// The log's JSON of `events`.
pub(crate) fn encode(events: &[Event]) -> serde_json::Result<String> {
    let mut out = Vec::with_capacity(64 * events.len() + 2);
    out.push(b'[');
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let has_proc_figures = e.pid.is_some() || e.name.is_some() || e.rss.is_some();
        let has_machine_figures = e.mem_free.is_some()
            || e.mem_total.is_some()
            || e.disk_free.is_some()
            || e.disk_total.is_some()
            || e.net_rx_bps.is_some()
            || e.net_tx_bps.is_some()
            || e.uptime_s.is_some();
        match e.kind {
            EventKind::Metric if !has_proc_figures => serde_json::to_writer(
                &mut out,
                &(
                    e.cpu,
                    e.mem_free,
                    e.mem_total,
                    e.disk_free,
                    e.disk_total,
                    e.net_rx_bps,
                    e.net_tx_bps,
                    e.uptime_s,
                ),
            )?,
            EventKind::Proc if !has_machine_figures => {
                serde_json::to_writer(&mut out, &(e.pid, &e.name, e.cpu, e.rss))?;
            }
            _ => serde_json::to_writer(&mut out, e)?,
        }
    }
    out.push(b']');
    // serde_json writes UTF-8 only.
    String::from_utf8(out).map_err(<serde_json::Error as serde::ser::Error>::custom)
}

/// The events of the log's JSON, positional or keyed.
pub(crate) fn decode(json: &str) -> serde_json::Result<Vec<Event>> {
    let stored: Vec<Stored> = serde_json::from_str(json)?;
    Ok(stored.into_iter().map(|s| s.0).collect())
}

struct Stored(Event);

impl<'de> Deserialize<'de> for Stored {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StoredVisitor).map(Stored)
    }
}

struct StoredVisitor;

impl<'de> Visitor<'de> for StoredVisitor {
    type Value = Event;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an event: an array of {METRIC_ITEMS} or {PROC_ITEMS} items, or an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Event, A::Error> {
        Event::deserialize(de::value::MapAccessDeserializer::new(map))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Event, A::Error> {
        let mut items: [Item; METRIC_ITEMS] = Default::default();
        let mut n = 0;
        while let Some(item) = seq.next_element::<Item>()? {
            let slot = items.get_mut(n).ok_or_else(|| de::Error::invalid_length(n + 1, &self))?;
            *slot = item;
            n += 1;
        }
        let [a, b, c, d, e, f, g, h] = items;
        match n {
            METRIC_ITEMS => Ok(Event {
                cpu: a.float()?,
                mem_free: b.whole()?,
                mem_total: c.whole()?,
                disk_free: d.whole()?,
                disk_total: e.whole()?,
                net_rx_bps: f.float()?,
                net_tx_bps: g.float()?,
                uptime_s: h.whole()?,
                ..Event::empty(EventKind::Metric)
            }),
            PROC_ITEMS => Ok(Event {
                pid: a.whole()?.map(u32::try_from).transpose().map_err(de::Error::custom)?,
                name: b.text()?,
                cpu: c.float()?,
                rss: d.whole()?,
                ..Event::empty(EventKind::Proc)
            }),
            n => Err(de::Error::invalid_length(n, &self)),
        }
    }
}

/// One item of a positional event, before its place says what it is.
#[derive(Debug, Default)]
enum Item {
    #[default]
    Null,
    Whole(u64),
    Float(f64),
    Text(String),
}

impl Item {
    fn float<E: de::Error>(self) -> Result<Option<f64>, E> {
        match self {
            Item::Null => Ok(None),
            Item::Float(x) => Ok(Some(x)),
            // An integral figure written by hand (the sqlite3 shell) reads as a number too.
            Item::Whole(n) => Ok(Some(n as f64)),
            Item::Text(_) => Err(E::custom("a text where a number belongs")),
        }
    }

    fn whole<E: de::Error>(self) -> Result<Option<u64>, E> {
        match self {
            Item::Null => Ok(None),
            Item::Whole(n) => Ok(Some(n)),
            _ => Err(E::custom("not a whole number where one belongs")),
        }
    }

    fn text<E: de::Error>(self) -> Result<Option<String>, E> {
        match self {
            Item::Null => Ok(None),
            Item::Text(s) => Ok(Some(s)),
            _ => Err(E::custom("a number where a name belongs")),
        }
    }
}

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ItemVisitor;
        impl Visitor<'_> for ItemVisitor {
            type Value = Item;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("null, a number or a text")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Item, E> {
                Ok(Item::Null)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Item, E> {
                Ok(Item::Whole(n))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Item, E> {
                Ok(Item::Float(n as f64))
            }
            fn visit_f64<E: de::Error>(self, x: f64) -> Result<Item, E> {
                Ok(Item::Float(x))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Item, E> {
                Ok(Item::Text(s.to_owned()))
            }
        }
        d.deserialize_any(ItemVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn metric() -> Event {
        Event {
            cpu: Some(0.559_999_999_999_999_9),
            mem_free: Some(5 << 30),
            mem_total: Some(16 << 30),
            net_rx_bps: Some(125_000.0),
            uptime_s: Some(86_400),
            ..Event::empty(EventKind::Metric)
        }
    }

    #[test]
    fn each_kind_is_written_in_its_shape() {
        let odd = Event { pid: Some(7), ..metric() };
        let other = Event { cpu: Some(0.5), ..Event::empty(EventKind::Other("gpu".into())) };
        let events = [metric(), Event::process(4000, "chrome.exe", 0.1, 300 << 20), odd, other];
        let json = encode(&events).unwrap();
        assert_eq!(
            json,
            concat!(
                r#"[[0.5599999999999999,5368709120,17179869184,null,null,125000.0,null,86400],"#,
                r#"[4000,"chrome.exe",0.1,314572800],"#,
                r#"{"type":"metric","cpu":0.5599999999999999,"mem_free":5368709120,"#,
                r#""mem_total":17179869184,"net_rx_bps":125000.0,"uptime_s":86400,"pid":7},"#,
                r#"{"type":"gpu","cpu":0.5}]"#,
            )
        );
        assert_eq!(decode(&json).unwrap(), events);
    }

    #[test]
    fn what_an_older_backend_wrote_still_reads() {
        let old = serde_json::to_string(&[metric(), Event::process(1, "x", 0.2, 3)]).unwrap();
        assert_eq!(decode(&old).unwrap(), [metric(), Event::process(1, "x", 0.2, 3)]);
    }

    #[test]
    fn a_damaged_row_is_an_error_not_a_guess() {
        for bad in ["[[1,2,3]]", r#"[[1,"x",0.1,"big"]]"#, "[[1,2,3,4,5,6,7,8,9]]", "[7]"] {
            assert!(decode(bad).is_err(), "{bad}");
        }
    }

    fn figure() -> impl Strategy<Value = Option<f64>> {
        prop_oneof![
            Just(None),
            any::<f64>().prop_filter("finite", |x| x.is_finite()).prop_map(Some)
        ]
    }

    fn event() -> impl Strategy<Value = Event> {
        let kind = prop_oneof![
            Just(EventKind::Metric),
            Just(EventKind::Proc),
            "[a-z]{1,8}".prop_map(|s| EventKind::parse(&s)),
        ];
        let whole = || proptest::option::of(any::<u64>());
        (
            kind,
            (figure(), whole(), whole(), whole(), whole(), figure(), figure(), whole()),
            (proptest::option::of(any::<u32>()), proptest::option::of(".{0,12}"), whole()),
        )
            .prop_map(|(kind, (cpu, mf, mt, df, dt, rx, tx, up), (pid, name, rss))| {
                Event {
                    kind,
                    cpu,
                    mem_free: mf,
                    mem_total: mt,
                    disk_free: df,
                    disk_total: dt,
                    net_rx_bps: rx,
                    net_tx_bps: tx,
                    uptime_s: up,
                    pid,
                    name,
                    rss,
                }
            })
    }

    proptest! {
        #[test]
        fn every_event_round_trips_exactly(events in proptest::collection::vec(event(), 0..8)) {
            let json = encode(&events).unwrap();
            prop_assert_eq!(decode(&json).unwrap(), events);
        }
    }
}
