//! Limits every producer and the backend agree on, and the checks that enforce them.

use crate::timestamp::parse_iso8601_ms;
use crate::wire::{EventKind, IngestBatch};

/// The bounds of a valid batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits;

impl Limits {
    /// Most events in one batch.
    pub const MAX_EVENTS: usize = 1000;
    /// Longest `agent_id`, in characters.
    pub const MAX_AGENT_ID_CHARS: usize = 128;
    pub(crate) const MAX_PROC_NAME_CHARS: usize = 260;
    pub(crate) const MAX_PLATFORM_CHARS: usize = 32;
    pub(crate) const MAX_BATCH_ID_CHARS: usize = 64;
    pub(crate) const MAX_AGENT_VERSION_CHARS: usize = 32;
    /// Drives one batch may list.
    pub const MAX_DRIVES: usize = 64;
    /// Longest event type, in characters.
    pub const MAX_EVENT_TYPE_CHARS: usize = 32;
    /// Cores one batch may list.
    pub const MAX_CORES: usize = 1024;
    /// Services one batch may list.
    pub const MAX_SERVICES: usize = 1024;
    /// Notices one batch may carry.
    pub const MAX_NOTICES: usize = 200;
    /// Longest service name, display name or notice source, in characters.
    pub const MAX_SOURCE_CHARS: usize = 256;
    /// Longest notice message, in characters.
    pub const MAX_MESSAGE_CHARS: usize = 2048;
}

/// The first limit a batch (or an agent id or time in a query) breaks; its text becomes the
/// `detail` of the 422 answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValidationError {
    /// `agent_id` is empty, too long, padded or holds control characters.
    #[error("agent_id must be 1-128 printable characters")]
    AgentId,
    /// `agent.version` is empty, too long, padded or holds control characters, or
    /// `agent.uptime_s` is out of range.
    #[error("agent must hold a version of 1-32 printable characters and an uptime_s below 2^63")]
    Agent,
    /// A drive's mount is not 1-260 printable characters, a size is out of range, a rate is
    /// not finite and zero or more, or there are more than [`Limits::MAX_DRIVES`].
    #[error(
        "drives: at most 64, each with a mount of 1-260 printable characters, sizes below 2^63 \
         and rates finite and zero or more"
    )]
    Drives,
    /// A core's share is not a fraction 0..1, there are more than [`Limits::MAX_CORES`], or a
    /// memory size is out of range.
    #[error("host: at most 1024 cores, each a fraction from 0 to 1, and sizes below 2^63")]
    Host,
    /// A service's name or display name is not 1-256 printable characters, or there are more
    /// than [`Limits::MAX_SERVICES`].
    #[error("services: at most 1024, each with a name of 1-256 printable characters")]
    Services,
    /// A notice's time, source or message is out of bounds, or there are more than
    /// [`Limits::MAX_NOTICES`].
    #[error(
        "notices: at most 200, each with an ISO 8601 ts, a source of 1-256 printable characters \
         and a message of at most 2048 characters without control characters but line breaks \
         and tabs"
    )]
    Notices,
    /// `platform` is empty, too long, padded or holds control characters.
    #[error("platform must be 1-32 printable characters")]
    Platform,
    /// `batch_id` is empty, too long or holds other characters than letters, digits, `-`, `_`.
    #[error("batch_id must be 1-64 characters of letters, digits, '-' or '_'")]
    BatchId,
    /// `ts` is not an ISO 8601 time.
    #[error("ts must be an ISO 8601 time such as 2025-11-12T12:00:00+00:00")]
    Timestamp,
    /// `events` is empty.
    #[error("events must not be empty")]
    NoEvents,
    /// More events than the limit; holds how many came.
    #[error("at most {max} events per batch, got {0}", max = Limits::MAX_EVENTS)]
    TooManyEvents(usize),
    /// One event's field is out of bounds.
    #[error("events[{index}].{field}: {reason}")]
    Field {
        /// Position of the event in `events`, from 0.
        index: usize,
        /// The field's name on the wire, such as `cpu` or `type`.
        field: &'static str,
        /// Why, such as `must be a fraction from 0 to 1`.
        reason: &'static str,
    },
}

