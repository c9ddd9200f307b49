//! TLS: the `rustls` configuration behind the client, certificate fingerprints and pinning.
//!
//! The client always hands `reqwest` a preconfigured `rustls::ClientConfig` built on the `ring`
//! provider, so no process-wide crypto provider has to be installed and `aws-lc-rs` is never
//! compiled.
//! Three ways to check the server's certificate exist:
//!
//! - **Default:** the platform's roots plus any [`ClientBuilder::ca_cert`](crate::ClientBuilder::ca_cert)
//!   certificates, checked by `rustls-platform-verifier` (which `reqwest` already depends on).
//!   A fresh Proxmox VE node has a self-signed certificate, so this fails until its CA
//!   (`/etc/pve/pve-root-ca.pem`) is added or a fingerprint is pinned.
//! - **Pinned fingerprint:** [`ClientBuilder::fingerprint`](crate::ClientBuilder::fingerprint)
//!   accepts exactly the end-entity certificate whose SHA-256 matches, as Proxmox's own tools do
//!   (`pvecm`, `proxmox-backup-client`).
//!   Chain, expiry and host name are not checked: the pin replaces them.
//!   Handshake signatures are still verified, so a server that merely copies the certificate
//!   without its private key is rejected.
//! - **No verification:** [`ClientBuilder::danger_accept_invalid_certs`](crate::ClientBuilder::danger_accept_invalid_certs)
//!   accepts any certificate, still verifying handshake signatures, and logs a warning.
//!
//! A pinned fingerprint wins over the other two settings.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The SHA-256 fingerprint of a certificate, written `AA:BB:…` as Proxmox shows it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of_der(certificate_der: &[u8]) -> Self {
        Fingerprint(Sha256::digest(certificate_der).into())
    }

    /// The fingerprint of the first certificate in a PEM document.
    pub fn of_pem(certificate_pem: &[u8]) -> Result<Self> {
        let certificate = CertificateDer::from_pem_slice(certificate_pem)
            .map_err(|error| Error::config_with("could not read a PEM certificate", error))?;
        Ok(Fingerprint::of_der(&certificate))
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl FromStr for Fingerprint {
    type Err = Error;

    /// Parses `AA:BB:…` (32 colon-separated hex pairs, any case) or 64 hex digits, with an
    /// optional `sha256:` prefix.
    fn from_str(text: &str) -> Result<Self> {
        let invalid = || {
            Error::config(format!(
                "invalid SHA-256 fingerprint {text:?}: expected 32 hex pairs separated by colons"
            ))
        };
        let text_trimmed = text.trim();
        let hex_text = text_trimmed
            .strip_prefix("sha256:")
            .or_else(|| text_trimmed.strip_prefix("SHA256:"))
            .unwrap_or(text_trimmed);
        let digits: Vec<u8> = if hex_text.contains(':') {
            let mut digits = Vec::with_capacity(64);
            for pair in hex_text.split(':') {
                if pair.len() != 2 {
                    return Err(invalid());
                }
                digits.extend_from_slice(pair.as_bytes());
            }
            digits
        } else {
            hex_text.as_bytes().to_vec()
        };
        if digits.len() != 64 {
            return Err(invalid());
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
            let high = hex_value(pair[0]).ok_or_else(invalid)?;
            let low = hex_value(pair[1]).ok_or_else(invalid)?;
            *byte = (high << 4) | low;
        }
        Ok(Fingerprint(bytes))
    }
}

/// The value of one hex digit.
fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (byte_idx, byte) in self.0.iter().enumerate() {
            if byte_idx > 0 {
                f.write_str(":")?;
            }
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// How the server's certificate is checked.
#[derive(Clone, Debug)]
pub(crate) enum Verification {
    /// Platform roots plus extra CA certificates.
    Roots {
        /// Extra trusted certificates, DER-encoded.
        extra_roots: Vec<CertificateDer<'static>>,
    },
    /// Exactly one end-entity certificate.
    Pinned(Fingerprint),
    /// Anything goes (signatures are still checked).
    AcceptAny,
}

/// Parses every certificate in a PEM document.
pub(crate) fn parse_pem_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| Error::config_with("could not read a PEM certificate", error))?;
    if certificates.is_empty() {
        return Err(Error::config(
            "the CA certificate PEM contains no certificate",
        ));
    }
    Ok(certificates)
}

/// Builds the `rustls` configuration for a verification mode.
pub(crate) fn client_config(verification: Verification) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match verification {
        Verification::Roots { extra_roots } => {
            match rustls_platform_verifier::Verifier::new_with_extra_roots(
                extra_roots,
                Arc::clone(&provider),
            ) {
                Ok(verifier) => Arc::new(verifier),
                Err(error) => {
                    // Happens on a machine without CA certificates; every certificate is then
                    // untrusted, which is what the handshake will report.
                    tracing::warn!(error = %error, "no trusted CA certificates found; configure ca_cert or fingerprint");
                    Arc::new(PolicyVerifier {
                        policy: CertificatePolicy::NoTrust,
                        provider: Arc::clone(&provider),
                    })
                }
            }
        }
        Verification::Pinned(fingerprint) => Arc::new(PolicyVerifier {
            policy: CertificatePolicy::Pinned(fingerprint),
            provider: Arc::clone(&provider),
        }),
        Verification::AcceptAny => Arc::new(PolicyVerifier {
            policy: CertificatePolicy::AcceptAny,
            provider: Arc::clone(&provider),
        }),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| Error::config_with("could not set up TLS", error))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The certificate did not match the pinned fingerprint.
