//! Configuration: the seed's environment names first, flags for the non-secret ones.

use crate::storage::{Compaction, Cutoffs};
use clap::Parser;
pub use protocol::Secret;
use protocol::{DEV_API_TOKEN, DEV_HMAC_SECRET};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Several comma-separated values during a rotation; all are accepted.
#[derive(Debug, Clone)]
pub(crate) struct Credential {
    pub(crate) values: Vec<Secret>,
    /// True when the variable was unset and the seed's development value is in use.
    pub(crate) is_dev_default: bool,
}

impl Credential {
    fn parse(name: &str, value: Option<String>, dev_default: &str) -> Result<Self, SettingsError> {
        match value {
            Some(raw) => {
                let values: Vec<Secret> = raw
                    .split(',')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(Secret::new)
                    .collect();
                if values.is_empty() {
                    return Err(SettingsError::Invalid {
                        key: name.into(),
                        reason: "is set but empty; unset it for the development default".into(),
                    });
                }
                Ok(Self { values, is_dev_default: false })
            }
            None => Ok(Self { values: vec![Secret::new(dev_default)], is_dev_default: true }),
        }
    }
}

/// How long each kind of row is kept; `None` keeps it for ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Retention {
    /// Raw events and batch ids, from when they were received.
    pub(crate) raw: Option<Duration>,
    /// Each tier's buckets (per minute, per hour), from their start on the agent's clock.
    pub(crate) tiers: [Option<Duration>; 2],
    /// Raw batches older than this, from when they were received, are compacted (SQLite).
    pub(crate) compact_after: Option<Duration>,
}

impl Retention {
    /// What a retention pass at `now_ms` removes.
    pub(crate) fn cutoffs(self, now_ms: i64) -> Cutoffs {
        let before = |keep: Option<Duration>| {
            keep.map(|k| now_ms.saturating_sub(i64::try_from(k.as_millis()).unwrap_or(i64::MAX)))
        };
        let compact = before(self.compact_after).map(|before_ms| Compaction {
            before_ms,
            due_before_ms: before_ms.saturating_sub(now_ms - before_ms),
        });
        Cutoffs { raw: before(self.raw), tiers: self.tiers.map(before), compact }
    }
}

/// A number of days as a duration; 0 is none (kept for ever).
fn days(n: u64) -> Option<Duration> {
    (n > 0).then(|| Duration::from_secs(n.saturating_mul(86_400)))
}

/// Read from the environment only, never from flags.
const SECRET_VARIABLES: [&str; 5] =
    ["API_TOKEN", "HMAC_SECRET", "READ_TOKEN", "ADMIN_TOKEN", "DATABASE_URL"];

/// Comma-separated tokens; unset or empty is none.
fn optional_tokens(value: Option<String>) -> Vec<Secret> {
    value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(Secret::new)
        .collect()
}

/// Why the settings were refused; the message names the variable or flag at fault.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A value the backend does not accept.
    #[error("{key} {reason}")]
    Invalid {
        /// The environment variable, such as `WS_CLIENT_BUFFER`.
        key: String,
        /// What is wrong with its value, such as `must be at least 1`.
        reason: String,
    },
    /// A variable that clap cannot read as its flag's type.
    #[error(transparent)]
    Unreadable(#[from] clap::Error),
}

/// How log lines are written (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, coloured on a terminal.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Synchronous {
    /// Every acknowledged batch survives a power cut.
    Full,
    /// Survives a crash of the process, not of the machine; faster on slow disks.
    Normal,
}

