//! Configuration: built-in defaults, then an optional TOML file, then the environment (the
//! seed's names), which wins. A bad value is reported with its key.

use crate::data_dir::{default_data_dir, exe_dir};
use crate::logfile::LogLimits;
use crate::queue::Limits;
use crate::tls::Trust;
use crate::watch::ServiceChoice;
use protocol::Secret;
use protocol::validate::is_printable_id;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A configuration the agent cannot start with; the message begins with the key or names the file.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A value of the wrong form or out of its range, from the environment or the file.
    #[error("{key} {reason}")]
    Invalid {
        /// The key as the environment spells it, e.g. `INTERVAL_SECONDS`, also for a value from
        /// the file.
        key: &'static str,
        /// What the value must be, and what it was.
        reason: String,
    },
    /// The config file could not be read, or is not valid TOML with known keys.
    #[error("cannot read the config file {path}: {reason}")]
    File {
        /// The file given with `--config`.
        path: PathBuf,
        /// The I/O or TOML error.
        reason: String,
    },
}

/// The config file: the same keys as the environment, in lower case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    api_url: Option<String>,
    api_token: Option<String>,
    hmac_secret: Option<String>,
    agent_id: Option<String>,
    interval_seconds: Option<u64>,
    queue_path: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    log_max_mb: Option<u64>,
    log_files: Option<usize>,
    top_processes: Option<usize>,
    queue_max_mb: Option<u64>,
    set_aside_max_mb: Option<u64>,
    request_timeout_seconds: Option<u64>,
    services: Option<String>,
    event_logs: Option<String>,
    event_sources: Option<String>,
    event_log_max: Option<usize>,
    watch_seconds: Option<u64>,
    ca_cert: Option<PathBuf>,
}

