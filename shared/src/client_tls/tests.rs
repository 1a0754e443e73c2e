use super::*;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair,
    SignatureAlgorithm,
};
use rustls::{ClientConnection, RootCertStore, ServerConfig, ServerConnection};
use time::Duration;
use time::macros::datetime;

/// Inside the window of every generated certificate below.
const NOW: OffsetDateTime = datetime!(2031-01-01 0:00 UTC);
const NOT_BEFORE: OffsetDateTime = datetime!(2030-01-01 0:00 UTC);
const NOT_AFTER: OffsetDateTime = datetime!(2032-01-01 0:00 UTC);

// Made once with OpenSSL 3.0 (rcgen cannot make keys this small):
// `openssl req -x509 -newkey rsa:1024 -nodes -days 36500
//  -subj "/CN=weak.example/O=Test"`; valid 2026-12-03 to 2126-11-09.
const RSA_1024_CERT: &str = "-----BEGIN CERTIFICATE-----
MIICKjCCAZOgAwIBAgIUC/Yn0msMxixQ/pJZIdpViZNqRccwDQYJKoZIhvcNAQEL
BQAwJjEVMBMGA1UEAwwMd2Vhay5leGFtcGxlMQ0wCwYDVQQKDARUZXN0MCAXDTI2
MTIwMzE1NDc0OVoYDzIxMjYxMTA5MTU0NzQ5WjAmMRUwEwYDVQQDDAx3ZWFrLmV4
YW1wbGUxDTALBgNVBAoMBFRlc3QwgZ8wDQYJKoZIhvcNAQEBBQADgY0AMIGJAoGB
AKEVCu6lgrJ73cpuWnfV783l/U1CI7a540d6xf6En7WGRpYX6wi6yEsdvnJLyTIE
EcWfid4OvVqnHsxHdA8odn4TKsaGyNfZ1f/o7NFjd/albJHAt9aIUtJY3itQXZ9N
Ct3FcVKF+RvJ3vFo9FByNbE8mlJTkUrQh3M5CaPn+ZrtAgMBAAGjUzBRMB0GA1Ud
DgQWBBRKWcxBUuKHQHyNyCttcjYrlVmXXDAfBgNVHSMEGDAWgBRKWcxBUuKHQHyN
yCttcjYrlVmXXDAPBgNVHRMBAf8EBTADAQH/MA0GCSqGSIb3DQEBCwUAA4GBAGp0
J8M0UtQcBenNoQpJzwgCxSsIPallC9aZRqsIJO6DsKdiY43eGzLDWJ5GF3plb9kP
IjBQt5v+zxsdGBZqm50J49bG0O/phbRjnOFvCslE6Tit4d+dQLklcqU+Yi6edDRR
WpksS9dRUpqSu7yN1bX8HAUF1vjJk1AlSjCNypO1
-----END CERTIFICATE-----
";
const RSA_1024_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIICdwIBADANBgkqhkiG9w0BAQEFAASCAmEwggJdAgEAAoGBAKEVCu6lgrJ73cpu
WnfV783l/U1CI7a540d6xf6En7WGRpYX6wi6yEsdvnJLyTIEEcWfid4OvVqnHsxH
dA8odn4TKsaGyNfZ1f/o7NFjd/albJHAt9aIUtJY3itQXZ9NCt3FcVKF+RvJ3vFo
9FByNbE8mlJTkUrQh3M5CaPn+ZrtAgMBAAECgYEAhp+Dh3ekB28mKayYx1ZxGG+C
hzMjje9FV9Pv7YsBvz/9dit/LsiL5Nty8ysLd1WXVMbE/mTrM/w/7RI6mQCEJf4v
lnhLXxSvDqgHIjZ0+20oTTh34A4svBVpB71XQhYJ/OSrKOGKCfMmWQGzzxxiiKSv
nk/kDhKgH/v4FtsTGbECQQDUdQ9edWAc90venlurRyMurMnBBrQHZ1IA1t5aNfnE
ujaw4U1nkA6o8axaYHlNIRWzgsgCQrRbhSaw4AXAMvKTAkEAwhiAGWq/LHkh+aPo
R3psERVSUxaYA9xdsNPrZXlBhfC6525SuKegzN6hW3gS0hBgpdN0juEnF9HFfhXT
FjYsfwJAKxBfQSJBjR2DP2iR5DHTK87SRlH5g9aphIoJH/f43KtyEoBYlDla/1ud
N+R+MegW4gAMUoj6zeI7aXa/M6ogCQJAP+0z26s11d77mq4qZchjaWj9WVJatQLS
dNgHcr9yHjxAQtMqOZk0M+WrfWXZxQgR3Ov9OsXbS1QS2Mk1Yd5r3wJBAJMTwZO3
qyaclwhmURHk+N7NACm9TEMHzahM+8QdmHypBpDrGd7go4QHqyrXoDMspypksseS
y1lmP69MbjDyILA=
-----END PRIVATE KEY-----
";

