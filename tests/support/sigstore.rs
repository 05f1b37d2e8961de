//! A local, offline stand-in for Fulcio and Rekor: a P-384 root and
//! intermediate CA (as Fulcio's public chain is), short-lived P-256 leaf
//! certificates with Fulcio's identity extensions, and a P-256 Rekor key
//! that signs bundle SETs. Real certificates and signatures throughout;
//! only the issuing services are local.

use base64::Engine;
use p256::ecdsa::signature::Signer;
use platform_capstone::gates::keyless::{
    self, KeylessSignature, KeylessTrust, Logged, Matcher, RekorKey,
};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;

pub const ISSUER: &str = "https://token.actions.githubusercontent.com";
pub const SUBJECT: &str =
    "https://github.com/acme/demo/.github/workflows/release.yml@refs/heads/main";

pub struct Ca {
    pub params: CertificateParams,
    pub key: KeyPair,
    pub pem: String,
}

impl Ca {
    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }
}

fn ca_params(name: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name
        .push(DnType::OrganizationName, "sigstore.dev");
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = OffsetDateTime::now_utc() - time::Duration::days(365);
    p.not_after = OffsetDateTime::now_utc() + time::Duration::days(3650);
    p
}

fn new_root(name: &str) -> Ca {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("root key");
    let params = ca_params(name);
    let pem = params.self_signed(&key).expect("root cert").pem();
    Ca { params, key, pem }
}

/// DER UTF8String (Fulcio's v2 extension encoding).
fn der_utf8(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = vec![0x0c];
    if b.len() < 128 {
        out.push(b.len() as u8);
    } else {
        out.extend([0x82, (b.len() >> 8) as u8, b.len() as u8]);
    }
    out.extend_from_slice(b);
    out
}

/// What a leaf certificate says, and when it is valid.
#[derive(Clone)]
pub struct LeafSpec {
    pub issuer: String,
    pub subject: String,
    pub email: bool,
    /// Use the deprecated v1 issuer extension (raw bytes).
    pub issuer_v1: bool,
    pub code_signing: bool,
    /// Validity relative to now, in seconds.
    pub from: i64,
    pub to: i64,
}

impl Default for LeafSpec {
    fn default() -> Self {
        Self {
            issuer: ISSUER.into(),
            subject: SUBJECT.into(),
            email: false,
            issuer_v1: false,
            code_signing: true,
            from: -60,
            to: 540,
        }
    }
}

/// A signing identity: a leaf key and its certificate.
pub struct Leaf {
    pub key: p256::ecdsa::SigningKey,
    pub pem: String,
}

pub struct Sigstore {
    pub root: Ca,
    pub intermediate: Ca,
    pub rekor: p256::ecdsa::SigningKey,
    pub rekor_pem: String,
}

impl Sigstore {
    pub fn new() -> Self {
        use p256::pkcs8::{EncodePublicKey, LineEnding};
        let root = new_root("sigstore");
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("key");
        let mut params = ca_params("sigstore-intermediate");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        let pem = params
            .signed_by(&key, &root.issuer())
            .expect("intermediate")
            .pem();
        let intermediate = Ca { params, key, pem };
        let rekor = p256::ecdsa::SigningKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
        let rekor_pem = rekor
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("pem");
        Self {
            root,
            intermediate,
            rekor,
            rekor_pem,
        }
    }

    /// Another, unrelated CA (for "untrusted certificate").
    pub fn stranger_root() -> Ca {
        new_root("not-sigstore")
    }

