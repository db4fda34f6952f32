use anyhow::Context;
use clap::Parser;
use clap::error::ErrorKind;
use loadtest::cli::Cli;
use std::io::IsTerminal;
use std::process::ExitCode;

/// clap's message up to its usage hint, on one line.
fn one_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let head = text.split("\n\n").next().unwrap_or_default();
    let joined = head.split_whitespace().collect::<Vec<_>>().join(" ");
    joined.strip_prefix("error: ").unwrap_or(&joined).to_owned()
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("loadtest: {}", one_line(&e));
            return ExitCode::from(2);
        }
    };
    let plan = match cli.into_plan() {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("loadtest: {e}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "loadtest=info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let json = plan.json;
    let result = tokio::runtime::Runtime::new()
        .context("starting the async runtime")
        .and_then(|rt| rt.block_on(loadtest::run(plan)).context("load test"));
    let summary = match result {
        Ok(summary) => summary,
        Err(e) => {
            eprintln!("loadtest: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", summary.table());
    let failures = summary.failures();
    for why in &failures {
        eprintln!("loadtest: {why}");
    }
    if json {
        match serde_json::to_string(&summary) {
            Ok(line) => println!("{line}"),
            Err(e) => eprintln!("loadtest: could not write the JSON summary: {e}"),
        }
    }
    if failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
