//! A TCP relay in front of a mock server that can drop connections, which wiremock cannot: in
//! `Drop` mode it cuts every open connection and closes each new one as soon as it is accepted.

use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Forward,
    Drop,
}

#[derive(Debug)]
pub(crate) struct Relay {
    pub addr: SocketAddr,
    mode: watch::Sender<Mode>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    pub(crate) async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (mode, watching) = watch::channel(Mode::Forward);
        let task = tokio::spawn(serve(listener, upstream, watching));
        Ok(Self { addr, mode, task })
    }

    pub(crate) fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(listener: TcpListener, upstream: SocketAddr, mode: watch::Receiver<Mode>) {
    while let Ok((mut client, _)) = listener.accept().await {
        if *mode.borrow() == Mode::Drop {
            continue;
        }
        let mut mode = mode.clone();
        tokio::spawn(async move {
            let Ok(mut server) = TcpStream::connect(upstream).await else { return };
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                _ = mode.wait_for(|m| *m == Mode::Drop) => {}
            }
        });
    }
}
