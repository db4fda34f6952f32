//! Building the application from settings, serving it, and shutting it down without losing a
//! committed-but-unanswered batch.

use crate::clock::now_ms;
use crate::live::Hub;
use crate::metrics::Metrics;
use crate::routes::{self, AppState};
use crate::security::Security;
use crate::security::sessions::Sessions;
use crate::settings::{Retention, Settings};
use crate::storage::postgres::PgStorage;
use crate::storage::sqlite::SqliteStorage;
use crate::storage::{self, Store};
use crate::telemetry::chain;
use anyhow::Context;
use axum::Router;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// The backend with its store open and its address bound, ready for
/// [`Application::run_until`].
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    router: Router,
    /// The dashboard's door, when one is served: its own listener, the same routes and guards.
    dashboard: Option<(TcpListener, Router)>,
    storage: Arc<dyn Store>,
    shutdown: watch::Sender<bool>,
    retention: Retention,
    limits: crate::serve::Limits,
    tls: Option<crate::tls::Acceptor>,
    alerts: Arc<dyn crate::alerts::AlertStore>,
    alerting: crate::alerts::EngineSettings,
    sessions: Arc<Sessions>,
    hub: Hub,
    metrics: Arc<Metrics>,
}

impl Application {
    /// Opens the store the settings name and binds their address; fails if either cannot be
    /// done, such as when the port is taken.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        warn_about_unsafe_settings(&settings);
        let metrics = Arc::new(Metrics::default());
        let hub = Hub::new(settings.ws_client_buffer);
        let security = Security::new(&settings);
        let storage = open_storage(&settings, &security, &hub, &metrics).await?;
        Self::assemble(settings, security, storage, hub, metrics).await
    }

    /// The application around a store made by the caller, which publishes its rows to `hub`
    /// and counts in `metrics`: for benchmarks that set the real request path against other
    /// stores (`build` opens the one the settings name).
    pub async fn with_store(
        settings: Settings,
        storage: Arc<dyn Store>,
        hub: Hub,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        warn_about_unsafe_settings(&settings);
        let security = Security::new(&settings);
        Self::assemble(settings, security, storage, hub, metrics).await
    }

    async fn assemble(
        settings: Settings,
        security: Security,
        storage: Arc<dyn Store>,
        hub: Hub,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let tls = settings.tls.as_ref().map(crate::tls::Acceptor::load).transpose()?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let alerts = storage::open_alerts(&settings).await.context("opening the alert tables")?;
        let sessions =
            storage::open_sessions(&settings).await.context("opening the session tables")?;
        let sessions =
            Arc::new(Sessions::open(sessions).await.context("reading which sessions ended")?);
        let state = AppState {
            security: Arc::new(security),
            sessions: sessions.clone(),
            storage: storage.clone(),
            alerts: alerts.clone(),
            hub: hub.clone(),
            metrics: metrics.clone(),
            max_body_bytes: settings.max_body_bytes,
            body_timeout: settings.body_timeout,
            ws_slots: Arc::new(tokio::sync::Semaphore::new(settings.ws_max_clients)),
            ws_max_message_bytes: settings.ws_max_message_bytes,
            shutdown: shutdown_rx,
        };
        let dashboard = match &settings.dashboard {
            Some(d) => {
                if !d.dist.join("index.html").is_file() {
                    anyhow::bail!(
                        "DASHBOARD_DIST={} has no index.html; build the dashboard with \
                         dashboard/build-web.sh, or unset DASHBOARD_DIST to serve the API alone",
                        d.dist.display()
                    );
                }
                let router = routes::router(state.clone(), &settings.cors_origins, Some(&d.dist));
                let listener = TcpListener::bind(d.addr).await.with_context(|| {
                    format!("cannot listen on {} for the dashboard; set DASHBOARD_ADDR", d.addr)
                })?;
                Some((listener, router))
            }
            None => None,
        };
        let router = routes::router(state, &settings.cors_origins, None);
        let listener = TcpListener::bind(settings.addr).await.with_context(|| {
            format!(
                "cannot listen on {}; is another backend running? set PORT or HOST",
                settings.addr
            )
        })?;
        // Said once bound (connections wait in the backlog from here), so a caller that is
        // told the address finds the line in the log.
        let scheme = if tls.is_some() { "https" } else { "http" };
        tracing::info!("listening on {scheme}://{}", listener.local_addr()?);
        if let Some((door, _)) = &dashboard {
            tracing::info!("dashboard on {scheme}://{}", door.local_addr()?);
        }
        Ok(Self {
            listener,
            router,
            dashboard,
            storage,
            shutdown,
            retention: settings.retention,
            limits: settings.server,
            tls,
            alerts,
            alerting: settings.alerting,
            sessions,
            hub,
            metrics,
        })
    }

    /// Alert rounds on demand (see [`AlertRounds`]).
    pub fn alert_rounds(&self) -> AlertRounds {
        AlertRounds { storage: self.storage.clone(), alerts: self.alerts.clone() }
    }

    /// The address bound: with `PORT=0`, this holds the port that was picked.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Where the dashboard is served, when it is.
    pub fn dashboard_addr(&self) -> Option<SocketAddr> {
        self.dashboard.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// Serves until `signal` resolves, then stops accepting, lets requests in flight finish,
    /// commits what is queued and closes the database.
    pub async fn run_until(
        self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let pruner = tokio::spawn(prune_forever(self.storage.clone(), self.retention));
        let sessions = tokio::spawn(self.sessions.refresh_forever());
        let engine = crate::alerts::Engine::start(
            self.alerting,
            self.storage.clone(),
            self.alerts,
            self.hub,
            self.metrics,
        );
        let shutdown = self.shutdown;
        let stopping = shutdown.subscribe();
        tokio::spawn(async move {
            signal.await;
            // WebSocket clients are told to go; they are outside the connection count.
            let _ = shutdown.send(true);
        });
        let door = |listener, router| {
            let mut stopping = stopping.clone();
            let signal = async move {
                let _ = stopping.wait_for(|stop| *stop).await;
            };
            crate::serve::serve(listener, router, self.limits, self.tls.clone(), signal)
        };
        match self.dashboard {
            Some((listener, router)) => {
                tokio::join!(door(self.listener, self.router), door(listener, router));
            }
            None => door(self.listener, self.router).await,
        }
        pruner.abort();
        sessions.abort();
        drop(engine);
        self.storage.close().await;
        Ok(())
    }
}

