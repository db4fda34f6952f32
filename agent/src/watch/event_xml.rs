//! An Event Log entry as `EvtRender(EvtRenderEventXml)` gives it, read by hand: the handful of
//! `System` fields a notice needs and the event's data strings, the message of last resort.
//! The schema is fixed and flat, so a few searches do what an XML crate would.

use super::{clean_message, clip};
use protocol::{Limits, Notice, NoticeKind, NoticeLevel};

/// The parts of an entry a notice is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EventRecord {
    /// `System/Provider/@Name`: `Service Control Manager`.
    pub provider: String,
    /// `System/EventID`, without its qualifiers.
    pub event_id: Option<u32>,
    /// `System/Level`: 1 critical, 2 error, 3 warning, 4 information.
    pub level: Option<u8>,
    /// `System/TimeCreated/@SystemTime`.
    pub time: String,
    /// `System/EventRecordID`, which grows by one per entry of the channel.
    pub record_id: u64,
    /// `System/Channel`: `System`.
    pub channel: String,
    /// The texts of `EventData/Data`, or of the leaves of `UserData`, in order.
    pub data: Vec<String>,
}

/// The entry in `xml`; `None` without an `EventRecordID`, which every rendered entry has.
pub(crate) fn parse(xml: &str) -> Option<EventRecord> {
    let system = element(xml, "System")?.inner;
    let text = |name| element(system, name).map(|e| decode(e.inner.trim()));
    let provider = element(system, "Provider").and_then(|e| attr(e.attrs, "Name"));
    let time = element(system, "TimeCreated").and_then(|e| attr(e.attrs, "SystemTime"));
    let data = match element(xml, "EventData") {
        Some(event_data) => elements(event_data.inner, "Data").map(|e| decode(e.inner)).collect(),
        None => element(xml, "UserData").map(|u| leaves(u.inner)).unwrap_or_default(),
    };
    Some(EventRecord {
        provider: provider.unwrap_or_default(),
        event_id: text("EventID").and_then(|t| t.parse().ok()),
        level: text("Level").and_then(|t| t.parse().ok()),
        time: time.unwrap_or_default(),
        record_id: text("EventRecordID")?.parse().ok()?,
        channel: text("Channel").unwrap_or_default(),
        data,
    })
}

/// The notice of an entry of level warning or worse (critical is an error too); `message` is
/// the provider's text of it when there is one, otherwise the data strings stand in.
pub(crate) fn notice(record: &EventRecord, message: Option<&str>, now: &str) -> Option<Notice> {
    let level = match record.level? {
        1 | 2 => NoticeLevel::Error,
        3 => NoticeLevel::Warning,
        _ => return None,
    };
    let source = match (record.channel.trim(), record.provider.trim()) {
        ("", provider) => provider.to_owned(),
        (channel, "") => channel.to_owned(),
        (channel, provider) => format!("{channel}/{provider}"),
    };
    let message = match message.map(clean_message).filter(|m| !m.is_empty()) {
        Some(m) => m,
        None => {
            let data: Vec<&str> =
                record.data.iter().map(|d| d.trim()).filter(|d| !d.is_empty()).collect();
            clean_message(&data.join("; "))
        }
    };
    let ts = if protocol::validate::parse_ts(&record.time).is_ok() { &record.time } else { now };
    Some(Notice {
        ts: ts.to_owned(),
        kind: NoticeKind::Log,
        level,
        source: clip(&source, Limits::MAX_SOURCE_CHARS).unwrap_or_else(|| "Event Log".into()),
        code: record.event_id,
        message,
    })
}

/// One element: what its start tag holds after the name, and what is between its tags.
#[derive(Debug, Clone, Copy)]
struct Element<'a> {
    attrs: &'a str,
    inner: &'a str,
}

/// The first element named `name` in `xml`.
fn element<'a>(xml: &'a str, name: &str) -> Option<Element<'a>> {
    elements(xml, name).next()
}

