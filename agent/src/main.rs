use agent::logfile::{LogLimits, RotatingFile};
use agent::settings::Settings;
use agent::startup;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Collects CPU, memory, disk, network and top processes and sends signed batches to the
/// backend. Configuration comes from the environment (API_URL, API_TOKEN, HMAC_SECRET, AGENT_ID,
/// INTERVAL_SECONDS, DATA_DIR, QUEUE_PATH, TOP_PROCESSES, QUEUE_MAX_MB, SET_ASIDE_MAX_MB,
/// REQUEST_TIMEOUT_SECONDS, LOG_MAX_MB, LOG_FILES, WATCH_SECONDS, SERVICES, EVENT_LOGS,
/// EVENT_SOURCES, EVENT_LOG_MAX, CA_CERT), which wins over the optional config file.
#[derive(Debug, Parser)]
#[command(name = "agent", version)]
struct Cli {
    /// A TOML file with the same keys in lower case (api_url = "...").
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Collect once, deliver what can be delivered, and exit (1 if batches stay queued).
    #[arg(long)]
    once: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Register the agent as a Windows service that starts with the machine.
    Install,
    /// Remove the Windows service.
    Uninstall,
    /// Entry point used by the Windows service manager.
    #[command(hide = true)]
    Service,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::from_process_env(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("agent: {e}");
            return ExitCode::from(2);
        }
    };
    // A service has no console: its log goes to bounded files in the data folder.
    let log_file = matches!(cli.command, Some(Command::Service))
        .then(|| settings.data_dir.join("logs").join("agent.log"));
    init_logging(log_file.as_deref(), settings.log_limits);
    match cli.command {
        None => run_console(&settings, cli.once),
        Some(command) => service_command(command, cli.config.as_deref(), settings),
    }
}

fn init_logging(log_file: Option<&std::path::Path>, limits: LogLimits) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    match log_file.and_then(|path| RotatingFile::open(path, limits).ok()) {
        Some(file) => builder.with_ansi(false).with_writer(std::sync::Mutex::new(file)).init(),
        None => {
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            builder.with_ansi(ansi).with_writer(std::io::stderr).init();
        }
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    // One thread is plenty for one tick every few seconds, and keeps the agent small.
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}

fn run_console(settings: &Settings, once: bool) -> ExitCode {
    let result = runtime().map_err(anyhow::Error::from).and_then(|rt| {
        rt.block_on(async {
            if once {
                let summary = startup::build(settings)?.run_once().await;
                startup::log_summary(&summary);
                Ok(summary.queued == 0)
            } else {
                startup::run(settings, signals::shutdown()).await.map(|_| true)
            }
        })
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("agent: some batches could not be delivered and stay queued");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(windows)]
fn service_command(
    command: Command,
    config: Option<&std::path::Path>,
    settings: Settings,
) -> ExitCode {
    let result = match command {
        Command::Install => agent::service::install(config),
        Command::Uninstall => agent::service::uninstall(),
        Command::Service => agent::service::run(settings),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(not(windows))]
fn service_command(command: Command, _: Option<&std::path::Path>, _: Settings) -> ExitCode {
    eprintln!(
        "agent: `{command:?}` manages a Windows service; on this system run the agent under \
         systemd or another supervisor instead"
    );
    ExitCode::from(2)
}
