//! Certificates for TLS tests, made with rcgen (`common::certs`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// A CA made with rcgen (ECDSA P-256, which OpenSSL takes).
pub struct Ca {
    pub pem: String,
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("CA key");
        let cert = p.self_signed(&key).expect("CA certificate");
        Ca {
            pem: cert.pem(),
            cert,
            key,
        }
    }

    /// A leaf certificate for `san` (an IP address or a DNS name), for a TLS server or a
    /// client, signed by this CA: its certificate and key, PEM.
    pub fn leaf_pem(&self, san: &str, client: bool) -> (String, String) {
        use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};
        let mut p = CertificateParams::new(vec![san.to_string()]).expect("leaf params");
        p.distinguished_name.push(DnType::CommonName, san);
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        let key = KeyPair::generate().expect("leaf key");
        let cert = p
            .signed_by(&key, &self.cert, &self.key)
            .expect("sign the leaf");
        (cert.pem(), key.serialize_pem())
    }

    /// [`Ca::leaf_pem`] written to `{file}.pem` and `{file}.key` in `dir`; returns their paths.
    pub fn leaf(&self, dir: &Path, file: &str, san: &str, client: bool) -> (PathBuf, PathBuf) {
        let (cert, key) = self.leaf_pem(san, client);
        let (c, k) = (
            dir.join(format!("{file}.pem")),
            dir.join(format!("{file}.key")),
        );
        std::fs::write(&c, cert).expect("write certificate");
        std::fs::write(&k, key).expect("write key");
        (c, k)
    }
}