// Made once with OpenSSL 3.0: `openssl ecparam -name prime256v1 -genkey`
// (SEC1, after an EC PARAMETERS block, as that command writes it) and
// `openssl req -x509 -days 36500 -subj /CN=sec1.example`; valid
// 2026-12-03 to 2126-11-09. Fingerprint from `openssl x509 -fingerprint -sha256`.
const SEC1_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBhTCCASugAwIBAgIUZo6x/xsdAC3LHiAD5SXY8zlrbRQwCgYIKoZIzj0EAwIw
FzEVMBMGA1UEAwwMc2VjMS5leGFtcGxlMCAXDTI2MTIwMzE1NDc1N1oYDzIxMjYx
MTA5MTU0NzU3WjAXMRUwEwYDVQQDDAxzZWMxLmV4YW1wbGUwWTATBgcqhkjOPQIB
BggqhkjOPQMBBwNCAARM5aMM+oCXFq0llYQNQoP4AWMLA8UDkmA8p5YeYUTcKP2i
bypZkn0h0C5mTVqVgoEYzZla4ITEVo6rK/fQkgeto1MwUTAdBgNVHQ4EFgQUu57A
KFa+EhxF3ZSUAdMt4mexVeQwHwYDVR0jBBgwFoAUu57AKFa+EhxF3ZSUAdMt4mex
VeQwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiEAhe3gRClOcLgE
AeSu4eQOo0j35b1MJxzoenZxAboqLDECIBs0aNr/LRXzXNKZS2wldAmEDPT+KZQh
XsEGkMfyE0BJ
-----END CERTIFICATE-----
";
const SEC1_KEY: &str = "-----BEGIN EC PARAMETERS-----
BggqhkjOPQMBBw==
-----END EC PARAMETERS-----
-----BEGIN EC PRIVATE KEY-----
MHcCAQEEICcuSi2SqC2t16+Oy5zyOYoJNzweBER1+YX2p670zER2oAoGCCqGSM49
AwEHoUQDQgAETOWjDPqAlxatJZWEDUKD+AFjCwPFA5JgPKeWHmFE3Cj9om8qWZJ9
IdAuZk1alYKBGM2ZWuCExFaOqyv30JIHrQ==
-----END EC PRIVATE KEY-----
";
const SEC1_FINGERPRINT: &str = "52e1d1dfe8db594c4393bad3699437102ed93a1221c2237ed366a0bc21988ea9";

// Made once with OpenSSL 3.0: a P-256 key through
// `openssl pkcs8 -topk8 -v2 aes-256-cbc` (throwaway passphrase).
const ENCRYPTED_KEY: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----
MIHsMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAjUCykZZ50OfQICCAAw
DAYIKoZIhvcNAgkFADAdBglghkgBZQMEASoEEG5DsSmMNAbnLEWWV/GqaT0EgZD7
1Ud5Z17GdmygmPcG7QiFcB5fLJ7fRkLMlIHM/CSxftSvROpn8SG8HcAh0IpGAZtN
RsHpNcGATlKOcMGImO0dLkKIqe1cMhvvlfrTegH5y2gkb5/GeDhXqY4WF6Dcy8Mw
ui+Sbp/NIkBlha8JC8CGtiRgUTISv5TSMhL+Kkozjmz7Umz53LStCdY567jUncU=
-----END ENCRYPTED PRIVATE KEY-----
";

/// A certificate and its key, in PEM and DER.
struct Made {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Made {
    fn cert_pem(&self) -> String {
        self.cert.pem()
    }
    fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }
    fn input(&self) -> ClientTlsInput {
        input(&self.cert_pem(), &self.key_pem(), None)
    }
}

fn input(certificate: &str, private_key: &str, ca: Option<&str>) -> ClientTlsInput {
    ClientTlsInput {
        certificate: certificate.to_owned(),
        private_key: private_key.to_owned(),
        ca: ca.map(str::to_owned),
    }
}

fn key_for(alg: &'static SignatureAlgorithm) -> KeyPair {
    KeyPair::generate_for(alg).expect("key pair")
}

/// `CN=client.bank.example, O=Bank`, valid 2030 to 2032.
fn client_params() -> CertificateParams {
    let mut params =
        CertificateParams::new(vec!["client.bank.example".to_owned()]).expect("params");
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "client.bank.example");
    dn.push(DnType::OrganizationName, "Bank");
    params.distinguished_name = dn;
    params.not_before = NOT_BEFORE;
    params.not_after = NOT_AFTER;
    params
}

