//! Registry credentials from image pull secrets (`.dockerconfigjson` and legacy `.dockercfg`), and
//! the kubelet's rules for which credentials apply to an image (spec `imagepull.md` §4.7): registry
//! host glob, port, path prefix, and the Docker Hub default key. Pure; no API calls here.

use base64::Engine;
use k8s_openapi::api::core::v1::Secret;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Key of a `kubernetes.io/dockerconfigjson` secret.
pub const DOCKER_CONFIG_JSON_KEY: &str = ".dockerconfigjson";
/// Key of a legacy `kubernetes.io/dockercfg` secret.
pub const DOCKER_CFG_KEY: &str = ".dockercfg";
const DEFAULT_REGISTRY_HOST: &str = "index.docker.io";

/// Errors reading a pull secret.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The secret's JSON does not parse.
    #[error("secret {secret}: {key} is not valid JSON: {source}")]
    Json {
        /// `<namespace>/<name>`.
        secret: String,
        /// The data key.
        key: &'static str,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// An `auth` field is not base64 of `user:password`.
    #[error("secret {secret}: invalid auth for {registry}")]
    Auth {
        /// `<namespace>/<name>`.
        secret: String,
        /// The registry key.
        registry: String,
    },
}

/// One username/password pair for a registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// Username.
    pub username: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print passwords.
        write!(f, "Credential({}, ***)", self.username)
    }
}

#[derive(Deserialize, Default)]
struct Entry {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    auth: String,
}

#[derive(Deserialize)]
struct ConfigJson {
    #[serde(default)]
    auths: BTreeMap<String, Entry>,
}

/// Credentials keyed by schemeless registry location (`host[:port][/path]`), most specific first.
#[derive(Clone, Debug, Default)]
pub struct Keyring {
    entries: Vec<(String, Credential)>,
}

