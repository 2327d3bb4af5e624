//! Pull secrets of ImagePullJobs copied into the daemon's namespace (spec `imagepull.md` §2.8):
//! one shared ("batch") copy per source secret, annotated with its source and the jobs using it.
//! Pure planning; the reconcile in `mod.rs` creates, updates and deletes the copies.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kruise_crds::ReferenceObject;
use kruise_crds::keys::imagepull as keys;
use kube::ResourceExt;
use std::collections::BTreeSet;

/// `<namespace>/<name>`.
pub fn key(ns: &str, name: &str) -> String {
    format!("{ns}/{name}")
}

/// The jobs a synced copy serves (its references annotation, split).
pub fn references(s: &Secret) -> BTreeSet<String> {
    s.annotations()
        .get(keys::SECRET_REFERENCES_ANNOTATION)
        .map(|v| {
            v.split(',')
                .filter(|x| !x.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

fn source_key(s: &Secret) -> Option<&str> {
    s.annotations()
        .get(keys::SECRET_SOURCE_KEY_ANNOTATION)
        .map(String::as_str)
}

/// Claim one source secret for a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// Name of the source secret (in the job's namespace).
    pub source: String,
    /// The synced copy to reuse, if any.
    pub existing: Option<String>,
}

/// Drop a job from a synced copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    /// Name of the synced copy.
    pub name: String,
    /// Jobs left using it: empty means delete the copy.
    pub remaining: BTreeSet<String>,
}

/// What to do for one job.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecretPlan {
    /// Sources to claim (running job).
    pub claim: Vec<Claim>,
    /// Copies to release.
    pub release: Vec<Release>,
}

/// Plans a job's synced secrets. `synced` are the secrets of the daemon namespace; `running` is
/// false once the job completed or is being deleted (then everything it holds is released).
pub fn plan(
    job_ns: &str,
    job_name: &str,
    pull_secrets: &[String],
    running: bool,
    synced: &[Secret],
) -> SecretPlan {
    let me = key(job_ns, job_name);
    let mut sorted: Vec<&Secret> = synced.iter().collect();
    sorted.sort_by_key(|s| s.name_any());
    let mut plan = SecretPlan::default();
    let mut chosen = BTreeSet::new();
    if running {
        let wanted: BTreeSet<&str> = pull_secrets.iter().map(String::as_str).collect();
        for src in wanted {
            let k = key(job_ns, src);
            let candidates: Vec<&&Secret> = sorted
                .iter()
                .filter(|s| source_key(s) == Some(k.as_str()))
                .collect();
            let pick = candidates
                .iter()
                .find(|s| references(s).contains(&me))
                .or(candidates.first())
                .map(|s| s.name_any());
            if let Some(p) = &pick {
                chosen.insert(p.clone());
            }
            plan.claim.push(Claim {
                source: src.to_string(),
                existing: pick,
            });
        }
    }
    for s in sorted {
        let mut refs = references(s);
        if !chosen.contains(&s.name_any()) && refs.remove(&me) {
            plan.release.push(Release {
                name: s.name_any(),
                remaining: refs,
            });
        }
    }
    plan
}

fn join(refs: &BTreeSet<String>) -> String {
    refs.iter().cloned().collect::<Vec<_>>().join(",")
}

/// A new synced copy of `source` named `name` in `daemon_ns`, serving `job_key`.
pub fn new_copy(source: &Secret, daemon_ns: &str, name: &str, job_key: &str) -> Secret {
    let mut annotations = source.metadata.annotations.clone().unwrap_or_default();
    annotations.insert(
        keys::SECRET_SOURCE_KEY_ANNOTATION.to_string(),
        key(
            source.metadata.namespace.as_deref().unwrap_or_default(),
            &source.name_any(),
        ),
    );
    annotations.insert(
        keys::SECRET_REFERENCES_ANNOTATION.to_string(),
        job_key.to_string(),
    );
    annotations.insert(
        keys::SECRET_MODE_ANNOTATION.to_string(),
        keys::PULL_SECRET_MODE_BATCH.to_string(),
    );
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(daemon_ns.to_string()),
            labels: source.metadata.labels.clone(),
            annotations: Some(annotations),
            ..Default::default()
        },
        type_: source.type_.clone(),
        data: source.data.clone(),
        string_data: source.string_data.clone(),
        immutable: None,
    }
}

/// The copy updated to `source`'s data and serving `job_key`; `None` when nothing changes.
pub fn refresh_copy(copy: &Secret, source: &Secret, job_key: &str) -> Option<Secret> {
    let mut refs = references(copy);
    let added = refs.insert(job_key.to_string());
    let data_changed = copy.data != source.data || copy.string_data != source.string_data;
    if !added && !data_changed {
        return None;
    }
    let mut out = copy.clone();
    out.data = source.data.clone();
    out.string_data = source.string_data.clone();
    out.annotations_mut()
        .insert(keys::SECRET_REFERENCES_ANNOTATION.to_string(), join(&refs));
    Some(out)
}

/// The copy with its references set to `remaining` (non-empty).
pub fn with_references(copy: &Secret, remaining: &BTreeSet<String>) -> Secret {
    let mut out = copy.clone();
    out.annotations_mut().insert(
        keys::SECRET_REFERENCES_ANNOTATION.to_string(),
        join(remaining),
    );
    out
}

