//! Batches that look like the real agent's, signed per request, and the hostile variants.
//!
//! Every request has a slot number (its place in the schedule). The slot travels in the
//! metric's `uptime_s`, so that `--verify` can tell from the stored rows which request each
//! row came from: acknowledged ones exactly once, hostile ones never.

use protocol::{Event, EventKind, IngestBatch};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Names a Windows PC shows in its top processes.
const PROCESS_NAMES: &[&str] = &[
    "chrome.exe",
    "msedge.exe",
    "explorer.exe",
    "svchost.exe",
    "MsMpEng.exe",
    "Teams.exe",
    "OUTLOOK.EXE",
    "dwm.exe",
    "SearchHost.exe",
    "Code.exe",
    "WINWORD.EXE",
    "OneDrive.exe",
];

/// Old enough to be stale for any sensible `HMAC_DRIFT`.
const STALE_BY_S: i64 = 86_400;

/// A cheap, well-mixed hash so that each slot gets its own figures and its own coin toss.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A fraction in [0, 1) from a hash.
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// The kinds of hostile request and the refusal code each must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Hostile {
    /// The exact bytes and headers of a request the backend accepted.
    Replay,
    /// A correctly signed body, changed after signing.
    Tampered,
    /// Correctly signed, with a timestamp a day old.
    Stale,
    /// Correctly signed, with a token the backend does not know.
    WrongToken,
}

impl Hostile {
    pub(crate) const ALL: [Hostile; 4] =
        [Hostile::Replay, Hostile::Tampered, Hostile::Stale, Hostile::WrongToken];

    pub(crate) fn expected_code(self) -> &'static str {
        match self {
            Hostile::Replay => protocol::codes::REPLAY,
            Hostile::Tampered => protocol::codes::BAD_SIGNATURE,
            Hostile::Stale => protocol::codes::STALE_TIMESTAMP,
            Hostile::WrongToken => protocol::codes::BAD_TOKEN,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Hostile::Replay => "attack replay",
            Hostile::Tampered => "attack tampered",
            Hostile::Stale => "attack stale",
            Hostile::WrongToken => "attack wrong token",
        }
    }

    /// Whether slot `slot` is hostile when `fraction` of all requests are, and how.
    pub(crate) fn for_slot(slot: u64, fraction: f64) -> Option<Hostile> {
        let h = mix(slot ^ 0x5EED);
        (unit(h) < fraction).then(|| Hostile::ALL[(h & 3) as usize])
    }
}

/// Everything one request puts on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Signed {
    pub token: String,
    pub ts: String,
    pub signature: String,
    pub body: Vec<u8>,
}

/// The simulated hosts of one run; their names carry a run id so runs never mix.
#[derive(Debug, Clone)]
pub(crate) struct Fleet {
    run_id: String,
    agents: u32,
    procs: u32,
}

impl Fleet {
    pub(crate) fn new(run_id: impl Into<String>, agents: u32, procs: u32) -> Self {
        Self { run_id: run_id.into(), agents, procs }
    }

    pub(crate) fn agents(&self) -> u32 {
        self.agents
    }

    pub(crate) fn agent_id(&self, index: u32) -> String {
        format!("load-{}-{index:04}", self.run_id)
    }

    pub(crate) fn agent_of(&self, slot: u64) -> u32 {
        // The remainder is below `agents`, a u32.
        (slot % u64::from(self.agents)) as u32
    }

    /// One metric reading and `procs` processes, with a fresh batch id and time.
    pub(crate) fn batch(&self, slot: u64, now: OffsetDateTime) -> IngestBatch {
        let h = mix(slot);
        let mem_total: u64 = 16 << 30;
        let mut events = Vec::with_capacity(1 + self.procs as usize);
        events.push(Event {
            cpu: Some((unit(h) * 0.9 * 1000.0).round() / 1000.0),
            mem_free: Some(mem_total / 4 + (h % (8 << 30))),
            mem_total: Some(mem_total),
            disk_free: Some(200 << 30),
            disk_total: Some(512 << 30),
            net_rx_bps: Some(((h >> 8) % 5_000_000) as f64),
            net_tx_bps: Some(((h >> 16) % 1_000_000) as f64),
            uptime_s: Some(slot),
            ..Event::empty(EventKind::Metric)
        });
        for i in 0..self.procs {
            let p = mix(h ^ u64::from(i));
            events.push(Event::process(
                1000 + (p % 60_000) as u32,
                PROCESS_NAMES[i as usize % PROCESS_NAMES.len()],
                (unit(p) * 0.1 * 1000.0).round() / 1000.0,
                (20 << 20) + (p % (800 << 20)),
            ));
        }
        IngestBatch {
            agent_id: self.agent_id(self.agent_of(slot)),
            ts: now.format(&Rfc3339).expect("a current UTC time always formats as RFC 3339"),
            platform: "windows".into(),
            // Time-ordered like the agent's own.
            batch_id: Some(uuid::Uuid::now_v7().to_string()),
            events,
            agent: None,
            drives: None,
            host: None,
            notices: None,
            services: None,
        }
    }
}

