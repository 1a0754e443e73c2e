//! A certificate authority made at run time, for HTTPS receivers on
//! loopback: the delivery client trusts it only through
//! `ClientConfig::extra_roots`, which production settings refuse.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

pub struct TestCa {
    /// The CA's certificate: what the client is told to trust.
    pub root: CertificateDer<'static>,
    /// The same in PEM, for `EXTRA_CA_FILE`.
    pub root_pem: String,
    /// A certificate for `localhost`, signed by the CA, and its key.
    leaf: CertificateDer<'static>,
    leaf_key: Vec<u8>,
    /// What signs the client identities it issues.
    issuer: rcgen::Certificate,
    issuer_key: rcgen::KeyPair,
}

/// A client identity a [`TestCa`] issued, as a customer uploads it.
pub struct ClientIdentity {
    pub certificate_pem: String,
    pub private_key_pem: String,
    /// SHA-256 of the certificate (DER), lowercase hex: what a receiver saw.
    pub fingerprint: String,
}

impl TestCa {
    pub fn generate() -> Self {
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name.push(
            rcgen::DnType::CommonName,
            "webhooks test CA (tests and benchmarks only)",
        );
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
        let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
        let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .expect("leaf params")
            .signed_by(&leaf_key, &ca_cert, &ca_key)
            .expect("leaf certificate");
        Self {
            root: ca_cert.der().clone(),
            root_pem: ca_cert.pem(),
            leaf: leaf.der().clone(),
            leaf_key: leaf_key.serialize_der(),
            issuer: ca_cert,
            issuer_key: ca_key,
        }
    }

    /// A client certificate for `name` (ECDSA P-256, client authentication), signed by the CA.
    pub fn client_identity(&self, name: &str) -> ClientIdentity {
        let key = rcgen::KeyPair::generate().expect("client key");
        let mut params =
            rcgen::CertificateParams::new(vec![name.to_owned()]).expect("client params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params
            .signed_by(&key, &self.issuer, &self.issuer_key)
            .expect("client certificate");
        ClientIdentity {
            certificate_pem: cert.pem(),
            private_key_pem: key.serialize_pem(),
            fingerprint: sha256_hex(cert.der()),
        }
    }

    /// Like [`TestCa::acceptor`], and the handshake requires a client
    /// certificate that `clients` issued.
    pub fn acceptor_requiring_clients_of(&self, clients: &TestCa) -> TlsAcceptor {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(clients.root.clone()).expect("client CA");
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::clone(&provider),
        )
        .build()
        .expect("client verifier");
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.leaf_key.clone()));
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![self.leaf.clone()], key)
            .expect("server certificate");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        TlsAcceptor::from(Arc::new(config))
    }
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl TestCa {
    /// The server side of a receiver: HTTP/1.1 over TLS with the leaf.
    pub fn acceptor(&self) -> TlsAcceptor {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.leaf_key.clone()));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![self.leaf.clone()], key)
            .expect("server certificate");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        TlsAcceptor::from(Arc::new(config))
    }
}

/// A dispatcher on `store`, one container's: its client trusts `ca` (the
/// receivers' certificates) and resolves `localhost` to loopback, with
/// private targets allowed.
pub fn dispatcher_trusting<S: shared::store::Store>(
    ca: &TestCa,
    store: S,
) -> dispatch::Dispatcher<S> {
    let client = shared::delivery::DeliveryClient::new(shared::delivery::ClientConfig {
        allow_private_targets: true,
        dns_overrides: std::collections::HashMap::from([(
            "localhost".to_owned(),
            vec![std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)],
        )]),
        extra_roots: vec![ca.root.clone()],
        ..shared::delivery::ClientConfig::default()
    })
    .expect("client");
    let mut settings = shared::Settings::with_table("unused");
    settings.url_policy.allow_private_targets = true;
    dispatch::Dispatcher::new(store, client, &settings)
}