/// A printable identifier: no control characters, no leading or trailing blanks.
pub fn is_printable_id(s: &str, max_chars: usize) -> bool {
    let count = s.chars().count();
    (1..=max_chars).contains(&count) && !s.chars().any(char::is_control) && s.trim() == s
}

/// An agent id as agents send it; reads and clears that name an agent are held to the same.
pub fn check_agent_id(agent_id: &str) -> Result<(), ValidationError> {
    if is_printable_id(agent_id, Limits::MAX_AGENT_ID_CHARS) {
        Ok(())
    } else {
        Err(ValidationError::AgentId)
    }
}

/// Parses the batch time into unix milliseconds.
pub fn parse_ts(ts: &str) -> Result<i64, ValidationError> {
    parse_iso8601_ms(ts).ok_or(ValidationError::Timestamp)
}

/// A share, 0 to 1.
fn is_fraction(v: f64) -> bool {
    v.is_finite() && (0.0..=1.0).contains(&v)
}

/// A rate, zero or more.
fn is_rate(v: f64) -> bool {
    v.is_finite() && v >= 0.0
}

// SQLite stores integers as i64; anything larger would wrap, so it is refused here.
fn fits_i64(v: u64) -> bool {
    i64::try_from(v).is_ok()
}

fn check_fraction(
    index: usize,
    field: &'static str,
    v: Option<f64>,
) -> Result<(), ValidationError> {
    match v {
        Some(v) if !is_fraction(v) => {
            Err(ValidationError::Field { index, field, reason: "must be a fraction from 0 to 1" })
        }
        _ => Ok(()),
    }
}

fn check_rate(index: usize, field: &'static str, v: Option<f64>) -> Result<(), ValidationError> {
    match v {
        Some(v) if !is_rate(v) => Err(ValidationError::Field {
            index,
            field,
            reason: "must be a finite number, zero or more",
        }),
        _ => Ok(()),
    }
}

fn check_int(index: usize, field: &'static str, v: Option<u64>) -> Result<(), ValidationError> {
    match v {
        Some(v) if !fits_i64(v) => {
            Err(ValidationError::Field { index, field, reason: "is out of range" })
        }
        _ => Ok(()),
    }
}

impl IngestBatch {
    /// Checks every limit; on success returns the batch time in unix milliseconds.
    pub fn validate(&self) -> Result<i64, ValidationError> {
        check_agent_id(&self.agent_id)?;
        if !is_printable_id(&self.platform, Limits::MAX_PLATFORM_CHARS) {
            return Err(ValidationError::Platform);
        }
        if let Some(id) = &self.batch_id {
            let ok = (1..=Limits::MAX_BATCH_ID_CHARS).contains(&id.len())
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok {
                return Err(ValidationError::BatchId);
            }
        }
        if let Some(agent) = &self.agent
            && (!is_printable_id(&agent.version, Limits::MAX_AGENT_VERSION_CHARS)
                || !fits_i64(agent.uptime_s))
        {
            return Err(ValidationError::Agent);
        }
        if let Some(drives) = &self.drives {
            let drive_ok = |d: &crate::wire::Drive| {
                is_printable_id(&d.mount, Limits::MAX_PROC_NAME_CHARS)
                    && fits_i64(d.free)
                    && fits_i64(d.total)
                    && d.read_bps.is_none_or(is_rate)
                    && d.write_bps.is_none_or(is_rate)
            };
            if drives.len() > Limits::MAX_DRIVES || !drives.iter().all(drive_ok) {
                return Err(ValidationError::Drives);
            }
        }
        self.host.as_ref().map_or(Ok(()), check_host)?;
        self.services.as_deref().map_or(Ok(()), check_services)?;
        self.notices.as_deref().map_or(Ok(()), check_notices)?;
        let ts_ms = parse_ts(&self.ts)?;
        if self.events.is_empty() {
            return Err(ValidationError::NoEvents);
        }
        if self.events.len() > Limits::MAX_EVENTS {
            return Err(ValidationError::TooManyEvents(self.events.len()));
        }
        for (i, e) in self.events.iter().enumerate() {
            if let EventKind::Other(name) = &e.kind
                && !is_printable_id(name, Limits::MAX_EVENT_TYPE_CHARS)
            {
                return Err(ValidationError::Field {
                    index: i,
                    field: "type",
                    reason: "must be 1-32 printable characters",
                });
            }
            check_fraction(i, "cpu", e.cpu)?;
            check_int(i, "mem_free", e.mem_free)?;
            check_int(i, "mem_total", e.mem_total)?;
            check_int(i, "disk_free", e.disk_free)?;
            check_int(i, "disk_total", e.disk_total)?;
            check_int(i, "uptime_s", e.uptime_s)?;
            check_int(i, "rss", e.rss)?;
            check_rate(i, "net_rx_bps", e.net_rx_bps)?;
            check_rate(i, "net_tx_bps", e.net_tx_bps)?;
            if let Some(name) = &e.name
                && !is_printable_id(name, Limits::MAX_PROC_NAME_CHARS)
            {
                return Err(ValidationError::Field {
                    index: i,
                    field: "name",
                    reason: "must be 1-260 printable characters",
                });
            }
        }
        Ok(ts_ms)
    }
}