/// Signs with the run's credentials.
#[derive(Debug, Clone)]
pub(crate) struct Signer {
    token: String,
    secret: String,
}

fn to_json(batch: &IngestBatch) -> Vec<u8> {
    serde_json::to_vec(batch).expect("a batch of plain numbers and strings serializes")
}

impl Signer {
    pub(crate) fn new(token: impl Into<String>, secret: impl Into<String>) -> Self {
        Self { token: token.into(), secret: secret.into() }
    }

    pub(crate) fn sign(&self, batch: &IngestBatch, now_s: i64) -> Signed {
        self.sign_bytes(to_json(batch), now_s)
    }

    fn sign_bytes(&self, body: Vec<u8>, ts_s: i64) -> Signed {
        let ts = ts_s.to_string();
        let signature = protocol::sign(self.secret.as_bytes(), &ts, &body);
        Signed { token: self.token.clone(), ts, signature, body }
    }

    /// A hostile request built from `batch`, or for `Replay` the accepted request `accepted`;
    /// `None` when there is nothing to replay.
    pub(crate) fn attack(
        &self,
        kind: Hostile,
        batch: &IngestBatch,
        now_s: i64,
        accepted: Option<&Signed>,
    ) -> Option<Signed> {
        match kind {
            Hostile::Replay => accepted.cloned(),
            Hostile::Tampered => {
                let mut signed = self.sign(batch, now_s);
                let mut changed = batch.clone();
                if let Some(cpu) = changed.events.first_mut().and_then(|m| m.cpu.as_mut()) {
                    *cpu = if *cpu < 0.5 { *cpu + 0.25 } else { *cpu - 0.25 };
                }
                signed.body = to_json(&changed);
                Some(signed)
            }
            Hostile::Stale => Some(self.sign(batch, now_s - STALE_BY_S)),
            Hostile::WrongToken => {
                let mut signed = self.sign(batch, now_s);
                signed.token = format!("not-{}", self.token);
                Some(signed)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_763_000_000).unwrap()
    }

    #[test]
    fn batches_are_valid_and_carry_their_slot() {
        let fleet = Fleet::new("abc", 3, 5);
        let batch = fleet.batch(7, now());
        assert!(batch.validate().is_ok(), "{batch:?}");
        assert_eq!(batch.agent_id, "load-abc-0001");
        assert_eq!(batch.events.len(), 6);
        assert!(batch.events[0].is_metric() && batch.events[0].uptime_s == Some(7));
        assert_ne!(batch.batch_id, fleet.batch(7, now()).batch_id);
    }

    #[test]
    fn signatures_verify_and_hostile_ones_do_not_pass_as_good() {
        let signer = Signer::new("tok", "sec");
        let batch = Fleet::new("r", 1, 2).batch(1, now());
        let good = signer.sign(&batch, 100);
        assert!(protocol::verify(&["sec"], &good.ts, &good.body, &good.signature).is_ok());

        let t = signer.attack(Hostile::Tampered, &batch, 100, None).unwrap();
        assert!(protocol::verify(&["sec"], &t.ts, &t.body, &t.signature).is_err());
        let tampered: IngestBatch = serde_json::from_slice(&t.body).unwrap();
        assert!(tampered.validate().is_ok());

        let s = signer.attack(Hostile::Stale, &batch, 100_000, None).unwrap();
        assert_eq!(s.ts, (100_000 - STALE_BY_S).to_string());
        assert!(protocol::verify(&["sec"], &s.ts, &s.body, &s.signature).is_ok());

        let w = signer.attack(Hostile::WrongToken, &batch, 100, None).unwrap();
        assert_ne!(w.token, "tok");
        assert!(signer.attack(Hostile::Replay, &batch, 100, None).is_none());
        assert_eq!(signer.attack(Hostile::Replay, &batch, 100, Some(&good)), Some(good));
    }

    #[test]
    fn the_hostile_fraction_is_respected_and_every_kind_occurs() {
        let n = 100_000;
        let picks: Vec<_> = (0..n).filter_map(|s| Hostile::for_slot(s, 0.2)).collect();
        let share = picks.len() as f64 / n as f64;
        assert!((share - 0.2).abs() < 0.01, "{share}");
        for kind in Hostile::ALL {
            let k = picks.iter().filter(|p| **p == kind).count() as f64 / picks.len() as f64;
            assert!((k - 0.25).abs() < 0.02, "{kind:?}: {k}");
        }
        assert!((0..n).all(|s| Hostile::for_slot(s, 0.0).is_none()));
        assert!((0..n).all(|s| Hostile::for_slot(s, 1.0).is_some()));
    }
}