impl FileConfig {
    pub(crate) fn load(path: &Path) -> Result<Self, SettingsError> {
        let file_err = |reason: String| SettingsError::File { path: path.to_owned(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?;
        toml::from_str(&text).map_err(|e| file_err(e.message().to_owned()))
    }
}

/// The agent's configuration, checked (README.md lists each key with its default).
#[derive(Debug, Clone)]
pub struct Settings {
    pub(crate) api_url: String,
    pub(crate) api_token: Secret,
    pub(crate) hmac_secret: Secret,
    pub(crate) agent_id: String,
    pub(crate) interval: Duration,
    pub(crate) queue_path: PathBuf,
    /// Where an earlier version kept the queue by default, when that is elsewhere now and
    /// `QUEUE_PATH` does not name one (see [`crate::data_dir::adopt_old_queue`]).
    pub(crate) old_queue_path: Option<PathBuf>,
    /// The folder of the queue (by default) and of the service's log.
    pub data_dir: PathBuf,
    /// Bounds of the service's log files.
    pub log_limits: LogLimits,
    pub(crate) top_processes: usize,
    pub(crate) queue_limits: Limits,
    pub(crate) request_timeout: Duration,
    /// `SERVICES`.
    pub(crate) services: ServiceChoice,
    /// `EVENT_LOGS`: the Event Log channels read on Windows; none reads none.
    pub(crate) event_logs: Vec<String>,
    /// `EVENT_SOURCES`: the providers whose entries are sent; empty sends every one.
    pub(crate) event_sources: Vec<String>,
    /// `EVENT_LOG_MAX`: entries taken from one channel per check.
    pub(crate) event_log_max: usize,
    /// `WATCH_SECONDS`: from one check of the services and logs to the next.
    pub(crate) watch_interval: Duration,
    /// `CA_CERT`: the certificates trusted besides the public roots, read and checked here so
    /// that a bad file stops the start like any bad value.
    pub(crate) trust: Trust,
}

fn number<T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy>(
    key: &'static str,
    env: Option<String>,
    file: Option<T>,
    default: T,
    range: (T, T),
) -> Result<T, SettingsError> {
    let value = match env {
        Some(raw) => raw.trim().parse().map_err(|_| SettingsError::Invalid {
            key,
            reason: format!("must be a whole number from {} to {} (got {raw:?})", range.0, range.1),
        })?,
        None => file.unwrap_or(default),
    };
    if value < range.0 || value > range.1 {
        return Err(SettingsError::Invalid {
            key,
            reason: format!("must be from {} to {} (got {value})", range.0, range.1),
        });
    }
    Ok(value)
}

/// A comma-separated list of names, each 1-256 printable characters once trimmed (an empty
/// list is one without names); `none`, in any letter case, is `None`.
fn names(
    key: &'static str,
    env: Option<String>,
    file: Option<String>,
    default: &str,
) -> Result<Option<Vec<String>>, SettingsError> {
    let raw = env.or(file).unwrap_or_else(|| default.to_owned());
    if raw.trim().eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let names: Vec<String> =
        raw.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned).collect();
    match names.iter().find(|n| !is_printable_id(n, protocol::Limits::MAX_SOURCE_CHARS)) {
        Some(bad) => Err(SettingsError::Invalid {
            key,
            reason: format!(
                "must be `none` or comma-separated names of 1-256 printable characters (got {bad:?})"
            ),
        }),
        None => Ok(Some(names)),
    }
}

/// The host name, lower-case, as the default agent id.
fn host_name() -> String {
    sysinfo::System::host_name().unwrap_or_else(|_| "unknown-host".into()).to_lowercase()
}

impl Settings {
    /// `env` looks a variable up (the process environment in production, a map in tests).
    pub fn resolve(
        file: FileConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SettingsError> {
        let text = |key: &str, file: Option<String>, default: &str| {
            env(key).or(file).unwrap_or_else(|| default.to_owned())
        };
        let api_url = text("API_URL", file.api_url, "http://localhost:8000");
        if !(api_url.starts_with("http://") || api_url.starts_with("https://"))
            || reqwest::Url::parse(&api_url).is_err()
        {
            return Err(SettingsError::Invalid {
                key: "API_URL",
                reason: format!("must be an http:// or https:// URL (got {api_url:?})"),
            });
        }
        let agent_id = env("AGENT_ID").or(file.agent_id).unwrap_or_else(host_name);
        if !is_printable_id(&agent_id, protocol::Limits::MAX_AGENT_ID_CHARS) {
            return Err(SettingsError::Invalid {
                key: "AGENT_ID",
                reason: format!("must be 1-128 printable characters (got {agent_id:?})"),
            });
        }
        let interval = number(
            "INTERVAL_SECONDS",
            env("INTERVAL_SECONDS"),
            file.interval_seconds,
            5,
            (1, 3600),
        )?;
        let timeout = number(
            "REQUEST_TIMEOUT_SECONDS",
            env("REQUEST_TIMEOUT_SECONDS"),
            file.request_timeout_seconds,
            10,
            (1, 300),
        )?;
        let max_mb =
            number("QUEUE_MAX_MB", env("QUEUE_MAX_MB"), file.queue_max_mb, 100, (1, 1_000_000))?;
        // A tenth of the queue's default: room for thousands of refused batches with their
        // reasons, and for one refused as too large for the backend (1 MiB by default).
        let set_aside_mb = number(
            "SET_ASIDE_MAX_MB",
            env("SET_ASIDE_MAX_MB"),
            file.set_aside_max_mb,
            10,
            (1, 1_000_000),
        )?;
        let log_max_mb = number("LOG_MAX_MB", env("LOG_MAX_MB"), file.log_max_mb, 10, (1, 1024))?;
        let log_files = number("LOG_FILES", env("LOG_FILES"), file.log_files, 5, (1, 100))?;
        // A service and a console run share the default queue: the service has no other
        // environment to learn a path from.
        let exe_dir = exe_dir();
        let data_dir = env("DATA_DIR")
            .map(PathBuf::from)
            .or(file.data_dir)
            .unwrap_or_else(|| default_data_dir(cfg!(windows), &env, exe_dir.clone()));
        let queue_path = env("QUEUE_PATH").map(PathBuf::from).or(file.queue_path);
        // Unset or empty: every service that starts with the machine.
        let services = match names("SERVICES", env("SERVICES"), file.services, "")? {
            None => ServiceChoice::Off,
            Some(names) if names.is_empty() => ServiceChoice::Automatic,
            Some(names) => ServiceChoice::Named(names),
        };
        let event_logs =
            names("EVENT_LOGS", env("EVENT_LOGS"), file.event_logs, "System,Application")?
                .unwrap_or_default();
        let event_sources = names("EVENT_SOURCES", env("EVENT_SOURCES"), file.event_sources, "")?
            .ok_or(SettingsError::Invalid {
            key: "EVENT_SOURCES",
            reason: "leave it empty for every source (EVENT_LOGS=none reads no log)".into(),
        })?;
        // The backend takes 200 notices a batch; a few channels at the most stay below it.
        let event_log_max =
            number("EVENT_LOG_MAX", env("EVENT_LOG_MAX"), file.event_log_max, 20, (1, 100))?;
        // Each check runs a subprocess or enumerates every service: every 5 s tick would cost
        // more than the rest of the agent.
        let watch_seconds =
            number("WATCH_SECONDS", env("WATCH_SECONDS"), file.watch_seconds, 30, (5, 3600))?;
        let ca_cert = env("CA_CERT").filter(|v| !v.is_empty()).map(PathBuf::from);
        let trust = match ca_cert.or(file.ca_cert) {
            Some(path) => Trust::load(&path)
                .map_err(|e| SettingsError::Invalid { key: "CA_CERT", reason: e.to_string() })?,
            None => Trust::default(),
        };
        let old_queue_path = match &queue_path {
            None => exe_dir.map(|d| d.join("queue")).filter(|old| *old != data_dir.join("queue")),
            Some(_) => None,
        };
        Ok(Self {
            queue_path: queue_path.unwrap_or_else(|| data_dir.join("queue")),
            old_queue_path,
            data_dir,
            log_limits: LogLimits { max_bytes: log_max_mb << 20, files: log_files },
            api_url,
            api_token: Secret::new(text("API_TOKEN", file.api_token, protocol::DEV_API_TOKEN)),
            hmac_secret: Secret::new(text(
                "HMAC_SECRET",
                file.hmac_secret,
                protocol::DEV_HMAC_SECRET,
            )),
            agent_id,
            interval: Duration::from_secs(interval),
            top_processes: number(
                "TOP_PROCESSES",
                env("TOP_PROCESSES"),
                file.top_processes,
                5,
                (0, 100),
            )?,
            queue_limits: Limits { queued: max_mb << 20, set_aside: set_aside_mb << 20 },
            request_timeout: Duration::from_secs(timeout),
            services,
            event_logs,
            event_sources,
            event_log_max,
            watch_interval: Duration::from_secs(watch_seconds),
            trust,
        })
    }

    /// From the process environment and the values an installer left for the machine (which
    /// count as environment, see [`crate::machine_config`]), over the TOML file `config` when
    /// one is given.
    pub fn from_process_env(config: Option<&Path>) -> Result<Self, SettingsError> {
        let file = config.map(FileConfig::load).transpose()?.unwrap_or_default();
        let machine = crate::machine_config::machine_settings();
        Self::resolve(file, |key| std::env::var(key).ok().or_else(|| machine.get(key).cloned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(vars: &[(&str, &str)], file: FileConfig) -> Result<Settings, SettingsError> {
        let map: HashMap<String, String> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::resolve(file, |k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_the_seeds() {
        let s = with(&[], FileConfig::default()).unwrap();
        assert_eq!(s.api_url, "http://localhost:8000");
        assert_eq!(s.api_token.expose(), protocol::DEV_API_TOKEN);
        assert_eq!(s.interval, Duration::from_secs(5));
        assert_eq!(s.top_processes, 5);
        assert_eq!(s.queue_limits, Limits { queued: 100 << 20, set_aside: 10 << 20 });
        assert_eq!(s.agent_id, s.agent_id.to_lowercase());
        assert!(s.queue_path.ends_with("queue"));
        assert_eq!(s.log_limits, LogLimits { max_bytes: 10 << 20, files: 5 });
        assert_eq!(s.services, ServiceChoice::Automatic);
        assert_eq!(s.event_logs, ["System", "Application"]);
        assert_eq!((s.event_log_max, s.watch_interval), (20, Duration::from_secs(30)));
        if !cfg!(windows) {
            assert_eq!(s.old_queue_path, None, "the queue stays beside the executable");
        }
    }

    #[test]
    fn the_queue_follows_data_dir_unless_named_and_the_old_one_is_known() {
        let s = with(&[("DATA_DIR", "/var/lib/agent")], FileConfig::default()).unwrap();
        assert_eq!(s.queue_path, Path::new("/var/lib/agent").join("queue"));
        assert_eq!(s.old_queue_path, Some(exe_dir().unwrap().join("queue")));
        let named = [("DATA_DIR", "/var/lib/agent"), ("QUEUE_PATH", "/q")];
        let s = with(&named, FileConfig::default()).unwrap();
        assert_eq!((s.queue_path.as_path(), s.old_queue_path), (Path::new("/q"), None));
        let file = FileConfig { log_max_mb: Some(2), log_files: Some(1), ..Default::default() };
        let s = with(&[], file).unwrap();
        assert_eq!(s.log_limits, LogLimits { max_bytes: 2 << 20, files: 1 });
    }

    #[test]
    fn the_environment_wins_over_the_file() {
        let file: FileConfig = toml::from_str(
            "interval_seconds = 10\nagent_id = \"from-file\"\ntop_processes = 3\nset_aside_max_mb = 2",
        )
        .unwrap();
        let s = with(&[("INTERVAL_SECONDS", "2")], file).unwrap();
        assert_eq!(
            (s.interval.as_secs(), s.agent_id.as_str(), s.top_processes),
            (2, "from-file", 3)
        );
        assert_eq!(s.queue_limits.set_aside, 2 << 20);
    }

    #[test]
    fn watched_services_and_logs_are_lists_that_none_switches_off() {
        let s = with(&[("SERVICES", " Spooler, nginx.service ,")], FileConfig::default()).unwrap();
        assert_eq!(
            s.services,
            ServiceChoice::Named(vec!["Spooler".into(), "nginx.service".into()])
        );
        let s = with(&[("SERVICES", "NONE"), ("EVENT_LOGS", "none")], FileConfig::default());
        let s = s.unwrap();
        assert_eq!((s.services, s.event_logs), (ServiceChoice::Off, vec![]));
        let file: FileConfig = toml::from_str(
            "services = \"sshd\"\nevent_logs = \"System\"\nevent_log_max = 5\nwatch_seconds = 60",
        )
        .unwrap();
        let s = with(&[("SERVICES", "")], file).unwrap();
        assert_eq!(s.services, ServiceChoice::Automatic, "the environment's empty list wins");
        assert_eq!(s.event_logs, ["System"]);
        assert!(s.event_sources.is_empty(), "every source by default");
        assert_eq!((s.event_log_max, s.watch_interval), (5, Duration::from_secs(60)));
        let named = [("EVENT_SOURCES", "Service Control Manager, MSSQLSERVER")];
        let named = with(&named, FileConfig::default()).unwrap().event_sources;
        assert_eq!(named, ["Service Control Manager", "MSSQLSERVER"]);
    }

    #[test]
    fn bad_values_name_their_key() {
        for (key, value) in [
            ("INTERVAL_SECONDS", "abc"),
            ("INTERVAL_SECONDS", "0"),
            ("TOP_PROCESSES", "-1"),
            ("QUEUE_MAX_MB", "0"),
            ("LOG_MAX_MB", "0"),
            ("LOG_FILES", "101"),
            ("SET_ASIDE_MAX_MB", "0"),
            ("API_URL", "localhost:8000"),
            ("AGENT_ID", " padded"),
            ("SERVICES", "a,b\u{7}"),
            ("EVENT_LOGS", "x".repeat(257).as_str()),
            ("EVENT_SOURCES", "none"),
            ("EVENT_LOG_MAX", "0"),
            ("EVENT_LOG_MAX", "101"),
            ("WATCH_SECONDS", "4"),
            ("CA_CERT", "/no/such/ca.pem"),
        ] {
            let err = with(&[(key, value)], FileConfig::default()).unwrap_err().to_string();
            assert!(err.starts_with(key), "{key}={value}: {err}");
        }
        assert!(toml::from_str::<FileConfig>("colour = 1").is_err());
    }

    #[test]
    fn secrets_do_not_print() {
        let s = with(&[("HMAC_SECRET", "very-secret")], FileConfig::default()).unwrap();
        assert!(!format!("{s:?}").contains("very-secret"));
    }
}
