//! HTTPS: the certificate chain and key that `TLS_CERT` and `TLS_KEY` name (PEM files), read
//! again when either file changes, so that a renewed certificate is served without a restart;
//! and the client side of the health probe, which asks this machine's own server.
//!
//! The crypto provider is ring, named explicitly: rustls refuses to guess when a build also
//! enables another one, and ring is what reqwest and lettre use here already.

use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{CryptoProvider, ring, verify_tls12_signature};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, DigitallySignedStruct, SignatureScheme};

/// How often at most a handshake looks whether the files changed: a renewal is served within
/// this, and a busy server reads the two files' metadata no more often.
const CHECK_EVERY: Duration = Duration::from_secs(2);

/// The files named by `TLS_CERT` and `TLS_KEY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsFiles {
    /// The server's certificate first, then any intermediates.
    pub(crate) cert: PathBuf,
    /// The private key of the first certificate.
    pub(crate) key: PathBuf,
}

/// Why the files cannot be served; each message names the variable and says what it needs.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    #[error("cannot read {key} {}: {source}", path.display())]
    Read { key: &'static str, path: PathBuf, source: io::Error },
    #[error(
        "{key} {} holds no {what}: it must be a PEM file with a `-----BEGIN {label}` block",
        path.display()
    )]
    Missing { key: &'static str, path: PathBuf, what: &'static str, label: &'static str },
    #[error("{key} {} is not valid PEM: {reason}", path.display())]
    Pem { key: &'static str, path: PathBuf, reason: String },
    #[error(
        "TLS_KEY does not fit TLS_CERT ({0}): the first certificate in TLS_CERT must be the \
         server's own and TLS_KEY the key it was made for"
    )]
    Mismatch(rustls::Error),
    #[error("TLS cannot be set up: {0}")]
    Setup(rustls::Error),
}

/// What a file looked like when read: a renewal changes its modification time or its length.
type Stamp = Option<(SystemTime, u64)>;

impl TlsFiles {
    fn stamps(&self) -> [Stamp; 2] {
        [&self.cert, &self.key].map(|path| {
            let meta = std::fs::metadata(path).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        })
    }

    fn read(key: &'static str, path: &PathBuf) -> Result<Vec<u8>, TlsError> {
        std::fs::read(path).map_err(|source| TlsError::Read { key, path: path.clone(), source })
    }

    /// The chain and key, checked to belong together.
    fn load(&self, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, TlsError> {
        let pem_error = |key, path: &PathBuf, e: rustls::pki_types::pem::Error| TlsError::Pem {
            key,
            path: path.clone(),
            reason: e.to_string(),
        };
        let certs = Self::read("TLS_CERT", &self.cert)?;
        let chain = CertificateDer::pem_slice_iter(&certs)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem_error("TLS_CERT", &self.cert, e))?;
        if chain.is_empty() {
            return Err(TlsError::Missing {
                key: "TLS_CERT",
                path: self.cert.clone(),
                what: "certificate",
                label: "CERTIFICATE",
            });
        }
        let key = PrivateKeyDer::from_pem_slice(&Self::read("TLS_KEY", &self.key)?).map_err(
            |e| match e {
                rustls::pki_types::pem::Error::NoItemsFound => TlsError::Missing {
                    key: "TLS_KEY",
                    path: self.key.clone(),
                    what: "private key",
                    label: "PRIVATE KEY",
                },
                e => pem_error("TLS_KEY", &self.key, e),
            },
        )?;
        CertifiedKey::from_der(chain, key, provider).map(Arc::new).map_err(TlsError::Mismatch)
    }
}

/// The pair served now, and the files' stamps when it was read.
#[derive(Debug)]
struct Served {
    key: Arc<CertifiedKey>,
    stamps: [Stamp; 2],
    checked: Instant,
}

