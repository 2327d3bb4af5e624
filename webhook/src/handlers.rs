//! The admission handlers: thin adapters from AdmissionRequests to the pure functions of each kind
//! (`sidecarset::inject`, `*::validate_*`, `*::default_*`). Decoding failures are denials that say
//! what could not be read; nothing here panics on input.

use crate::configuration::{mutate_path, validate_path};
use crate::deletionprotection::{CLONESET_PATH, DeletionProtection, PROTECTED};
use crate::field::{FieldError, render};
use crate::routing::{FencedSidecarSetValidator, RoutedPodInjector, Routing};
use crate::runtime::{Caches, Config, Features};
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
pub fn pod_injector(caches: Caches, features: Features) -> Arc<dyn Admit> {
    Arc::new(move |req: &AdmissionRequest<DynamicObject>| inject_pod(&caches, features, req, None))
}

/// The pod webhook's decision, from the cached SidecarSets or, when the cache is behind the
/// routing the API server used, from `fresh` (read from the API server).
pub fn inject_pod(
    caches: &Caches,
    features: Features,
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
            sort_containers_by_name: features.sort_sidecar_containers_by_name,
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
pub fn sidecarset_validator(caches: Caches, features: Features) -> Arc<dyn Admit> {
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
                features.patch_pod_metadata_defaults_allowed,
            ));
        }
        errs
    })
}