fn self_signed_with(params: CertificateParams, key: KeyPair) -> Made {
    let cert = params.self_signed(&key).expect("certificate");
    Made { cert, key }
}

fn self_signed(alg: &'static SignatureAlgorithm) -> Made {
    self_signed_with(client_params(), key_for(alg))
}

/// A CA (rcgen's wide default validity, so real handshakes accept it).
fn ca(name: &str) -> Made {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    self_signed_with(params, key_for(&rcgen::PKCS_ECDSA_P256_SHA256))
}

/// A leaf for `name` issued by `issuer`, with rcgen's wide default validity.
fn issued(issuer: &Made, name: &str) -> Made {
    let key = key_for(&rcgen::PKCS_ECDSA_P256_SHA256);
    let mut params = CertificateParams::new(vec![name.to_owned()]).expect("params");
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params
        .signed_by(&key, &issuer.cert, &issuer.key)
        .expect("issued certificate");
    Made { cert, key }
}

fn refused(input: &ClientTlsInput, now: OffsetDateTime) -> ValidationError {
    ClientTls::parse(input, now).expect_err("refused")
}

/// The refusal blames `field` and says `fragment`.
#[track_caller]
fn assert_refused(input: &ClientTlsInput, field: &str, fragment: &str) -> ValidationError {
    let e = refused(input, NOW);
    assert_eq!(e.field, field, "{e}");
    assert!(e.message.contains(fragment), "{e}");
    e
}

/// No line of `pem` (headers included) appears in `text`.
#[track_caller]
fn assert_quotes_no_line_of(text: &str, pem: &str) {
    for line in pem.lines().map(str::trim).filter(|l| !l.is_empty()) {
        assert!(!text.contains(line), "{text:?} quotes {line:?}");
    }
}

fn der_of(pem: &str) -> Vec<Vec<u8>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(|c| c.expect("PEM").as_ref().to_vec())
        .collect()
}

fn pem_block(label: &str, body: &str) -> String {
    format!("-----BEGIN {label}-----\n{body}\n-----END {label}-----\n")
}

#[test]
fn a_p256_identity_parses_with_its_fingerprint_subject_and_expiry() {
    let made = self_signed(&rcgen::PKCS_ECDSA_P256_SHA256);
    let tls = ClientTls::parse(&made.input(), NOW).expect("accepted");
    assert_eq!(tls.fingerprint, sha256_hex(made.cert.der()));
    assert_eq!(tls.fingerprint.len(), 64);
    assert!(
        tls.fingerprint
            .chars()
            .all(|c| matches!(c, '0'..='9' | 'a'..='f'))
    );
    assert_eq!(tls.subject, "CN=client.bank.example, O=Bank");
    assert_eq!(tls.not_after, NOT_AFTER);
    assert_eq!(tls.not_after.offset(), UtcOffset::UTC);
    assert_eq!(tls.ca, None);
    assert_eq!(tls.ca_fingerprint, None);
    // What is stored reads back as the same certificate and key.
    assert_eq!(der_of(&tls.certificate), vec![made.cert.der().to_vec()]);
    let key =
        PrivateKeyDer::from_pem_slice(tls.private_key.expose().as_bytes()).expect("stored key");
    assert_eq!(key.secret_der(), made.key.serialize_der().as_slice());
    assert!(
        tls.private_key
            .expose()
            .starts_with("-----BEGIN PRIVATE KEY-----\n")
    );
    let view = tls.view();
    assert_eq!(view.fingerprint, tls.fingerprint);
    assert_eq!(view.subject, tls.subject);
}

#[test]
fn the_fingerprint_is_the_sha256_of_the_der_as_openssl_prints_it() {
    let tls = ClientTls::parse(&input(SEC1_CERT, SEC1_KEY, None), NOW).expect("accepted");
    assert_eq!(tls.fingerprint, SEC1_FINGERPRINT);
    assert_eq!(tls.subject, "CN=sec1.example");
    assert_eq!(tls.not_after, datetime!(2126-11-09 15:47:57 UTC));
}

#[test]
fn a_sec1_key_after_ec_parameters_parses_and_is_stored_alone() {
    let tls = ClientTls::parse(&input(SEC1_CERT, SEC1_KEY, None), NOW).expect("accepted");
    let stored = tls.private_key.expose();
    assert!(
        stored.starts_with("-----BEGIN EC PRIVATE KEY-----\n"),
        "{stored}"
    );
    assert!(!stored.contains("EC PARAMETERS"));
    assert!(tls.rustls_config(&RootCertStore::empty()).is_ok());
}

