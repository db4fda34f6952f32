//! The simulator: fake agents built from the `agent` library (real queue, real signer, real
//! sender, a numbered fake collector) driven through outages, lost answers, full queues, crashes,
//! refusals and a backend restart, each scenario checking "nothing lost, nothing duplicated,
//! bounded disk" from the receiving side.

#![warn(missing_docs)]

mod backend;
mod inbox;
mod ledger;
mod memfs;
mod numbered;
mod observed;
mod relay;
mod report;
mod scenarios;

pub use report::Report;
use std::time::Duration;

/// A scenario that could not be set up, so it tested nothing (a broken invariant is a
/// [`Report`] failure instead).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A runtime, folder, socket or client the scenario needs could not be made.
    #[error("{what}: {detail}")]
    Setup {
        /// What was being set up, e.g. `"binding the proxy"`.
        what: &'static str,
        /// The cause, as text.
        detail: String,
    },
}

impl SimError {
    pub(crate) fn setup(what: &'static str, detail: impl std::fmt::Display) -> Self {
        Self::Setup { what, detail: detail.to_string() }
    }
}

/// One scripted run of fake agents, with the invariants it checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// The server answers 503, then too late, then drops connections, then recovers.
    Outage,
    /// The real backend stores batches whose answers never reach the agent.
    LostAck,
    /// The backend is gone for 30 simulated minutes, past every queue's limit.
    QueueLimit,
    /// Agents are killed mid-write and queued files damaged between their lives.
    Crash,
    /// Some readings are refused for their content (422), some agents have a wrong token (401).
    Refusal,
    /// Many agents against the real backend, which is restarted in the middle.
    Fleet,
    /// An hour of load that crosses an alert rule's threshold, in fast time, with the
    /// notification receiver down for a quarter of it.
    Alerts,
}

impl Scenario {
    /// Every scenario, in the order `--scenario all` runs them.
    pub const ALL: [Scenario; 7] = [
        Scenario::Outage,
        Scenario::LostAck,
        Scenario::QueueLimit,
        Scenario::Crash,
        Scenario::Refusal,
        Scenario::Fleet,
        Scenario::Alerts,
    ];

    /// The name `--scenario` takes and the table prints, e.g. `lost-ack`.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Outage => "outage",
            Scenario::LostAck => "lost-ack",
            Scenario::QueueLimit => "queue-limit",
            Scenario::Crash => "crash",
            Scenario::Refusal => "refusal",
            Scenario::Fleet => "fleet",
            Scenario::Alerts => "alerts",
        }
    }

    /// The scenario of that [`name`](Self::name); `None` for an unknown one.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// The size of a run; every other figure of a scenario derives from these.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Fake agents per scenario.
    pub agents: usize,
    /// Seed of every random choice; the same seed repeats the run.
    pub seed: u64,
    /// How long the fleet scenario's agents produce (real time).
    pub fleet_duration: Duration,
    /// Print a progress line now and then (to stderr).
    pub progress: bool,
}

/// Runs one scenario on its own runtime: the paused clock for those that need no socket.
pub fn run(scenario: Scenario, config: &Config) -> Result<Report, SimError> {
    let started = std::time::Instant::now();
    let mut report = match scenario {
        Scenario::QueueLimit => paused()?.block_on(scenarios::queue_limit::run(config)),
        Scenario::Crash => paused()?.block_on(scenarios::crash::run(config)),
        Scenario::Outage => real()?.block_on(scenarios::outage::run(config))?,
        Scenario::LostAck => real()?.block_on(scenarios::lost_ack::run(config))?,
        Scenario::Refusal => real()?.block_on(scenarios::refusal::run(config))?,
        Scenario::Fleet => real()?.block_on(scenarios::fleet::run(config))?,
        Scenario::Alerts => real()?.block_on(scenarios::alerts::run(config))?,
    };
    report.scenario = scenario.name();
    report.agents = config.agents;
    report.seed = config.seed;
    report.elapsed = started.elapsed();
    Ok(report)
}

fn paused() -> Result<tokio::runtime::Runtime, SimError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .map_err(|e| SimError::setup("starting the paused runtime", e))
}

fn real() -> Result<tokio::runtime::Runtime, SimError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| SimError::setup("starting the runtime", e))
}
