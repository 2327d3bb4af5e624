//! Deletion protection (OpenKruise's `ResourcesDeletionProtection`,
//! `openkruise/kruise:pkg/webhook/util/deletionprotection`): a DELETE of an object labelled
//! `policy.kruise.io/delete-protection` is refused when the label is `Always`, or `Cascading` while
//! the object still has what it owns. [`plan`] decides from the review alone (pure); the counts a
//! `Cascading` Namespace or CRD needs are read by [`DeletionProtection`], which only lists, never writes.

use crate::server::{Admit, kube_error_text, object_as};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kruise_crds::keys::{
    DELETE_PROTECTION_ALWAYS as ALWAYS, DELETE_PROTECTION_CASCADING as CASCADING,
    DELETE_PROTECTION_LABEL as LABEL,
};
use kube::api::{Api, ListParams};
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use kube::core::{ApiResource, DynamicObject};
use kube::{Client, ResourceExt};
use std::sync::Arc;
use std::time::Duration;

/// The feature gate that turns this on.
pub const GATE: &str = "ResourcesDeletionProtection";
/// The feature gate that lets `Cascading` on a CRD count its custom resources.
pub const CRD_CASCADING_GATE: &str = "DeletionProtectionForCRDCascadingGate";
/// Longest the counts of a `Cascading` object may take (the webhook's own timeout is 10 s).
pub const COUNT_BUDGET: Duration = Duration::from_secs(8);
/// Page size of the lists behind the counts.
const PAGE: u32 = 500;

/// One protected kind: what the ValidatingWebhookConfiguration sends here on DELETE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Protected {
    /// Webhook name (OpenKruise's, where it has one).
    pub webhook: &'static str,
    /// Path it is served on (OpenKruise's).
    pub path: &'static str,
    /// API group.
    pub group: &'static str,
    /// Version in the rule (others reach it through `matchPolicy: Equivalent`).
    pub version: &'static str,
    /// Resource (plural).
    pub resource: &'static str,
    /// `Cluster` or `Namespaced`.
    pub scope: &'static str,
}

const fn protected(
    webhook: &'static str,
    path: &'static str,
    group: &'static str,
    version: &'static str,
    resource: &'static str,
    scope: &'static str,
) -> Protected {
    Protected {
        webhook,
        path,
        group,
        version,
        resource,
        scope,
    }
}

/// Path of the CloneSet's validating webhook, which also answers its DELETEs (as in OpenKruise).
pub const CLONESET_PATH: &str = "/validate-apps-kruise-io-v1alpha1-cloneset";

/// Every kind OpenKruise protects that kruise-rs serves or Kubernetes has (Advanced StatefulSet and
/// UnitedDeployment are not served by kruise-rs).
pub const PROTECTED: [Protected; 8] = [
    protected(
        "vnamespace.kb.io",
        "/validate-namespace",
        "",
        "v1",
        "namespaces",
        "Cluster",
    ),
    protected(
        "vcustomresourcedefinition.kb.io",
        "/validate-customresourcedefinition",
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "Cluster",
    ),
    protected(
        "vbuiltindeployment.kb.io",
        "/validate-apps-deployment",
        "apps",
        "v1",
        "deployments",
        "Namespaced",
    ),
    protected(
        "vbuiltinreplicaset.kb.io",
        "/validate-apps-replicaset",
        "apps",
        "v1",
        "replicasets",
        "Namespaced",
    ),
    protected(
        "vbuiltinstatefulset.kb.io",
        "/validate-apps-statefulset",
        "apps",
        "v1",
        "statefulsets",
        "Namespaced",
    ),
    protected(
        "vservice.kb.io",
        "/validate-service",
        "",
        "v1",
        "services",
        "Namespaced",
    ),
    protected(
        "vingress.kb.io",
        "/validate-ingress",
        "networking.k8s.io",
        "v1",
        "ingresses",
        "Namespaced",
    ),
    // the CREATE/UPDATE webhook of CloneSets sees every CloneSet; this one only labelled DELETEs
    protected(
        "vclonesetdeletion.kb.io",
        CLONESET_PATH,
        "apps.kruise.io",
        "v1alpha1",
        "clonesets",
        "Namespaced",
    ),
];