fn secret_name(s: &Secret) -> String {
    format!(
        "{}/{}",
        s.metadata.namespace.as_deref().unwrap_or_default(),
        s.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The kubelet's key for a config location: scheme dropped, `/v1/` and `/v2/` mean the host.
fn normalize_location(loc: &str) -> String {
    let rest = loc
        .strip_prefix("https://")
        .or_else(|| loc.strip_prefix("http://"))
        .unwrap_or(loc);
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let path = if path.starts_with("/v1/") || path.starts_with("/v2/") {
        &path[3..]
    } else {
        path
    };
    if path.is_empty() || path == "/" {
        host.to_string()
    } else {
        format!("{host}{path}")
    }
}

impl Keyring {
    /// Reads every usable secret; secrets without docker config keys are skipped, broken ones are
    /// reported in the error list and skipped too (a bad secret never blocks the pull).
    pub fn from_secrets(secrets: &[Secret]) -> (Self, Vec<Error>) {
        let mut ring = Keyring::default();
        let mut errs = Vec::new();
        for s in secrets {
            let data = s.data.clone().unwrap_or_default();
            let parsed = if let Some(raw) = data.get(DOCKER_CONFIG_JSON_KEY) {
                serde_json::from_slice::<ConfigJson>(&raw.0)
                    .map(|c| c.auths)
                    .map_err(|source| Error::Json {
                        secret: secret_name(s),
                        key: DOCKER_CONFIG_JSON_KEY,
                        source,
                    })
            } else if let Some(raw) = data.get(DOCKER_CFG_KEY) {
                serde_json::from_slice::<BTreeMap<String, Entry>>(&raw.0).map_err(|source| {
                    Error::Json {
                        secret: secret_name(s),
                        key: DOCKER_CFG_KEY,
                        source,
                    }
                })
            } else {
                continue;
            };
            match parsed {
                Ok(entries) => {
                    for (loc, e) in entries {
                        match credential(&e) {
                            Some(c) => ring.entries.push((normalize_location(&loc), c)),
                            None => errs.push(Error::Auth {
                                secret: secret_name(s),
                                registry: loc,
                            }),
                        }
                    }
                }
                Err(e) => errs.push(e),
            }
        }
        // Most specific first, as the kubelet does (reverse lexical order of the keys).
        ring.entries.sort_by(|a, b| b.0.cmp(&a.0));
        (ring, errs)
    }

    /// Whether there are no credentials at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Credentials for `repo` (a normalized repository such as `docker.io/library/nginx`), best
    /// match first. Docker Hub images also get the default-registry key (`index.docker.io`).
    pub fn lookup(&self, repo: &str) -> Vec<Credential> {
        let found: Vec<Credential> = self
            .entries
            .iter()
            .filter(|(k, _)| url_matches(k, repo))
            .map(|(_, c)| c.clone())
            .collect();
        if !found.is_empty() {
            return found;
        }
        if is_default_registry(repo) {
            return self
                .entries
                .iter()
                .filter(|(k, _)| k == DEFAULT_REGISTRY_HOST)
                .map(|(_, c)| c.clone())
                .collect();
        }
        Vec::new()
    }
}

fn credential(e: &Entry) -> Option<Credential> {
    if e.auth.is_empty() {
        return Some(Credential {
            username: e.username.clone(),
            password: e.password.clone(),
        });
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(e.auth.trim())
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some(Credential {
        username: u.to_string(),
        password: p.trim_matches('\0').to_string(),
    })
}

fn is_default_registry(repo: &str) -> bool {
    match repo.split_once('/') {
        None => !repo.is_empty(),
        Some((first, _)) => {
            first == "docker.io"
                || first == DEFAULT_REGISTRY_HOST
                || (!first.contains(['.', ':']) && first != "localhost")
        }
    }
}

fn split_host_port(hostport: &str) -> (&str, &str) {
    match hostport.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => (h, p),
        _ => (hostport, ""),
    }
}

/// The kubelet's `URLsMatchStr`: same number of host labels, each matching the glob, same port,
/// and the key's path a prefix of the image's path.
fn url_matches(key: &str, target: &str) -> bool {
    let split = |s: &str| -> (String, String) {
        match s.find('/') {
            Some(i) => (s[..i].to_string(), s[i..].to_string()),
            None => (s.to_string(), String::new()),
        }
    };
    let (khost, kpath) = split(key);
    let (thost, tpath) = split(target);
    let (kh, kp) = split_host_port(&khost);
    let (th, tp) = split_host_port(&thost);
    if kp != tp {
        return false;
    }
    let kparts: Vec<&str> = kh.split('.').collect();
    let tparts: Vec<&str> = th.split('.').collect();
    if kparts.len() != tparts.len() {
        return false;
    }
    if !kparts.iter().zip(&tparts).all(|(g, t)| glob(g, t)) {
        return false;
    }
    tpath.starts_with(&kpath)
}

/// `filepath.Match` for one host label: `*` (any run) and `?` (one char).
fn glob(pattern: &str, s: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = s.chars().collect();
    let (mut pi, mut si) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn secret(name: &str, key: &str, json: &str) -> Secret {
        let mut s = Secret::default();
        s.metadata.name = Some(name.into());
        s.metadata.namespace = Some("kruise-daemon-config".into());
        s.data = Some(BTreeMap::from([(
            key.to_string(),
            ByteString(json.as_bytes().to_vec()),
        )]));
        s
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn users(c: &[Credential]) -> Vec<&str> {
        c.iter().map(|c| c.username.as_str()).collect()
    }

    #[test]
    fn parses_both_formats_and_auth_field() {
        let json = format!(
            r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{}"}},"myreg:5000":{{"username":"u2","password":"p2"}}}}}}"#,
            b64("hub:secret")
        );
        let cfg = r#"{"quay.io":{"username":"q","password":"qp"}}"#;
        let (ring, errs) = Keyring::from_secrets(&[
            secret("a", DOCKER_CONFIG_JSON_KEY, &json),
            secret("b", DOCKER_CFG_KEY, cfg),
            secret("c", "other", "{}"),
        ]);
        assert!(errs.is_empty());
        let hub = ring.lookup("docker.io/library/nginx");
        assert_eq!(
            hub,
            vec![Credential {
                username: "hub".into(),
                password: "secret".into()
            }]
        );
        assert_eq!(users(&ring.lookup("myreg:5000/app")), vec!["u2"]);
        assert!(ring.lookup("myreg:5001/app").is_empty(), "port must match");
        assert_eq!(users(&ring.lookup("docker.io/myreg/app")), vec!["hub"]);
        assert_eq!(users(&ring.lookup("quay.io/org/x")), vec!["q"]);
        assert!(ring.lookup("ghcr.io/x").is_empty());
        assert!(!format!("{:?}", hub[0]).contains("secret"));
    }

    #[test]
    fn matching_rules() {
        let json = r#"{"auths":{
            "*.example.com":{"username":"wild","password":"x"},
            "reg.example.com/team":{"username":"team","password":"x"},
            "reg.example.com":{"username":"host","password":"x"},
            "http://docker.io":{"username":"dio","password":"x"}
        }}"#;
        let (ring, errs) = Keyring::from_secrets(&[secret("a", DOCKER_CONFIG_JSON_KEY, json)]);
        assert!(errs.is_empty());
        assert_eq!(
            users(&ring.lookup("reg.example.com/team/app")),
            vec!["team", "host", "wild"]
        );
        assert_eq!(
            users(&ring.lookup("reg.example.com/other/app")),
            vec!["host", "wild"]
        );
        assert_eq!(users(&ring.lookup("a.example.com/x")), vec!["wild"]);
        assert!(
            ring.lookup("a.b.example.com/x").is_empty(),
            "glob spans one label"
        );
        assert_eq!(users(&ring.lookup("docker.io/library/nginx")), vec!["dio"]);
        assert!(glob("a*c", "abbbc") && glob("?b", "ab") && !glob("a*c", "abd"));
    }

    #[test]
    fn broken_secrets_are_reported_and_skipped() {
        let (ring, errs) = Keyring::from_secrets(&[
            secret("bad", DOCKER_CONFIG_JSON_KEY, "not json"),
            secret(
                "badauth",
                DOCKER_CONFIG_JSON_KEY,
                r#"{"auths":{"r.io":{"auth":"%%%"}}}"#,
            ),
        ]);
        assert!(ring.is_empty());
        assert_eq!(errs.len(), 2);
        assert!(
            errs[1].to_string().contains("invalid auth for r.io"),
            "{}",
            errs[1]
        );
    }
}
