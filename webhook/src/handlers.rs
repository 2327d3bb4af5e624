//! The admission handlers: thin adapters from AdmissionRequests to the pure functions of each kind
//! (`sidecarset::inject`, `*::validate_*`, `*::default_*`). Decoding failures are denials that say
//! what could not be read; nothing here panics on input.

use crate::configuration::{mutate_path, validate_path};
use crate::field::{FieldError, render};
use crate::routing::{FencedSidecarSetValidator, RoutedPodInjector, Routing};
use crate::runtime::{Caches, Config};
use crate::server::{Admit, deny_invalid, object_as};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// A defaulting webhook for `K`: decode, default, answer with the JSON patch between the two.
pub fn defaulting<K, F>(default: F) -> Arc<dyn Admit>
where
    K: DeserializeOwned + Serialize + Send + 'static,
    F: Fn(&mut K, &AdmissionRequest<DynamicObject>) + Send + Sync + 'static,
{
    Arc::new(move |req: &AdmissionRequest<DynamicObject>| {
        let resp = AdmissionResponse::from(req);
        let Some(raw) = req.object.as_ref() else {
            return resp;
        };
        let before = match serde_json::to_value(raw) {
            Ok(v) => v,
            Err(e) => return resp.deny(format!("cannot read the object: {e}")),
        };
        let mut obj: K = match serde_json::from_value(before.clone()) {
            Ok(o) => o,
            // Mutating webhooks run before the schema check: leave a malformed object to the API
            // server, whose refusal names the field.
            Err(_) => return resp,
        };
        default(&mut obj, req);
        let after = match serde_json::to_value(&obj) {
            Ok(v) => v,
            Err(e) => return resp.deny(format!("cannot write the object: {e}")),
        };
        let patch = json_patch::diff(&before, &after);
        if patch.0.is_empty() {
            return resp;
        }
        match resp.clone().with_patch(patch) {
            Ok(r) => r,
            Err(e) => resp.deny(format!("cannot encode the patch: {e}")),
        }
    })
}