fn check_host(h: &crate::Host) -> Result<(), ValidationError> {
    let ok = h.cores.len() <= Limits::MAX_CORES
        && h.cores.iter().copied().all(is_fraction)
        && [h.swap_used, h.swap_total, h.commit_used, h.commit_limit]
            .into_iter()
            .all(|v| v.is_none_or(fits_i64));
    if ok { Ok(()) } else { Err(ValidationError::Host) }
}

fn check_services(services: &[crate::Service]) -> Result<(), ValidationError> {
    let name_ok = |n: &str| is_printable_id(n, Limits::MAX_SOURCE_CHARS);
    let ok = services.len() <= Limits::MAX_SERVICES
        && services
            .iter()
            .all(|s| name_ok(&s.name) && s.display_name.as_deref().is_none_or(name_ok));
    if ok { Ok(()) } else { Err(ValidationError::Services) }
}

fn check_notices(notices: &[crate::Notice]) -> Result<(), ValidationError> {
    // Unlike names, messages keep their line breaks and tabs.
    let message_ok = |m: &str| {
        m.chars().count() <= Limits::MAX_MESSAGE_CHARS
            && m.chars().all(|c| !c.is_control() || c == '\n' || c == '\t')
    };
    let ok = notices.len() <= Limits::MAX_NOTICES
        && notices.iter().all(|n| {
            parse_ts(&n.ts).is_ok()
                && is_printable_id(&n.source, Limits::MAX_SOURCE_CHARS)
                && message_ok(&n.message)
        });
    if ok { Ok(()) } else { Err(ValidationError::Notices) }
}

#[cfg(test)]
mod tests {
    use crate::wire::Drive;
    use crate::{Host, Notice, NoticeKind, NoticeLevel, Service, ServiceState};

    #[test]
    fn drives_are_held_to_their_limits() {
        let drive =
            Drive { mount: "C:\\".into(), free: 1, total: 2, read_bps: None, write_bps: Some(0.0) };
        let with = |drives: Vec<Drive>| {
            let mut b: IngestBatch = serde_json::from_str(
                r#"{"agent_id":"a","ts":"2025-11-12T12:00:00Z","platform":"x","events":[{"type":"metric"}]}"#,
            )
            .unwrap();
            b.drives = Some(drives);
            b.validate()
        };
        assert!(with(vec![drive.clone()]).is_ok());
        assert_eq!(
            with(vec![Drive { mount: String::new(), ..drive.clone() }]),
            Err(ValidationError::Drives)
        );
        assert_eq!(
            with(vec![Drive { read_bps: Some(-1.0), ..drive.clone() }]),
            Err(ValidationError::Drives)
        );
        assert_eq!(
            with(vec![Drive { total: u64::MAX, ..drive.clone() }]),
            Err(ValidationError::Drives)
        );
        assert_eq!(with(vec![drive; Limits::MAX_DRIVES + 1]), Err(ValidationError::Drives));
    }