/// Flags and environment variables that are not secrets (secrets come from the environment only,
/// so they never show in a process list or in `--help`).
#[derive(Debug, Parser)]
#[command(
    name = "backend",
    version,
    about = "Telemetry ingest API on SQLite or PostgreSQL with a live WebSocket feed"
)]
pub struct Args {
    /// Address to listen on; anything but loopback exposes the API to the network.
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port to listen on; 0 takes any free one.
    #[arg(long, env = "PORT", default_value_t = 8000)]
    pub port: u16,
    /// The built dashboard (the folder `dashboard/build-web.sh` makes); when set, it is served
    /// on `DASHBOARD_ADDR` beside the API, by the same routes and guards.
    #[arg(long, env = "DASHBOARD_DIST")]
    pub(crate) dashboard_dist: Option<PathBuf>,
    /// Where the dashboard is served when `DASHBOARD_DIST` is set.
    #[arg(long, env = "DASHBOARD_ADDR", default_value = "127.0.0.1:1337")]
    pub(crate) dashboard_addr: SocketAddr,
    /// SQLite database file; its folder is created on first start.
    #[arg(long, env = "DB_PATH", default_value = "data/telemetry.db")]
    pub(crate) db_path: PathBuf,
    /// Seconds a signed request's timestamp may differ from the server's clock.
    #[arg(long, env = "HMAC_DRIFT", default_value_t = 30)]
    pub(crate) hmac_drift: u64,
    /// Seconds a signature is remembered, so that a replay within them is refused.
    #[arg(long, env = "HMAC_REPLAY_TTL", default_value_t = 120)]
    pub(crate) hmac_replay_ttl: u64,
    /// Most signatures remembered at once; past that, ingest answers 429 until some expire.
    /// The default covers 66,000 requests/s at the default TTL, twice the highest rate
    /// measured; each costs 40-80 bytes, only while remembered.
    #[arg(long, env = "REPLAY_CACHE_MAX", default_value_t = 8_000_000)]
    pub(crate) replay_cache_max: usize,
    /// Largest request body in bytes; a larger one is refused with 413.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub(crate) max_body_bytes: usize,
    /// Days raw events are kept (every reading: `GET /api/events`, charts finer than a
    /// minute); 0 keeps them all. Longer charts read the tiers.
    #[arg(long, env = "RETENTION_DAYS", default_value_t = 7)]
    pub(crate) retention_days: u64,
    /// Days the per-minute sums of metrics and processes are kept; 0 keeps them all.
    #[arg(long, env = "RETENTION_1M_DAYS", default_value_t = 90)]
    pub(crate) retention_1m_days: u64,
    /// Days the per-hour sums are kept; 0 keeps them all.
    #[arg(long, env = "RETENTION_1H_DAYS", default_value_t = 730)]
    pub(crate) retention_1h_days: u64,
    /// Minutes after which raw batches are compacted (SQLite): an agent's batches, about this
    /// long of them at a time, in one compressed row, read back as they were; 0 keeps every
    /// batch a plain row, readable by the sqlite3 shell.
    #[arg(long, env = "COMPACT_AFTER_MINUTES", default_value_t = 60)]
    pub(crate) compact_after_minutes: u64,
    /// Comma-separated host names (besides localhost, 127.0.0.1 and [::1]) that requests may
    /// name in `Host` while reads are open or the development credentials are in use.
    #[arg(long, env = "ALLOWED_HOSTS", value_delimiter = ',')]
    pub(crate) allowed_hosts: Vec<String>,
    /// Seconds a dashboard login lasts.
    #[arg(long, env = "SESSION_TTL", default_value_t = 12 * 3600)]
    pub(crate) session_ttl: u64,
    /// Wrong credentials (at login, or sent with a read or a change) a client address may try
    /// in a minute; past that it is answered 429 until the minute is over.
    #[arg(long, env = "LOGIN_MAX_FAILURES", default_value_t = 10)]
    pub(crate) login_max_failures: u32,
    /// Comma-separated browser origins allowed to call the API, or `*`.
    #[arg(
        long,
        env = "CORS_ORIGINS",
        default_value = "http://localhost:1337,http://127.0.0.1:1337",
        value_delimiter = ','
    )]
    pub(crate) cors_origins: Vec<String>,
    /// Log lines as plain text or as JSON objects.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub(crate) log_format: LogFormat,
    /// How SQLite syncs a commit to disk.
    #[arg(long, env = "SQLITE_SYNCHRONOUS", value_enum, default_value = "full")]
    pub(crate) sqlite_synchronous: Synchronous,
    /// Batches a WebSocket client may fall behind before it is closed with code 1013.
    #[arg(long, env = "WS_CLIENT_BUFFER", default_value_t = 256)]
    pub(crate) ws_client_buffer: usize,
    /// Most WebSocket clients at once; past that an upgrade answers 429.
    #[arg(long, env = "WS_MAX_CLIENTS", default_value_t = 256)]
    pub(crate) ws_max_clients: usize,
    /// Largest WebSocket message (and frame) a client may send; clients send only pings.
    #[arg(long, env = "WS_MAX_MESSAGE_BYTES", default_value_t = 16 * 1024)]
    pub(crate) ws_max_message_bytes: usize,
    /// Seconds to receive a request's header, counted from the connection's start or the end
    /// of its previous response: also how long an idle keep-alive connection stays open.
    #[arg(long, env = "HEADER_TIMEOUT", default_value_t = 15)]
    pub(crate) header_timeout: u64,
    /// Seconds to receive a whole request body.
    #[arg(long, env = "BODY_TIMEOUT", default_value_t = 30)]
    pub(crate) body_timeout: u64,
    /// Most open HTTP connections; past that new ones wait to be accepted.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 1024)]
    pub(crate) max_connections: usize,
    /// Most open connections from one client address; past that its new ones get 429. Behind
    /// a proxy every client shares the proxy's address: raise it there.
    #[arg(long, env = "MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 256)]
    pub(crate) max_connections_per_address: usize,
    /// Seconds a response (or a live feed) may wait for a client that reads nothing before its
    /// connection is closed.
    #[arg(long, env = "WRITE_TIMEOUT", default_value_t = 30)]
    pub(crate) write_timeout: u64,
    /// Seconds that requests in flight may take to finish once shutdown begins.
    #[arg(long, env = "SHUTDOWN_GRACE", default_value_t = 10)]
    pub(crate) shutdown_grace: u64,
    /// Seconds between alert rounds, each evaluating every rule on every agent; 0 turns
    /// evaluation off on this replica (it still sends notifications and pushes alerts live).
    #[arg(long, env = "ALERT_EVAL_SECONDS", default_value_t = 30)]
    pub(crate) alert_eval_seconds: u64,
    /// Longest wait in seconds between two attempts to deliver a notification (the waits
    /// double from 2 s up to this).
    #[arg(long, env = "ALERT_RETRY_MAX_SECONDS", default_value_t = 300)]
    pub(crate) alert_retry_max_seconds: u64,
    /// Hours a notification is retried before it is given up (logged as an ERROR).
    #[arg(long, env = "ALERT_GIVE_UP_HOURS", default_value_t = 24)]
    pub(crate) alert_give_up_hours: u64,
    /// Days resolved alerts and sent (or given up) notifications are kept; 0 keeps them all.
    #[arg(long, env = "ALERT_RETENTION_DAYS", default_value_t = 90)]
    pub(crate) alert_retention_days: u64,
    /// PEM file with the server's certificate, then any intermediates; with TLS_KEY the backend
    /// serves HTTPS. Read again when it changes.
    #[arg(long, env = "TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM file with the private key of TLS_CERT's first certificate.
    #[arg(long, env = "TLS_KEY")]
    pub(crate) tls_key: Option<PathBuf>,
    /// Ask the backend at HOST:PORT for /healthz (over TLS when TLS_CERT is set) and exit 0 if
    /// it answers (for container health checks, where no curl exists).
    #[arg(long)]
    pub healthcheck: bool,
}

