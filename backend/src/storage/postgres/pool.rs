//! A few PostgreSQL connections for reads, opened when first needed and reused; a connection
//! that broke is dropped and replaced on the next lease.

use crate::storage::StorageError;
use crate::telemetry::chain;
use protocol::Secret;
use std::ops::Deref;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, Config, NoTls};

/// The connection settings of `url`, with limits of our own: without them a connection to a
/// server that vanished (a failover, a cut network) hangs for the kernel's two-hour keepalive.
pub(super) fn config(url: &Secret) -> Result<Config, StorageError> {
    let mut config: Config = url.expose().parse()?;
    // Said at start-up rather than found at the first connection: this build speaks to
    // PostgreSQL without TLS, which `prefer` (the default) would otherwise fall back to quietly.
    if config.get_ssl_mode() == SslMode::Require {
        return Err(StorageError::Unsupported(
            "sslmode=require is not supported: connections to PostgreSQL are not encrypted; \
             reach it over a private network or a tunnel and use sslmode=disable",
        ));
    }
    config
        .connect_timeout(Duration::from_secs(10))
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(15))
        .tcp_user_timeout(Duration::from_secs(30));
    Ok(config)
}

/// Opens one connection and drives it on its own task.
pub(super) async fn connect(url: &Secret) -> Result<Client, StorageError> {
    let (client, connection) = config(url)?.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %chain(&e), "a PostgreSQL connection closed");
        }
    });
    Ok(client)
}

#[derive(Debug)]
pub(super) struct Pool {
    url: Secret,
    idle: Mutex<Vec<Client>>,
    permits: Semaphore,
}

#[derive(Debug)]
pub(super) struct Lease<'a> {
    pool: &'a Pool,
    client: Option<Client>,
    _permit: SemaphorePermit<'a>,
}

impl Pool {
    pub(super) fn new(url: Secret, size: usize) -> Self {
        Self { url, idle: Mutex::new(Vec::new()), permits: Semaphore::new(size) }
    }

    pub(super) async fn get(&self) -> Result<Lease<'_>, StorageError> {
        let permit = self.permits.acquire().await.map_err(|_| StorageError::Closed)?;
        let idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop();
        let client = match idle {
            Some(client) if !client.is_closed() => client,
            _ => connect(&self.url).await?,
        };
        Ok(Lease { pool: self, client: Some(client), _permit: permit })
    }
}

impl Deref for Lease<'_> {
    type Target = Client;

    fn deref(&self) -> &Client {
        self.client.as_ref().expect("a lease holds its client until dropped")
    }
}

impl std::ops::DerefMut for Lease<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().expect("a lease holds its client until dropped")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take().filter(|c| !c.is_closed()) {
            self.pool.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(client);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_get_timeouts_and_tls_is_refused_up_front() {
        let config = config(&Secret::new("postgres://u@db.example:5433/telemetry")).unwrap();
        assert_eq!(config.get_connect_timeout(), Some(&Duration::from_secs(10)));
        assert_eq!(config.get_keepalives_idle(), Duration::from_secs(15));
        let tls = config_error("postgres://u@db.example/telemetry?sslmode=require");
        assert!(tls.contains("not encrypted"), "{tls}");
        assert!(!config_error("postgres://u:hunter2@db.example:port/x").contains("hunter2"));
    }

    fn config_error(url: &str) -> String {
        config(&Secret::new(url)).unwrap_err().to_string()
    }
}