/// Every element named `name` in `xml`, in order; nested ones of the same name are not looked
/// for (the schema has none).
fn elements<'a>(xml: &'a str, name: &str) -> impl Iterator<Item = Element<'a>> {
    let mut rest = xml;
    std::iter::from_fn(move || {
        loop {
            let at = rest.find('<')?;
            rest = &rest[at + 1..];
            let Some(after) = rest.strip_prefix(name) else { continue };
            if !after.starts_with(|c: char| c == '>' || c == '/' || c.is_whitespace()) {
                continue;
            }
            let end = after.find('>')?;
            let (attrs, self_closing) = match after[..end].strip_suffix('/') {
                Some(attrs) => (attrs, true),
                None => (&after[..end], false),
            };
            rest = &after[end + 1..];
            if self_closing {
                return Some(Element { attrs, inner: "" });
            }
            let close = format!("</{name}>");
            let inner_end = rest.find(&close).unwrap_or(rest.len());
            let inner = &rest[..inner_end];
            rest = &rest[(inner_end + close.len()).min(rest.len())..];
            return Some(Element { attrs, inner });
        }
    })
}

/// The value of attribute `name` in a start tag's `attrs`, decoded.
fn attr(attrs: &str, name: &str) -> Option<String> {
    let mut rest = attrs;
    loop {
        let at = rest.find(name)?;
        let before_ok = rest[..at].ends_with(char::is_whitespace) || at == 0;
        rest = &rest[at + name.len()..];
        let Some(value) = rest.trim_start().strip_prefix('=') else { continue };
        let value = value.trim_start();
        let Some(quote) = value.chars().next().filter(|q| *q == '\'' || *q == '"') else {
            continue;
        };
        let value = &value[1..];
        let end = value.find(quote)?;
        if before_ok {
            return Some(decode(&value[..end]));
        }
        rest = &value[end..];
    }
}

/// The texts of the elements that hold no other, in order (a `UserData` block has a shape of
/// its provider's own).
fn leaves(xml: &str) -> Vec<String> {
    xml.split('<')
        .filter_map(|part| {
            let (tag, text) = part.split_once('>')?;
            let opening = !tag.starts_with('/') && !tag.ends_with('/') && !tag.starts_with('?');
            let text = text.trim();
            (opening && !text.is_empty()).then(|| decode(text))
        })
        .collect()
}

