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
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("--tls-cert {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("--tls-cert {}: not a PEM certificate chain", cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("--tls-cert {}: no certificate in the file", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("--tls-key {}: no PEM private key", key.display()))?;
    let mut roots = RootCertStore::empty();
    for c in
        CertificateDer::pem_file_iter(ca).with_context(|| format!("--tls-ca {}", ca.display()))?
    {
        let c = c.with_context(|| format!("--tls-ca {}: not PEM", ca.display()))?;
        roots
            .add(c)
            .with_context(|| format!("--tls-ca {}: unusable CA certificate", ca.display()))?;
    }
    if roots.is_empty() {
        anyhow::bail!("--tls-ca {}: no CA certificate in the file", ca.display());
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .context("building the switch-certificate verifier")?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .context("--tls-cert/--tls-key do not form a usable certificate and key")?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
