//! How the proxy checks the upstream's certificate: the platform's roots (default), a CA file
//! (`--upstream-ca`), a pinned SHA-256 fingerprint (`--upstream-fingerprint`), or nothing
//! (`--upstream-insecure`).
//!
//! The SDK has the same modes (`proxmox_sdk::tls`), but its `rustls` configuration is private to
//! it and `proxmox-sdk` dev-depends on this crate, so the few lines are repeated here: a
//! `ring`-based `rustls::ClientConfig` handed to `hyper-rustls`, so no process-wide crypto provider
//! is needed. As in the SDK, a pin replaces chain, expiry and host-name checks, and handshake
//! signatures are verified in every mode.

use std::fmt;
use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

use crate::error::Error;

/// How the upstream's certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum UpstreamTls {
    /// The platform's trusted roots.
    #[default]
    Platform,
    /// The certificates of a PEM document (Proxmox's `/etc/pve/pve-root-ca.pem`), besides the
    /// platform's roots.
    Ca(Vec<u8>),
    /// Exactly the certificate with this SHA-256 fingerprint (`AA:BB:...`, as Proxmox shows it).
    Fingerprint([u8; 32]),
    /// Any certificate (handshake signatures are still checked).
    Insecure,
}

impl UpstreamTls {
    /// Parses a fingerprint: 32 colon-separated hex pairs or 64 hex digits, optionally prefixed
    /// `sha256:`.
    pub fn fingerprint(text: &str) -> Result<UpstreamTls, Error> {
        let invalid = || {
            Error::Tls(format!(
                "invalid SHA-256 fingerprint {text:?}: expected 32 hex pairs separated by colons"
            ))
        };
        let trimmed = text.trim();
        let digits: String = trimmed
            .strip_prefix("sha256:")
            .or_else(|| trimmed.strip_prefix("SHA256:"))
            .unwrap_or(trimmed)
            .chars()
            .filter(|c| *c != ':')
            .collect();
        let bytes = hex::decode(digits).map_err(|_| invalid())?;
        let fingerprint: [u8; 32] = bytes.try_into().map_err(|_| invalid())?;
        Ok(UpstreamTls::Fingerprint(fingerprint))
    }
}

/// The `rustls` configuration for a verification mode.
pub(super) fn client_config(tls: &UpstreamTls) -> Result<rustls::ClientConfig, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match tls {
        UpstreamTls::Platform | UpstreamTls::Ca(_) => {
            let extra_roots = match tls {
                UpstreamTls::Ca(pem) => read_certificates(pem)?,
                _ => Vec::new(),
            };
            let verifier = rustls_platform_verifier::Verifier::new_with_extra_roots(
                extra_roots,
                Arc::clone(&provider),
            )
            .map_err(|error| Error::Tls(format!("loading trusted certificates: {error}")))?;
            Arc::new(verifier)
        }
        UpstreamTls::Fingerprint(expected) => Arc::new(PolicyVerifier {
            pinned: Some(*expected),
            provider: Arc::clone(&provider),
        }),
        UpstreamTls::Insecure => Arc::new(PolicyVerifier {
            pinned: None,
            provider: Arc::clone(&provider),
        }),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| Error::Tls(error.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    // ALPN (`http/1.1`) is set by `hyper-rustls`, which refuses a config that has it already.
    Ok(config)
}

/// Every certificate of a PEM document (at least one).
fn read_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| Error::Tls(format!("reading the upstream CA certificate: {error}")))?;
    if certificates.is_empty() {
        return Err(Error::Tls(
            "the upstream CA file contains no certificate".to_owned(),
        ));
    }
    Ok(certificates)
}

/// `AA:BB:...`.
fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|byte| format!("{byte:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The certificate did not match the pin (`rustls` shows it with `Debug`).
struct FingerprintMismatch {
    expected: [u8; 32],
    actual: [u8; 32],
}

impl fmt::Display for FingerprintMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "certificate fingerprint {} does not match the pinned {}",
            colon_hex(&self.actual),
            colon_hex(&self.expected)
        )
    }
}

impl fmt::Debug for FingerprintMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for FingerprintMismatch {}

/// A pinned certificate (`Some`) or any certificate (`None`); signatures always checked.
#[derive(Debug)]
struct PolicyVerifier {
    pinned: Option<[u8; 32]>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PolicyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(expected) = self.pinned else {
            return Ok(ServerCertVerified::assertion());
        };
        let actual: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if actual == expected {
            return Ok(ServerCertVerified::assertion());
        }
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::Other(rustls::OtherError(Arc::new(FingerprintMismatch {
                expected,
                actual,
            }))),
        ))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            certificate,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            certificate,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_in_both_spellings() {
        let pairs = vec!["AB"; 32].join(":");
        assert_eq!(
            UpstreamTls::fingerprint(&pairs).ok(),
            Some(UpstreamTls::Fingerprint([0xAB; 32]))
        );
        let plain = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(
            UpstreamTls::fingerprint(&plain).ok(),
            Some(UpstreamTls::Fingerprint([0xAB; 32]))
        );
        assert!(UpstreamTls::fingerprint("AB:CD").is_err());
        assert!(UpstreamTls::fingerprint(&"zz".repeat(32)).is_err());
    }
}