/// A validating webhook for `K`: the errors of `validate(new, old)`, rendered like the API server's.
pub fn validating<K, F>(kind: &'static str, validate: F) -> Arc<dyn Admit>
where
    K: DeserializeOwned + Send + 'static,
    F: Fn(&K, Option<&K>) -> Vec<FieldError> + Send + Sync + 'static,
{
    Arc::new(move |req: &AdmissionRequest<DynamicObject>| {
        let resp = AdmissionResponse::from(req);
        if !matches!(req.operation, Operation::Create | Operation::Update) {
            return resp;
        }
        let new: K = match object_as(req.object.as_ref()) {
            Ok(Some(o)) => o,
            Ok(None) => return resp,
            Err(e) => {
                return deny_invalid(req, format!("{kind} {:?} cannot be read: {e}", req.name));
            }
        };
        let old: Option<K> = match object_as(req.old_object.as_ref()) {
            Ok(o) => o,
            Err(e) => return deny_invalid(req, format!("the stored {kind} cannot be read: {e}")),
        };
        let errs = validate(&new, old.as_ref());
        if errs.is_empty() {
            resp
        } else {
            deny_invalid(req, render(kind, &req.name, &errs))
        }
    })
}

/// A uniform number in [0, 1) without a random-number crate: the std hasher is randomly keyed.
fn roll(seed: &str) -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(seed.as_bytes());
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// The pod webhook: SidecarSet injection at CREATE (sidecarset.md §2). Pods no SidecarSet selects
/// come back unchanged (and, through `matchConditions`, are normally never sent here).
pub fn pod_injector(caches: Caches) -> Arc<dyn Admit> {
    Arc::new(move |req: &AdmissionRequest<DynamicObject>| inject_pod(&caches, req, None))
}

/// The pod webhook's decision, from the cached SidecarSets or, when the cache is behind the
/// routing the API server used, from `fresh` (read from the API server).
pub fn inject_pod(
    caches: &Caches,
    req: &AdmissionRequest<DynamicObject>,
    fresh: Option<&[kruise_crds::SidecarSet]>,
) -> AdmissionResponse {
    use crate::sidecarset::{InjectInput, inject, pod_selector_matches};
    use k8s_openapi::api::core::v1::{Namespace, Pod};
    use kube::core::PartialObjectMeta;
    use kube::runtime::reflector::ObjectRef;
    {
        let resp = AdmissionResponse::from(req);
        if req.operation != Operation::Create || req.sub_resource.is_some() {
            return resp;
        }
        let mut pod: Pod = match object_as(req.object.as_ref()) {
            Ok(Some(p)) => p,
            Ok(None) => return resp,
            Err(e) => return deny_invalid(req, format!("pod cannot be read: {e}")),
        };
        let ns = req
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into());
        if pod
            .metadata
            .namespace
            .as_deref()
            .unwrap_or_default()
            .is_empty()
        {
            pod.metadata.namespace = Some(ns.clone());
        }
        let namespace_labels = caches
            .namespaces
            .get(&ObjectRef::<PartialObjectMeta<Namespace>>::new(&ns))
            .and_then(|n| n.metadata.labels.clone())
            .unwrap_or_default();
        // Hot path: copy only the SidecarSets that select this pod (inject matches them again), and
        // the revisions only when one of those pins a revision.
        let pod_labels = pod.metadata.labels.clone().unwrap_or_default();
        let selects = |s: &kruise_crds::SidecarSet| {
            pod_selector_matches(s, &ns, &pod_labels, &namespace_labels)
        };
        let mut sidecar_sets: Vec<_> = match fresh {
            Some(all) => all.iter().filter(|s| selects(s)).cloned().collect(),
            None => caches
                .sidecarsets
                .state()
                .iter()
                .filter(|s| selects(s))
                .map(|s| (**s).clone())
                .collect(),
        };
        sidecar_sets.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        let pins_revision = sidecar_sets.iter().any(|s| {
            s.spec
                .injection_strategy
                .as_ref()
                .and_then(|i| i.revision.as_ref())
                .is_some()
        });
        let revisions: Vec<_> = if pins_revision {
            caches
                .revisions
                .state()
                .iter()
                .map(|r| (**r).clone())
                .collect()
        } else {
            Vec::new()
        };
        let now = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let input = InjectInput {
            pod: &pod,
            sidecar_sets: &sidecar_sets,
            namespace_labels: &namespace_labels,
            revisions: &revisions,
            now: &now,
            partial_roll: roll(&req.uid),
            sort_containers_by_name: false,
        };
        match inject(&input) {
            Ok(out) if out.patch.0.is_empty() => resp,
            Ok(out) => {
                tracing::debug!(pod = ?pod.metadata.name, namespace = %ns, injected = ?out.injected, "sidecars injected");
                match resp.clone().with_patch(out.patch) {
                    Ok(r) => r,
                    Err(e) => resp.deny(format!("cannot encode the patch: {e}")),
                }
            }
            Err(e) => {
                let mut r = resp.deny(e.to_string());
                r.result.code = 500;
                r
            }
        }
    }
}

/// The SidecarSet validating webhook: its own rules, conflicts with the other SidecarSets, pinned
/// revisions, and the patchPodMetadata whitelist of the `kruise-configuration` ConfigMap.
pub fn sidecarset_validator(caches: Caches) -> Arc<dyn Admit> {
    use crate::sidecarset::{validate_patch_metadata_whitelist, validate_sidecarset};
    use kruise_crds::SidecarSet;
    validating::<SidecarSet, _>("SidecarSet", move |new, old| {
        let name = new.metadata.name.clone();
        let others: Vec<SidecarSet> = caches
            .sidecarsets
            .state()
            .iter()
            .filter(|s| s.metadata.name != name)
            .map(|s| (**s).clone())
            .collect();
        let revisions: Vec<_> = caches
            .revisions
            .state()
            .iter()
            .map(|r| (**r).clone())
            .collect();
        let mut errs = validate_sidecarset(new, old, &others, &revisions);
        let has_patch = new
            .spec
            .patch_pod_metadata
            .as_ref()
            .is_some_and(|p| !p.is_empty());
        if has_patch {
            let cm = caches.configuration.state().into_iter().next();
            let whitelist = cm.as_ref().and_then(|c| {
                c.data
                    .as_ref()?
                    .get(kruise_crds::keys::sidecarset::PATCH_POD_METADATA_WHITELIST_KEY)
                    .cloned()
            });
            errs.extend(validate_patch_metadata_whitelist(
                new,
                whitelist.as_deref(),
                false,
            ));
        }
        errs
    })
}

