//! Webhook serving certificates, managed at runtime as OpenKruise does: a CA and a serving cert
//! generated here, kept in a Secret of the suite's namespace (so every replica serves the same one),
//! renewed before expiry. Externally provided certificates (cert-manager, the e2e cluster's) are
//! read from files instead, and never written.

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, PostParams};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use std::collections::BTreeMap;
use std::net::IpAddr;
use time::{Duration, OffsetDateTime};

/// Secret data keys, as OpenKruise writes them (plus the `kubernetes.io/tls` pair).
pub const CA_CERT_KEY: &str = "ca-cert.pem";
/// CA private key.
pub const CA_KEY_KEY: &str = "ca-key.pem";
/// Serving certificate.
pub const CERT_KEY: &str = "cert.pem";
/// Serving key.
pub const KEY_KEY: &str = "key.pem";
/// Serving certificate, `kubernetes.io/tls` name.
pub const TLS_CRT_KEY: &str = "tls.crt";
/// Serving key, `kubernetes.io/tls` name.
pub const TLS_KEY_KEY: &str = "tls.key";
/// kruise-rs' record of when the serving cert expires (Unix seconds).
pub const NOT_AFTER_KEY: &str = "kruise-rs-not-after";
/// Hosts (DNS names and IPs, comma-separated) the serving cert covers.
pub const HOSTS_KEY: &str = "kruise-rs-hosts";
/// kruise-rs' record of when the CA expires (Unix seconds).
pub const CA_NOT_AFTER_KEY: &str = "kruise-rs-ca-not-after";

/// How long a generated serving cert lives, and how early it is renewed.
pub const SERVING_VALIDITY: Duration = Duration::days(365);
/// How long a generated CA lives.
pub const CA_VALIDITY: Duration = Duration::days(3650);
/// Renew when less than this remains.
pub const RENEW_BEFORE: Duration = Duration::days(30);

/// Errors managing certificates.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Generating or parsing a certificate failed.
    #[error("certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// Reading or writing the Secret failed.
    #[error("webhook certificate Secret: {0}")]
    Kube(#[from] kube::Error),
    /// A certificate file could not be read.
    #[error("read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A CA and a serving certificate signed by it, PEM-encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertBundle {
    /// The CA certificate: the `caBundle` of the webhook configurations.
    pub ca_cert: String,
    /// The CA key (empty for external certificates).
    pub ca_key: String,
    /// The serving certificate.
    pub cert: String,
    /// The serving key.
    pub key: String,
    /// When the serving certificate expires.
    pub not_after: Option<OffsetDateTime>,
    /// When the CA expires (unknown for external certificates and older Secrets).
    pub ca_not_after: Option<OffsetDateTime>,
    /// Hosts the serving certificate covers.
    pub hosts: Vec<String>,
}

/// The CA's parameters: what a certificate it signs names as its issuer.
fn ca_params(now: OffsetDateTime) -> Result<CertificateParams, Error> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "kruise-rs-webhook-ca");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = now - Duration::hours(1);
    ca.not_after = now + CA_VALIDITY;
    Ok(ca)
}

/// Generates a CA (10 years) and a serving certificate (1 year) for `hosts` (DNS names or IPs).
pub fn generate(hosts: &[String], now: OffsetDateTime) -> Result<CertBundle, Error> {
    let ca_key = KeyPair::generate()?;
    let ca = ca_params(now)?;
    let ca_not_after = ca.not_after;
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, &ca_key);
    let mut b = sign_serving(&issuer, hosts, now)?;
    b.ca_cert = ca_cert.pem();
    b.ca_key = ca_key.serialize_pem();
    b.ca_not_after = Some(ca_not_after);
    Ok(b)
}