#[test]
fn a_p384_identity_parses() {
    let made = self_signed(&rcgen::PKCS_ECDSA_P384_SHA384);
    let tls = ClientTls::parse(&made.input(), NOW).expect("accepted");
    assert_eq!(tls.fingerprint, sha256_hex(made.cert.der()));
    assert_eq!(tls.subject, "CN=client.bank.example, O=Bank");
    assert_eq!(tls.not_after, NOT_AFTER);
}

#[test]
fn an_rsa_2048_identity_parses_in_pkcs8_and_pkcs1() {
    let made = self_signed(&rcgen::PKCS_RSA_SHA256);
    let tls = ClientTls::parse(&made.input(), NOW).expect("PKCS#8 accepted");
    assert_eq!(tls.fingerprint, sha256_hex(made.cert.der()));
    assert_eq!(tls.not_after, NOT_AFTER);

    // PKCS#1 is the OCTET STRING inside the PKCS#8 PrivateKeyInfo.
    let pkcs8 = made.key.serialize_der();
    let (_, info) = x509_parser::der_parser::parse_der(&pkcs8).expect("PrivateKeyInfo");
    let fields = info.as_sequence().expect("SEQUENCE");
    let pkcs1 = fields[2].as_slice().expect("OCTET STRING");
    let mut pkcs1_pem = String::new();
    encode_pem(&mut pkcs1_pem, "RSA PRIVATE KEY", pkcs1);
    let tls =
        ClientTls::parse(&input(&made.cert_pem(), &pkcs1_pem, None), NOW).expect("PKCS#1 accepted");
    assert!(
        tls.private_key
            .expose()
            .starts_with("-----BEGIN RSA PRIVATE KEY-----\n")
    );
    assert!(tls.rustls_config(&RootCertStore::empty()).is_ok());
}

#[test]
fn an_rsa_key_under_2048_bits_is_refused_with_its_size() {
    let e = assert_refused(
        &input(RSA_1024_CERT, RSA_1024_KEY, None),
        CERTIFICATE_FIELD,
        "an RSA key of 1024 bits; RSA keys must have at least 2048 bits",
    );
    assert_quotes_no_line_of(&e.to_string(), RSA_1024_KEY);
}

#[test]
fn ed25519_and_p521_are_refused_by_name() {
    let ed = self_signed(&rcgen::PKCS_ED25519);
    assert_refused(
        &ed.input(),
        CERTIFICATE_FIELD,
        "Ed25519 keys are not accepted: use RSA (2048 bits or more) or ECDSA P-256/P-384",
    );
    let p521 = self_signed(&rcgen::PKCS_ECDSA_P521_SHA512);
    assert_refused(
        &p521.input(),
        CERTIFICATE_FIELD,
        "ECDSA P-521 keys are not accepted: use RSA (2048 bits or more) or ECDSA P-256/P-384",
    );
}

#[test]
fn an_expired_certificate_is_refused_naming_the_date() {
    let made = self_signed(&rcgen::PKCS_ECDSA_P256_SHA256);
    // Valid up to the last second; `not_after` itself is already too late.
    assert!(ClientTls::parse(&made.input(), NOT_AFTER - Duration::seconds(1)).is_ok());
    for now in [NOT_AFTER, NOT_AFTER + Duration::days(400)] {
        let e = refused(&made.input(), now);
        assert_eq!(e.field, CERTIFICATE_FIELD);
        assert!(e.message.contains("expired at 2032-01-01T00:00:00Z"), "{e}");
    }
}

#[test]
fn a_certificate_not_valid_yet_is_refused_naming_the_date() {
    let made = self_signed(&rcgen::PKCS_ECDSA_P256_SHA256);
    assert!(ClientTls::parse(&made.input(), NOT_BEFORE).is_ok());
    let e = refused(&made.input(), NOT_BEFORE - Duration::seconds(1));
    assert_eq!(e.field, CERTIFICATE_FIELD);
    assert!(e.message.contains("not valid yet"), "{e}");
    assert!(e.message.contains("2030-01-01T00:00:00Z"), "{e}");
}

#[test]
fn a_key_from_another_pair_is_refused() {
    let made = self_signed(&rcgen::PKCS_ECDSA_P256_SHA256);
    let other = key_for(&rcgen::PKCS_ECDSA_P256_SHA256).serialize_pem();
    let e = assert_refused(
        &input(&made.cert_pem(), &other, None),
        PRIVATE_KEY_FIELD,
        "does not match the certificate's public key",
    );
    assert_quotes_no_line_of(&e.to_string(), &other);

    // A key of another type altogether.
    let rsa = key_for(&rcgen::PKCS_RSA_SHA256).serialize_pem();
    assert_refused(
        &input(&made.cert_pem(), &rsa, None),
        PRIVATE_KEY_FIELD,
        "does not match the certificate's public key",
    );
}