/// What a DELETE review needs before it can be answered.
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    /// Not protected (no label, another value, already being deleted, not a DELETE).
    Allow,
    /// Refused, with the sentence the user sees.
    Deny(String),
    /// A `Cascading` Namespace: count its active pods and Bound claims.
    CountNamespace {
        /// The namespace.
        name: String,
    },
    /// A `Cascading` CRD: count its custom resources at the storage version.
    CountCustomResources {
        /// The CRD's name.
        crd: String,
        /// Its resources.
        resource: ApiResource,
    },
}

/// `Kind ns/name` of the reviewed object, as messages name it.
fn subject(req: &AdmissionRequest<DynamicObject>) -> String {
    match req.namespace.as_deref().filter(|n| !n.is_empty()) {
        Some(ns) => format!("{} {ns}/{}", req.kind.kind, req.name),
        None => format!("{} {}", req.kind.kind, req.name),
    }
}

fn refused(req: &AdmissionRequest<DynamicObject>, why: &str, what_to_do: &str) -> String {
    format!(
        "{} cannot be deleted: its label {LABEL} is {why} (feature gate {GATE}). {what_to_do}",
        subject(req)
    )
}

/// Decides a review from the object being deleted, without reads. `crd_cascading` is the
/// `DeletionProtectionForCRDCascadingGate` gate.
pub fn plan(req: &AdmissionRequest<DynamicObject>, crd_cascading: bool) -> Plan {
    if req.operation != Operation::Delete || req.sub_resource.is_some() {
        return Plan::Allow;
    }
    // the API server sends oldObject on DELETE since 1.16; without it there is nothing to read
    let Some(old) = req.old_object.as_ref() else {
        return Plan::Allow;
    };
    if old.metadata.deletion_timestamp.is_some() {
        return Plan::Allow;
    }
    let value = old.labels().get(LABEL).map(String::as_str);
    let (group, kind) = (req.kind.group.as_str(), req.kind.kind.as_str());
    let workload = matches!(
        (group, kind),
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet") | ("apps.kruise.io", "CloneSet")
    );
    let always_only = matches!(
        (group, kind),
        ("", "Service") | ("networking.k8s.io", "Ingress")
    );
    let namespace = (group, kind) == ("", "Namespace");
    let crd = (group, kind) == ("apiextensions.k8s.io", "CustomResourceDefinition");
    if !(workload || always_only || namespace || crd) {
        return Plan::Allow;
    }
    match value {
        Some(ALWAYS) => Plan::Deny(refused(req, ALWAYS, "Remove the label to delete it.")),
        Some(CASCADING) if workload => {
            // OpenKruise reads spec.replicas as it is: absent means nothing to protect
            match old.data.pointer("/spec/replicas").and_then(|r| r.as_i64()) {
                Some(n) if n > 0 => Plan::Deny(refused(
                    req,
                    &format!("{CASCADING} and its spec.replicas is {n}"),
                    "Scale it to 0 first, or remove the label.",
                )),
                _ => Plan::Allow,
            }
        }
        Some(CASCADING) if namespace => Plan::CountNamespace {
            name: req.name.clone(),
        },
        Some(CASCADING) if crd && !crd_cascading => Plan::Deny(refused(
            req,
            CASCADING,
            &format!(
                "Counting a CustomResourceDefinition's resources needs the feature gate \
                 {CRD_CASCADING_GATE}=true (as in OpenKruise); enable it, or remove the label."
            ),
        )),
        Some(CASCADING) if crd => match object_as::<CustomResourceDefinition>(Some(old)) {
            Ok(Some(c)) => match storage_resource(&c) {
                Some(resource) => Plan::CountCustomResources {
                    crd: req.name.clone(),
                    resource,
                },
                None => Plan::Deny(refused(
                    req,
                    CASCADING,
                    "Its spec.versions has no storage version, so its resources cannot be \
                     counted; remove the label to delete it.",
                )),
            },
            Ok(None) => Plan::Allow,
            Err(e) => Plan::Deny(refused(
                req,
                CASCADING,
                &format!(
                    "It cannot be read ({e}), so its resources cannot be counted; remove the \
                     label to delete it."
                ),
            )),
        },
        // Cascading on a Service or an Ingress, any other value: not protected (as in OpenKruise)
        _ => Plan::Allow,
    }
}

