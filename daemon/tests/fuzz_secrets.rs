//! Fuzzing of pull-secret parsing: arbitrary bytes and arbitrary docker-config-shaped JSON under both
//! keys (`.dockerconfigjson`, `.dockercfg`) never panic `Keyring::from_secrets` nor the lookups that
//! follow. `PROPTEST_CASES` sets the number of cases (CI: the default; the long run: 1000000).
#![allow(clippy::unwrap_used)]

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kruise_daemon::secrets::Keyring;
use proptest::prelude::*;
use serde_json::{Value, json};

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

fn secret(key: &str, bytes: Vec<u8>) -> Secret {
    let mut s = Secret::default();
    s.metadata.name = Some("fuzz".into());
    s.metadata.namespace = Some("kruise-daemon-config".into());
    s.data = Some([(key.to_string(), ByteString(bytes))].into());
    s
}

/// Registry keys in the shapes people write: with schemes, ports, paths, `/v1/`, odd bytes.
fn location() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9.-]{0,20}(:[0-9]{1,6})?(/[a-z0-9/._-]{0,20})?",
        "(https?://)?[a-zA-Z0-9.:/_-]{0,30}",
        "(https?://)?[a-z.]{1,12}/v[12]/?",
        any::<String>(),
    ]
}

fn entry() -> impl Strategy<Value = Value> {
    (
        prop::option::of(any::<String>()),
        prop::option::of(any::<String>()),
        prop::option::of(prop_oneof!["[A-Za-z0-9+/=]{0,40}", any::<String>()]),
        prop::option::of(any::<i64>()),
    )
        .prop_map(|(u, p, a, n)| {
            let mut e = json!({});
            if let Some(u) = u {
                e["username"] = json!(u);
            }
            if let Some(p) = p {
                e["password"] = json!(p);
            }
            if let Some(a) = a {
                e["auth"] = json!(a);
            }
            if let Some(n) = n {
                e["email"] = json!(n); // wrong type on purpose
            }
            e
        })
}

fn config() -> impl Strategy<Value = BTreeConfig> {
    prop::collection::vec((location(), entry()), 0..4).prop_map(BTreeConfig)
}

#[derive(Debug, Clone)]
struct BTreeConfig(Vec<(String, Value)>);

impl BTreeConfig {
    fn auths(&self) -> Value {
        let mut m = serde_json::Map::new();
        for (k, v) in &self.0 {
            m.insert(k.clone(), v.clone());
        }
        Value::Object(m)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256), cfg in any::<bool>()) {
        let key = if cfg { ".dockercfg" } else { ".dockerconfigjson" };
        let (ring, _errs) = Keyring::from_secrets(&[secret(key, bytes)]);
        let _ = ring.lookup("docker.io/library/nginx");
    }

    #[test]
    fn docker_configs_never_panic(c in config(), repo in location(), legacy in any::<bool>()) {
        let body = if legacy { c.auths() } else { json!({"auths": c.auths()}) };
        let key = if legacy { ".dockercfg" } else { ".dockerconfigjson" };
        let (ring, errs) = Keyring::from_secrets(&[secret(key, body.to_string().into_bytes())]);
        for repo in [repo.as_str(), "docker.io/library/nginx", "127.0.0.1:5051/private/sleeper"] {
            for cred in ring.lookup(repo) {
                let _ = format!("{cred:?}");
            }
        }
        // the errors name secrets and registries, never a password
        for e in errs {
            let msg = e.to_string();
            for (_, v) in &c.0 {
                if let Some(p) = v.get("password").and_then(Value::as_str).filter(|p| p.len() >= 8) {
                    prop_assert!(!msg.contains(p), "error {msg:?} shows a password");
                }
            }
        }
    }
}