#[test]
fn the_proof_of_possession_tells_a_matching_key_from_another() {
    // The fallback for keys whose public half the provider cannot
    // derive; aws-lc-rs always can, so it is exercised directly.
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let load = |key: &KeyPair| {
        let der = PrivateKeyDer::try_from(key.serialize_der()).expect("PKCS#8");
        provider.key_provider.load_private_key(der).expect("loads")
    };
    for (alg, kind) in [
        (&rcgen::PKCS_ECDSA_P256_SHA256, LeafKey::EcdsaP256),
        (&rcgen::PKCS_ECDSA_P384_SHA384, LeafKey::EcdsaP384),
        (&rcgen::PKCS_RSA_SHA256, LeafKey::Rsa),
    ] {
        let made = self_signed(alg);
        let (_, leaf) = X509Certificate::from_der(made.cert.der()).expect("leaf");
        let public_key = leaf.public_key().subject_public_key.data.as_ref();
        assert!(proves_possession(
            load(&made.key).as_ref(),
            kind,
            public_key
        ));
        let other = key_for(alg);
        assert!(!proves_possession(load(&other).as_ref(), kind, public_key));
    }
    let ec = self_signed(&rcgen::PKCS_ECDSA_P256_SHA256);
    let (_, leaf) = X509Certificate::from_der(ec.cert.der()).expect("leaf");
    let rsa = key_for(&rcgen::PKCS_RSA_SHA256);
    assert!(!proves_possession(
        load(&rsa).as_ref(),
        LeafKey::EcdsaP256,
        leaf.public_key().subject_public_key.data.as_ref()
    ));
}

#[test]
fn an_encrypted_key_is_refused() {
    let made = self_signed(&rcgen::PKCS_ECDSA_P256_SHA256);
    let e = assert_refused(
        &input(&made.cert_pem(), ENCRYPTED_KEY, None),
        PRIVATE_KEY_FIELD,
        "must be unencrypted",
    );
    assert_quotes_no_line_of(&e.to_string(), ENCRYPTED_KEY);

    // Traditional OpenSSL encryption: the usual label, with headers.
    let legacy = "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\
                  DEK-Info: AES-128-CBC,00112233445566778899AABBCCDDEEFF\n\n\
                  MHcCAQEEICcuSi2SqC2t16+Oy5zyOYoJNzweBER1+YX2p670zER2oAoGCCqGSM49\n\
                  -----END EC PRIVATE KEY-----\n";
    assert_refused(
        &input(&made.cert_pem(), legacy, None),
        PRIVATE_KEY_FIELD,
        "must be unencrypted",
    );
}

#[test]
fn a_bad_certificate_field_is_refused_with_the_field() {
    let made = self_signed(&rcgen::PKCS_ECDSA_P256_SHA256);
    let key = made.key_pem();
    let cert = made.cert_pem();
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "is empty"),
        (" \n\t ".into(), "is empty"),
        ("hello".into(), "contains no PEM block"),
        (
            pem_block("CERTIFICATE", "!!!!"),
            "base64 content is damaged",
        ),
        (
            pem_block("CERTIFICATE", "AAAA"),
            "is not a valid X.509 certificate",
        ),
        (
            "-----BEGIN CERTIFICATE-----\nAAAA\n".into(),
            "a block has no -----END line",
        ),
        (
            "-----BEGIN CERTIFICATE----\nAAAA\n-----END CERTIFICATE-----".into(),
            "a -----BEGIN line is malformed",
        ),
        (
            pem_block("PUBLIC KEY", "AAAA"),
            "contains a PUBLIC KEY block",
        ),
        (
            pem_block("SOMETHING ELSE", "AAAA"),
            "a PEM block of an unrecognised type",
        ),
        (
            format!("{cert}{}", pem_block("X509 CRL", "AAAA")),
            "X509 CRL",
        ),
        (
            cert.repeat(6),
            "contains 6 certificates; at most 5 are accepted",
        ),
        (
            format!("{cert}{}", "x".repeat(MAX_CERTIFICATE_PEM_BYTES)),
            "at most 16384 are accepted",
        ),
        (key.clone(), "contains a private key"),
    ];
    for (certificate, fragment) in cases {
        let e = assert_refused(
            &input(&certificate, &key, None),
            CERTIFICATE_FIELD,
            fragment,
        );
        assert_quotes_no_line_of(&e.to_string(), &key);
    }
}