    /// Issues a leaf from the intermediate (or from `by`).
    pub fn leaf(&self, spec: &LeafSpec, by: Option<&Ca>) -> Leaf {
        let rc_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("leaf key");
        let key = {
            use p256::pkcs8::DecodePrivateKey;
            p256::ecdsa::SigningKey::from_pkcs8_der(&rc_key.serialize_der()).expect("p256")
        };
        let mut p = CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        let san = spec.subject.as_str().try_into().expect("ia5");
        p.subject_alt_names = vec![if spec.email {
            SanType::Rfc822Name(san)
        } else {
            SanType::URI(san)
        }];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if spec.code_signing {
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        } else {
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        }
        p.custom_extensions = vec![if spec.issuer_v1 {
            CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 4, 1, 57264, 1, 1],
                spec.issuer.as_bytes().to_vec(),
            )
        } else {
            CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 4, 1, 57264, 1, 8],
                der_utf8(&spec.issuer),
            )
        }];
        let now = OffsetDateTime::now_utc();
        p.not_before = now + time::Duration::seconds(spec.from);
        p.not_after = now + time::Duration::seconds(spec.to);
        let ca = by.unwrap_or(&self.intermediate);
        let pem = p.signed_by(&rc_key, &ca.issuer()).expect("leaf").pem();
        Leaf { key, pem }
    }

    /// The chain annotation: intermediate, then root.
    pub fn chain_pem(&self) -> String {
        format!("{}{}", self.intermediate.pem, self.root.pem)
    }

    /// A Rekor bundle logging `signature` by `cert_pem`, integrated `at`
    /// (unix seconds), its SET signed by this Rekor key.
    pub fn bundle(&self, logged: Logged<'_>, signature: &[u8], cert_pem: &str, at: i64) -> String {
        let log_id = RekorKey::from_pem(&self.rekor_pem).expect("rekor").log_id;
        let body = keyless::entry_body(logged, signature, cert_pem);
        keyless::bundle_for(&body, at, 42, &log_id, |m| {
            let sig: p256::ecdsa::Signature = self.rekor.sign(m);
            sig.to_der().as_bytes().to_vec()
        })
    }

    /// The trust entry a policy would configure for this sigstore.
    pub fn trust(&self, issuer: Matcher, subject: Matcher) -> KeylessTrust {
        KeylessTrust {
            name: "release-ci-keyless".into(),
            roots: keyless::parse_certificates(&self.root.pem).expect("root"),
            rekor: Some(RekorKey::from_pem(&self.rekor_pem).expect("rekor")),
            issuer,
            subject,
            require_tlog: true,
        }
    }

    pub fn exact_trust(&self) -> KeylessTrust {
        self.trust(
            Matcher::Exact(ISSUER.into()),
            Matcher::Exact(SUBJECT.into()),
        )
    }
}

/// A complete keyless signature of `payload`, owned.
pub struct Signed {
    pub payload: Vec<u8>,
    pub signature: Vec<u8>,
    pub cert: String,
    pub chain: String,
    pub bundle: Option<String>,
}

impl Signed {
    /// Signs `payload` with `leaf`, logged at now.
    pub fn new(store: &Sigstore, leaf: &Leaf, payload: Vec<u8>) -> Self {
        let sig: p256::ecdsa::Signature = leaf.key.sign(&payload);
        let signature = sig.to_der().as_bytes().to_vec();
        let bundle = store.bundle(
            Logged::HashedRekord { payload: &payload },
            &signature,
            &leaf.pem,
            chrono::Utc::now().timestamp(),
        );
        Self {
            payload,
            signature,
            cert: leaf.pem.clone(),
            chain: store.chain_pem(),
            bundle: Some(bundle),
        }
    }

    pub fn view(&self) -> KeylessSignature<'_> {
        KeylessSignature {
            signed: &self.payload,
            signature: &self.signature,
            certificate_pem: &self.cert,
            chain_pem: Some(&self.chain),
            bundle_json: self.bundle.as_deref(),
            logged: Logged::HashedRekord {
                payload: &self.payload,
            },
        }
    }

    /// The registry annotations cosign writes for it.
    pub fn annotations(&self) -> std::collections::BTreeMap<String, String> {
        let mut a = std::collections::BTreeMap::from([
            (
                keyless::CERTIFICATE_ANNOTATION.to_string(),
                self.cert.clone(),
            ),
            (keyless::CHAIN_ANNOTATION.to_string(), self.chain.clone()),
        ]);
        if let Some(b) = &self.bundle {
            a.insert(keyless::BUNDLE_ANNOTATION.to_string(), b.clone());
        }
        a
    }
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
