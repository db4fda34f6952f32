//! Every scenario at CI size, with fixed seeds so a failure repeats; the same runs as
//! `cargo run -p sim -- --scenario <name> --agents <n> --seed <seed>`.

use sim::{Config, Scenario};
use std::time::Duration;

fn passes(scenario: Scenario, agents: usize, seed: u64) -> sim::Report {
    let config = Config { agents, seed, fleet_duration: Duration::from_secs(4), progress: false };
    let report = sim::run(scenario, &config).unwrap();
    assert!(
        report.passed(),
        "{}\n{report}\n{}\nrepeat: cargo run -p sim -- --scenario {} --agents {agents} --seed {seed} --duration 4",
        sim::Report::HEADER,
        report.failures.join("\n"),
        scenario.name(),
    );
    assert!(report.produced > 0 && report.delivered > 0, "{report}");
    report
}

#[test]
fn outage() {
    let report = passes(Scenario::Outage, 10, 11);
    assert!(report.retries >= 10, "the outage caused no retries: {report}");
}

#[test]
fn lost_acknowledgement() {
    let report = passes(Scenario::LostAck, 10, 12);
    assert!(report.duplicates > 0, "{report}");
}

#[test]
fn long_outage_past_the_queue_limit() {
    let report = passes(Scenario::QueueLimit, 50, 13);
    // Thirty simulated minutes in well under the wall-clock time they stand for.
    assert!(
        report.simulated >= Duration::from_secs(30 * 60)
            && report.elapsed < Duration::from_secs(60)
    );
    assert!(report.dropped > 0, "{report}");
}

#[test]
fn crash_and_corruption() {
    let report = passes(Scenario::Crash, 50, 14);
    assert!(report.corrupt > 0, "no file was damaged: {report}");
}

#[test]
fn refusal() {
    let report = passes(Scenario::Refusal, 10, 15);
    assert!(report.rejected > 0, "{report}");
}

#[test]
fn fleet_through_a_backend_restart() {
    passes(Scenario::Fleet, 40, 16);
}

#[test]
fn alerts_fire_once_per_sustained_spell_and_notify_once_through_an_outage() {
    let report = passes(Scenario::Alerts, 8, 17);
    assert!(report.retries > 0, "the receiver's outage caused no retries: {report}");
}