/// Alert rounds at a time of the caller's choosing: the simulator plays a fleet's readings in
/// fast time, stamped in the past, and evaluates after each step (with `ALERT_EVAL_SECONDS=0`,
/// so that no round runs on its own).
#[derive(Debug, Clone)]
pub struct AlertRounds {
    storage: Arc<dyn Store>,
    alerts: Arc<dyn crate::alerts::AlertStore>,
}

impl AlertRounds {
    /// One round as if the time were `now_ms`; resolves to the number of alerts it changed.
    pub async fn round_at(&self, now_ms: i64) -> anyhow::Result<usize> {
        crate::alerts::engine::round(&*self.storage, &*self.alerts, now_ms)
            .await
            .context("an alert round")
    }
}

/// Opens the store the settings name (PostgreSQL with `DATABASE_URL`, else SQLite) and, for
/// SQLite, restores the replay guard it persisted.
async fn open_storage(
    settings: &Settings,
    security: &Security,
    hub: &Hub,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<Arc<dyn Store>> {
    let storage: Arc<dyn Store> = match &settings.database_url {
        Some(url) => {
            let pg = PgStorage::open(url, hub.clone(), metrics.clone())
                .await
                .context("connecting to PostgreSQL (DATABASE_URL)")?;
            tracing::info!("storage ready: PostgreSQL");
            Arc::new(pg)
        }
        None => {
            let opened = SqliteStorage::open(
                &settings.db_path,
                settings.synchronous,
                hub.clone(),
                metrics.clone(),
            )
            .with_context(|| {
                format!("opening the database (DB_PATH={})", settings.db_path.display())
            })?;
            let restored = opened.replay_entries.len();
            security.replay.restore(opened.replay_entries, now_ms());
            tracing::info!(
                db = %settings.db_path.display(),
                restored_signatures = restored,
                "storage ready: SQLite"
            );
            Arc::new(opened.storage)
        }
    };
    Ok(storage)
}

/// Shorter credentials are warned about; the development defaults are warned about already.
const MIN_SECRET_CHARS: usize = 16;

/// The variables holding a value shorter than [`MIN_SECRET_CHARS`], named, never shown.
fn short_credentials(settings: &Settings) -> Vec<&'static str> {
    fn set(c: &crate::settings::Credential) -> &[crate::settings::Secret] {
        if c.is_dev_default { &[] } else { &c.values }
    }
    [
        ("API_TOKEN", set(&settings.api_token)),
        ("HMAC_SECRET", set(&settings.hmac_secret)),
        ("READ_TOKEN", &settings.read_token[..]),
        ("ADMIN_TOKEN", &settings.admin_token[..]),
    ]
    .into_iter()
    .filter(|(_, values)| values.iter().any(|v| v.expose().chars().count() < MIN_SECRET_CHARS))
    .map(|(name, _)| name)
    .collect()
}

fn warn_about_unsafe_settings(settings: &Settings) {
    if settings.api_token.is_dev_default || settings.hmac_secret.is_dev_default {
        tracing::warn!(
            "API_TOKEN or HMAC_SECRET is unset: the development defaults are in use and are \
             accepted only from loopback; set both before agents connect from other machines"
        );
    }
    for name in short_credentials(settings) {
        tracing::warn!(
            variable = name,
            "{name} has a value shorter than {MIN_SECRET_CHARS} characters, which can be \
             guessed; use a longer random one (openssl rand -hex 32)"
        );
    }
    if !settings.addr.ip().is_loopback() {
        tracing::info!(addr = %settings.addr, "listening beyond loopback as configured by HOST");
    }
    if let Some(d) = settings.dashboard.as_ref().filter(|d| !d.addr.ip().is_loopback()) {
        tracing::info!(addr = %d.addr, "dashboard beyond loopback as configured by DASHBOARD_ADDR");
    }
}

#[tracing::instrument(skip_all)]
async fn prune_forever(storage: Arc<dyn Store>, retention: Retention) {
    let mut every = tokio::time::interval(PRUNE_EVERY);
    loop {
        every.tick().await;
        match storage::prune(&*storage, retention.cutoffs(now_ms())).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "retention removed old events"),
            Err(e) => tracing::warn!(error = %chain(&e), "retention pass failed; will retry"),
        }
    }
}

/// `GET /healthz` over a plain TCP connection, or over TLS with `tls`: true on a 200 within two
/// seconds. An unspecified listen address (0.0.0.0) is probed on loopback.
pub async fn healthcheck(mut addr: SocketAddr, tls: bool) -> bool {
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let probe = async {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        if tls {
            ask_health(crate::tls::connect_loopback(stream, addr.ip()).await?).await
        } else {
            ask_health(stream).await
        }
    };
    matches!(tokio::time::timeout(Duration::from_secs(2), probe).await, Ok(Ok(true)))
}

async fn ask_health(
    mut stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
) -> std::io::Result<bool> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n").await?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await?;
    Ok(head.starts_with(b"HTTP/1.") && &head[9..12] == b"200")
}