    #[test]
    fn host_services_and_notices_are_held_to_their_limits() {
        let check = |f: &dyn Fn(&mut IngestBatch)| {
            let mut b = batch(vec![metric(0.1)]);
            f(&mut b);
            b.validate().map(|_| ())
        };
        let host = Host { cores: vec![0.0, 1.0], swap_used: Some(1), ..Host::default() };
        assert_eq!(check(&|b| b.host = Some(host.clone())), Ok(()));
        let bad = Host { cores: vec![1.5], ..host.clone() };
        assert_eq!(check(&|b| b.host = Some(bad.clone())), Err(ValidationError::Host));
        let bad = Host { cores: vec![f64::NAN], ..host.clone() };
        assert_eq!(check(&|b| b.host = Some(bad.clone())), Err(ValidationError::Host));
        let bad = Host { commit_limit: Some(u64::MAX), ..host.clone() };
        assert_eq!(check(&|b| b.host = Some(bad.clone())), Err(ValidationError::Host));
        let bad = Host { cores: vec![0.5; Limits::MAX_CORES + 1], ..host };
        assert_eq!(check(&|b| b.host = Some(bad.clone())), Err(ValidationError::Host));

        let service = Service {
            name: "Spooler".into(),
            display_name: Some("Print Spooler".into()),
            state: ServiceState::Running,
            start: None,
        };
        assert_eq!(check(&|b| b.services = Some(vec![service.clone()])), Ok(()));
        for bad in [
            Service { name: String::new(), ..service.clone() },
            Service { display_name: Some(" x".into()), ..service.clone() },
            Service { name: "x".repeat(257), ..service.clone() },
        ] {
            let got = check(&|b| b.services = Some(vec![bad.clone()]));
            assert_eq!(got, Err(ValidationError::Services), "{bad:?}");
        }
        let many = vec![service; Limits::MAX_SERVICES + 1];
        assert_eq!(check(&|b| b.services = Some(many.clone())), Err(ValidationError::Services));

        let notice = Notice {
            ts: "2025-11-12T11:59:58Z".into(),
            kind: NoticeKind::Log,
            level: NoticeLevel::Error,
            source: "System/disk".into(),
            code: Some(7),
            message: "The device has a bad block.\r\n\tat sector 9".replace('\r', ""),
        };
        assert_eq!(check(&|b| b.notices = Some(vec![notice.clone()])), Ok(()));
        for bad in [
            Notice { ts: "then".into(), ..notice.clone() },
            Notice { source: String::new(), ..notice.clone() },
            Notice { message: "bell\u{7}".into(), ..notice.clone() },
            Notice { message: "x".repeat(2049), ..notice.clone() },
        ] {
            let got = check(&|b| b.notices = Some(vec![bad.clone()]));
            assert_eq!(got, Err(ValidationError::Notices), "{bad:?}");
        }
        let many = vec![notice; Limits::MAX_NOTICES + 1];
        assert_eq!(check(&|b| b.notices = Some(many.clone())), Err(ValidationError::Notices));
    }

    use super::*;
    use crate::wire::Event;
    use proptest::prelude::*;
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    fn batch(events: Vec<Event>) -> IngestBatch {
        IngestBatch {
            agent_id: "host-01".into(),
            ts: "2025-11-12T12:00:00+00:00".into(),
            platform: "windows".into(),
            batch_id: None,
            events,
            agent: None,
            drives: None,
            host: None,
            services: None,
            notices: None,
        }
    }

    fn metric(cpu: f64) -> Event {
        Event { cpu: Some(cpu), mem_free: Some(1), ..Event::empty(EventKind::Metric) }
    }