#[test]
fn a_chain_of_up_to_five_is_accepted_leaf_first() {
    let issuer = ca("Bank Issuing CA");
    let leaf = issued(&issuer, "client.bank.example");
    let chain = format!("{}{}", leaf.cert_pem(), issuer.cert_pem());
    let tls = ClientTls::parse(&input(&chain, &leaf.key_pem(), None), NOW).expect("chain");
    assert_eq!(tls.fingerprint, sha256_hex(leaf.cert.der()));
    assert_eq!(tls.subject, "CN=client.bank.example");
    assert_eq!(
        der_of(&tls.certificate),
        vec![leaf.cert.der().to_vec(), issuer.cert.der().to_vec()]
    );

    let five = format!("{}{}", leaf.cert_pem(), issuer.cert_pem().repeat(4));
    assert!(ClientTls::parse(&input(&five, &leaf.key_pem(), None), NOW).is_ok());

    // The leaf must come first: the key does not match the CA.
    let reversed = format!("{}{}", issuer.cert_pem(), leaf.cert_pem());
    assert_refused(
        &input(&reversed, &leaf.key_pem(), None),
        PRIVATE_KEY_FIELD,
        "does not match",
    );
}

#[test]
fn explanatory_text_and_crlf_are_accepted_and_dropped() {
    let made = self_signed(&rcgen::PKCS_ECDSA_P256_SHA256);
    let certificate = format!(
        "subject=CN = client.bank.example\r\n{}\r\n",
        made.cert_pem().replace('\n', "\r\n")
    );
    let private_key = format!("\n\n{}  \n", made.key_pem().replace('\n', "\r\n"));
    let tls = ClientTls::parse(&input(&certificate, &private_key, None), NOW).expect("accepted");
    assert!(tls.certificate.starts_with("-----BEGIN CERTIFICATE-----\n"));
    assert!(!tls.certificate.contains('\r'));
    assert!(tls.certificate.lines().all(|l| l.len() <= 64));
    assert_eq!(der_of(&tls.certificate), vec![made.cert.der().to_vec()]);
}

#[test]
fn a_bad_private_key_field_is_refused_with_the_field() {
    let made = self_signed(&rcgen::PKCS_ECDSA_P256_SHA256);
    let key = made.key_pem();
    let cert = made.cert_pem();
    let body: String = key
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .join("\n");
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "is empty"),
        ("   ".into(), "is empty"),
        ("hello".into(), "contains no private key"),
        (body.clone(), "contains no private key"),
        (
            pem_block("EC PARAMETERS", "BggqhkjOPQMBBw=="),
            "contains no private key",
        ),
        (
            format!("{key}{key}"),
            "contains 2 private keys; exactly one is expected",
        ),
        (cert.clone(), "contains a certificate"),
        (format!("{cert}{key}"), "contains a certificate"),
        (pem_block("PUBLIC KEY", "AAAA"), "contains a public key"),
        (pem_block("OPENSSH PRIVATE KEY", "AAAA"), "OpenSSH format"),
        (pem_block("SOMETHING ELSE", "AAAA"), "not a private key"),
        (
            key.replace("-----END PRIVATE KEY-----", ""),
            "a block has no -----END line",
        ),
        (
            pem_block("PRIVATE KEY", &format!("{body}\n!!!!")),
            "base64 content is damaged",
        ),
        (
            pem_block("PRIVATE KEY", "AAAA"),
            "cannot be loaded as a private key",
        ),
        (
            format!("{key}{}", " ".repeat(MAX_PRIVATE_KEY_PEM_BYTES)),
            "at most 8192 are accepted",
        ),
    ];
    for (private_key, fragment) in cases {
        let e = assert_refused(
            &input(&cert, &private_key, None),
            PRIVATE_KEY_FIELD,
            fragment,
        );
        assert_quotes_no_line_of(&e.to_string(), &key);
        assert_quotes_no_line_of(&e.to_string(), &private_key);
    }
}

#[test]
fn errors_never_quote_the_private_key() {
    let made = self_signed(&rcgen::PKCS_ECDSA_P256_SHA256);
    let key = made.key_pem();
    let cert = made.cert_pem();
    let other = key_for(&rcgen::PKCS_ECDSA_P256_SHA256).serialize_pem();
    let mut damaged = key.clone();
    damaged.insert(key.find('\n').expect("header line") + 1, '*');
    let inputs = [
        input(&key, &key, None),
        input(&cert, &other, None),
        input(&cert, &damaged, None),
        input(&cert, &format!("{key}{key}"), None),
        input(
            &cert,
            &key.replace("PRIVATE KEY", "ENCRYPTED PRIVATE KEY"),
            None,
        ),
        input(&cert, &key, Some(&key)),
        input(&cert, &key, Some(&format!("{cert}{key}"))),
        input(&format!("{cert}{key}"), &key, None),
    ];
    for input in &inputs {
        let e = refused(input, NOW);
        for text in [e.to_string(), format!("{e:?}")] {
            assert_quotes_no_line_of(&text, &key);
            assert_quotes_no_line_of(&text, &other);
            assert_quotes_no_line_of(&text, &damaged);
        }
    }
}

