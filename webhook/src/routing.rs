//! The kube-aware half of read-your-own-writes injection (the pure half, and why it is correct, is
//! [`crate::sidecarset::routing`]): the SidecarSet admission's fence (write the routing, then
//! dry-run probe pods until the API server routes with it) and the pod webhook's fresh read of the
//! SidecarSets when the routing token of a request differs from what this replica has cached.

use crate::configuration::{self, Options, PodMatch, SYSTEM_NAMESPACES};
use crate::runtime::{Caches, ConfigurationMode, Features};
use crate::server::{Admit, object_as};
use crate::sidecarset::routing::{self, PendingRoute};
use futures::future::BoxFuture;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Pod;
use kruise_crds::SidecarSet;
use kube::api::{Api, ListParams, PostParams};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use kube::{Client, ResourceExt};
use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Longest a SidecarSet admission waits for the API server to route with the new configuration
/// (the validating webhook's own timeout is 10 s).
pub const FENCE_BUDGET: Duration = Duration::from_secs(8);
/// Pause between two probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(20);

/// What the configuration writer needs; set by the runtime once the serving certificate is loaded.
#[derive(Clone, Debug)]
pub struct Writer {
    /// The configurations' options (endpoint, caBundle, …).
    pub opts: Options,
    /// Paths this process serves.
    pub served: BTreeSet<String>,
    /// How configurations are written.
    pub mode: ConfigurationMode,
}

/// Shared by the pod webhook, the SidecarSet validating webhook and the configuration loop.
pub struct Routing {
    client: Client,
    caches: Caches,
    writer: RwLock<Option<Writer>>,
    /// The last quorum list of SidecarSets and when it was started.
    fresh: tokio::sync::Mutex<Option<(Instant, Arc<Vec<SidecarSet>>)>>,
    /// The cache's routing token, keyed by a fingerprint of the cached (name, resourceVersion)s.
    memo: Mutex<Option<(u64, String)>>,
}

/// How a fence ended when the SidecarSet may be admitted.
#[derive(Debug)]
pub enum Fenced {
    /// Nothing to do: the change routes no new pod, or configurations are not managed here.
    NotNeeded,
    /// The API server sent a probe with the new token to the pod webhook after this long.
    Confirmed(Duration),
    /// The probe could not be created for a reason of another admission step: admitted with this
    /// warning (the routing was written; its pick-up could not be watched).
    Unverified(String),
}

impl Routing {
    /// A router over the webhook's caches.
    pub fn new(client: Client, caches: Caches) -> Arc<Self> {
        Arc::new(Self {
            client,
            caches,
            writer: RwLock::new(None),
            fresh: tokio::sync::Mutex::new(None),
            memo: Mutex::new(None),
        })
    }

    /// The client the webhooks read the API server with (not the caches).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Called by the configuration loop with what it writes.
    pub fn set_writer(&self, w: Writer) {
        *self.writer.write().unwrap_or_else(|e| e.into_inner()) = Some(w);
    }

    fn cached(&self) -> Vec<SidecarSet> {
        self.caches
            .sidecarsets
            .state()
            .iter()
            .map(|s| (**s).clone())
            .collect()
    }

    /// The routing token of this replica's cached SidecarSets.
    pub fn cache_token(&self) -> String {
        let state = self.caches.sidecarsets.state();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        let mut keys: Vec<(Option<&str>, Option<&str>)> = state
            .iter()
            .map(|s| {
                (
                    s.metadata.name.as_deref(),
                    s.metadata.resource_version.as_deref(),
                )
            })
            .collect();
        keys.sort();
        keys.hash(&mut h);
        let fp = h.finish();
        let mut memo = self.memo.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((f, t)) = memo.as_ref()
            && *f == fp
        {
            return t.clone();
        }
        let all: Vec<SidecarSet> = state.iter().map(|s| (**s).clone()).collect();
        let t = routing::cache_token(&all);
        *memo = Some((fp, t.clone()));
        t
    }

    /// The SidecarSets to inject a pod from: the cache when the request's routing token is the
    /// cache's (or the request carries none), otherwise a quorum list started after `since` (one
    /// list serves every request waiting for it).
    pub async fn sidecarsets_for(
        &self,
        path_token: Option<&str>,
        since: Instant,
    ) -> Result<Option<Arc<Vec<SidecarSet>>>, kube::Error> {
        match path_token {
            None => return Ok(None),
            Some(t) if t == self.cache_token() => return Ok(None),
            Some(_) => {}
        }
        let mut fresh = self.fresh.lock().await;
        if let Some((started, list)) = fresh.as_ref()
            && *started >= since
        {
            return Ok(Some(list.clone()));
        }
        let started = Instant::now();
        let list = Api::<SidecarSet>::all(self.client.clone())
            .list(&ListParams::default())
            .await?;
        let mut items = list.items;
        for s in &mut items {
            s.managed_fields_mut().clear();
        }
        let items = Arc::new(items);
        *fresh = Some((started, items.clone()));
        tracing::debug!(
            sidecarsets = items.len(),
            "pod webhook read the SidecarSets from the API server (its cache was behind the routing)"
        );
        Ok(Some(items))
    }

