//! OpenFlow over TLS (`ssl:` controller targets in Open vSwitch), with mutual certificate
//! checks: the switch must present a certificate signed by the configured CA.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

/// Builds a TLS acceptor from PEM files: our certificate chain, its key, and the CA that signs
/// switch certificates.
pub fn acceptor(cert: &Path, key: &Path, ca: &Path) -> Result<tokio_rustls::TlsAcceptor> {
    let config = server_config(cert, key, Some(ca), ["--tls-cert", "--tls-key", "--tls-ca"])?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// The REST API's TLS acceptor (`--api-tls-cert`, `--api-tls-key`): our chain and key, no
/// client certificate (callers present tokens), HTTP/1.1 by ALPN.
pub fn api_acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor> {
    let mut config = server_config(cert, key, None, ["--api-tls-cert", "--api-tls-key", ""])?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// A server configuration from PEM files, naming `flags` (certificate, key, CA) in errors;
/// with `client_ca`, peers must present a certificate it signs.
fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
    flags: [&str; 3],
) -> Result<rustls::ServerConfig> {
    let [cert_flag, key_flag, ca_flag] = flags;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("{cert_flag} {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| {
            format!(
                "{cert_flag} {}: not a PEM certificate chain",
                cert.display()
            )
        })?;
    if certs.is_empty() {
        anyhow::bail!("{cert_flag} {}: no certificate in the file", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("{key_flag} {}: no PEM private key", key.display()))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca)
                .with_context(|| format!("{ca_flag} {}", ca.display()))?
            {
                let c = c.with_context(|| format!("{ca_flag} {}: not PEM", ca.display()))?;
                roots.add(c).with_context(|| {
                    format!("{ca_flag} {}: unusable CA certificate", ca.display())
                })?;
            }
            if roots.is_empty() {
                anyhow::bail!("{ca_flag} {}: no CA certificate in the file", ca.display());
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .context("building the peer-certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    builder
        .with_single_cert(certs, key)
        .with_context(|| format!("{cert_flag}/{key_flag} do not form a usable certificate and key"))
}