/// The resources of a CRD at its storage version.
fn storage_resource(crd: &CustomResourceDefinition) -> Option<ApiResource> {
    let v = crd.spec.versions.iter().find(|v| v.storage)?;
    let group = crd.spec.group.clone();
    Some(ApiResource {
        api_version: format!("{group}/{}", v.name),
        group,
        version: v.name.clone(),
        kind: crd.spec.names.kind.clone(),
        plural: crd.spec.names.plural.clone(),
    })
}

/// The refusal of a `Cascading` Namespace with these counts, if any.
pub fn judge_namespace(
    req: &AdmissionRequest<DynamicObject>,
    active_pods: usize,
    bound_claims: usize,
) -> Option<String> {
    if active_pods > 0 {
        return Some(refused(
            req,
            &format!("{CASCADING} and it still has {active_pods} active pod(s)"),
            "Delete them (or let them finish) first, or remove the label.",
        ));
    }
    (bound_claims > 0).then(|| {
        refused(
            req,
            &format!("{CASCADING} and it still has {bound_claims} Bound PersistentVolumeClaim(s)"),
            "Delete them first, or remove the label.",
        )
    })
}

/// The refusal of a `Cascading` CRD with `active` custom resources, if any.
pub fn judge_custom_resources(
    req: &AdmissionRequest<DynamicObject>,
    resource: &ApiResource,
    active: usize,
) -> Option<String> {
    (active > 0).then(|| {
        refused(
            req,
            &format!(
                "{CASCADING} and {active} {} ({}) still exist",
                resource.plural, resource.api_version
            ),
            "Delete them first, or remove the label.",
        )
    })
}

/// Active pods (not Succeeded or Failed, not being deleted) and Bound claims (not being deleted)
/// of a namespace.
pub async fn count_namespace(client: &Client, ns: &str) -> Result<(usize, usize), kube::Error> {
    let pods = Api::<Pod>::namespaced(client.clone(), ns);
    let lp = ListParams::default()
        .fields("status.phase!=Succeeded,status.phase!=Failed")
        .limit(PAGE);
    let mut active = 0;
    let mut cont: Option<String> = None;
    loop {
        let page = match &cont {
            Some(c) => pods.list_metadata(&lp.clone().continue_token(c)).await?,
            None => pods.list_metadata(&lp).await?,
        };
        active += page
            .items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .count();
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => cont = Some(c),
            None => break,
        }
    }
    let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns);
    let lp = ListParams::default().limit(PAGE);
    let mut bound = 0;
    let mut cont: Option<String> = None;
    loop {
        let page = match &cont {
            Some(c) => claims.list(&lp.clone().continue_token(c)).await?,
            None => claims.list(&lp).await?,
        };
        bound += page
            .items
            .iter()
            .filter(|c| {
                c.metadata.deletion_timestamp.is_none()
                    && c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
            })
            .count();
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => cont = Some(c),
            None => break,
        }
    }
    Ok((active, bound))
}