    /// The fence of a SidecarSet admission: adds its route as pending, writes the configuration and
    /// probes until the API server routes with it. `Err` is the refusal to answer.
    pub async fn fence(
        &self,
        new: &SidecarSet,
        old: Option<&SidecarSet>,
    ) -> Result<Fenced, String> {
        if !routing::needs_fence(new, old) {
            return Ok(Fenced::NotNeeded);
        }
        let name = new.name_any();
        let writer = self
            .writer
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(writer) = writer else {
            return Err(format!(
                "SidecarSet {name} cannot be admitted yet: kruise-manager is still writing its webhook configurations (it just started); try again in a few seconds"
            ));
        };
        if writer.mode == ConfigurationMode::Off {
            return Ok(Fenced::NotNeeded);
        }
        let started = Instant::now();
        let deadline = started + FENCE_BUDGET;
        let route = routing::route_of(new).ok().flatten();
        let token = loop {
            match self.write_routing(&writer, &name, route.clone()).await {
                Ok(Some(pm)) => break pm.token,
                Ok(None) => {
                    return Ok(Fenced::Unverified(format!(
                        "the pod webhook configuration {} does not exist, so no pod is sent to kruise-rs for injection (was the chart uninstalled?)",
                        configuration::MUTATING_CONFIGURATION
                    )));
                }
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(sidecarset = %name, error = %e, "routing write conflicted; retrying");
                    tokio::time::sleep(PROBE_INTERVAL).await;
                }
                Err(e) => {
                    return Err(format!(
                        "SidecarSet {name} was not admitted: kruise-manager could not add its selector to the pod webhook configuration {} within {} s ({e}); nothing was changed, try again",
                        configuration::MUTATING_CONFIGURATION,
                        FENCE_BUDGET.as_secs()
                    ));
                }
            }
        };
        let Some(ns) = self.probe_namespace(&writer.opts) else {
            return Ok(Fenced::Unverified(
                "no namespace could hold the routing probe pod, so the pick-up of the new pod webhook configuration was not confirmed".into(),
            ));
        };
        let pods = Api::<Pod>::namespaced(self.client.clone(), &ns);
        let pp = PostParams {
            dry_run: true,
            field_manager: Some(kruise_crds::FIELD_MANAGER.into()),
        };
        let probe = routing::probe_pod(&ns, &name);
        let mut last = String::from("no probe answered yet");
        while Instant::now() < deadline {
            match pods.create(&pp, &probe).await {
                Ok(p) => {
                    let seen = p
                        .annotations()
                        .get(routing::ROUTING_TOKEN_ANNOTATION)
                        .cloned();
                    if seen.as_deref() == Some(token.as_str()) {
                        return Ok(Fenced::Confirmed(started.elapsed()));
                    }
                    last = match seen {
                        Some(t) => format!("the API server still routed with token {t}"),
                        None => {
                            "the API server did not send the probe to the pod webhook yet".into()
                        }
                    };
                }
                Err(kube::Error::Api(ae))
                    if (ae.code == 403 || ae.code == 422 || ae.code == 400)
                        && !ae
                            .message
                            .contains(kruise_crds::keys::sidecarset::POD_MUTATING_WEBHOOK_NAME) =>
                {
                    return Ok(Fenced::Unverified(format!(
                        "the routing probe pod in namespace {ns} was refused by another admission step ({}), so the pick-up of the new pod webhook configuration was not confirmed",
                        ae.message
                    )));
                }
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
        Err(format!(
            "SidecarSet {name} was not admitted: the API server did not start sending the pods it selects to the kruise-rs pod webhook within {} s ({last}); it was refused so that no pod is created without its sidecars. Try again; if it persists, check kruise-manager's log and that the API server can reach the webhook",
            FENCE_BUDGET.as_secs()
        ))
    }

    /// Adds `name`'s route to the pending routes and writes the configuration with the
    /// resourceVersion just read (a concurrent writer makes this fail, and the caller retries).
    /// `Ok(None)`: the configuration does not exist and this replica does not create it.
    async fn write_routing(
        &self,
        writer: &Writer,
        name: &str,
        route: Option<String>,
    ) -> anyhow::Result<Option<PodMatch>> {
        let api = Api::<MutatingWebhookConfiguration>::all(self.client.clone());
        let current = api.get_opt(configuration::MUTATING_CONFIGURATION).await?;
        if current.is_none() && writer.mode != ConfigurationMode::Own {
            return Ok(None);
        }
        let now = jiff::Timestamp::now().as_second();
        let pending = routing::parse_pending(
            current
                .as_ref()
                .and_then(|c| c.annotations().get(routing::PENDING_ROUTES_ANNOTATION))
                .map(String::as_str),
        );
        let cached = self.cached();
        let added = PendingRoute {
            name: name.to_string(),
            cel: route,
            expires: now + routing::PENDING_TTL_SECONDS,
        };
        let pending = routing::prune_pending(&pending, &cached, Some(added), now);
        let pm = configuration::pod_match_with(&cached, &pending, now);
        let rv = current.and_then(|c| c.metadata.resource_version);
        crate::runtime::apply_configurations(
            &self.client,
            &writer.opts,
            &pm,
            &writer.served,
            writer.mode,
            rv,
        )
        .await?;
        Ok(Some(pm))
    }

    /// Where the probe goes: `default`, else the first namespace the pod webhook is not excluded
    /// from (the probe is routed by its annotation, whatever the SidecarSet selects).
    fn probe_namespace(&self, opts: &Options) -> Option<String> {
        let excluded = |n: &str| {
            SYSTEM_NAMESPACES.contains(&n)
                || n == opts.suite_namespace
                || opts.excluded_namespaces.iter().any(|e| e == n)
        };
        let mut known: Vec<String> = self
            .caches
            .namespaces
            .state()
            .iter()
            .filter(|n| n.metadata.deletion_timestamp.is_none())
            .filter_map(|n| n.metadata.name.clone())
            .filter(|n| !excluded(n))
            .collect();
        known.sort();
        if known.iter().any(|k| k == "default") {
            return Some("default".into());
        }
        known.into_iter().next()
    }
}

/// The pod webhook: answers the fence's dry-run probes with the routing token it was called on, and
/// injects from SidecarSets at least as fresh as the routing the API server used.
pub struct RoutedPodInjector {
    caches: Caches,
    features: Features,
    routing: Arc<Routing>,
}

impl RoutedPodInjector {
    /// Over the webhook's caches and router.
    pub fn new(caches: Caches, features: Features, routing: Arc<Routing>) -> Self {
        Self {
            caches,
            features,
            routing,
        }
    }
}

/// The answer to a fence probe: the probe pod plus the routing token of the path it came on.
fn answer_probe(req: &AdmissionRequest<DynamicObject>, path: &str) -> Option<AdmissionResponse> {
    if !req.dry_run {
        return None;
    }
    let annotations = req.object.as_ref()?.metadata.annotations.as_ref()?;
    if !annotations.contains_key(routing::ROUTING_PROBE_ANNOTATION) {
        return None;
    }
    let token = routing::token_of_path(
        kruise_crds::keys::sidecarset::POD_MUTATING_WEBHOOK_PATH,
        path,
    )
    .unwrap_or("none");
    let patch: json_patch::Patch = serde_json::from_value(serde_json::json!([{
        "op": "add",
        "path": format!("/metadata/annotations/{}", routing::ROUTING_TOKEN_ANNOTATION.replace('~', "~0").replace('/', "~1")),
        "value": token,
    }]))
    .ok()?;
    AdmissionResponse::from(req).with_patch(patch).ok()
}

impl Admit for RoutedPodInjector {
    fn admit(&self, req: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        crate::handlers::inject_pod(&self.caches, self.features, req, None)
    }