/// Every path the webhook serves, with its handler.
pub fn routes(
    caches: Caches,
    routing: Arc<Routing>,
    _cfg: &Config,
) -> Vec<(String, Arc<dyn Admit>)> {
    use crate::imagepull;
    use kruise_crds::{ImageListPullJob, ImagePullJob, NodeImage};
    let routes: Vec<(String, Arc<dyn Admit>)> = vec![
        (
            kruise_crds::keys::sidecarset::POD_MUTATING_WEBHOOK_PATH.to_string(),
            Arc::new(RoutedPodInjector::new(caches.clone(), routing.clone())),
        ),
        (
            mutate_path("sidecarset"),
            defaulting::<kruise_crds::SidecarSet, _>(|ss, _| {
                crate::sidecarset::default_sidecarset(ss)
            }),
        ),
        (
            validate_path("sidecarset"),
            Arc::new(FencedSidecarSetValidator::new(
                sidecarset_validator(caches.clone()),
                routing,
            )),
        ),
        (
            mutate_path("cloneset"),
            defaulting::<kruise_crds::CloneSet, _>(|cs, req| {
                let old: Option<kruise_crds::CloneSet> =
                    object_as(req.old_object.as_ref()).ok().flatten();
                match (req.operation.clone(), old) {
                    (Operation::Update, Some(old)) => {
                        crate::cloneset::default_cloneset_on_update(cs, &old)
                    }
                    _ => crate::cloneset::default_cloneset(cs),
                }
            }),
        ),
        (
            validate_path("cloneset"),
            validating::<kruise_crds::CloneSet, _>("CloneSet", crate::cloneset::validate_cloneset),
        ),
        (
            mutate_path("imagepulljob"),
            defaulting::<ImagePullJob, _>(|j, req| {
                imagepull::default_imagepulljob(j, req.operation == Operation::Create)
            }),
        ),
        (
            validate_path("imagepulljob"),
            validating::<ImagePullJob, _>("ImagePullJob", imagepull::validate_imagepulljob),
        ),
        (
            mutate_path("imagelistpulljob"),
            defaulting::<ImageListPullJob, _>(|j, _| imagepull::default_imagelistpulljob(j)),
        ),
        (
            validate_path("imagelistpulljob"),
            validating::<ImageListPullJob, _>("ImageListPullJob", |n, o| {
                imagepull::validate_imagelistpulljob(n, o)
            }),
        ),
        (
            mutate_path("nodeimage"),
            defaulting::<NodeImage, _>(|n, _| {
                let now =
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now());
                imagepull::default_nodeimage(n, &now)
            }),
        ),
        (
            validate_path("nodeimage"),
            validating::<NodeImage, _>("NodeImage", |n, _| imagepull::validate_nodeimage(n)),
        ),
    ];
    // OpenKruise's newer manifests call the same webhooks without the version in the path.
    let aliases: Vec<(String, Arc<dyn Admit>)> = routes
        .iter()
        .filter_map(|(p, h)| {
            let alias = p.replace("-v1alpha1-", "-");
            (alias != *p).then(|| (alias, h.clone()))
        })
        .collect();
    routes.into_iter().chain(aliases).collect()
}
