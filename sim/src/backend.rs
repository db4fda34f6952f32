//! The real backend, in this process on a real port and a real SQLite file.

use crate::SimError;
use backend::settings::Settings;
use backend::startup::Application;
use std::net::SocketAddr;
use std::path::Path;
use tokio::sync::oneshot;

#[derive(Debug)]
pub(crate) struct Backend {
    pub addr: SocketAddr,
    /// Alert rounds on demand.
    pub rounds: backend::startup::AlertRounds,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Backend {
    /// Serves `db` on `port` (0: any free one) with the given credentials.
    pub(crate) async fn start(
        port: u16,
        db: &Path,
        token: &str,
        secret: &str,
    ) -> Result<Self, SimError> {
        Self::start_with(port, db, token, secret, &[]).await
    }

    /// [`Backend::start`] with more variables by the binary's names.
    pub(crate) async fn start_with(
        port: u16,
        db: &Path,
        token: &str,
        secret: &str,
        more: &[(&str, &str)],
    ) -> Result<Self, SimError> {
        let settings = Settings::from_lookup(|key| match key {
            "HOST" => Some("127.0.0.1".into()),
            "PORT" => Some(port.to_string()),
            "DB_PATH" => Some(db.to_string_lossy().into_owned()),
            "API_TOKEN" => Some(token.to_owned()),
            "HMAC_SECRET" => Some(secret.to_owned()),
            _ => more.iter().find(|(k, _)| *k == key).map(|(_, v)| (*v).to_owned()),
        })
        .map_err(|e| SimError::setup("backend settings", e))?;
        let app = Application::build(settings)
            .await
            .map_err(|e| SimError::setup("starting the backend", format!("{e:#}")))?;
        let addr = app.local_addr().map_err(|e| SimError::setup("backend address", e))?;
        let rounds = app.alert_rounds();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        Ok(Self { addr, rounds, stop, task })
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A graceful stop: requests in flight finish and what is queued is committed.
    pub(crate) async fn stop(self) -> Result<(), SimError> {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(SimError::setup("stopping the backend", format!("{e:#}"))),
            Err(e) => Err(SimError::setup("stopping the backend", e)),
        }
    }
}