    fn is_async(&self) -> bool {
        true
    }

    fn admit_at<'a>(
        &'a self,
        req: &'a AdmissionRequest<DynamicObject>,
        path: &'a str,
    ) -> BoxFuture<'a, AdmissionResponse> {
        Box::pin(async move {
            if let Some(answer) = answer_probe(req, path) {
                return answer;
            }
            if req.operation != Operation::Create || req.sub_resource.is_some() {
                return AdmissionResponse::from(req);
            }
            let since = Instant::now();
            let token = routing::token_of_path(
                kruise_crds::keys::sidecarset::POD_MUTATING_WEBHOOK_PATH,
                path,
            );
            match self.routing.sidecarsets_for(token, since).await {
                Ok(None) => crate::handlers::inject_pod(&self.caches, self.features, req, None),
                Ok(Some(fresh)) => {
                    crate::handlers::inject_pod(&self.caches, self.features, req, Some(&fresh))
                }
                Err(e) => {
                    let name = req
                        .object
                        .as_ref()
                        .and_then(|o| o.metadata.name.clone().or(o.metadata.generate_name.clone()))
                        .unwrap_or_default();
                    tracing::warn!(pod = %name, namespace = ?req.namespace, error = %e, "pod refused: the SidecarSets could not be read from the API server");
                    let mut r = AdmissionResponse::from(req).deny(format!(
                        "pod {name} was not created: the SidecarSets changed since kruise-manager last saw them and reading them from the API server failed ({e}); it was refused so that it does not start without its sidecars, and can be created again"
                    ));
                    r.result.code = 503;
                    r
                }
            }
        })
    }
}

