//! Image references the way Docker's `reference.ParseNormalizedNamed` reads them: registry domain,
//! repository path, tag and digest, plus the "familiar" name NodeImage keys its images by.
//! Digests stay distinct from tags so `repo@sha256:…` pulls work (decision 3; OpenKruise #2534).

use std::fmt;

/// Registry of images without a domain.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// Legacy alias of [`DEFAULT_DOMAIN`].
pub const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
/// Repository prefix of official images on the default registry.
pub const OFFICIAL_REPO_PREFIX: &str = "library/";
/// Tag of a reference that names neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";
/// Longest repository name (domain + path) Docker accepts.
pub const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// Why a reference does not parse (Docker's wording where it has one).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// Empty string.
    #[error("repository name must have at least one component")]
    Empty,
    /// Syntax error somewhere.
    #[error("invalid reference format")]
    Format,
    /// Upper case letters in the repository path.
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    Uppercase(String),
    /// The name is longer than [`NAME_TOTAL_LENGTH_MAX`].
    #[error("repository name must not be more than 255 characters")]
    NameTooLong,
    /// A bare 64-hex identifier, which Docker refuses as a name.
    #[error("invalid repository name ({0}), cannot specify 64-byte hexadecimal strings")]
    HexName(String),
    /// A digest that is not `algorithm:hex` of the right length.
    #[error("invalid digest format")]
    Digest,
    /// A tag that does not match `[\w][\w.-]{0,127}`.
    #[error("invalid tag format")]
    Tag,
}

/// A parsed, normalized reference (`nginx` → `docker.io/library/nginx`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    /// Registry host with optional port (`docker.io`, `myreg:5000`).
    pub domain: String,
    /// Repository path inside the registry (`library/nginx`).
    pub path: String,
    /// Tag, if given.
    pub tag: Option<String>,
    /// Digest (`sha256:<hex>`), if given.
    pub digest: Option<String>,
}

impl ImageRef {
    /// Full repository name: `docker.io/library/nginx`.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// Docker's familiar name (no default domain, no `library/`): the NodeImage image key.
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            match self.path.strip_prefix(OFFICIAL_REPO_PREFIX) {
                Some(rest) if !rest.contains('/') => rest.to_string(),
                _ => self.path.clone(),
            }
        } else {
            self.repository()
        }
    }

    /// What goes into a NodeImage tag entry: the digest if pinned, else the tag, else `latest`.
    pub fn tag_or_digest(&self) -> String {
        self.digest
            .clone()
            .or_else(|| self.tag.clone())
            .unwrap_or_else(|| DEFAULT_TAG.to_string())
    }

    /// `(familiar name, tag or digest)`, OpenKruise's `NormalizeImageRefToNameTag` with digests kept.
    pub fn name_tag(&self) -> (String, String) {
        (self.familiar_name(), self.tag_or_digest())
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.repository())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Whether a NodeImage tag entry is a digest (`sha256:<hex>` and friends) rather than a tag. Tags
/// cannot contain `:`, so any colon means digest.
pub fn is_digest(tag: &str) -> bool {
    tag.contains(':')
}

/// The reference to pull for a NodeImage `(name, tag)`: `name:tag`, or `name@digest` for digests.
pub fn join_name_tag(name: &str, tag: &str) -> String {
    if is_digest(tag) {
        format!("{name}@{tag}")
    } else {
        format!("{name}:{tag}")
    }
}

/// Parses and normalizes `s` like Docker's `ParseNormalizedNamed`.
pub fn parse(s: &str) -> Result<ImageRef, ReferenceError> {
    if s.is_empty() {
        return Err(ReferenceError::Empty);
    }
    if is_hex64(s) {
        return Err(ReferenceError::HexName(s.to_string()));
    }
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => {
            check_digest(d)?;
            (r, Some(d.to_string()))
        }
        None => (s, None),
    };
    // A tag is a `:` after the last `/` (a `:` before it is a registry port).
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => {
            let t = &rest[last_slash + i + 1..];
            check_tag(t)?;
            (&rest[..last_slash + i], Some(t.to_string()))
        }
        None => (rest, None),
    };
    if name.is_empty() {
        return Err(ReferenceError::Format);
    }
    let (domain, path) = split_domain(name);
    if path.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(ReferenceError::Uppercase(path));
    }
    check_domain(&domain)?;
    check_path(&path)?;
    if domain.len() + 1 + path.len() > NAME_TOTAL_LENGTH_MAX {
        return Err(ReferenceError::NameTooLong);
    }
    Ok(ImageRef {
        domain,
        path,
        tag,
        digest,
    })
}

/// `(familiar name, tag or digest)` of a reference string; see [`ImageRef::name_tag`].
pub fn name_tag(s: &str) -> Result<(String, String), ReferenceError> {
    parse(s).map(|r| r.name_tag())
}

fn split_domain(name: &str) -> (String, String) {
    let (domain, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.')
                || first.contains(':')
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    };
    let domain = if domain == LEGACY_DEFAULT_DOMAIN {
        DEFAULT_DOMAIN.to_string()
    } else {
        domain
    };
    let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
        format!("{OFFICIAL_REPO_PREFIX}{path}")
    } else {
        path
    };
    (domain, path)
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

