//! Logging setup: human-readable lines by default, JSON lines with `LOG_FORMAT=json`.

use crate::settings::LogFormat;
use tracing_subscriber::EnvFilter;

/// Installs the process-wide log subscriber in `format`, filtered by `RUST_LOG` (default `info`,
/// `warn` for tower_http). Panics if one is installed already.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn"));
    // Colour codes only on a terminal: log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// The error and every cause below it, for a log line: an error's own text leaves its causes
/// to `source()`, so `%e` alone would drop them.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
