//! The servers under test, each in this process on a runtime of its own.

use super::*;

#[derive(Debug)]
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    pub(crate) stop: oneshot::Sender<()>,
    pub(crate) thread: JoinHandle<anyhow::Result<()>>,
}

impl Server {
    pub(crate) fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.thread.join().map_err(|_| anyhow::anyhow!("the server thread panicked"))?
    }
}

/// Each server gets a runtime shaped like the backend's `#[tokio::main]`: one worker per core.
pub(crate) fn runtime(name: &str) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().thread_name(name).build()
}

/// With `alerting`, rounds every [`EVAL_SECONDS`]; without, none.
pub(crate) fn start_backend(db: &Database, alerting: bool) -> anyhow::Result<Server> {
    let (db_path, database_url) = match db {
        Database::Sqlite(path) => (path.to_str().context("the database path is not UTF-8")?, None),
        Database::Postgres(url) => ("unused.db", Some(url.clone())),
        Database::Null => ("unused.db", None),
    };
    // A long drift keeps the pre-signed requests valid for the whole run; the replay TTL stays
    // at twice the drift as the backend asks, and the guard is large enough never to say busy.
    // The pools are signed with these secrets, whatever the caller's environment holds; the
    // rest of the environment counts as it does for the binary (SQLITE_SYNCHRONOUS, ...).
    let settings = Settings::from_lookup(|key| match key {
        "HOST" => Some("127.0.0.1".into()),
        "PORT" => Some("0".into()),
        "DB_PATH" => Some(db_path.into()),
        "HMAC_DRIFT" => Some("3600".into()),
        "HMAC_REPLAY_TTL" => Some("7200".into()),
        "REPLAY_CACHE_MAX" => Some("50000000".into()),
        "API_TOKEN" => Some(API_TOKEN.into()),
        "HMAC_SECRET" => Some(HMAC_SECRET.into()),
        "DATABASE_URL" => database_url.clone(),
        "ADMIN_TOKEN" => Some(ADMIN_TOKEN.into()),
        "ALERT_EVAL_SECONDS" => Some(if alerting { EVAL_SECONDS } else { "0" }.into()),
        _ => std::env::var(key).ok(),
    })?;
    let rt = runtime("backend")?;
    let app = rt.block_on(async {
        if !matches!(db, Database::Null) {
            return Application::build(settings).await;
        }
        let hub = backend::live::Hub::new(settings.ws_client_buffer);
        let metrics = std::sync::Arc::new(backend::metrics::Metrics::default());
        let store = null_store::NullStore::start(hub.clone(), metrics.clone())?;
        Application::with_store(settings, std::sync::Arc::new(store), hub, metrics).await
    })?;
    let addr = app.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new().name("backend-serve".into()).spawn(move || {
        rt.block_on(Box::pin(app.run_until(async move {
            let _ = stopped.await;
        })))
    })?;
    Ok(Server { addr, stop, thread })
}

pub(crate) fn start_bare() -> anyhow::Result<Server> {
    let rt = runtime("bare")?;
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let router = Router::new().route("/api/ingest", post(bare_ingest));
    let (stop, stopped) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new().name("bare-serve".into()).spawn(move || {
        rt.block_on(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .context("serving the bare server")
        })
    })?;
    Ok(Server { addr, stop, thread })
}

/// The body is read in full, as the backend must, and then ignored.
async fn bare_ingest(_body: Bytes) -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], r#"{"stored":2}"#)
}