fn check_digest(d: &str) -> Result<(), ReferenceError> {
    let (alg, hex) = d.split_once(':').ok_or(ReferenceError::Digest)?;
    let alg_ok = !alg.is_empty()
        && alg.split(['+', '.', '_', '-']).all(|c| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    let want_len = match alg {
        "sha256" => Some(64),
        "sha384" => Some(96),
        "sha512" => Some(128),
        _ => None,
    };
    let hex_ok = hex.len() >= 32
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && want_len.is_none_or(|n| hex.len() == n);
    if alg_ok && hex_ok {
        Ok(())
    } else {
        Err(ReferenceError::Digest)
    }
}

fn check_tag(t: &str) -> Result<(), ReferenceError> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = t.as_bytes();
    match bytes.split_first() {
        Some((&first, rest))
            if word(first)
                && rest.len() <= 127
                && rest.iter().all(|&b| word(b) || b == b'.' || b == b'-') =>
        {
            Ok(())
        }
        _ => Err(ReferenceError::Tag),
    }
}

fn check_domain(domain: &str) -> Result<(), ReferenceError> {
    let (host, port) = match domain.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (domain, None),
    };
    if let Some(p) = port
        && (p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(ReferenceError::Format);
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if host.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(ReferenceError::Format)
    }
}

/// Path components: `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*` separated by `/`.
fn check_path(path: &str) -> Result<(), ReferenceError> {
    for comp in path.split('/') {
        if !path_component_ok(comp) {
            return Err(ReferenceError::Format);
        }
    }
    Ok(())
}

fn path_component_ok(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: `.`, `_`, `__` or any number of `-`.
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn normalizes_like_docker() {
        let cases: &[(&str, &str, &str, &str)] = &[
            // input, repository, familiar name, tag-or-digest
            ("nginx", "docker.io/library/nginx", "nginx", "latest"),
            ("nginx:1.25", "docker.io/library/nginx", "nginx", "1.25"),
            (
                "docker.io/library/nginx:alpine",
                "docker.io/library/nginx",
                "nginx",
                "alpine",
            ),
            (
                "index.docker.io/foo/bar",
                "docker.io/foo/bar",
                "foo/bar",
                "latest",
            ),
            ("foo/bar:v1", "docker.io/foo/bar", "foo/bar", "v1"),
            (
                "registry.k8s.io/pause:3.10",
                "registry.k8s.io/pause",
                "registry.k8s.io/pause",
                "3.10",
            ),
            ("myreg:5000/a/b:c", "myreg:5000/a/b", "myreg:5000/a/b", "c"),
            ("localhost/x", "localhost/x", "localhost/x", "latest"),
            (
                "localhost:5000/x:1",
                "localhost:5000/x",
                "localhost:5000/x",
                "1",
            ),
            (
                "a__b/c-d--e/f.g:tag_1.0-x",
                "docker.io/a__b/c-d--e/f.g",
                "a__b/c-d--e/f.g",
                "tag_1.0-x",
            ),
        ];
        for (input, repo, familiar, tag) in cases {
            let r = parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.repository(), *repo, "{input}");
            assert_eq!(r.familiar_name(), *familiar, "{input}");
            assert_eq!(r.tag_or_digest(), *tag, "{input}");
        }
    }

    #[test]
    fn digests_stay_digests() {
        let r = parse(&format!("nginx@{D}")).unwrap();
        assert_eq!(r.name_tag(), ("nginx".to_string(), D.to_string()));
        assert_eq!(r.tag, None);
        assert_eq!(join_name_tag("nginx", D), format!("nginx@{D}"));
        assert_eq!(join_name_tag("nginx", "1.25"), "nginx:1.25");
        // tag and digest: the digest is what gets pulled
        let r = parse(&format!("myreg:5000/app:v2@{D}")).unwrap();
        assert_eq!(r.tag.as_deref(), Some("v2"));
        assert_eq!(r.name_tag(), ("myreg:5000/app".to_string(), D.to_string()));
        assert_eq!(r.to_string(), format!("myreg:5000/app:v2@{D}"));
        // the joined form parses back to the same pair
        let joined = join_name_tag("myreg:5000/app", D);
        assert_eq!(
            name_tag(&joined).unwrap(),
            ("myreg:5000/app".into(), D.into())
        );
        assert!(is_digest(D));
        assert!(!is_digest("latest"));
    }

    #[test]
    fn rejects_what_docker_rejects() {
        let cases: &[(&str, ReferenceError)] = &[
            ("", ReferenceError::Empty),
            ("Nginx", ReferenceError::Uppercase("library/Nginx".into())),
            ("nginx:", ReferenceError::Tag),
            ("nginx:-x", ReferenceError::Tag),
            ("nginx@sha256:abc", ReferenceError::Digest),
            ("nginx@sha256", ReferenceError::Digest),
            (
                "nginx@SHA256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                ReferenceError::Digest,
            ),
            ("a//b", ReferenceError::Format),
            ("-a/b", ReferenceError::Format),
            ("a/b-", ReferenceError::Format),
            ("a/b___c", ReferenceError::Format),
            ("myreg:50a0/x", ReferenceError::Format),
            (":tag", ReferenceError::Format),
            (
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                ReferenceError::HexName(
                    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into(),
                ),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input).as_ref().err(), Some(want), "{input}");
        }
        let long = format!("a/{}", "b".repeat(260));
        assert_eq!(parse(&long).err(), Some(ReferenceError::NameTooLong));
        let long_tag = format!("a:{}", "t".repeat(129));
        assert_eq!(parse(&long_tag).err(), Some(ReferenceError::Tag));
    }
}
