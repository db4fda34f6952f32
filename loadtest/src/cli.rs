//! Flags, and the checks that turn them into a [`Plan`] the run can trust.

use crate::schedule::{Burst, Schedule};
use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;

/// Open-loop load test of `POST /api/ingest`: signed batches at a rate held by the clock.
#[derive(Debug, Clone, Parser)]
#[command(name = "loadtest", version)]
pub struct Cli {
    /// Signed ingest requests per second, held by the clock whatever the backend answers.
    #[arg(long, default_value_t = 150.0, value_parser = positive_f64)]
    pub rate: f64,
    /// Backend base URL.
    #[arg(long, env = "API_URL", default_value = "http://localhost:8000")]
    pub url: String,
    /// API token (the first of a comma-separated list).
    #[arg(long, env = "API_TOKEN", default_value = "token", hide_env_values = true)]
    pub token: String,
    /// HMAC secret (the first of a comma-separated list).
    #[arg(long, env = "HMAC_SECRET", default_value = "hmac-secret", hide_env_values = true)]
    pub secret: String,
    /// Simulated hosts; requests go to them in turn.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub agents: u32,
    /// Process events per batch, beside the one metric reading.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=999))]
    pub procs: u32,
    /// Concurrent goose users [default: a quarter of the peak rate, at least 4].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=20_000))]
    pub users: Option<u32>,
    /// Extra requests per second for some seconds, as RATExSECONDS (2000x3).
    #[arg(long, value_name = "RATExSECONDS", value_parser = parse_burst)]
    pub burst: Option<(f64, f64)>,
    /// Seconds from one burst to the next; each burst ends a period.
    #[arg(long, value_name = "SECONDS", requires = "burst", value_parser = positive_f64)]
    pub every: Option<f64>,
    /// Fraction of requests that are hostile (replay, tampered body, stale timestamp, wrong token).
    #[arg(long, default_value_t = 0.0, value_parser = fraction)]
    pub attack: f64,
    /// Seconds to run; without it, until Ctrl+C.
    #[arg(long, value_name = "SECONDS", value_parser = positive_f64)]
    pub duration: Option<f64>,
    /// Seconds an answer may take before the request counts as an error.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0, value_parser = positive_f64)]
    pub timeout: f64,
    /// Write goose's report here; the extension picks the format (.html, .json, .md).
    #[arg(long, value_name = "FILE")]
    pub report_file: Option<PathBuf>,
    /// Print the summary as one JSON object on the last line.
    #[arg(long)]
    pub json: bool,
    /// Afterwards, check through the API that every acknowledged batch was stored exactly once.
    #[arg(long)]
    pub verify: bool,
}

/// Default burst period when `--burst` comes without `--every`.
const DEFAULT_EVERY_S: f64 = 10.0;
/// Default users per request per second: enough to keep the rate while answers take 250 ms.
const USERS_PER_RPS: f64 = 0.25;

/// What a run does, checked.
#[derive(Debug, Clone)]
pub struct Plan {
    pub(crate) base_url: String,
    pub(crate) token: String,
    pub(crate) secret: String,
    pub(crate) agents: u32,
    pub(crate) procs: u32,
    pub(crate) users: u32,
    pub(crate) schedule: Schedule,
    pub(crate) attack: f64,
    pub(crate) timeout: Duration,
    pub(crate) report_file: Option<PathBuf>,
    /// Print the summary as one JSON object on the last line, after the table.
    pub json: bool,
    pub(crate) verify: bool,
}

/// Flags that cannot make a run; the message names the flag and why.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PlanError(String);

fn positive_f64(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err("must be a number greater than 0".into()),
    }
}

fn fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err("must be a fraction from 0 to 1".into()),
    }
}

fn parse_burst(s: &str) -> Result<(f64, f64), String> {
    let (rate, secs) = s.split_once(['x', 'X']).ok_or("must look like 2000x3")?;
    let rate = positive_f64(rate).map_err(|e| format!("rate {e}"))?;
    let secs = positive_f64(secs).map_err(|e| format!("seconds {e}"))?;
    Ok((rate, secs))
}

fn first_of_list(value: &str) -> &str {
    value.split(',').map(str::trim).find(|v| !v.is_empty()).unwrap_or("")
}

impl Cli {
    /// Checks the flags against each other; the plan keeps the first token and secret of a list
    /// and, without `--users`, derives the user count from the peak rate.
    pub fn into_plan(self) -> Result<Plan, PlanError> {
        let base_url = self.url.trim_end_matches('/').to_owned();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(PlanError(format!(
                "--url must start with http:// or https://: {base_url}"
            )));
        }
        let token = first_of_list(&self.token).to_owned();
        let secret = first_of_list(&self.secret).to_owned();
        if token.is_empty() || secret.is_empty() {
            return Err(PlanError("--token and --secret must not be empty".into()));
        }
        let burst = match self.burst {
            Some((extra_rps, len_s)) => {
                let every_s = self.every.unwrap_or(DEFAULT_EVERY_S);
                if len_s >= every_s {
                    return Err(PlanError(format!(
                        "--burst lasts {len_s}s, which must be shorter than --every {every_s}s"
                    )));
                }
                Some(Burst { extra_rps, len_s, every_s })
            }
            None => None,
        };
        let schedule = Schedule::new(self.rate, burst, self.duration);
        let users = self.users.unwrap_or_else(|| {
            let wanted = (schedule.peak_rps() * USERS_PER_RPS).ceil();
            // The float is positive and clamped, so the conversion cannot truncate.
            wanted.clamp(4.0, 4096.0) as u32
        });
        Ok(Plan {
            base_url,
            token,
            secret,
            agents: self.agents,
            procs: self.procs,
            users,
            schedule,
            attack: self.attack,
            timeout: Duration::from_secs_f64(self.timeout),
            report_file: self.report_file,
            json: self.json,
            verify: self.verify,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(args: &[&str]) -> Result<Plan, String> {
        let cli = Cli::try_parse_from(std::iter::once("loadtest").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        cli.into_plan().map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_follow_the_seed() {
        let p = plan(&["--url", "http://127.0.0.1:1/", "--token", "t", "--secret", "s"]).unwrap();
        assert_eq!(p.base_url, "http://127.0.0.1:1");
        assert_eq!(p.schedule.peak_rps(), 150.0);
        assert_eq!((p.agents, p.procs, p.users), (50, 5, 38));
    }

    #[test]
    fn users_scale_with_the_burst_peak() {
        let p = plan(&["--rate", "100", "--burst", "2000x3", "--every", "10"]).unwrap();
        assert_eq!(p.users, 525);
    }

    #[test]
    fn rotation_lists_use_their_first_value() {
        let p = plan(&["--token", " new, old", "--secret", "a,b"]).unwrap();
        assert_eq!((p.token.as_str(), p.secret.as_str()), ("new", "a"));
    }

    #[test]
    fn bad_flags_are_refused_with_a_reason() {
        for (args, want) in [
            (&["--rate", "0"][..], "greater than 0"),
            (&["--rate", "fast"], "greater than 0"),
            (&["--attack", "1.5"], "fraction"),
            (&["--burst", "2000"], "2000x3"),
            (&["--burst", "2000x12", "--every", "10"], "shorter than --every"),
            (&["--every", "10"], "--burst"),
            (&["--url", "localhost:8000"], "http://"),
            (&["--agents", "0"], "agents"),
        ] {
            let err = plan(args).unwrap_err();
            assert!(err.contains(want), "{args:?}: {err}");
        }
    }
}
