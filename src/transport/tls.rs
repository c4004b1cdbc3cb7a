//! TLS configuration for both sides: the server's certificate (and, for
//! mutual TLS, the CA its agents' certificates must chain to), the agent's
//! trust (web roots, a private CA, or a pinned fingerprint), and how a client
//! certificate names an agent.
use super::TransportError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::path::Path;
use std::sync::Arc;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn load_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| {
            TransportError::Config(format!("cannot read {what} from {}: {e}", path.display()))
        })?;
    if certs.is_empty() {
        return Err(TransportError::Config(format!(
            "{} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TransportError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        TransportError::Config(format!(
            "cannot read a private key from {}: {e}",
            path.display()
        ))
    })
}

fn roots_from(path: &Path) -> Result<rustls::RootCertStore, TransportError> {
    let mut roots = rustls::RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(load_certs(path, "CA certificates")?);
    if added == 0 {
        return Err(TransportError::Config(format!(
            "{} holds no usable CA certificate",
            path.display()
        )));
    }
    Ok(roots)
}

/// Whether `chain`'s end-entity certificate names `agent_id` exactly, as a
/// DNS subject alternative name: how mutual TLS maps a certificate to an
/// agent. Exact means byte for byte: no wildcard (`*.fleet` would otherwise
/// vouch for every agent under it) and no case folding (DNS matching would
/// let `HOST1`'s certificate speak for `host1`). The chain itself was
/// verified by rustls against the client CA during the handshake.
pub fn certificate_names(chain: &[CertificateDer<'_>], agent_id: &str) -> bool {
    let Some(leaf) = chain.first() else {
        return false;
    };
    webpki::EndEntityCert::try_from(leaf)
        .is_ok_and(|cert| cert.valid_dns_names().any(|name| name == agent_id))
}

/// SHA-256 of a certificate, lowercase hex: what `--server-fingerprint` pins.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, cert.as_ref()))
}

/// TLS for the server from PEM files (certificate chain, private key), and
/// with `client_ca`, mutual TLS: every agent must present a certificate
/// issued by that CA.
pub fn server_tls_config(
    cert_pem: &Path,
    key_pem: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<rustls::ServerConfig>, TransportError> {
    let certs = load_certs(cert_pem, "certificates")?;
    let key = load_private_key(key_pem)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TransportError::Tls(e.to_string()))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots_from(ca)?),
                provider(),
            )
            .build()
            .map_err(|e| TransportError::Config(format!("client CA {}: {e}", ca.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder.with_single_cert(certs, key).map_err(|e| {
        TransportError::Config(format!(
            "certificate and key do not form a usable pair: {e}"
        ))
    })?;
    Ok(Arc::new(config))
}

/// How the agent trusts and identifies itself to the server.
#[derive(Clone, Debug, Default)]
pub struct ClientTls<'a> {
    /// Trust only these CA certificates (a private CA) instead of the web roots.
    pub ca_file: Option<&'a Path>,
    /// Present this certificate and key (mutual TLS).
    pub client_cert: Option<(&'a Path, &'a Path)>,
    /// Also require the server's certificate to have this SHA-256 (hex).
    pub server_fingerprint: Option<&'a str>,
}

/// Chain verification as usual, then the pinned fingerprint: a server whose
/// key was swapped (even for one the same CA signed) is refused.
#[derive(Debug)]
struct PinnedServer {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    sha256_hex: String,
}

impl rustls::client::danger::ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let seen = fingerprint(end_entity);
        if seen != self.sha256_hex {
            return Err(rustls::Error::General(format!(
                "server certificate fingerprint {seen} does not match the pinned {} (was the server's key replaced?)",
                self.sha256_hex
            )));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// TLS for the agent: the compiled-in web roots or a private CA, optional
/// client certificate, optional pinned server fingerprint.
pub fn client_tls_config(
    options: &ClientTls<'_>,
) -> Result<Arc<rustls::ClientConfig>, TransportError> {
    let roots = match options.ca_file {
        None => rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        },
        Some(path) => roots_from(path)?,
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TransportError::Tls(e.to_string()))?;
    let builder = match options.server_fingerprint {
        None => builder.with_root_certificates(roots),
        Some(pin) => {
            let sha256_hex = pin.trim().to_ascii_lowercase().replace(':', "");
            if sha256_hex.len() != 64 || !sha256_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(TransportError::Config(format!(
                    "--server-fingerprint {pin:?}: expected the certificate's SHA-256 as 64 hex digits"
                )));
            }
            let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .build()
            .map_err(|e| TransportError::Config(e.to_string()))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedServer { inner, sha256_hex }))
        }
    };
    let config = match options.client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let certs = load_certs(cert, "the client certificate")?;
            let key = load_private_key(key)?;
            builder.with_client_auth_cert(certs, key).map_err(|e| {
                TransportError::Config(format!(
                    "client certificate and key do not form a usable pair: {e}"
                ))
            })?
        }
    };
    Ok(Arc::new(config))
}
