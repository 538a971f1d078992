//! rustls configurations: the client-facing acceptor and the upstream connector
//! for each sslmode. Only the ring provider is used.

use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

use crate::config::{SslMode, TlsFiles};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let certs = rustls_pemfile::certs(&mut BufReader::new(f))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate found", path.display()));
    }
    Ok(certs)
}

/// Builds the TLS server configuration from a certificate chain and key, and
/// returns with it the tls-server-end-point channel-binding data of the leaf
/// certificate (RFC 5929: its hash, SHA-256 unless it is signed with SHA-384
/// or SHA-512).
pub fn server_config(files: &TlsFiles) -> Result<(Arc<ServerConfig>, Vec<u8>), String> {
    let certs = read_certs(&files.cert)?;
    let end_point = end_point_hash(certs[0].as_ref());
    let f = std::fs::File::open(&files.key).map_err(|e| format!("{}: {e}", files.key.display()))?;
    let key = rustls_pemfile::private_key(&mut BufReader::new(f))
        .map_err(|e| format!("{}: {e}", files.key.display()))?
        .ok_or_else(|| format!("{}: no PEM private key found", files.key.display()))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("{}: {e}", files.cert.display()))?;
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok((Arc::new(config), end_point))
}

/// The tls-server-end-point hash of a DER certificate.
pub fn end_point_hash(der: &[u8]) -> Vec<u8> {
    use ring::digest::{digest, SHA256, SHA384, SHA512};
    // Signature algorithm OIDs (DER): sha384/sha512 with RSA, ECDSA with SHA-384/512.
    const SHA384_OIDS: [&[u8]; 2] = [
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c],
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03],
    ];
    const SHA512_OIDS: [&[u8]; 2] = [
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d],
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04],
    ];
    let has = |oids: &[&[u8]]| oids.iter().any(|o| memchr::memmem::find(der, o).is_some());
    let alg = if has(&SHA512_OIDS) {
        &SHA512
    } else if has(&SHA384_OIDS) {
        &SHA384
    } else {
        &SHA256
    };
    digest(alg, der).as_ref().to_vec()
}

/// Builds the upstream TLS configuration for a database, or `None` for
/// sslmode=disable.
pub fn client_config(
    mode: SslMode,
    ca_file: Option<&Path>,
) -> Result<Option<Arc<ClientConfig>>, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let roots = || -> Result<Arc<RootCertStore>, String> {
        let mut roots = RootCertStore::empty();
        let path = ca_file.ok_or("ca_file is required")?;
        for c in read_certs(path)? {
            roots
                .add(c)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(Arc::new(roots))
    };
    let config = match mode {
        SslMode::Disable => return Ok(None),
        SslMode::Prefer | SslMode::Require | SslMode::VerifyCa => {
            let chain = match mode {
                SslMode::VerifyCa => Some(
                    WebPkiServerVerifier::builder_with_provider(roots()?, provider())
                        .build()
                        .map_err(|e| e.to_string())?,
                ),
                _ => None,
            };
            let relaxed = Relaxed {
                chain,
                provider: provider(),
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(relaxed))
                .with_no_client_auth()
        }
        SslMode::VerifyFull => builder
            .with_root_certificates(roots()?)
            .with_no_client_auth(),
    };
    Ok(Some(Arc::new(config)))
}

/// The relaxed sslmodes, as libpq has them: `prefer`/`require` encrypt without
/// checking the certificate (`chain` is `None`); `verify-ca` checks that the
/// chain leads to the CA but not the host name. Handshake signatures are
/// always checked.
#[derive(Debug)]
struct Relaxed {
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Relaxed {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
