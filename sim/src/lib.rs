//! The simulator: fake agents built from the `agent` library (real queue, real signer, real
//! sender, a numbered fake collector) driven through outages, lost answers, full queues, crashes,
//! refusals and a backend restart, each scenario checking "nothing lost, nothing duplicated,
//! bounded disk" from the receiving side.

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

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("{what}: {detail}")]
    Setup { what: &'static str, detail: String },
}

impl SimError {
    pub fn setup(what: &'static str, detail: impl std::fmt::Display) -> Self {
        Self::Setup { what, detail: detail.to_string() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Outage,
    LostAck,
    QueueLimit,
    Crash,
    Refusal,
    Fleet,
}

impl Scenario {
    pub const ALL: [Scenario; 6] = [
        Scenario::Outage,
        Scenario::LostAck,
        Scenario::QueueLimit,
        Scenario::Crash,
        Scenario::Refusal,
        Scenario::Fleet,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Outage => "outage",
            Scenario::LostAck => "lost-ack",
            Scenario::QueueLimit => "queue-limit",
            Scenario::Crash => "crash",
            Scenario::Refusal => "refusal",
            Scenario::Fleet => "fleet",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// The size of a run; every other figure of a scenario derives from these.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub agents: usize,
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