/// A new serving certificate for `hosts`. The CA of `old` signs it when it outlives the new
/// certificate by [`RENEW_BEFORE`]: the `caBundle` then stays the same, so replicas still serving
/// the old certificate (they pick the new one up within a minute) keep being trusted. Otherwise, or
/// without `old`, a new CA too.
pub fn renew(
    old: Option<&CertBundle>,
    hosts: &[String],
    now: OffsetDateTime,
) -> Result<CertBundle, Error> {
    let reusable = old.and_then(|o| {
        let lasts = o.ca_not_after? - now > SERVING_VALIDITY + RENEW_BEFORE;
        let key = KeyPair::from_pem(&o.ca_key).ok()?;
        lasts.then_some((o, key))
    });
    let Some((old, ca_key)) = reusable else {
        return generate(hosts, now);
    };
    let issuer = Issuer::new(ca_params(now)?, &ca_key);
    let mut b = sign_serving(&issuer, hosts, now)?;
    b.ca_cert = old.ca_cert.clone();
    b.ca_key = old.ca_key.clone();
    b.ca_not_after = old.ca_not_after;
    Ok(b)
}

fn sign_serving(
    issuer: &Issuer<'_, &KeyPair>,
    hosts: &[String],
    now: OffsetDateTime,
) -> Result<CertBundle, Error> {
    let key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(Vec::<String>::new())?;
    leaf.distinguished_name.push(
        DnType::CommonName,
        hosts.first().cloned().unwrap_or_default(),
    );
    leaf.subject_alt_names = hosts
        .iter()
        .map(|h| match h.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => Ok(SanType::DnsName(h.clone().try_into()?)),
        })
        .collect::<Result<_, rcgen::Error>>()?;
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.not_before = now - Duration::hours(1);
    leaf.not_after = now + SERVING_VALIDITY;
    let cert = leaf.signed_by(&key, issuer)?;
    Ok(CertBundle {
        ca_cert: String::new(),
        ca_key: String::new(),
        cert: cert.pem(),
        key: key.serialize_pem(),
        not_after: Some(leaf.not_after),
        ca_not_after: None,
        hosts: hosts.to_vec(),
    })
}

/// Whether `bundle` must be replaced: wrong hosts, unknown expiry, or less than [`RENEW_BEFORE`] left.
pub fn needs_renewal(bundle: &CertBundle, hosts: &[String], now: OffsetDateTime) -> bool {
    let mut want = hosts.to_vec();
    want.sort();
    let mut have = bundle.hosts.clone();
    have.sort();
    match bundle.not_after {
        Some(t) => have != want || t - now < RENEW_BEFORE,
        None => true,
    }
}

fn text(data: &BTreeMap<String, ByteString>, key: &str) -> String {
    data.get(key)
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .unwrap_or_default()
}

fn unix_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(s.parse().ok()?).ok()
}

/// Reads a bundle from Secret data; `None` when a piece is missing.
pub fn from_secret(secret: &Secret) -> Option<CertBundle> {
    let data = secret.data.as_ref()?;
    let b = CertBundle {
        ca_cert: text(data, CA_CERT_KEY),
        ca_key: text(data, CA_KEY_KEY),
        cert: text(data, CERT_KEY),
        key: text(data, KEY_KEY),
        not_after: unix_time(&text(data, NOT_AFTER_KEY)),
        ca_not_after: unix_time(&text(data, CA_NOT_AFTER_KEY)),
        hosts: text(data, HOSTS_KEY)
            .split(',')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
    };
    (!b.ca_cert.is_empty() && !b.cert.is_empty() && !b.key.is_empty()).then_some(b)
}

/// Secret data for a bundle.
pub fn to_secret_data(b: &CertBundle) -> BTreeMap<String, ByteString> {
    let unix = |t: Option<OffsetDateTime>| {
        t.map(|t| t.unix_timestamp().to_string())
            .unwrap_or_default()
    };
    [
        (CA_CERT_KEY, b.ca_cert.clone()),
        (CA_KEY_KEY, b.ca_key.clone()),
        (CERT_KEY, b.cert.clone()),
        (KEY_KEY, b.key.clone()),
        (TLS_CRT_KEY, b.cert.clone()),
        (TLS_KEY_KEY, b.key.clone()),
        (NOT_AFTER_KEY, unix(b.not_after)),
        (CA_NOT_AFTER_KEY, unix(b.ca_not_after)),
        (HOSTS_KEY, b.hosts.join(",")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), ByteString(v.into_bytes())))
    .collect()
}