/// XML's five named entities and character references; anything else stays as written.
fn decode(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let entity = rest.find(';').filter(|&end| end <= 10).map(|end| (&rest[1..end], end));
        let decoded = entity.and_then(|(name, end)| {
            let c = match name {
                "lt" => '<',
                "gt" => '>',
                "amp" => '&',
                "quot" => '"',
                "apos" => '\'',
                _ => {
                    let code = match name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                        None => name.strip_prefix('#')?.parse().ok()?,
                    };
                    char::from_u32(code)?
                }
            };
            Some((c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    macro_rules! fixture {
        ($name:literal) => {
            parse(include_str!(concat!("../../testdata/eventlog/", $name))).unwrap()
        };
    }

    const NOW: &str = "2025-11-12T12:00:00Z";

    #[test]
    fn service_control_manager_entries() {
        let r = fixture!("scm-7031.xml");
        assert_eq!(
            (r.provider.as_str(), r.event_id, r.level, r.record_id, r.channel.as_str()),
            ("Service Control Manager", Some(7031), Some(2), 48213, "System")
        );
        assert_eq!(r.time, "2025-11-12T11:58:03.4518842Z");
        assert_eq!(r.data[0], "Print Spooler");
        assert_eq!(r.data.len(), 6, "Binary is not a data string");
        let message = "The Print Spooler service terminated unexpectedly.  It has done this 1 \
                       time(s).  The following corrective action will be taken in 60000 \
                       milliseconds: Restart the service.\r\n";
        let n = notice(&r, Some(message), NOW).unwrap();
        assert_eq!((n.kind, n.level, n.code), (NoticeKind::Log, NoticeLevel::Error, Some(7031)));
        assert_eq!(n.source, "System/Service Control Manager");
        assert_eq!(n.ts, "2025-11-12T11:58:03.4518842Z");
        assert!(n.message.ends_with("Restart the service."), "{:?}", n.message);

        let r = fixture!("scm-7034.xml");
        assert_eq!(r.data, ["Contoso Backup & Sync", "3"]);
        let n = notice(&r, None, NOW).unwrap();
        assert_eq!(n.message, "Contoso Backup & Sync; 3", "the data stand in for the message");
    }

    #[test]
    fn classic_and_manifest_providers() {
        let r = fixture!("disk-7.xml");
        assert_eq!((r.provider.as_str(), r.event_id), ("disk", Some(7)));
        assert_eq!(r.data, [r"\Device\Harddisk1\DR1"]);
        let r = fixture!("application-error-1000.xml");
        assert_eq!(
            (r.channel.as_str(), r.event_id, r.record_id),
            ("Application", Some(1000), 19233)
        );
        assert_eq!(r.data.len(), 15);
        assert_eq!(r.data[10], r"C:\Program Files\Contoso\report-gen.exe");
        let n = notice(&r, Some(""), NOW).unwrap();
        assert_eq!(n.source, "Application/Application Error");
        assert!(n.message.starts_with("report-gen.exe; 2.4.1.0; "), "{}", n.message);
    }

    #[test]
    fn levels_and_pretty_printed_xml() {
        let r = fixture!("kernel-power-41.xml");
        assert_eq!((r.level, r.event_id, r.record_id), (Some(1), Some(41), 47512));
        assert_eq!(r.provider, "Microsoft-Windows-Kernel-Power");
        assert_eq!(r.time, "2025-11-12T06:12:44.1094512Z");
        assert_eq!(notice(&r, None, NOW).unwrap().level, NoticeLevel::Error, "critical");
        let r = fixture!("time-service-36.xml");
        assert_eq!(notice(&r, None, NOW).unwrap().level, NoticeLevel::Warning);
        let info = EventRecord { level: Some(4), ..r.clone() };
        assert_eq!(notice(&info, None, NOW), None);
        let r = fixture!("eventlog-1101-userdata.xml");
        assert_eq!((r.channel.as_str(), r.data.as_slice()), ("Security", &["2".to_owned()][..]));
    }

    #[test]
    fn odd_entries_still_make_valid_notices() {
        assert_eq!(parse("<Event><System><Level>2</Level></System></Event>"), None);
        let xml = "<Event><System><Provider Name=\"x\u{7}y\"/><Level>3</Level>\
                   <TimeCreated SystemTime='yesterday'/><EventRecordID>9</EventRecordID>\
                   </System><EventData><Data/><Data>a &lt;b&gt; &#x41;&#66; &bogus; &</Data>\
                   </EventData></Event>";
        let r = parse(xml).unwrap();
        assert_eq!(r.data, ["", "a <b> AB &bogus; &"]);
        let n = notice(&r, Some("line\r\none\u{1b}[0m\ttab"), NOW).unwrap();
        assert_eq!((n.ts.as_str(), n.source.as_str()), (NOW, "x y"));
        assert_eq!(n.message, "line\none[0m\ttab");
        let long = "m".repeat(5000);
        assert_eq!(notice(&r, Some(&long), NOW).unwrap().message.len(), Limits::MAX_MESSAGE_CHARS);
        assert_eq!(attr(" xName='no' Name='yes'", "Name").as_deref(), Some("yes"));
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_panics(xml in ".{0,400}") {
            if let Some(r) = parse(&xml) {
                let _ = notice(&r, None, NOW);
            }
        }

        #[test]
        fn arbitrary_input_around_real_tags_never_panics(
            a in ".{0,40}", b in ".{0,40}", c in ".{0,40}",
        ) {
            let xml = format!(
                "<System>{a}<Provider Name='{b}/><EventRecordID>{c}</EventRecordID><Level>{a}\
                 </System><EventData><Data Name=\"{b}\">{c}&#x{a};</Data><Data{b}"
            );
            if let Some(r) = parse(&xml) {
                let _ = notice(&r, Some(&c), NOW);
            }
        }
    }
}