/// The second door: the built dashboard with the whole API beside it, so the page talks to
/// its own origin through the same guards as every other client.
#[derive(Debug, Clone)]
pub(crate) struct Dashboard {
    pub(crate) addr: SocketAddr,
    /// A folder with `index.html`, checked at start-up.
    pub(crate) dist: PathBuf,
}

/// Everything the backend runs with, checked: [`Settings::from_args`] for the binary,
/// [`Settings::from_lookup`] for a backend run inside another program.
#[derive(Debug, Clone)]
pub struct Settings {
    pub(crate) addr: SocketAddr,
    /// The built dashboard and where to serve it, when it is served.
    pub(crate) dashboard: Option<Dashboard>,
    pub(crate) db_path: PathBuf,
    /// PostgreSQL instead of SQLite, for several replicas; it may hold a password.
    pub(crate) database_url: Option<Secret>,
    pub(crate) api_token: Credential,
    pub(crate) hmac_secret: Credential,
    /// Tokens that allow reads; none: reads are open on loopback and refused beyond it.
    pub(crate) read_token: Vec<Secret>,
    /// Tokens that allow clearing (and reads); none: only the development rules clear.
    pub(crate) admin_token: Vec<Secret>,
    pub(crate) allowed_hosts: Vec<String>,
    pub(crate) session_ttl: Duration,
    pub(crate) login_max_failures: u32,
    pub(crate) hmac_drift: Duration,
    pub(crate) replay_ttl: Duration,
    pub(crate) replay_cache_max: usize,
    pub(crate) max_body_bytes: usize,
    pub(crate) retention: Retention,
    pub(crate) cors_origins: Vec<String>,
    /// Plain text or JSON lines (`LOG_FORMAT`), as [`crate::telemetry::init`] takes it.
    pub log_format: LogFormat,
    pub(crate) synchronous: Synchronous,
    /// Batches a WebSocket client may fall behind before it is closed with code 1013; at
    /// least 1, as [`crate::live::Hub::new`] takes it.
    pub ws_client_buffer: usize,
    pub(crate) ws_max_clients: usize,
    pub(crate) ws_max_message_bytes: usize,
    pub(crate) body_timeout: Duration,
    pub(crate) server: crate::serve::Limits,
    /// HTTPS with these files; none: plain HTTP.
    pub(crate) tls: Option<crate::tls::TlsFiles>,
    pub(crate) alerting: crate::alerts::EngineSettings,
}