/// Makes sure Secret `ns/name` holds a valid bundle for `hosts` and returns it. Several replicas may
/// race: creation and replacement are conditional (create, or update at the read resourceVersion),
/// and the loser re-reads the winner's bundle.
pub async fn ensure_secret(
    client: Client,
    ns: &str,
    name: &str,
    hosts: &[String],
) -> Result<CertBundle, Error> {
    let api: Api<Secret> = Api::namespaced(client, ns);
    for _ in 0..5 {
        let now = OffsetDateTime::now_utc();
        let current = api.get_opt(name).await?;
        if let Some(b) = current.as_ref().and_then(from_secret)
            && !needs_renewal(&b, hosts, now)
        {
            return Ok(b);
        }
        let old = current.as_ref().and_then(from_secret);
        let fresh = renew(old.as_ref(), hosts, now)?;
        let res = match current {
            None => {
                let mut s = Secret::default();
                s.metadata.name = Some(name.to_string());
                s.metadata.namespace = Some(ns.to_string());
                s.data = Some(to_secret_data(&fresh));
                api.create(&PostParams::default(), &s).await.map(|_| ())
            }
            Some(mut s) => {
                s.data = Some(to_secret_data(&fresh));
                s.metadata.managed_fields = None;
                api.replace(name, &PostParams::default(), &s)
                    .await
                    .map(|_| ())
            }
        };
        match res {
            Ok(()) => {
                tracing::info!(secret = %format!("{ns}/{name}"), ?hosts, "wrote new webhook certificates");
                return Ok(fresh);
            }
            Err(kube::Error::Api(s)) if s.code == 409 => continue, // another replica won; read theirs
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Kube(kube::Error::Api(
        kube::core::Status::failure("webhook certificate Secret kept changing", "Conflict").boxed(),
    )))
}

/// Reads externally provided certificates.
pub fn from_files(ca: &str, cert: &str, key: &str) -> Result<CertBundle, Error> {
    let read = |p: &str| {
        std::fs::read_to_string(p).map_err(|source| Error::Io {
            path: p.to_string(),
            source,
        })
    };
    Ok(CertBundle {
        ca_cert: read(ca)?,
        ca_key: String::new(),
        cert: read(cert)?,
        key: read(key)?,
        not_after: None,
        ca_not_after: None,
        hosts: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_bundle_round_trips_through_secret_data() {
        let now = OffsetDateTime::now_utc();
        let hosts = vec![
            "kruise-webhook-service.kruise-system.svc".to_string(),
            "127.0.0.1".to_string(),
        ];
        let b = generate(&hosts, now).unwrap();
        assert!(b.ca_cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(b.key.contains("PRIVATE KEY"));
        let s = Secret {
            data: Some(to_secret_data(&b)),
            ..Default::default()
        };
        let back = from_secret(&s).unwrap();
        assert_eq!(back.hosts, hosts);
        assert_eq!(back.cert, b.cert);
        assert!(!needs_renewal(&back, &hosts, now));
    }

    #[test]
    fn renewal_when_expiring_or_hosts_change() {
        let now = OffsetDateTime::now_utc();
        let hosts = vec!["a.svc".to_string()];
        let b = generate(&hosts, now).unwrap();
        assert!(!needs_renewal(&b, &hosts, now + Duration::days(300)));
        assert!(
            needs_renewal(&b, &hosts, now + Duration::days(340)),
            "less than 30 days left"
        );
        assert!(needs_renewal(&b, &["b.svc".to_string()], now));
        let mut unknown = b.clone();
        unknown.not_after = None;
        assert!(needs_renewal(&unknown, &hosts, now));
    }

    /// Whether `b.cert` verifies as a server certificate for `host` against the CA `ca_pem` at `at`.
    fn verifies(ca_pem: &str, b: &CertBundle, host: &str, at: OffsetDateTime) -> bool {
        use rustls::client::danger::ServerCertVerifier;
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
            .unwrap();
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider)
                .build()
                .unwrap();
        let leaf = CertificateDer::from_pem_slice(b.cert.as_bytes()).unwrap();
        verifier
            .verify_server_cert(
                &leaf,
                &[],
                &ServerName::try_from(host.to_string()).unwrap(),
                &[],
                UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                    u64::try_from(at.unix_timestamp()).unwrap(),
                )),
            )
            .is_ok()
    }

    #[test]
    fn renewal_keeps_the_ca_so_the_ca_bundle_does_not_change() {
        let now = OffsetDateTime::now_utc();
        let old = generate(&["a.svc".to_string()], now).unwrap();
        let hosts = vec!["b.svc".to_string(), "127.0.0.1".to_string()];
        let at = now + Duration::days(340);
        let new = renew(Some(&old), &hosts, at).unwrap();
        assert_eq!(new.ca_cert, old.ca_cert, "the caBundle stays");
        assert_eq!(new.ca_not_after, old.ca_not_after);
        assert_ne!(new.cert, old.cert);
        assert!(!needs_renewal(&new, &hosts, now + Duration::days(340)));
        assert!(
            verifies(&old.ca_cert, &new, "b.svc", at),
            "the old CA trusts the renewed cert"
        );
        assert!(verifies(&old.ca_cert, &new, "127.0.0.1", at));
        assert!(
            verifies(&old.ca_cert, &old, "a.svc", at),
            "and still the old one"
        );
        assert!(
            !verifies(&old.ca_cert, &new, "a.svc", at),
            "the renewed cert has the new hosts only"
        );
        // the Secret keeps the CA's expiry
        let back = from_secret(&Secret {
            data: Some(to_secret_data(&new)),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(back.ca_cert, new.ca_cert);
        assert_eq!(
            back.ca_not_after.map(OffsetDateTime::unix_timestamp),
            new.ca_not_after.map(OffsetDateTime::unix_timestamp)
        );
    }

    #[test]
    fn a_ca_near_its_end_or_of_unknown_age_is_replaced() {
        let now = OffsetDateTime::now_utc();
        let hosts = vec!["a.svc".to_string()];
        let old = generate(&hosts, now).unwrap();
        // nine and a half years on, the CA would expire before the next serving cert
        let late = now + Duration::days(3470);
        let new = renew(Some(&old), &hosts, late).unwrap();
        let at = late;
        assert_ne!(new.ca_cert, old.ca_cert);
        assert!(verifies(&new.ca_cert, &new, "a.svc", at));
        // a Secret an older kruise-rs wrote has no CA expiry: new CA
        let mut unknown = old.clone();
        unknown.ca_not_after = None;
        assert_ne!(
            renew(Some(&unknown), &hosts, now).unwrap().ca_cert,
            old.ca_cert
        );
        // no Secret yet: a new CA and a cert it signs
        let fresh = renew(None, &hosts, now).unwrap();
        let at = now;
        assert!(verifies(&fresh.ca_cert, &fresh, "a.svc", at));
        assert!(!verifies(&fresh.ca_cert, &old, "a.svc", at));
    }

    #[tokio::test]
    async fn rustls_serves_the_generated_pair() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let b = generate(&["127.0.0.1".to_string()], OffsetDateTime::now_utc()).unwrap();
        axum_server::tls_rustls::RustlsConfig::from_pem(b.cert.into_bytes(), b.key.into_bytes())
            .await
            .expect("rustls accepts the generated certificate and key");
    }
}