#[test]
fn a_ca_is_checked_and_fingerprinted() {
    let issuer = ca("Bank Server CA");
    let made = self_signed(&rcgen::PKCS_ECDSA_P256_SHA256);
    let tls = ClientTls::parse(
        &input(&made.cert_pem(), &made.key_pem(), Some(&issuer.cert_pem())),
        NOW,
    )
    .expect("accepted");
    assert_eq!(tls.ca_fingerprint, Some(sha256_hex(issuer.cert.der())));
    assert_eq!(
        tls.ca.as_deref().map(der_of),
        Some(vec![issuer.cert.der().to_vec()])
    );
    assert_eq!(tls.view().ca_fingerprint, tls.ca_fingerprint);

    let second = ca("Bank Server CA 2");
    let both = format!("{}{}", issuer.cert_pem(), second.cert_pem());
    let tls = ClientTls::parse(&input(&made.cert_pem(), &made.key_pem(), Some(&both)), NOW)
        .expect("two CAs");
    assert_eq!(tls.ca_fingerprint, Some(sha256_hex(issuer.cert.der())));
}

#[test]
fn a_bad_ca_is_refused_with_the_field() {
    let made = self_signed(&rcgen::PKCS_ECDSA_P256_SHA256);
    let ca_pem = ca("Bank Server CA").cert_pem();
    let key = made.key_pem();
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "is empty"),
        ("  \n ".into(), "is empty"),
        ("garbage".into(), "contains no PEM block"),
        (
            pem_block("CERTIFICATE", "AAAA"),
            "is not a valid X.509 certificate",
        ),
        (
            format!("{ca_pem}{}", pem_block("CERTIFICATE", "AAAA")),
            "certificate 2 of 2 is not a valid X.509 certificate",
        ),
        (
            pem_block("PUBLIC KEY", "AAAA"),
            "contains a PUBLIC KEY block",
        ),
        (key.clone(), "contains a private key"),
        (ca_pem.repeat(6), "contains 6 certificates"),
        (
            format!("{ca_pem}{}", "x".repeat(MAX_CERTIFICATE_PEM_BYTES)),
            "at most 16384 are accepted",
        ),
    ];
    for (ca, fragment) in cases {
        let e = assert_refused(
            &input(&made.cert_pem(), &key, Some(&ca)),
            CA_FIELD,
            fragment,
        );
        assert_quotes_no_line_of(&e.to_string(), &key);
    }
}

#[test]
fn debug_never_shows_the_key() {
    let made = self_signed(&rcgen::PKCS_ECDSA_P256_SHA256);
    let key = made.key_pem();
    let input = input(&made.cert_pem(), &key, None);
    let tls = ClientTls::parse(&input, NOW).expect("accepted");
    for text in [
        format!("{input:?}"),
        format!("{input:#?}"),
        format!("{tls:?}"),
        format!("{tls:#?}"),
        format!("{:?}", tls.private_key),
        format!("{:?}", tls.view()),
    ] {
        assert_quotes_no_line_of(&text, &key);
        assert_quotes_no_line_of(&text, tls.private_key.expose());
    }
}

#[test]
fn a_stored_identity_round_trips_through_serde() {
    let made = self_signed(&rcgen::PKCS_ECDSA_P256_SHA256);
    let issuer = ca("Bank Server CA");
    let tls = ClientTls::parse(
        &input(&made.cert_pem(), &made.key_pem(), Some(&issuer.cert_pem())),
        NOW,
    )
    .expect("accepted");
    let json = serde_json::to_string(&tls).expect("serialise");
    let back: ClientTls = serde_json::from_str(&json).expect("deserialise");
    assert_eq!(back, tls);
    let view = serde_json::to_string(&tls.view()).expect("view");
    assert_quotes_no_line_of(&view, tls.private_key.expose());
}

#[test]
fn rustls_config_builds_with_and_without_a_ca() {
    let made = self_signed(&rcgen::PKCS_ECDSA_P256_SHA256);
    let issuer = ca("Bank Server CA");
    let public_roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for ca in [None, Some(issuer.cert_pem())] {
        let tls = ClientTls::parse(
            &input(&made.cert_pem(), &made.key_pem(), ca.as_deref()),
            NOW,
        )
        .expect("accepted");
        let config = tls.rustls_config(&public_roots).expect("config");
        assert!(config.client_auth_cert_resolver.has_certs());
        assert!(config.alpn_protocols.is_empty());
    }
}

