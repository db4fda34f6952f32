//! Every acknowledged event must be in the database.

use super::*;

/// Where a target stores its events.
#[derive(Debug, Clone)]
pub(crate) enum Database {
    Sqlite(PathBuf),
    Postgres(String),
    /// Nowhere: `--stores null`.
    Null,
}

/// A fresh database for the `n`th target on the PostgreSQL server `admin` reaches.
pub(crate) fn create_database(admin: &str, n: usize) -> anyhow::Result<String> {
    let name = format!("ingest_bench_{}_{n}", std::process::id());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(backend::storage::create_database(admin, &name))
        .context("creating a PostgreSQL database for the bench")
}

impl Database {
    pub(crate) fn count_events(&self) -> anyhow::Result<u64> {
        match self {
            Database::Null => Ok(0),
            Database::Sqlite(path) => {
                if !path.exists() {
                    return Ok(0);
                }
                let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
                conn.busy_timeout(Duration::from_secs(5))?;
                let n: i64 = conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
                Ok(n as u64)
            }
            Database::Postgres(url) => pg_number(url, "SELECT count(*) FROM events"),
        }
    }

    /// Bytes the database takes on disk: the SQLite file and its WAL, or every PostgreSQL
    /// table with its indexes and TOAST.
    pub(crate) fn bytes(&self) -> anyhow::Result<u64> {
        match self {
            Database::Null => Ok(0),
            Database::Sqlite(path) => {
                let wal = path.with_extension("db-wal");
                let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
                Ok(size(path) + size(&wal))
            }
            Database::Postgres(url) => pg_number(
                url,
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::int8
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE c.relkind = 'r' AND n.nspname = 'public'",
            ),
        }
    }

    /// Requests still in flight when wrk stopped may commit a moment later: wait until the
    /// count holds still.
    pub(crate) fn settled_count(&self) -> anyhow::Result<u64> {
        let mut last = self.count_events()?;
        for _ in 0..50 {
            std::thread::sleep(Duration::from_millis(200));
            let now = self.count_events()?;
            if now == last {
                return Ok(now);
            }
            last = now;
        }
        Ok(last)
    }
}

/// The one number `sql` answers, on a connection of its own.
fn pg_number(url: &str, sql: &str) -> anyhow::Result<u64> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        let row = client.query_one(sql, &[]).await?;
        Ok(row.get::<_, i64>(0) as u64)
    })
}

pub(crate) fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    // The backend checks `Host` while its reads are open, as they are here on loopback.
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    Ok(text.split_once("\r\n\r\n").map_or(text.clone(), |(_, body)| body.to_owned()))
}