impl Settings {
    /// Whether every address the backend listens on is loopback: only then may anything be
    /// open without a credential.
    pub(crate) fn loopback_only(&self) -> bool {
        self.addr.ip().is_loopback()
            && self.dashboard.as_ref().is_none_or(|d| d.addr.ip().is_loopback())
    }

    /// Flags and non-secret variables from `args`; secrets from the process environment.
    pub fn from_args(args: Args) -> Result<Self, SettingsError> {
        Self::resolve(args, |key| std::env::var(key).ok())
    }

    /// Every environment variable the backend reads: the flags' names, then the secrets.
    pub fn variables() -> Vec<String> {
        use clap::CommandFactory;
        let command = Args::command();
        let flags =
            command.get_arguments().filter_map(|a| a.get_env()?.to_str().map(str::to_owned));
        flags.chain(SECRET_VARIABLES.map(str::to_owned)).collect()
    }

    /// What the binary would take from an environment holding exactly the variables that `env`
    /// knows, and no flags: nothing comes from this process's own environment, so tests, benches
    /// and the simulator that run the backend in their process configure it by the seed's names.
    pub fn from_lookup(env: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        use clap::{CommandFactory, FromArgMatches};
        let mut argv = vec!["backend".to_owned()];
        let command = Args::command().mut_args(|arg| {
            let value = arg.get_env().and_then(|key| key.to_str()).and_then(&env);
            if let (Some(value), Some(long)) = (value, arg.get_long()) {
                argv.push(format!("--{long}={value}"));
            }
            arg.env(None)
        });
        let args = Args::from_arg_matches(&command.try_get_matches_from(argv)?)?;
        Self::resolve(args, env)
    }

