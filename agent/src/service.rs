//! Running as a Windows service (`agent install` / `agent uninstall`), so admins need no
//! wrapper such as NSSM. The service runs this same executable with the `service` argument.

use crate::settings::Settings;
use anyhow::Context;
use std::ffi::OsString;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;
use windows_service::service::{
    ServiceAccess, ServiceAction, ServiceActionType, ServiceControl, ServiceControlAccept,
    ServiceErrorControl, ServiceExitCode, ServiceFailureActions, ServiceFailureResetPeriod,
    ServiceInfo, ServiceStartType, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};
use windows_service::{define_windows_service, service_dispatcher};

const NAME: &str = "telemetry-agent";
const DISPLAY_NAME: &str = "Telemetry agent";

/// The service entry point is a plain function, so the settings reach it through this.
static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// Registers this executable as a service that starts with the machine, and starts it; `config`
/// is passed on to the service as an absolute path.
pub fn install(config: Option<&Path>) -> anyhow::Result<()> {
    let manager = ServiceManager::local_computer(
        None::<&str>,
        ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE,
    )
    .context("opening the service manager (run this from an elevated prompt)")?;
    let mut launch_arguments = Vec::new();
    if let Some(config) = config {
        // The service does not inherit this shell's environment: a config file carries it.
        let absolute = std::fs::canonicalize(config)
            .with_context(|| format!("reading the config file {}", config.display()))?;
        launch_arguments.push(OsString::from("--config"));
        launch_arguments.push(absolute.into_os_string());
    }
    launch_arguments.push(OsString::from("service"));
    let info = ServiceInfo {
        name: OsString::from(NAME),
        display_name: OsString::from(DISPLAY_NAME),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: std::env::current_exe().context("locating this executable")?,
        launch_arguments,
        dependencies: vec![],
        account_name: None,
        account_password: None,
    };
    let service = manager
        .create_service(&info, ServiceAccess::CHANGE_CONFIG | ServiceAccess::START)
        .context("creating the service (is it installed already? `agent uninstall` first)")?;
    service
        .set_description("Sends CPU, memory, disk, network and process telemetry to the backend")
        .context("describing the service")?;
    // Without them the service still runs, so a refusal is reported rather than undoing the
    // install.
    if let Err(e) = set_recovery(&service) {
        eprintln!(
            "agent: warning: could not set the restart-on-failure actions ({e:#}); set them with \
             `sc failure {NAME} reset= 86400 actions= restart/10000/restart/60000/restart/60000` \
             and `sc failureflag {NAME} 1`"
        );
    }
    service.start::<&str>(&[]).context("starting the service")?;
    println!("installed and started the {NAME} service");
    Ok(())
}

/// Sets [`recovery`], also for when the agent stops with an error (an exit code), not only
/// when it crashes.
fn set_recovery(service: &windows_service::service::Service) -> anyhow::Result<()> {
    service.update_failure_actions(recovery())?;
    service.set_failure_actions_on_non_crash_failures(true)?;
    Ok(())
}

/// A service installed by the MSI (which cannot set recovery actions) sets them itself at each
/// start; for one installed by `agent install` this changes nothing.
fn ensure_recovery() -> anyhow::Result<()> {
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)?;
    let service =
        manager.open_service(NAME, ServiceAccess::CHANGE_CONFIG | ServiceAccess::START)?;
    set_recovery(&service)
}

/// Restart after 10 s, then after 60 s each time; a day without failures starts the count
/// again. A stopped agent loses no batch (they wait in the queue), but collects nothing.
fn recovery() -> ServiceFailureActions {
    let restart = |secs| ServiceAction {
        action_type: ServiceActionType::Restart,
        delay: Duration::from_secs(secs),
    };
    ServiceFailureActions {
        reset_period: ServiceFailureResetPeriod::After(Duration::from_secs(86_400)),
        reboot_msg: None,
        command: None,
        actions: Some(vec![restart(10), restart(60), restart(60)]),
    }
}

/// Stops and removes the service; the queue folder stays.
pub fn uninstall() -> anyhow::Result<()> {
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
        .context("opening the service manager (run this from an elevated prompt)")?;
    let service = manager
        .open_service(
            NAME,
            ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE,
        )
        .context("opening the service (is it installed?)")?;
    if service.query_status()?.current_state != ServiceState::Stopped {
        service.stop().context("stopping the service")?;
    }
    service.delete().context("deleting the service")?;
    println!("removed the {NAME} service; queued batches stay in the queue folder");
    Ok(())
}

/// Hands control to the service manager, which calls `service_main`.
pub fn run(settings: Settings) -> anyhow::Result<()> {
    let _ = SETTINGS.set(settings);
    service_dispatcher::start(NAME, ffi_service_main)
        .context("connecting to the service manager (`agent service` is for the service itself)")
}

define_windows_service!(ffi_service_main, service_main);

fn service_main(_arguments: Vec<OsString>) {
    if let Err(e) = run_service() {
        tracing::error!("the service stopped with an error: {e:#}");
    }
}

fn status(state: ServiceState, accept: ServiceControlAccept) -> ServiceStatus {
    ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state: state,
        controls_accepted: accept,
        exit_code: ServiceExitCode::Win32(0),
        checkpoint: 0,
        wait_hint: Duration::from_secs(10),
        process_id: None,
    }
}

fn run_service() -> anyhow::Result<()> {
    let settings = SETTINGS.get().context("settings were not loaded")?;
    if let Err(e) = ensure_recovery() {
        tracing::warn!(error = format!("{e:#}"), "could not set the service's recovery actions");
    }
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let stop_tx = std::sync::Mutex::new(Some(stop_tx));
    let handle = service_control_handler::register(NAME, move |control| match control {
        ServiceControl::Stop | ServiceControl::Shutdown => {
            if let Some(tx) = stop_tx.lock().ok().and_then(|mut t| t.take()) {
                let _ = tx.send(());
            }
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    })?;
    handle.set_service_status(status(
        ServiceState::Running,
        ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN,
    ))?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let result = runtime.block_on(crate::startup::run(settings, async {
        let _ = stop_rx.await;
    }));
    handle.set_service_status(status(ServiceState::Stopped, ServiceControlAccept::empty()))?;
    result.map(|_| ())
}