/// How NodeImages refer to a synced copy (mode from the copy's annotation).
pub fn reference(copy: &Secret) -> ReferenceObject {
    ReferenceObject {
        namespace: copy.metadata.namespace.clone(),
        name: copy.metadata.name.clone(),
        mode: copy
            .annotations()
            .get(keys::SECRET_MODE_ANNOTATION)
            .cloned(),
    }
}

/// References for a job that lives in the daemon namespace itself: used directly, no copy.
pub fn direct_references(ns: &str, pull_secrets: &[String]) -> Vec<ReferenceObject> {
    pull_secrets
        .iter()
        .map(|n| ReferenceObject {
            namespace: Some(ns.to_string()),
            name: Some(n.clone()),
            mode: None,
        })
        .collect()
}

/// Six random hex digits for a new copy's name suffix.
pub fn random_suffix() -> String {
    format!("{:06x}", fastrand::u32(..0x0100_0000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    fn copy(name: &str, source: &str, refs: &str) -> Secret {
        let mut s = Secret::default();
        s.metadata.name = Some(name.into());
        s.metadata.namespace = Some("kruise-daemon-config".into());
        s.metadata.annotations = Some(BTreeMap::from([
            (
                keys::SECRET_SOURCE_KEY_ANNOTATION.to_string(),
                source.to_string(),
            ),
            (
                keys::SECRET_REFERENCES_ANNOTATION.to_string(),
                refs.to_string(),
            ),
            (
                keys::SECRET_MODE_ANNOTATION.to_string(),
                "batch".to_string(),
            ),
        ]));
        s
    }

    #[test]
    fn plan_claims_reuses_and_releases() {
        let synced = vec![
            copy("reg-bbbbbb", "ns/reg", "ns/other"),
            copy("reg-aaaaaa", "ns/reg", "ns/job,ns/x"), // already ours: preferred
            copy("old-cccccc", "ns/old", "ns/job"),      // no longer wanted: released, deleted
            copy("old2-dddddd", "ns/old2", "ns/job,ns/y"), // released, kept for ns/y
            copy("foreign", "other/reg", "other/j"),
        ];
        let p = plan("ns", "job", &["reg".into(), "new".into()], true, &synced);
        assert_eq!(
            p.claim,
            vec![
                Claim {
                    source: "new".into(),
                    existing: None
                },
                Claim {
                    source: "reg".into(),
                    existing: Some("reg-aaaaaa".into())
                },
            ]
        );
        assert_eq!(
            p.release,
            vec![
                Release {
                    name: "old-cccccc".into(),
                    remaining: BTreeSet::new()
                },
                Release {
                    name: "old2-dddddd".into(),
                    remaining: BTreeSet::from(["ns/y".to_string()])
                },
            ]
        );
        // a finished job releases everything it holds
        let p = plan("ns", "job", &["reg".into()], false, &synced);
        assert!(p.claim.is_empty());
        let names: Vec<_> = p.release.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, vec!["old-cccccc", "old2-dddddd", "reg-aaaaaa"]);
        // first candidate by name when none references us yet
        let p = plan("ns", "fresh", &["reg".into()], true, &synced);
        assert_eq!(p.claim[0].existing.as_deref(), Some("reg-aaaaaa"));
    }

    #[test]
    fn copies_carry_source_and_references() {
        let mut src = Secret::default();
        src.metadata.name = Some("reg".into());
        src.metadata.namespace = Some("ns".into());
        src.metadata.labels = Some(BTreeMap::from([("l".to_string(), "v".to_string())]));
        src.type_ = Some("kubernetes.io/dockerconfigjson".into());
        src.data = Some(BTreeMap::from([(
            ".dockerconfigjson".to_string(),
            ByteString(b"{}".to_vec()),
        )]));
        let c = new_copy(&src, "kruise-daemon-config", "reg-abcdef", "ns/job");
        assert_eq!(
            c.metadata.namespace.as_deref(),
            Some("kruise-daemon-config")
        );
        assert_eq!(
            c.annotations()[keys::SECRET_SOURCE_KEY_ANNOTATION],
            "ns/reg"
        );
        assert_eq!(
            c.annotations()[keys::SECRET_REFERENCES_ANNOTATION],
            "ns/job"
        );
        assert_eq!(c.annotations()[keys::SECRET_MODE_ANNOTATION], "batch");
        assert_eq!(c.labels()["l"], "v");
        assert_eq!(c.type_, src.type_);
        assert_eq!(c.data, src.data);
        assert_eq!(
            reference(&c),
            ReferenceObject {
                namespace: Some("kruise-daemon-config".into()),
                name: Some("reg-abcdef".into()),
                mode: Some("batch".into())
            }
        );
        assert_eq!(refresh_copy(&c, &src, "ns/job"), None);
        let added = refresh_copy(&c, &src, "ns/a").unwrap();
        assert_eq!(
            added.annotations()[keys::SECRET_REFERENCES_ANNOTATION],
            "ns/a,ns/job"
        );
        let mut src2 = src.clone();
        src2.data = Some(BTreeMap::from([(
            ".dockerconfigjson".to_string(),
            ByteString(b"{\"auths\":{}}".to_vec()),
        )]));
        let updated = refresh_copy(&c, &src2, "ns/job").unwrap();
        assert_eq!(updated.data, src2.data);
        let trimmed = with_references(&added, &BTreeSet::from(["ns/a".to_string()]));
        assert_eq!(references(&trimmed), BTreeSet::from(["ns/a".to_string()]));
        assert_eq!(random_suffix().len(), 6);
        assert_eq!(
            direct_references("kruise-daemon-config", &["s".into()])[0].mode,
            None
        );
    }
}
