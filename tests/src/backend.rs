//! The backend in this process: the real application on a free port of 127.0.0.1 and a real
//! SQLite file in a temporary folder (or the PostgreSQL that `DATABASE_URL` names), on a runtime
//! and threads of its own, with its logs captured.
//!
//! Its own runtime makes it independent of the test's: synchronous tests use it as they are,
//! and an async test blocking on a plain call ([`Api::metric`]) cannot stall it.

use crate::api::{ADMIN, Api, SECRET, TOKEN};
use crate::logs::Logs;
use crate::tls::ServerCert;
use backend::settings::Settings;
use backend::startup::Application;
use std::net::SocketAddr;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::oneshot;

/// How long a backend may take to open its database and bind.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running backend, configured by the variables the binary reads (see [`TestBackend::start_on`]).
#[derive(Debug)]
pub struct TestBackend {
    api: Api,
    /// The dashboard's door (`DASHBOARD_DIST` set): the same API beside the dashboard's files.
    pub dashboard: Option<Api>,
    /// The SQLite file, read directly by tests that count rows.
    pub db_path: PathBuf,
    env: Vec<(String, String)>,
    logs: Logs,
    /// The CA a backend serving HTTPS is trusted by.
    trust: Option<PathBuf>,
    running: Option<Running>,
    // Kept for the backend's lifetime; `None` when the caller owns the folder.
    _dir: Option<tempfile::TempDir>,
}

#[derive(Debug)]
struct Running {
    // Sending stops gracefully; dropping cuts every connection at once.
    stop: oneshot::Sender<()>,
    thread: JoinHandle<Result<(), String>>,
}

/// The three credentials the binary's tests give it: agents sign with [`TOKEN`] and [`SECRET`],
/// [`ADMIN`] clears.
pub fn credentials() -> [(&'static str, &'static str); 3] {
    [("API_TOKEN", TOKEN), ("HMAC_SECRET", SECRET), ("ADMIN_TOKEN", ADMIN)]
}

impl TestBackend {
    /// With the test credentials on a new database.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Also with `env`, which may override the credentials.
    pub fn start_with(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let mut backend = Self::start_on(&dir.path().join("telemetry.db"), env);
        backend._dir = Some(dir);
        backend
    }

    /// Serving HTTPS with `server`'s certificate and key (`TLS_CERT`, `TLS_KEY`), and `env`;
    /// its [`Api`] trusts `ca`.
    pub fn start_tls(ca: &Path, server: &ServerCert, env: &[(&str, &str)]) -> Self {
        let (cert, key) = (server.cert.to_string_lossy(), server.key.to_string_lossy());
        let mut all = vec![("TLS_CERT", &*cert), ("TLS_KEY", &*key)];
        all.extend_from_slice(env);
        let mut backend = Self::start_with(&all);
        backend.trust = Some(ca.to_owned());
        backend.api = backend.client(backend.api.addr);
        backend.dashboard = backend.dashboard.as_ref().map(|d| backend.client(d.addr));
        backend
    }

    /// On an existing database file, as after a restart. `env` holds variables by the names the
    /// binary reads (`READ_TOKEN`, `MAX_BODY_BYTES`, `RUST_LOG`, ...); nothing comes from this
    /// process's own environment.
    pub fn start_on(db_path: &Path, env: &[(&str, &str)]) -> Self {
        let mut all = credentials().to_vec();
        all.extend_from_slice(env);
        Self::launch(db_path, &all)
    }

    /// With `API_TOKEN` and `HMAC_SECRET` unset (the development defaults), and `env`.
    pub fn start_without_credentials(db_path: &Path, env: &[(&str, &str)]) -> Self {
        Self::launch(db_path, env)
    }

    fn launch(db_path: &Path, env: &[(&str, &str)]) -> Self {
        let mut all: Vec<(String, String)> =
            [("HOST", "127.0.0.1"), ("PORT", "0"), ("DASHBOARD_ADDR", "127.0.0.1:0")]
                .iter()
                .chain(env)
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
        all.push(("DB_PATH".into(), db_path.to_string_lossy().into_owned()));
        let logs = Logs::default();
        let (addrs, running) = run(&all, &logs);
        Self {
            api: Api::new(addrs.api),
            dashboard: addrs.dashboard.map(Api::new),
            db_path: db_path.to_owned(),
            env: all,
            logs,
            trust: None,
            running: Some(running),
            _dir: None,
        }
    }

    /// What the backend has logged so far, from its start (restarts included).
    pub fn logs(&self) -> String {
        self.logs.text()
    }

    /// Counts rows straight from the SQLite file.
    pub fn count_rows(&self, sql: &str) -> i64 {
        count_rows(&self.db_path, sql)
    }

    /// A graceful stop, as on SIGTERM: requests in flight finish and what is queued is
    /// committed; [`TestBackend::restart`] starts it again. Panics if it ended with an error.
    pub fn stop(&mut self) {
        if let Some(Running { stop, thread }) = self.running.take() {
            let _ = stop.send(());
            let outcome = thread.join().expect("the backend thread panicked");
            if let Err(e) = outcome {
                panic!("the backend stopped with an error: {e}\nlogs:\n{}", self.logs());
            }
        }
    }