    /// Like [`Settings::from_args`], with secrets looked up by `env` (tests pass a map).
    pub(crate) fn resolve(
        args: Args,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SettingsError> {
        let invalid = |key: &str, reason: &str| SettingsError::Invalid {
            key: key.into(),
            reason: reason.into(),
        };
        if args.ws_client_buffer == 0 {
            return Err(invalid("WS_CLIENT_BUFFER", "must be at least 1"));
        }
        if args.max_body_bytes < 1024 {
            return Err(invalid("MAX_BODY_BYTES", "must be at least 1024"));
        }
        if args.replay_cache_max == 0 {
            return Err(invalid("REPLAY_CACHE_MAX", "must be at least 1"));
        }
        // A signature forgotten while its timestamp is still accepted could be replayed.
        if args.hmac_replay_ttl < args.hmac_drift.saturating_mul(2) {
            return Err(SettingsError::Invalid {
                key: "HMAC_REPLAY_TTL".into(),
                reason: format!(
                    "is {}, shorter than twice HMAC_DRIFT ({}): a request could be replayed once \
                     its signature is forgotten; set HMAC_REPLAY_TTL to at least {} or lower \
                     HMAC_DRIFT",
                    args.hmac_replay_ttl,
                    args.hmac_drift,
                    args.hmac_drift.saturating_mul(2)
                ),
            });
        }
        for (key, value) in [
            ("WS_MAX_CLIENTS", args.ws_max_clients as u64),
            ("WS_MAX_MESSAGE_BYTES", args.ws_max_message_bytes as u64),
            ("HEADER_TIMEOUT", args.header_timeout),
            ("BODY_TIMEOUT", args.body_timeout),
            ("MAX_CONNECTIONS", args.max_connections as u64),
            ("MAX_CONNECTIONS_PER_ADDRESS", args.max_connections_per_address as u64),
            ("WRITE_TIMEOUT", args.write_timeout),
            ("LOGIN_MAX_FAILURES", u64::from(args.login_max_failures)),
            ("SESSION_TTL", args.session_ttl),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        let tls = match (args.tls_cert, args.tls_key) {
            (Some(cert), Some(key)) => Some(crate::tls::TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(invalid(
                    "TLS_KEY",
                    "is needed with TLS_CERT: the PEM file of the certificate's private key \
                     (or unset both to serve plain HTTP)",
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "TLS_CERT",
                    "is needed with TLS_KEY: the PEM file of the server's certificate \
                     (or unset both to serve plain HTTP)",
                ));
            }
        };
        let database_url = match env("DATABASE_URL").filter(|u| !u.is_empty()) {
            None => None,
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Some(Secret::new(url))
            }
            Some(_) => {
                return Err(invalid(
                    "DATABASE_URL",
                    "must be a postgres:// URL; unset it to store in SQLite at DB_PATH",
                ));
            }
        };
        Ok(Self {
            addr: SocketAddr::new(args.host, args.port),
            dashboard: args
                .dashboard_dist
                .filter(|d| !d.as_os_str().is_empty())
                .map(|dist| Dashboard { addr: args.dashboard_addr, dist }),
            db_path: args.db_path,
            database_url,
            api_token: Credential::parse("API_TOKEN", env("API_TOKEN"), DEV_API_TOKEN)?,
            hmac_secret: Credential::parse("HMAC_SECRET", env("HMAC_SECRET"), DEV_HMAC_SECRET)?,
            read_token: optional_tokens(env("READ_TOKEN")),
            admin_token: optional_tokens(env("ADMIN_TOKEN")),
            allowed_hosts: args
                .allowed_hosts
                .into_iter()
                .filter(|h| !h.trim().is_empty())
                .collect(),
            session_ttl: Duration::from_secs(args.session_ttl),
            login_max_failures: args.login_max_failures,
            hmac_drift: Duration::from_secs(args.hmac_drift),
            replay_ttl: Duration::from_secs(args.hmac_replay_ttl),
            replay_cache_max: args.replay_cache_max,
            max_body_bytes: args.max_body_bytes,
            retention: Retention {
                raw: days(args.retention_days),
                tiers: [days(args.retention_1m_days), days(args.retention_1h_days)],
                compact_after: (args.compact_after_minutes > 0)
                    .then(|| Duration::from_secs(args.compact_after_minutes.saturating_mul(60))),
            },
            cors_origins: args.cors_origins,
            log_format: args.log_format,
            synchronous: args.sqlite_synchronous,
            ws_client_buffer: args.ws_client_buffer,
            ws_max_clients: args.ws_max_clients,
            ws_max_message_bytes: args.ws_max_message_bytes,
            body_timeout: Duration::from_secs(args.body_timeout),
            server: crate::serve::Limits {
                header_timeout: Duration::from_secs(args.header_timeout),
                max_connections: args.max_connections,
                max_per_address: args.max_connections_per_address,
                write_timeout: Duration::from_secs(args.write_timeout),
                shutdown_grace: Duration::from_secs(args.shutdown_grace),
            },
            tls,
            alerting: crate::alerts::EngineSettings {
                every: (args.alert_eval_seconds > 0)
                    .then(|| Duration::from_secs(args.alert_eval_seconds)),
                retry_max: Duration::from_secs(args.alert_retry_max_seconds.max(1)),
                give_up: Duration::from_secs(args.alert_give_up_hours.saturating_mul(3600)),
                keep: days(args.alert_retention_days),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_is_a_postgres_url_and_empty_means_sqlite() {
        let with = |v: &'static str| {
            let args = Args::try_parse_from(["backend"]).unwrap();
            Settings::resolve(args, move |k| (k == "DATABASE_URL").then(|| v.to_owned()))
        };
        assert!(with("").unwrap().database_url.is_none());
        assert!(with("mysql://db/telemetry").is_err());
        let s = with("postgres://u:hunter2@db/telemetry").unwrap();
        assert!(s.database_url.is_some());
        assert!(!format!("{s:?}").contains("hunter2"), "the password never prints");
    }

    #[test]
    fn credentials_never_print() {
        let c = Credential { values: vec![Secret::new("hunter2")], is_dev_default: false };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn defaults_listen_on_loopback_only() {
        let args = Args::try_parse_from(["backend"]).unwrap();
        assert!(args.host.is_loopback());
        assert_eq!(args.port, 8000);
        assert_eq!(args.hmac_drift, 30);
        assert_eq!(args.hmac_replay_ttl, 120);
    }

    #[test]
    fn the_replay_guard_default_carries_twice_the_measured_peak() {
        const MEASURED_PEAK_PER_S: usize = 30_774;
        let args = Args::try_parse_from(["backend"]).unwrap();
        let ttl = usize::try_from(args.hmac_replay_ttl).unwrap();
        assert!(args.replay_cache_max >= 2 * MEASURED_PEAK_PER_S * ttl);
    }

    #[test]
    fn a_lookup_names_variables_as_the_binary_reads_them_and_nothing_else() {
        let s = Settings::from_lookup(|key| match key {
            "PORT" => Some("0".into()),
            "CORS_ORIGINS" => Some("http://a:1337,http://b:1337".into()),
            "API_TOKEN" => Some("fleet-token".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(s.addr.port(), 0);
        assert_eq!(s.cors_origins.len(), 2);
        assert!(!s.api_token.is_dev_default && s.hmac_secret.is_dev_default);
        let err = Settings::from_lookup(|key| (key == "PORT").then(|| "eighty".into()));
        assert!(err.unwrap_err().to_string().contains("--port"));
    }

    #[test]
    fn every_variable_is_in_the_readme_table() {
        let readme = include_str!("../../README.md");
        for name in Settings::variables() {
            assert!(readme.contains(&format!("| `{name}` |")), "{name} is not in the README table");
        }
    }

    #[test]
    fn tls_needs_both_files_or_neither() {
        let with = |vars: &'static [(&str, &str)]| {
            Settings::from_lookup(|key| {
                vars.iter().find(|(k, _)| *k == key).map(|(_, v)| (*v).to_owned())
            })
        };
        assert!(with(&[]).unwrap().tls.is_none());
        let both = with(&[("TLS_CERT", "c.pem"), ("TLS_KEY", "k.pem")]).unwrap().tls.unwrap();
        assert_eq!((both.cert.to_str(), both.key.to_str()), (Some("c.pem"), Some("k.pem")));
        for (vars, named) in
            [(&[("TLS_CERT", "c.pem")][..], "TLS_KEY"), (&[("TLS_KEY", "k.pem")][..], "TLS_CERT")]
        {
            let err = with(vars).unwrap_err().to_string();
            assert!(err.starts_with(named) && err.contains("unset both"), "{err}");
        }
    }

    #[test]
    fn a_replay_ttl_under_twice_the_drift_is_refused_and_says_what_to_set() {
        let with = |ttl: &'static str, drift: &'static str| {
            Settings::from_lookup(move |k| match k {
                "HMAC_REPLAY_TTL" => Some(ttl.into()),
                "HMAC_DRIFT" => Some(drift.into()),
                _ => None,
            })
        };
        let err = with("59", "30").unwrap_err().to_string();
        assert!(err.starts_with("HMAC_REPLAY_TTL is 59"), "{err}");
        assert!(err.contains("at least 60"), "{err}");
        assert!(with("60", "30").is_ok());
        assert!(with("7200", "3600").is_ok());
    }

    #[test]
    fn bad_numbers_name_their_key() {
        let args = Args::try_parse_from(["backend", "--ws-client-buffer", "0"]).unwrap();
        let err = Settings::from_args(args).unwrap_err().to_string();
        assert!(err.starts_with("WS_CLIENT_BUFFER"), "{err}");
    }
}