/// Custom resources (in every namespace) not being deleted.
pub async fn count_custom_resources(
    client: &Client,
    resource: &ApiResource,
) -> Result<usize, kube::Error> {
    let api = Api::<DynamicObject>::all_with(client.clone(), resource);
    let lp = ListParams::default().limit(PAGE);
    let mut active = 0;
    let mut cont: Option<String> = None;
    loop {
        let page = match &cont {
            Some(c) => api.list_metadata(&lp.clone().continue_token(c)).await?,
            None => api.list_metadata(&lp).await?,
        };
        active += page
            .items
            .iter()
            .filter(|o| o.metadata.deletion_timestamp.is_none())
            .count();
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => cont = Some(c),
            None => break,
        }
    }
    Ok(active)
}

/// The answer to a refused DELETE: 403 Forbidden, as OpenKruise answers.
fn forbid(req: &AdmissionRequest<DynamicObject>, msg: String) -> AdmissionResponse {
    let mut resp = AdmissionResponse::from(req).deny(msg);
    resp.result.code = 403;
    resp.result.reason = "Forbidden".into();
    resp
}

/// The deletion protection webhook. On other operations it answers with `inner` (the CloneSet's
/// validation shares its path), or allows.
pub struct DeletionProtection {
    client: Client,
    crd_cascading: bool,
    inner: Option<Arc<dyn Admit>>,
}

impl DeletionProtection {
    /// Protection reading through `client`; `crd_cascading` is `DeletionProtectionForCRDCascadingGate`.
    pub fn new(client: Client, crd_cascading: bool, inner: Option<Arc<dyn Admit>>) -> Self {
        Self {
            client,
            crd_cascading,
            inner,
        }
    }

    /// The answer once the counts a plan needs are read.
    pub async fn decide(&self, req: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        let plan = plan(req, self.crd_cascading);
        let counted = async {
            match &plan {
                Plan::Allow => None,
                Plan::Deny(why) => Some(why.clone()),
                Plan::CountNamespace { name } => match count_namespace(&self.client, name).await {
                    Ok((pods, claims)) => judge_namespace(req, pods, claims),
                    Err(e) => Some(refused(
                        req,
                        CASCADING,
                        &format!(
                            "Its pods and PersistentVolumeClaims could not be listed to check \
                             that none is left ({}); try again, or remove the label.",
                            kube_error_text(&e)
                        ),
                    )),
                },
                Plan::CountCustomResources { resource, .. } => {
                    match count_custom_resources(&self.client, resource).await {
                        Ok(n) => judge_custom_resources(req, resource, n),
                        Err(e) => Some(refused(
                            req,
                            CASCADING,
                            &format!(
                                "Its {} ({}) could not be listed to check that none is left \
                                 ({}); try again, or remove the label.",
                                resource.plural,
                                resource.api_version,
                                kube_error_text(&e)
                            ),
                        )),
                    }
                }
            }
        };
        let refusal = match tokio::time::timeout(COUNT_BUDGET, counted).await {
            Ok(r) => r,
            Err(_) => Some(refused(
                req,
                CASCADING,
                &format!(
                    "What it still owns could not be counted within {} s; try again, or remove \
                     the label.",
                    COUNT_BUDGET.as_secs()
                ),
            )),
        };
        match refusal {
            Some(why) => {
                tracing::info!(object = %subject(req), user = ?req.user_info.username, "deletion refused by {LABEL}");
                forbid(req, why)
            }
            None => AdmissionResponse::from(req),
        }
    }
}

impl Admit for DeletionProtection {
    /// Without reads: a `Cascading` Namespace or CRD is refused saying it could not be counted
    /// (the server calls [`Admit::admit_at`], which counts).
    fn admit(&self, req: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        if req.operation != Operation::Delete {
            return match &self.inner {
                Some(inner) => inner.admit(req),
                None => AdmissionResponse::from(req),
            };
        }
        match plan(req, self.crd_cascading) {
            Plan::Allow => AdmissionResponse::from(req),
            Plan::Deny(why) => forbid(req, why),
            Plan::CountNamespace { .. } | Plan::CountCustomResources { .. } => forbid(
                req,
                refused(
                    req,
                    CASCADING,
                    "What it still owns could not be counted here; try again.",
                ),
            ),
        }
    }

