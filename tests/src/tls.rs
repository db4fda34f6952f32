//! Certificates made as an operator makes them, with the openssl command-line tool: a private CA,
//! and server certificates for `localhost` and `127.0.0.1` that it signs. Each CA lives in a
//! temporary folder of its own, removed when it is dropped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A certificate authority of the test's own (P-256 keys: quick to make, and what rustls,
/// Python's ssl and browsers all take).
#[derive(Debug)]
pub struct TestCa {
    dir: tempfile::TempDir,
    /// The CA's certificate (PEM): what a client is told to trust.
    pub cert: PathBuf,
    issued: AtomicUsize,
}

/// A server certificate signed by a [`TestCa`] and its private key, both PEM files.
#[derive(Debug, Clone)]
pub struct ServerCert {
    /// The certificate alone (no chain: the CA is what clients hold).
    pub cert: PathBuf,
    /// Its private key, unencrypted (PKCS #8).
    pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (Debian: apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

const EC_KEY: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

impl TestCa {
    /// A new CA whose certificate names `name` as its subject.
    pub fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let subject = format!("/CN={name}");
        let mut args = vec!["req", "-x509", "-nodes", "-days", "2", "-subj", &subject];
        args.extend(EC_KEY);
        args.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
        openssl(dir.path(), &args);
        let cert = dir.path().join("ca.pem");
        Self { dir, cert, issued: AtomicUsize::new(0) }
    }

    /// A new key and a certificate for `localhost` and `127.0.0.1` signed by this CA, in files
    /// of their own.
    pub fn issue(&self) -> ServerCert {
        let n = self.issued.fetch_add(1, Ordering::Relaxed);
        let (key, csr, cert) = (format!("{n}.key"), format!("{n}.csr"), format!("{n}.pem"));
        let dir = self.dir.path();
        let mut args = vec!["req", "-nodes", "-subj", "/CN=localhost"];
        args.extend(EC_KEY);
        args.extend(["-keyout", &key, "-out", &csr]);
        openssl(dir, &args);
        // A leaf that may serve, not sign: a verifier refuses a CA certificate as a server's.
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             extendedKeyUsage=serverAuth\n",
        )
        .expect("write the extensions file");
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "server.ext",
                "-out",
                &cert,
            ],
        );
        ServerCert { cert: dir.join(cert), key: dir.join(key) }
    }

    /// The CA's certificate as PEM text.
    pub fn pem(&self) -> String {
        std::fs::read_to_string(&self.cert).expect("read the CA certificate")
    }
}

impl ServerCert {
    /// Puts this certificate and key where `other`'s are, as a renewal does: each file is
    /// written beside its target and renamed over it, so that a reader never sees half a file.
    pub fn install_over(&self, other: &ServerCert) {
        for (from, to) in [(&self.cert, &other.cert), (&self.key, &other.key)] {
            let staged = to.with_extension("new");
            std::fs::copy(from, &staged).expect("copy the new file");
            std::fs::rename(&staged, to).expect("rename it over the old one");
        }
    }
}

/// A client that trusts `ca` besides the public roots and keeps no idle connection, so that
/// each request makes a handshake of its own (and sees the certificate served now).
pub fn client_trusting(ca: &Path) -> reqwest::Client {
    let pem = std::fs::read(ca).expect("read the CA certificate");
    let root = reqwest::Certificate::from_pem(&pem).expect("a PEM certificate");
    reqwest::Client::builder()
        .add_root_certificate(root)
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("a reqwest client")
}