    /// Every connection and task is dropped at once and the port closes, as when the process
    /// dies. (What a real SIGKILL leaves on disk is tested with [`crate::process`].)
    pub fn cut_off(&mut self) {
        if let Some(Running { stop, thread }) = self.running.take() {
            drop(stop);
            let _ = thread.join();
        }
    }

    /// Stops gracefully if running, then starts again on the same port and database.
    pub fn restart(&mut self) {
        self.stop();
        let port = self.api.addr.port().to_string();
        let dashboard = self.dashboard.as_ref().map(|d| d.addr.to_string());
        for (key, value) in &mut self.env {
            match (key.as_str(), &dashboard) {
                ("PORT", _) => value.clone_from(&port),
                ("DASHBOARD_ADDR", Some(addr)) => value.clone_from(addr),
                _ => {}
            }
        }
        let (addrs, running) = run(&self.env, &self.logs);
        self.api = self.client(addrs.api);
        self.dashboard = addrs.dashboard.map(|addr| self.client(addr));
        self.running = Some(running);
    }

    fn client(&self, addr: SocketAddr) -> Api {
        match &self.trust {
            Some(ca) => Api::https(addr, ca),
            None => Api::new(addr),
        }
    }
}

impl Deref for TestBackend {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        self.cut_off();
        self.logs.show_if_failing();
    }
}

/// Counts rows in the SQLite file at `db`.
pub fn count_rows(db: &Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).expect("open the database file");
    conn.query_row(sql, [], |r| r.get(0)).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Where a started backend listens.
#[derive(Debug, Clone, Copy)]
struct Addrs {
    api: SocketAddr,
    dashboard: Option<SocketAddr>,
}

/// Starts the application on a thread of its own and waits until it listens.
fn run(env: &[(String, String)], logs: &Logs) -> (Addrs, Running) {
    let known = Settings::variables();
    if let Some((key, _)) = env.iter().find(|(k, _)| k != "RUST_LOG" && !known.contains(k)) {
        panic!("the backend reads no variable {key}; it reads {known:?} and RUST_LOG");
    }
    // The last value of a key wins: the caller's variables come after the defaults.
    let lookup = |key: &str| env.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let settings =
        Settings::from_lookup(lookup).unwrap_or_else(|e| panic!("backend settings: {e}"));
    let dispatch = logs.dispatch(&lookup("RUST_LOG").unwrap_or_else(|| "info".into()));
    let (ready, started) = mpsc::channel();
    let (stop, stopped) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("test-backend".into())
        .spawn(move || {
            let _logs = tracing::dispatcher::set_default(&dispatch);
            let runtime = runtime(dispatch).map_err(|e| format!("a runtime: {e}"))?;
            let outcome = runtime.block_on(serve(settings, ready, stopped));
            // Whatever is still open after a graceful stop, or everything when cut off.
            runtime.shutdown_background();
            outcome
        })
        .expect("spawn the backend thread");
    match started.recv_timeout(START_TIMEOUT) {
        Ok(Ok(addr)) => (addr, Running { stop, thread }),
        Ok(Err(e)) => panic!("the backend did not start: {e}\nlogs:\n{}", logs.text()),
        Err(_) => {
            panic!("the backend did not start within {START_TIMEOUT:?}; logs:\n{}", logs.text())
        }
    }
}

/// Shaped like the binary's `#[tokio::main]` on these machines (two workers), with every thread
/// logging to this backend's capture.
fn runtime(dispatch: tracing::Dispatch) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("test-backend-rt")
        // The guard would reset the thread's dispatcher when dropped; the thread keeps it for life.
        .on_thread_start(move || std::mem::forget(tracing::dispatcher::set_default(&dispatch)))
        .build()
}

async fn serve(
    settings: Settings,
    ready: mpsc::Sender<Result<Addrs, String>>,
    stop: oneshot::Receiver<()>,
) -> Result<(), String> {
    let built = Application::build(settings).await.and_then(|app| {
        Ok((Addrs { api: app.local_addr()?, dashboard: app.dashboard_addr() }, app))
    });
    let (addr, app) = match built {
        Ok(started) => started,
        Err(e) => {
            let _ = ready.send(Err(format!("{e:#}")));
            return Ok(());
        }
    };
    let (graceful, graceful_rx) = oneshot::channel::<()>();
    let serving = tokio::spawn(app.run_until(async move {
        let _ = graceful_rx.await;
    }));
    let _ = ready.send(Ok(addr));
    if stop.await.is_err() {
        return Ok(());
    }
    let _ = graceful.send(());
    match serving.await {
        Ok(outcome) => outcome.map_err(|e| format!("{e:#}")),
        Err(e) => Err(format!("the server task: {e}")),
    }
}