/// The SidecarSet validating webhook with the fence: a valid create or selector change is admitted
/// only once the API server sends the pods it selects to the pod webhook.
pub struct FencedSidecarSetValidator {
    validate: Arc<dyn Admit>,
    routing: Arc<Routing>,
}

impl FencedSidecarSetValidator {
    /// `validate` is the SidecarSet's own validation.
    pub fn new(validate: Arc<dyn Admit>, routing: Arc<Routing>) -> Self {
        Self { validate, routing }
    }
}

impl Admit for FencedSidecarSetValidator {
    fn admit(&self, req: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        self.validate.admit(req)
    }

    fn is_async(&self) -> bool {
        true
    }

    fn admit_at<'a>(
        &'a self,
        req: &'a AdmissionRequest<DynamicObject>,
        _path: &'a str,
    ) -> BoxFuture<'a, AdmissionResponse> {
        Box::pin(async move {
            let resp = self.validate.admit(req);
            if !resp.allowed
                || req.dry_run
                || !matches!(req.operation, Operation::Create | Operation::Update)
            {
                return resp;
            }
            let Ok(Some(new)) = object_as::<SidecarSet>(req.object.as_ref()) else {
                return resp;
            };
            let old = object_as::<SidecarSet>(req.old_object.as_ref())
                .ok()
                .flatten();
            match self.routing.fence(&new, old.as_ref()).await {
                Ok(Fenced::NotNeeded) => resp,
                Ok(Fenced::Confirmed(took)) => {
                    tracing::info!(sidecarset = %new.name_any(), millis = took.as_millis() as u64, "pod webhook routing includes the SidecarSet's selector");
                    resp
                }
                Ok(Fenced::Unverified(why)) => {
                    tracing::warn!(sidecarset = %new.name_any(), %why, "SidecarSet admitted without confirming the pod webhook routing");
                    let mut r = resp;
                    r.warnings = Some(vec![format!(
                        "SidecarSet {}: {why}; pods created in the next second may miss its sidecars",
                        new.name_any()
                    )]);
                    r
                }
                Err(why) => {
                    tracing::warn!(sidecarset = %new.name_any(), %why, "SidecarSet refused: routing not confirmed");
                    let mut r = resp.deny(why);
                    r.result.code = 503;
                    r
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(dry_run: bool, annotations: serde_json::Value) -> AdmissionRequest<DynamicObject> {
        let review: kube::core::admission::AdmissionReview<DynamicObject> =
            serde_json::from_value(json!({
                "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "request": {
                    "uid": "u1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                    "resource": {"group": "", "version": "v1", "resource": "pods"},
                    "operation": "CREATE", "userInfo": {}, "dryRun": dry_run, "namespace": "default",
                    "object": {"apiVersion": "v1", "kind": "Pod",
                               "metadata": {"generateName": "p-", "annotations": annotations},
                               "spec": {"containers": [{"name": "c", "image": "i"}]}}
                }
            }))
            .unwrap();
        review.try_into().unwrap()
    }

    #[test]
    fn a_dry_run_probe_is_answered_with_the_token_of_its_path() {
        let probe = json!({routing::ROUTING_PROBE_ANNOTATION: "ss"});
        let path = "/mutate-pod/0123456789abcdef";
        let r = answer_probe(&request(true, probe.clone()), path).unwrap();
        let patch: serde_json::Value = serde_json::from_slice(r.patch.as_ref().unwrap()).unwrap();
        assert_eq!(
            patch,
            json!([{"op": "add", "path": "/metadata/annotations/kruise-rs.io~1routing-token", "value": "0123456789abcdef"}])
        );
        // a real pod with the annotation, or a dry run without it, is an ordinary pod
        assert!(answer_probe(&request(false, probe), path).is_none());
        assert!(answer_probe(&request(true, json!({"other": "x"})), path).is_none());
    }
}
