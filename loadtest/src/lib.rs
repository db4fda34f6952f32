//! Load tester for `POST /api/ingest`, on goose: signed batches from simulated hosts at a rate
//! held by the clock, optional bursts and hostile traffic, an honest summary and `--verify`.

#![warn(missing_docs)]

pub mod cli;
mod payload;
mod report;
mod scenario;
mod schedule;
mod tally;
mod verify;

use cli::Plan;
use goose::GooseAttack;
use goose::client::GooseClientBuilder;
use goose::config::GooseConfiguration;
use payload::{Fleet, Signer};
use report::{Latency, Summary};
use scenario::Shared;
use std::sync::Arc;
use std::time::Duration;

/// Why a run could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// goose refused the configuration or the client, or the attack failed.
    #[error("goose: {0}")]
    Goose(#[from] goose::GooseError),
    /// The HTTP client of the `--verify` read-back could not be built.
    #[error("building the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// How long a read-back request of `--verify` may take.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(60);

fn goose_configuration(plan: &Plan) -> GooseConfiguration {
    let mut config = GooseConfiguration::default();
    config.host = Some(plan.base_url.clone());
    config.users = Some(plan.users as usize);
    // Every user is up within a second, before the first request is due.
    config.increase_rate = Some(plan.users.to_string());
    // Metrics must cover every request, from the first one.
    config.no_reset_metrics = true;
    // Our summary replaces goose's console tables; its report goes to --report-file.
    config.no_print_metrics = true;
    // Idle users loop once the schedule is done; those loops are not transactions to report.
    config.no_transaction_metrics = true;
    config.no_scenario_metrics = true;
    // No control port (the WebSocket one is off by default): several runs may share a machine.
    config.no_telnet = true;
    config.report_file =
        plan.report_file.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    config
}

/// Runs the whole test; the caller decides what the summary means for the exit code.
pub async fn run(plan: Plan) -> Result<Summary, RunError> {
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let fleet = Fleet::new(run_id, plan.agents, plan.procs);
    let shared = Arc::new(Shared::new(
        fleet,
        Signer::new(&plan.token, &plan.secret),
        plan.schedule,
        plan.attack,
    ));
    tracing::info!(
        url = %plan.base_url,
        peak_rps = plan.schedule.peak_rps(),
        users = plan.users,
        agents = plan.agents,
        "load test starting"
    );
    // One shared client: one connection pool for all users instead of one per user.
    let client = GooseClientBuilder::new().without_cookies().timeout(plan.timeout);
    let attack = GooseAttack::initialize_with_config(goose_configuration(&plan))?
        .set_client_builder_without_cookies(client)?
        .register_scenario(scenario::scenario(shared.clone()));
    // goose's future is some 20 KB: boxed, so that it does not sit on the caller's stack.
    let metrics = Box::pin(attack.execute()).await?;
    let counts = shared.tally.snapshot();
    let mut summary = Summary::new(
        &plan.schedule,
        shared.start(),
        &counts,
        Latency::of_ingest(&metrics),
        plan.users,
    );
    if plan.verify {
        let http = reqwest::Client::builder().timeout(VERIFY_TIMEOUT).build()?;
        // A backend that cannot be read back fails the run, but keeps the summary.
        match verify::read_back(&http, &plan.base_url, &shared.fleet).await {
            Ok(stored) => {
                summary.verify = Some(verify::compare(&stored, &counts.slots, plan.procs))
            }
            Err(e) => summary.verify_error = Some(e.to_string()),
        }
    }
    Ok(summary)
}