/// Hands every handshake the pair of the moment, reading the files again when they changed.
#[derive(Debug)]
struct Reloading {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    served: Mutex<Served>,
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let mut served = self.served.lock().unwrap_or_else(PoisonError::into_inner);
        if served.checked.elapsed() >= CHECK_EVERY {
            served.checked = Instant::now();
            // Taken before reading, so that a change made meanwhile is seen at the next check.
            let stamps = self.files.stamps();
            if stamps != served.stamps {
                // Also when the new pair is bad: it is reported once, not at every check.
                served.stamps = stamps;
                match self.files.load(&self.provider) {
                    Ok(key) => {
                        served.key = key;
                        tracing::info!("TLS_CERT or TLS_KEY changed: serving the new certificate");
                    }
                    Err(e) => tracing::warn!(
                        error = %e,
                        "TLS_CERT or TLS_KEY changed but cannot be served; still serving the \
                         previous certificate"
                    ),
                }
            }
        }
        Some(served.key.clone())
    }
}

/// Makes the TLS side of the server's connections.
#[derive(Clone)]
pub(crate) struct Acceptor(tokio_rustls::TlsAcceptor);

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acceptor").finish_non_exhaustive()
    }
}

impl Acceptor {
    /// Reads the files; fails with what to fix when they cannot be served.
    pub(crate) fn load(files: &TlsFiles) -> Result<Self, TlsError> {
        let provider = Arc::new(ring::default_provider());
        let stamps = files.stamps();
        let key = files.load(&provider)?;
        let resolver = Reloading {
            files: files.clone(),
            provider: provider.clone(),
            served: Mutex::new(Served { key, stamps, checked: Instant::now() }),
        };
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Setup)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
        Ok(Self(Arc::new(config).into()))
    }

    /// The handshake on `stream`, within `deadline`: a client that sends nothing holds its
    /// connection slot no longer than one that sends half a header. `None` when it failed,
    /// which is the client's fault and logged only at debug.
    pub(crate) async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: S,
        deadline: Duration,
    ) -> Option<tokio_rustls::server::TlsStream<S>> {
        match tokio::time::timeout(deadline, self.0.accept(stream)).await {
            Ok(Ok(tls)) => Some(tls),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                None
            }
            Err(_) => {
                tracing::debug!("no TLS handshake within the header timeout");
                None
            }
        }
    }
}

/// TLS to this machine's own server at `ip`, for the health probe. Its certificate is not
/// checked: the probe asks whether the server answers on loopback, not who it is, and a
/// certificate for the server's public name would not name 127.0.0.1 anyway.
pub(crate) async fn connect_loopback(
    stream: TcpStream,
    ip: IpAddr,
) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let provider = Arc::new(ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    connector.connect(ServerName::IpAddress(ip.into()), stream).await
}

/// Takes any certificate, but still checks that the server holds its key.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use harness::tls::TestCa;

    fn load(cert: &std::path::Path, key: &std::path::Path) -> Result<Acceptor, TlsError> {
        Acceptor::load(&TlsFiles { cert: cert.to_owned(), key: key.to_owned() })
    }

    #[test]
    fn each_unusable_pair_is_refused_with_what_to_fix() {
        let ca = TestCa::new("unit test CA");
        let (one, two) = (ca.issue(), ca.issue());
        assert!(load(&one.cert, &one.key).is_ok());

        let missing = one.cert.with_file_name("absent.pem");
        let err = load(&missing, &one.key).unwrap_err().to_string();
        assert!(err.starts_with("cannot read TLS_CERT") && err.contains("absent.pem"), "{err}");
        let err = load(&one.key, &one.key).unwrap_err().to_string();
        assert!(err.starts_with("TLS_CERT") && err.contains("no certificate"), "{err}");
        let err = load(&one.cert, &one.cert).unwrap_err().to_string();
        assert!(err.starts_with("TLS_KEY") && err.contains("no private key"), "{err}");
        let err = load(&one.cert, &two.key).unwrap_err().to_string();
        assert!(err.starts_with("TLS_KEY does not fit TLS_CERT"), "{err}");
        let garbage = one.cert.with_file_name("garbage.pem");
        std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nnot base64!\n").unwrap();
        let err = load(&garbage, &one.key).unwrap_err().to_string();
        assert!(err.starts_with("TLS_CERT") && err.contains("not valid PEM"), "{err}");
    }
}
