//! `sim`: runs the scenarios and prints one table row per scenario; exits 1 when an invariant
//! failed, with the command that repeats the run.

use anyhow::Context;
use clap::Parser;
use sim::{Config, Report, Scenario};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(version, about = "Fake agents through outages, crashes and the real backend")]
struct Args {
    /// outage, lost-ack, queue-limit, crash, refusal, fleet, or all
    #[arg(long, default_value = "all")]
    scenario: String,
    /// Fake agents per scenario
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=5000))]
    agents: u32,
    /// Seed for every random choice; a random one when not given (printed either way)
    #[arg(long)]
    seed: Option<u64>,
    /// Seconds the fleet scenario's agents produce
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(2..=3600))]
    duration: u64,
    /// No progress lines
    #[arg(long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let scenarios = if args.scenario == "all" {
        Scenario::ALL.to_vec()
    } else if let Some(one) = Scenario::parse(&args.scenario) {
        vec![one]
    } else {
        let names: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
        eprintln!("sim: unknown scenario {:?}; one of {}, or all", args.scenario, names.join(", "));
        return ExitCode::from(2);
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "off".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let seed = args.seed.unwrap_or_else(|| fastrand::u64(..));
    let config = Config {
        agents: args.agents as usize,
        seed,
        fleet_duration: Duration::from_secs(args.duration),
        progress: !args.quiet,
    };
    match run_all(&scenarios, &config, &args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("sim: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_all(scenarios: &[Scenario], config: &Config, args: &Args) -> anyhow::Result<bool> {
    println!("seed {}", config.seed);
    let mut reports: Vec<Report> = Vec::new();
    for &scenario in scenarios {
        let report = sim::run(scenario, config)
            .with_context(|| format!("scenario {} could not be set up", scenario.name()))?;
        if config.progress {
            eprintln!("{}\n{report}", Report::HEADER);
        }
        reports.push(report);
    }
    println!("{}", Report::HEADER);
    for report in &reports {
        println!("{report}");
    }
    let mut passed = true;
    for report in reports.iter().filter(|r| !r.passed()) {
        passed = false;
        println!("\n{} FAILED (seed {}):", report.scenario, report.seed);
        for why in report.failures.iter().take(20) {
            println!("  {why}");
        }
        if report.failures.len() > 20 {
            println!("  ... and {} more", report.failures.len() - 20);
        }
        println!(
            "repeat with: cargo run -p sim -- --scenario {} --agents {} --seed {} --duration {}",
            report.scenario, args.agents, report.seed, args.duration
        );
    }
    Ok(passed)
}