    fn proc_named(name: &str) -> Event {
        Event::process(1, name, 0.1, 1)
    }

    #[test]
    fn seed_example_is_valid_and_its_time_parsed() {
        let b: IngestBatch =
            serde_json::from_str(include_str!("../testdata/payloads/seed_example.json")).unwrap();
        assert_eq!(b.validate(), Ok(1_762_948_800_000));
    }

    #[test]
    fn each_limit_is_enforced() {
        assert_eq!(batch(vec![]).validate(), Err(ValidationError::NoEvents));
        assert_eq!(
            batch(vec![metric(0.5); 1001]).validate(),
            Err(ValidationError::TooManyEvents(1001))
        );
        assert!(batch(vec![metric(0.5); 1000]).validate().is_ok());
        for cpu in [-0.1, 1.01, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                batch(vec![metric(cpu)]).validate(),
                Err(ValidationError::Field { field: "cpu", .. })
            ));
        }
        assert!(batch(vec![proc_named(&"x".repeat(260))]).validate().is_ok());
        assert!(batch(vec![proc_named(&"x".repeat(261))]).validate().is_err());
        assert!(batch(vec![proc_named("")]).validate().is_err());

        let mut b = batch(vec![metric(0.1)]);
        for bad in ["", " padded", "tab\there", &"h".repeat(129)] {
            b.agent_id = bad.into();
            assert_eq!(b.validate(), Err(ValidationError::AgentId), "{bad:?}");
        }
        b.agent_id = "ünïcödé-host".into();
        assert!(b.validate().is_ok());
        b.batch_id = Some("has space".into());
        assert_eq!(b.validate(), Err(ValidationError::BatchId));
        b.batch_id = None;
        b.ts = "yesterday".into();
        assert_eq!(b.validate(), Err(ValidationError::Timestamp));
    }

    #[test]
    fn integers_beyond_sqlite_range_are_refused() {
        let e = Event { mem_total: Some(u64::MAX), ..metric(0.1) };
        assert!(batch(vec![e]).validate().is_err());
        let e = Event { rss: Some(u64::MAX), ..proc_named("x") };
        assert!(batch(vec![e]).validate().is_err());
    }

    #[test]
    fn absent_figures_and_other_types_pass_but_their_values_are_still_checked() {
        let bare = |kind| Event::empty(kind);
        let other = |name: &str| EventKind::Other(name.into());
        assert!(batch(vec![bare(EventKind::Metric), bare(EventKind::Proc)]).validate().is_ok());
        assert!(batch(vec![bare(other("heartbeat"))]).validate().is_ok());
        assert!(batch(vec![bare(other(&"t".repeat(33)))]).validate().is_err());
        assert!(batch(vec![bare(other(" x"))]).validate().is_err());
        let nan = Event { cpu: Some(f64::NAN), ..bare(other("gpu")) };
        assert!(batch(vec![nan]).validate().is_err());
        let negative = Event { net_rx_bps: Some(-1.0), ..bare(EventKind::Metric) };
        assert!(batch(vec![negative]).validate().is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_json_never_panics(body in ".{0,300}") {
            if let Ok(b) = serde_json::from_str::<IngestBatch>(&body) {
                let _ = b.validate();
            }
        }

        #[test]
        fn arbitrary_identifiers_and_times_never_panic(
            id in ".{0,200}", ts in ".{0,40}", name in ".{0,300}", cpu in any::<f64>(),
        ) {
            let mut b = batch(vec![metric(cpu), proc_named(&name)]);
            b.agent_id = id;
            b.ts = ts;
            let _ = b.validate();
        }

        #[test]
        fn valid_times_round_trip(secs in 0i64..4_000_000_000, ms in 0i64..1000) {
            let t = OffsetDateTime::from_unix_timestamp(secs).unwrap()
                + time::Duration::milliseconds(ms);
            let text = t.format(&Rfc3339).unwrap();
            prop_assert_eq!(parse_ts(&text), Ok(secs * 1000 + ms));
        }
    }
}