/// Every path the webhook serves, with its handler.
pub fn routes(
    caches: Caches,
    routing: Arc<Routing>,
    cfg: &Config,
) -> Vec<(String, Arc<dyn Admit>)> {
    use crate::imagepull;
    use kruise_crds::{ImageListPullJob, ImagePullJob, NodeImage};
    let client = routing.client();
    // the CloneSet's own rules, then the checks that read the API server (podsToDelete owners, the
    // template through a dry-run pod)
    let cloneset_validator: Arc<dyn Admit> = Arc::new(crate::cloneset::CloneSetValidator::new(
        validating::<kruise_crds::CloneSet, _>("CloneSet", crate::cloneset::validate_cloneset),
        routing.client(),
    ));
    let protection = |inner: Option<Arc<dyn Admit>>| -> Arc<dyn Admit> {
        Arc::new(DeletionProtection::new(
            client.clone(),
            cfg.features.crd_cascading_deletion_protection,
            inner,
        ))
    };
    let mut routes: Vec<(String, Arc<dyn Admit>)> = vec![
        (
            kruise_crds::keys::sidecarset::POD_MUTATING_WEBHOOK_PATH.to_string(),
            Arc::new(RoutedPodInjector::new(
                caches.clone(),
                cfg.features,
                routing.clone(),
            )),
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
                sidecarset_validator(caches.clone(), cfg.features),
                routing.clone(),
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
            // OpenKruise's CloneSet webhook also answers its DELETEs (deletion protection)
            if cfg.features.deletion_protection {
                protection(Some(cloneset_validator))
            } else {
                cloneset_validator
            },
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
    if cfg.features.deletion_protection {
        for p in PROTECTED.iter().filter(|p| p.path != CLONESET_PATH) {
            routes.push((p.path.to_string(), protection(None)));
        }
    }
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

#[cfg(test)]
mod tests {
    //! The feature gates reach the handlers: the same review answers differently with the gate on.
    use super::*;
    use kruise_crds::SidecarSet;
    use kube::runtime::{reflector, watcher};
    use serde_json::json;

    fn caches(sidecarsets: Vec<SidecarSet>) -> Caches {
        let (sidecar_store, mut w) = reflector::store::<SidecarSet>();
        for s in sidecarsets {
            w.apply_watcher_event(&watcher::Event::Apply(s));
        }
        Caches {
            sidecarsets: sidecar_store,
            namespaces: reflector::store().0,
            revisions: reflector::store().0,
            configuration: reflector::store().0,
            mutating_configuration: reflector::store().0,
        }
    }

    fn request(kind: &str, object: serde_json::Value) -> AdmissionRequest<DynamicObject> {
        let (group, version, resource) = if kind == "Pod" {
            ("", "v1", "pods")
        } else {
            ("apps.kruise.io", "v1alpha1", "sidecarsets")
        };
        let review: kube::core::admission::AdmissionReview<DynamicObject> =
            serde_json::from_value(json!({
                "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "request": {
                    "uid": "u", "kind": {"group": group, "version": version, "kind": kind},
                    "resource": {"group": group, "version": version, "resource": resource},
                    "name": "x", "namespace": "default", "operation": "CREATE",
                    "userInfo": {}, "object": object, "dryRun": false
                }
            }))
            .expect("a valid review");
        review.try_into().expect("a request")
    }

    fn sidecarset(name: &str, container: &str) -> SidecarSet {
        serde_json::from_value(json!({
            "apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet",
            "metadata": {"name": name, "uid": name},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "containers": [{"name": container, "image": "busybox:1"}]}
        }))
        .expect("a SidecarSet")
    }

    /// Names of the pod's containers after the injector's patch.
    fn injected(features: Features) -> Vec<String> {
        // two SidecarSets, read in name order: "a" injects "zz", "b" injects "aa"
        let c = caches(vec![sidecarset("a", "zz"), sidecarset("b", "aa")]);
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "x", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "app:1"}]}});
        let resp = pod_injector(c, features).admit(&request("Pod", pod.clone()));
        assert!(resp.allowed, "{:?}", resp.result.message);
        let patch: json_patch::Patch =
            serde_json::from_slice(resp.patch.as_deref().unwrap_or(b"[]")).expect("a patch");
        let mut doc = pod;
        json_patch::patch(&mut doc, &patch).expect("the patch applies");
        doc["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_owned))
            .collect()
    }

    #[test]
    fn enable_sort_sidecar_container_by_name_reaches_the_pod_injector() {
        // no podInjectPolicy in the cache: after the app container, in SidecarSet order
        assert_eq!(injected(Features::default()), ["app", "zz", "aa"]);
        let sorted = Features {
            sort_sidecar_containers_by_name: true,
            ..Features::default()
        };
        assert_eq!(injected(sorted), ["app", "aa", "zz"]);
    }

    #[test]
    fn patch_pod_metadata_defaults_allowed_reaches_the_sidecarset_validator() {
        // no kruise-configuration ConfigMap: no whitelist
        let ss = json!({
            "apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet",
            "metadata": {"name": "x"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "containers": [{"name": "s", "image": "busybox:1", "imagePullPolicy": "IfNotPresent",
                                     "terminationMessagePath": "/dev/termination-log",
                                     "terminationMessagePolicy": "File", "podInjectPolicy": "BeforeAppContainer",
                                     "upgradeStrategy": {"upgradeType": "ColdUpgrade"},
                                     "shareVolumePolicy": {"type": "disabled"}}],
                     "updateStrategy": {"type": "RollingUpdate", "maxUnavailable": 1},
                     "revisionHistoryLimit": 10,
                     "patchPodMetadata": [{"annotations": {"example.com/a": "1"}, "patchPolicy": "Retain"}]}
        });
        let deny = sidecarset_validator(caches(vec![]), Features::default())
            .admit(&request("SidecarSet", ss.clone()));
        assert!(!deny.allowed);
        assert!(
            deny.result
                .message
                .contains("SidecarSet patch metadata whitelist not found"),
            "{}",
            deny.result.message
        );
        let allowed = Features {
            patch_pod_metadata_defaults_allowed: true,
            ..Features::default()
        };
        let allow = sidecarset_validator(caches(vec![]), allowed).admit(&request("SidecarSet", ss));
        assert!(allow.allowed, "{}", allow.result.message);
    }

    /// `ResourcesDeletionProtection` reaches the routes: OpenKruise's deletion paths are served,
    /// and a labelled CloneSet's DELETE is refused on the CloneSet's own path (and its alias)
    /// while its CREATE/UPDATE is still validated there.
    #[tokio::test]
    async fn resources_deletion_protection_reaches_the_routes() {
        use crate::configuration::Endpoint;
        use crate::runtime::ConfigurationMode;
        let (svc, _handle) = tower_test::mock::pair::<
            http::Request<kube::client::Body>,
            http::Response<kube::client::Body>,
        >();
        let client = kube::Client::new(svc, "default");
        let cfg = |deletion_protection| Config {
            bind: ([127, 0, 0, 1], 0).into(),
            endpoint: Endpoint::Url("https://127.0.0.1:9443".into()),
            namespace: "kruise-system".into(),
            secret_name: "s".into(),
            hosts: vec![],
            external_certs: None,
            pod_failure_policy: "Fail".into(),
            excluded_namespaces: vec![],
            configurations: ConfigurationMode::Off,
            features: Features {
                deletion_protection,
                ..Features::default()
            },
        };
        let table = |on| {
            let routing = Routing::new(client.clone(), caches(vec![]));
            routes(caches(vec![]), routing, &cfg(on))
                .into_iter()
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        assert!(!table(false).contains_key("/validate-namespace"));
        let on = table(true);
        for p in crate::deletionprotection::PROTECTED {
            assert!(on.contains_key(p.path), "{} is served", p.path);
        }
        assert_eq!(CLONESET_PATH, validate_path("cloneset"));
        let cloneset = |op: &str| {
            let review: kube::core::admission::AdmissionReview<DynamicObject> =
                serde_json::from_value(json!({
                    "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                    "request": {
                        "uid": "u", "kind": {"group": "apps.kruise.io", "version": "v1alpha1", "kind": "CloneSet"},
                        "resource": {"group": "apps.kruise.io", "version": "v1alpha1", "resource": "clonesets"},
                        "name": "web", "namespace": "default", "operation": op, "userInfo": {},
                        "object": if op == "DELETE" { serde_json::Value::Null } else { json!({"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet", "metadata": {"name": "web"}, "spec": {"replicas": -1}}) },
                        "oldObject": {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet",
                            "metadata": {"name": "web", "labels": {"policy.kruise.io/delete-protection": "Always"}},
                            "spec": {"replicas": 1}},
                        "dryRun": false
                    }
                }))
                .expect("a valid review");
            let req: AdmissionRequest<DynamicObject> = review.try_into().expect("a request");
            req
        };
        for path in [CLONESET_PATH, "/validate-apps-kruise-io-cloneset"] {
            let h = on[path].clone();
            let del = cloneset("DELETE");
            let resp = h.admit_at(&del, path).await;
            assert!(!resp.allowed && resp.result.code == 403, "{path}");
            assert!(
                resp.result
                    .message
                    .starts_with("CloneSet default/web cannot be deleted")
            );
            let upd = cloneset("UPDATE");
            let resp = h.admit_at(&upd, path).await;
            assert!(
                !resp.allowed && resp.result.code == 422,
                "{}",
                resp.result.message
            );
        }
        // without the gate the label changes nothing
        let off = table(false);
        let del = cloneset("DELETE");
        assert!(
            off[CLONESET_PATH]
                .admit_at(&del, CLONESET_PATH)
                .await
                .allowed
        );
    }
}