/// Moves bytes between the two ends until both finish or one fails.
fn handshake(
    client: &mut ClientConnection,
    server: &mut ServerConnection,
) -> Result<(), rustls::Error> {
    for _ in 0..16 {
        let mut wire = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut wire).expect("client writes");
        }
        let mut rest = wire.as_slice();
        while !rest.is_empty() {
            server.read_tls(&mut rest).expect("server reads");
            server.process_new_packets()?;
        }
        let mut wire = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut wire).expect("server writes");
        }
        let mut rest = wire.as_slice();
        while !rest.is_empty() {
            client.read_tls(&mut rest).expect("client reads");
            client.process_new_packets()?;
        }
        if !client.is_handshaking() && !server.is_handshaking() {
            return Ok(());
        }
    }
    Err(rustls::Error::General(
        "the handshake did not finish".into(),
    ))
}

/// A server for `server.bank.example` that requires a client
/// certificate issued by `client_ca`.
fn server(server_leaf: &Made, client_ca: &Made) -> ServerConnection {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut client_roots = RootCertStore::empty();
    client_roots
        .add(client_ca.cert.der().clone())
        .expect("client CA");
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(client_roots),
        Arc::clone(&provider),
    )
    .build()
    .expect("client verifier");
    let key = PrivateKeyDer::try_from(server_leaf.key.serialize_der()).expect("key");
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![server_leaf.cert.der().clone()], key)
        .expect("server config");
    ServerConnection::new(Arc::new(config)).expect("server")
}

fn client(tls: &ClientTls, default_roots: &RootCertStore) -> ClientConnection {
    let config = tls.rustls_config(default_roots).expect("config");
    let name = rustls::pki_types::ServerName::try_from("server.bank.example").expect("name");
    ClientConnection::new(Arc::new(config), name).expect("client")
}

#[test]
fn the_config_presents_the_identity_and_pins_the_ca() {
    let server_ca = ca("Bank Server CA");
    let server_leaf = issued(&server_ca, "server.bank.example");
    let client_ca = ca("Bank Client CA");
    let client_leaf = issued(&client_ca, "client.bank.example");
    let public_roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };

    // Pinned to the server's CA: the server sees the client's leaf.
    let pinned = ClientTls::parse(
        &input(
            &client_leaf.cert_pem(),
            &client_leaf.key_pem(),
            Some(&server_ca.cert_pem()),
        ),
        NOW,
    )
    .expect("identity");
    let mut s = server(&server_leaf, &client_ca);
    handshake(&mut client(&pinned, &public_roots), &mut s).expect("mutual TLS");
    let presented = s.peer_certificates().expect("client certificate");
    assert_eq!(presented[0].as_ref(), client_leaf.cert.der().as_ref());

    // Pinned to another CA: the default roots, which do trust the
    // server, are not consulted.
    let mut server_trusted = RootCertStore::empty();
    server_trusted
        .add(server_ca.cert.der().clone())
        .expect("server CA");
    let elsewhere = ClientTls::parse(
        &input(
            &client_leaf.cert_pem(),
            &client_leaf.key_pem(),
            Some(&ca("Another CA").cert_pem()),
        ),
        NOW,
    )
    .expect("identity");
    let mut s = server(&server_leaf, &client_ca);
    assert!(handshake(&mut client(&elsewhere, &server_trusted), &mut s).is_err());

    // No CA: the default roots decide.
    let unpinned = ClientTls::parse(
        &input(&client_leaf.cert_pem(), &client_leaf.key_pem(), None),
        NOW,
    )
    .expect("identity");
    let mut s = server(&server_leaf, &client_ca);
    handshake(&mut client(&unpinned, &server_trusted), &mut s).expect("default roots");
    let mut s = server(&server_leaf, &client_ca);
    assert!(handshake(&mut client(&unpinned, &public_roots), &mut s).is_err());
}

#[test]
fn reads_warn_of_a_certificate_near_or_past_its_expiry() {
    let made = self_signed(&rcgen::PKCS_ECDSA_P256_SHA256);
    let tls = ClientTls::parse(&made.input(), NOW).expect("accepted");
    let before = |d: time::Duration| tls.warning(NOT_AFTER - d);
    assert_eq!(before(EXPIRY_NOTICE + time::Duration::seconds(1)), None);
    assert_eq!(before(EXPIRY_NOTICE), Some(EXPIRING_WARNING));
    assert_eq!(before(time::Duration::seconds(1)), Some(EXPIRING_WARNING));
    assert_eq!(tls.warning(NOT_AFTER), Some(EXPIRED_WARNING));
}