    fn is_async(&self) -> bool {
        true
    }

    fn admit_at<'a>(
        &'a self,
        req: &'a AdmissionRequest<DynamicObject>,
        path: &'a str,
    ) -> BoxFuture<'a, AdmissionResponse> {
        if req.operation != Operation::Delete {
            return match &self.inner {
                Some(inner) => inner.admit_at(req, path),
                None => Box::pin(std::future::ready(AdmissionResponse::from(req))),
            };
        }
        Box::pin(self.decide(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Request, Response};
    use kube::client::Body;
    use serde_json::{Value, json};

    fn review(
        op: &str,
        (group, version, kind): (&str, &str, &str),
        namespace: Option<&str>,
        old: Value,
    ) -> AdmissionRequest<DynamicObject> {
        let name = old["metadata"]["name"].as_str().unwrap_or("x").to_string();
        let review: kube::core::admission::AdmissionReview<DynamicObject> =
            serde_json::from_value(json!({
                "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "request": {
                    "uid": "u", "kind": {"group": group, "version": version, "kind": kind},
                    "resource": {"group": group, "version": version, "resource": "r"},
                    "name": name, "namespace": namespace, "operation": op,
                    "userInfo": {"username": "alice"}, "oldObject": old, "dryRun": false
                }
            }))
            .expect("a valid review");
        review.try_into().expect("a request")
    }

    fn labelled(kind: &str, value: Option<&str>, spec: Value) -> Value {
        let mut o =
            json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": "web"}, "spec": spec});
        if let Some(v) = value {
            o["metadata"]["labels"] = json!({LABEL: v});
        }
        o
    }

    const DEPLOYMENT: (&str, &str, &str) = ("apps", "v1", "Deployment");

    #[test]
    fn workloads_always_and_cascading_with_replicas_are_refused() {
        let deploy = |v: Option<&str>, replicas: Value| {
            plan(
                &review(
                    "DELETE",
                    DEPLOYMENT,
                    Some("default"),
                    labelled("Deployment", v, json!({"replicas": replicas})),
                ),
                false,
            )
        };
        assert_eq!(deploy(None, json!(3)), Plan::Allow);
        assert_eq!(deploy(Some("Sometimes"), json!(3)), Plan::Allow);
        assert_eq!(
            deploy(Some("Always"), json!(0)),
            Plan::Deny(
                "Deployment default/web cannot be deleted: its label policy.kruise.io/delete-protection \
                 is Always (feature gate ResourcesDeletionProtection). Remove the label to delete it."
                    .into()
            )
        );
        assert_eq!(
            deploy(Some("Cascading"), json!(2)),
            Plan::Deny(
                "Deployment default/web cannot be deleted: its label policy.kruise.io/delete-protection \
                 is Cascading and its spec.replicas is 2 (feature gate ResourcesDeletionProtection). \
                 Scale it to 0 first, or remove the label."
                    .into()
            )
        );
        assert_eq!(deploy(Some("Cascading"), json!(0)), Plan::Allow);
        assert_eq!(deploy(Some("Cascading"), Value::Null), Plan::Allow);
        for kind in [
            ("apps", "v1", "ReplicaSet"),
            ("apps", "v1", "StatefulSet"),
            ("apps.kruise.io", "v1beta1", "CloneSet"),
        ] {
            let p = plan(
                &review(
                    "DELETE",
                    kind,
                    Some("default"),
                    labelled(kind.2, Some("Cascading"), json!({"replicas": 1})),
                ),
                false,
            );
            assert!(
                matches!(&p, Plan::Deny(m) if m.starts_with(&format!("{} default/web cannot be deleted", kind.2))),
                "{p:?}"
            );
        }
    }

    #[test]
    fn only_deletes_of_live_objects_are_checked() {
        let old = labelled("Deployment", Some("Always"), json!({"replicas": 1}));
        for op in ["CREATE", "UPDATE", "CONNECT"] {
            assert_eq!(
                plan(&review(op, DEPLOYMENT, Some("d"), old.clone()), false),
                Plan::Allow
            );
        }
        let mut going = old.clone();
        going["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
        assert_eq!(
            plan(&review("DELETE", DEPLOYMENT, Some("d"), going), false),
            Plan::Allow
        );
        // kinds OpenKruise does not protect
        let cm = labelled("ConfigMap", Some("Always"), Value::Null);
        assert_eq!(
            plan(
                &review("DELETE", ("", "v1", "ConfigMap"), Some("d"), cm),
                false
            ),
            Plan::Allow
        );
    }

    #[test]
    fn services_and_ingresses_only_know_always() {
        for kind in [
            ("", "v1", "Service"),
            ("networking.k8s.io", "v1", "Ingress"),
        ] {
            let p = |v| {
                plan(
                    &review(
                        "DELETE",
                        kind,
                        Some("d"),
                        labelled(kind.2, Some(v), json!({})),
                    ),
                    false,
                )
            };
            assert!(matches!(p("Always"), Plan::Deny(_)));
            assert_eq!(p("Cascading"), Plan::Allow);
        }
    }

    fn crd(storage: bool) -> Value {
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "foos.example.com", "labels": {LABEL: "Cascading"}},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "foos", "kind": "Foo", "listKind": "FooList"},
                "versions": [{"name": "v1", "served": true, "storage": storage}]}})
    }
    const CRD: (&str, &str, &str) = ("apiextensions.k8s.io", "v1", "CustomResourceDefinition");

    #[test]
    fn namespaces_and_crds_with_cascading_need_counts() {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "team", "labels": {LABEL: "Cascading"}}});
        let req = review("DELETE", ("", "v1", "Namespace"), None, ns);
        assert_eq!(
            plan(&req, false),
            Plan::CountNamespace {
                name: "team".into()
            }
        );
        assert_eq!(judge_namespace(&req, 0, 0), None);
        assert_eq!(
            judge_namespace(&req, 2, 1).as_deref(),
            Some(
                "Namespace team cannot be deleted: its label policy.kruise.io/delete-protection is \
                 Cascading and it still has 2 active pod(s) (feature gate ResourcesDeletionProtection). \
                 Delete them (or let them finish) first, or remove the label."
            )
        );
        assert!(
            judge_namespace(&req, 0, 1)
                .unwrap()
                .contains("still has 1 Bound PersistentVolumeClaim(s)")
        );

        let req = review("DELETE", CRD, None, crd(true));
        // the CRD gate is off: refused naming it, as OpenKruise refuses
        let Plan::Deny(why) = plan(&req, false) else {
            panic!("refused without the gate")
        };
        assert!(
            why.contains("needs the feature gate DeletionProtectionForCRDCascadingGate=true"),
            "{why}"
        );
        let Plan::CountCustomResources {
            crd: name,
            resource,
        } = plan(&req, true)
        else {
            panic!("counted with the gate")
        };
        assert_eq!(name, "foos.example.com");
        assert_eq!(
            (resource.api_version.as_str(), resource.plural.as_str()),
            ("example.com/v1", "foos")
        );
        assert!(
            judge_custom_resources(&req, &resource, 4)
                .unwrap()
                .contains("is Cascading and 4 foos (example.com/v1) still exist")
        );
        let no_storage = review("DELETE", CRD, None, crd(false));
        assert!(
            matches!(plan(&no_storage, true), Plan::Deny(m) if m.contains("no storage version"))
        );
    }

    type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

    fn mock() -> (Client, Handle) {
        let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        (Client::new(svc, "default"), handle)
    }

    async fn serve(h: &mut Handle, want_path: &str, code: u16, body: Value) -> String {
        let (req, send) = h.next_request().await.expect("a request");
        let uri = req.uri().to_string();
        assert!(uri.starts_with(want_path), "{uri}");
        send.send_response(
            Response::builder()
                .status(code)
                .body(Body::from(serde_json::to_vec(&body).unwrap()))
                .unwrap(),
        );
        uri
    }

    fn list(items: Vec<Value>, cont: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "List", "metadata": {"continue": cont}, "items": items})
    }

    #[tokio::test]
    async fn a_cascading_namespace_is_refused_while_it_has_active_pods() {
        let (client, mut h) = mock();
        let ns = json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "team", "labels": {LABEL: "Cascading"}}});
        let req = review("DELETE", ("", "v1", "Namespace"), None, ns);
        let webhook = DeletionProtection::new(client, false, None);
        let answer =
            tokio::spawn(async move { webhook.admit_at(&req, "/validate-namespace").await });
        let pod = |name: &str, deleting: bool| {
            let mut p = json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                "metadata": {"name": name, "namespace": "team"}});
            if deleting {
                p["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
            }
            p
        };
        // two pages of pods, filtered by phase on the server; one is being deleted
        let uri = serve(
            &mut h,
            "/api/v1/namespaces/team/pods?",
            200,
            list(vec![pod("a", false), pod("b", true)], "next"),
        )
        .await;
        assert!(uri.contains("fieldSelector=status.phase"), "{uri}");
        let uri = serve(
            &mut h,
            "/api/v1/namespaces/team/pods?",
            200,
            list(vec![pod("c", false)], ""),
        )
        .await;
        assert!(uri.contains("continue=next"), "{uri}");
        let claim = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": "team"}, "status": {"phase": "Bound"}});
        serve(
            &mut h,
            "/api/v1/namespaces/team/persistentvolumeclaims?",
            200,
            list(vec![claim], ""),
        )
        .await;
        let resp = answer.await.unwrap();
        assert!(!resp.allowed);
        assert_eq!(resp.result.code, 403);
        assert!(
            resp.result.message.contains("still has 2 active pod(s)"),
            "{}",
            resp.result.message
        );
    }

    #[tokio::test]
    async fn a_cascading_crd_is_counted_and_list_errors_refuse_naming_them() {
        let (client, mut h) = mock();
        let webhook = Arc::new(DeletionProtection::new(client, true, None));
        let req = review("DELETE", CRD, None, crd(true));
        let w = webhook.clone();
        let r = req.clone();
        let answer = tokio::spawn(async move { w.admit_at(&r, "/p").await });
        serve(&mut h, "/apis/example.com/v1/foos?", 200, list(vec![], "")).await;
        let resp = answer.await.unwrap();
        assert!(resp.allowed, "{}", resp.result.message);

        let w = webhook.clone();
        let answer = tokio::spawn(async move { w.admit_at(&req, "/p").await });
        serve(
            &mut h,
            "/apis/example.com/v1/foos?",
            403,
            json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": 403,
                   "reason": "Forbidden", "message": "foos.example.com is forbidden"}),
        )
        .await;
        let resp = answer.await.unwrap();
        assert!(!resp.allowed);
        assert!(
            resp.result
                .message
                .contains("Its foos (example.com/v1) could not be listed to check that none is left (foos.example.com is forbidden (HTTP 403 Forbidden))"),
            "{}",
            resp.result.message
        );
        assert!(!resp.result.message.contains("Status {"), "no Debug output");
    }

    #[tokio::test]
    async fn other_operations_go_to_the_inner_webhook() {
        let (client, _h) = mock();
        let inner: Arc<dyn Admit> = Arc::new(|req: &AdmissionRequest<DynamicObject>| {
            AdmissionResponse::from(req).deny("inner")
        });
        let webhook = DeletionProtection::new(client, false, Some(inner));
        let old = labelled("CloneSet", None, json!({"replicas": 1}));
        let req = review(
            "UPDATE",
            ("apps.kruise.io", "v1alpha1", "CloneSet"),
            Some("d"),
            old,
        );
        assert_eq!(
            webhook.admit_at(&req, CLONESET_PATH).await.result.message,
            "inner"
        );
    }
}
