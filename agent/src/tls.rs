//! Whom the agent trusts with its batches: the public roots, and besides them the CAs in
//! `CA_CERT` (a private CA, as most Windows shops run one); and the warning when `API_URL` sends
//! batches in clear text.

// rustls only reads and checks the certificates here; reqwest makes the connections.
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::path::Path;

/// Why a `CA_CERT` file cannot be used; the text follows the key's name in the error line.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// Missing or unreadable.
    #[error(
        "{path}: cannot be read ({source}); give the path of a PEM file with the CA's certificate"
    )]
    Read {
        /// The file named.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// No certificate, or one that cannot be parsed.
    #[error("{path}: {reason}")]
    Content {
        /// The file named.
        path: String,
        /// What is wrong and what to do.
        reason: String,
    },
}

/// The certificates trusted besides the public roots (none by default).
#[derive(Clone, Default)]
pub struct Trust(Vec<reqwest::Certificate>);

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Trust({} extra CA certificates)", self.0.len())
    }
}

impl Trust {
    /// Every certificate in the PEM file at `path`, each checked to be usable as a CA.
    pub fn load(path: &Path) -> Result<Self, CaError> {
        let shown = path.display().to_string();
        let content = |reason: String| CaError::Content { path: shown.clone(), reason };
        let pem =
            std::fs::read(path).map_err(|source| CaError::Read { path: shown.clone(), source })?;
        let ders = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| content(format!("not valid PEM ({e})")))?;
        if ders.is_empty() {
            return Err(content(
                "holds no certificate: it must be a PEM file with one or more \
                 `-----BEGIN CERTIFICATE-----` blocks (a DER .cer file converts with \
                 `certutil -encode ca.cer ca.pem`)"
                    .into(),
            ));
        }
        // What reqwest does with each when it builds the client, so that it cannot fail there.
        let mut roots = RootCertStore::empty();
        let mut trusted = Vec::with_capacity(ders.len());
        for (n, der) in ders.into_iter().enumerate() {
            let unusable = |e: &dyn std::fmt::Display| {
                content(format!("certificate {} cannot be used as a CA ({e})", n + 1))
            };
            trusted.push(reqwest::Certificate::from_der(&der).map_err(|e| unusable(&e))?);
            roots.add(der).map_err(|e| unusable(&e))?;
        }
        Ok(Self(trusted))
    }

    /// `builder` trusting these certificates too.
    pub(crate) fn apply(&self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        self.0.iter().cloned().fold(builder, reqwest::ClientBuilder::add_root_certificate)
    }
}

/// The host that `api_url` reaches in clear text beyond this machine: an `http://` URL to
/// anything but loopback.
pub(crate) fn clear_text_host(api_url: &str) -> Option<String> {
    let url = reqwest::Url::parse(api_url).ok()?;
    if url.scheme() != "http" {
        return None;
    }
    let host = url.host_str()?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => {
            let name = bare.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
    };
    (!loopback).then(|| host.to_owned())
}

/// Warns when batches would cross the network in clear text.
pub(crate) fn warn_if_clear_text(api_url: &str) {
    if let Some(host) = clear_text_host(api_url) {
        tracing::warn!(
            host,
            "API_URL is http:// to another machine: batches and the API token travel in clear \
             text, and anyone on the path can read them or answer in the backend's place (the \
             batch is then deleted unsent); use https:// (with CA_CERT for a private CA)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_beyond_loopback_is_clear_text() {
        for url in [
            "https://backend.example:8000",
            "http://localhost:8000",
            "http://LOCALHOST.:8000/",
            "http://agent.localhost:8000",
            "http://127.0.0.1:8000",
            "http://127.8.9.10",
            "http://[::1]:8000",
        ] {
            assert_eq!(clear_text_host(url), None, "{url}");
        }
        for (url, host) in [
            ("http://backend.corp:8000", "backend.corp"),
            ("http://10.0.0.5:8000", "10.0.0.5"),
            ("http://[fd00::5]:8000", "[fd00::5]"),
            ("http://localhost.corp.example", "localhost.corp.example"),
        ] {
            assert_eq!(clear_text_host(url).as_deref(), Some(host), "{url}");
        }
    }

    #[test]
    fn a_ca_file_without_a_usable_certificate_says_what_to_give() {
        let dir = tempfile::tempdir().unwrap();
        let err = |text: &str| {
            let path = dir.path().join("ca.pem");
            std::fs::write(&path, text).unwrap();
            Trust::load(&path).unwrap_err().to_string()
        };
        let missing = Trust::load(&dir.path().join("absent.pem")).unwrap_err().to_string();
        assert!(missing.contains("absent.pem: cannot be read"), "{missing}");
        let key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(err(key).contains("holds no certificate"), "{}", err(key));
        assert!(err("").contains("holds no certificate"));
        let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(err(garbage).contains("certificate 1 cannot be used as a CA"), "{}", err(garbage));
    }
}
