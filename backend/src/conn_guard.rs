//! What one client may hold of the server: a share of the connections per address, and no
//! connection kept open by a client that has stopped reading what it is sent.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Open connections per client address, each at most `cap`.
#[derive(Debug)]
pub(crate) struct PerAddress {
    cap: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection counted for its address until dropped.
#[derive(Debug)]
pub(crate) struct Counted {
    owner: Arc<PerAddress>,
    addr: IpAddr,
}

impl PerAddress {
    pub(crate) fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self { cap, open: Mutex::default() })
    }

    /// Counts one more connection from `addr`, or `None` when it already holds `cap`.
    pub(crate) fn admit(self: &Arc<Self>, addr: IpAddr) -> Option<Counted> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(addr).or_default();
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(Counted { owner: self.clone(), addr })
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut open = self.owner.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.addr) {
            *count -= 1;
            if *count == 0 {
                // Addresses come and go: the map holds only those with a connection open.
                open.remove(&self.addr);
            }
        }
    }
}

/// A stream whose writes must make progress within `limit`: a client that stops reading (its
/// window full, a large answer or a live feed half-sent) is cut off instead of holding the
/// connection, its task and its buffers for ever. Reads are bounded elsewhere (header and body
/// deadlines; a live client's pings).
#[derive(Debug)]
pub(crate) struct WriteDeadline<S> {
    inner: S,
    limit: Duration,
    /// Armed while a write is waiting for the client; reset by every byte it takes.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteDeadline<S> {
    pub(crate) fn new(inner: S, limit: Duration) -> Self {
        Self { inner, limit, stalled: None }
    }

    fn check<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let limit = self.limit;
        let timer = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client read nothing for {}s", limit.as_secs()),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.check(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.check(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.check(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.check(cx, polled)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::time::Instant;

    #[test]
    fn an_address_holds_at_most_its_share_and_gets_it_back() {
        let per = PerAddress::new(2);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let first = per.admit(a).unwrap();
        let _second = per.admit(a).unwrap();
        assert!(per.admit(a).is_none(), "a third from one address");
        assert!(per.admit(b).is_some(), "another address is not affected");
        drop(first);
        assert!(per.admit(a).is_some(), "a slot comes back when one closes");
        drop(per.admit(b));
        assert_eq!(per.open.lock().unwrap().len(), 1, "closed addresses are forgotten");
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_that_stops_reading_is_cut_off_and_one_that_reads_is_not() {
        // A pipe with a small buffer: writes wait once it is full.
        let (client, server) = tokio::io::duplex(64);
        let mut stream = WriteDeadline::new(server, Duration::from_secs(30));
        let started = Instant::now();
        let err = loop {
            if let Err(e) = stream.write_all(&[0; 64]).await {
                break e;
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed().as_secs(), 30);
        drop(client);

        let (mut client, server) = tokio::io::duplex(64);
        let mut stream = WriteDeadline::new(server, Duration::from_secs(30));
        let reader = tokio::spawn(async move {
            let mut buf = [0; 64];
            for _ in 0..20 {
                tokio::time::sleep(Duration::from_secs(20)).await;
                tokio::io::AsyncReadExt::read_exact(&mut client, &mut buf).await.unwrap();
            }
        });
        for _ in 0..20 {
            stream.write_all(&[0; 64]).await.expect("a slow reader that reads is kept");
        }
        reader.await.unwrap();
    }
}