///
/// `rustls` shows custom errors with `Debug`, so `Debug` prints the readable message too.
struct FingerprintMismatch {
    expected: Fingerprint,
    actual: Fingerprint,
}

impl fmt::Display for FingerprintMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "certificate fingerprint {} does not match the pinned {}",
            self.actual, self.expected
        )
    }
}

impl fmt::Debug for FingerprintMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for FingerprintMismatch {}

/// What [`PolicyVerifier`] accepts as the server's certificate.
#[derive(Debug)]
enum CertificatePolicy {
    /// Exactly the end-entity certificate with this SHA-256 fingerprint.
    Pinned(Fingerprint),
    /// Any certificate (`danger_accept_invalid_certs`).
    AcceptAny,
    /// None: the platform has no trusted roots and nothing else was configured.
    NoTrust,
}

/// A verifier for the policies the platform verifier does not cover. Whatever the certificate
/// policy, handshake signatures are always checked with the provider's algorithms.
#[derive(Debug)]
struct PolicyVerifier {
    policy: CertificatePolicy,
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
        match &self.policy {
            CertificatePolicy::AcceptAny => Ok(ServerCertVerified::assertion()),
            CertificatePolicy::NoTrust => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            )),
            CertificatePolicy::Pinned(expected) => {
                let actual = Fingerprint::of_der(end_entity);
                if actual == *expected {
                    Ok(ServerCertVerified::assertion())
                } else {
                    Err(rustls::Error::InvalidCertificate(
                        rustls::CertificateError::Other(rustls::OtherError(Arc::new(
                            FingerprintMismatch {
                                expected: *expected,
                                actual,
                            },
                        ))),
                    ))
                }
            }
        }
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

    const COLON_FORM: &str = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89";

    fn check(input: &str, expected: Option<&str>) {
        let parsed = input
            .parse::<Fingerprint>()
            .ok()
            .map(|fingerprint| fingerprint.to_string());
        assert_eq!(parsed.as_deref(), expected, "{input:?}");
    }

    #[test]
    fn parses_colon_form() {
        check(COLON_FORM, Some(COLON_FORM));
        check(&COLON_FORM.to_lowercase(), Some(COLON_FORM));
        check(&format!("  {COLON_FORM}\n"), Some(COLON_FORM));
        check(&format!("sha256:{COLON_FORM}"), Some(COLON_FORM));
    }

    #[test]
    fn parses_plain_hex() {
        check(&COLON_FORM.replace(':', ""), Some(COLON_FORM));
    }

    #[test]
    fn rejects_malformed() {
        check("", None);
        check("AB:CD", None);
        check(&COLON_FORM.replacen("AB", "ZZ", 1), None);
        check(&format!("{COLON_FORM}:00"), None);
        check(&COLON_FORM.replacen("AB:", "A:B", 1), None);
        check(&COLON_FORM.replace(':', "-"), None);
    }

    #[test]
    fn error_names_the_input() {
        let error = "nope".parse::<Fingerprint>().expect_err("malformed");
        assert!(error.to_string().contains("\"nope\""), "{error}");
    }

    #[test]
    fn of_der_is_sha256() {
        // SHA-256 of the empty string.
        assert_eq!(
            Fingerprint::of_der(b"").to_string(),
            "E3:B0:C4:42:98:FC:1C:14:9A:FB:F4:C8:99:6F:B9:24:27:AE:41:E4:64:9B:93:4C:A4:95:99:1B:78:52:B8:55"
        );
    }

    #[test]
    fn pinned_verifier_compares_end_entity() {
        let certificate = CertificateDer::from(vec![1u8, 2, 3]);
        let verifier = PolicyVerifier {
            policy: CertificatePolicy::Pinned(Fingerprint::of_der(&[1, 2, 3])),
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        };
        let server_name = ServerName::try_from("pve.example").expect("valid name");
        assert!(
            verifier
                .verify_server_cert(&certificate, &[], &server_name, &[], UnixTime::now())
                .is_ok()
        );
        let other = CertificateDer::from(vec![4u8]);
        let error = verifier
            .verify_server_cert(&other, &[], &server_name, &[], UnixTime::now())
            .expect_err("mismatch");
        assert!(
            error.to_string().contains("does not match the pinned"),
            "{error}"
        );
    }

    #[test]
    fn rejects_pem_without_certificates() {
        assert!(parse_pem_certificates(b"not a pem").is_err());
    }
}
