//! The CloneSet validating webhook: the pure rules of `validate`, then the checks that need the API
//! server — each pod newly named in `scaleStrategy.podsToDelete` is read (GET, only those pods), and
//! a new or changed pod template is checked by Kubernetes' own pod validation through a server-side
//! dry-run create of a pod made from it. Never persists an object.

use super::validate::{added_pods_to_delete, validate_pods_to_delete};
use crate::field::{FieldError, render};
use crate::server::{Admit, deny_invalid, object_as};
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{PersistentVolumeClaimVolumeSource, Pod, Volume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kruise_crds::CloneSet;
use kube::api::PostParams;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use kube::{Api, Client};
use std::sync::Arc;
use std::time::Duration;

/// How many pods of one `podsToDelete` change are read at once.
const CONCURRENT_READS: usize = 8;

/// How long the dry-run pod create may take (the webhook's own timeout is 10 s).
const DRY_RUN_TIMEOUT: Duration = Duration::from_secs(4);

/// The text of an API error for a person: the API server's message, not the client's Debug dump.
fn error_text(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if !s.message.is_empty() => format!("{} ({})", s.message, s.code),
        other => other.to_string(),
    }
}

/// Whether the pod template (or the claims mounted into it) is new or changed: only then is it
/// dry-run, so that scaling or editing other fields never depends on pod admission (quota…).
pub fn template_changed(new: &CloneSet, old: Option<&CloneSet>) -> bool {
    old.is_none_or(|o| {
        o.spec.template != new.spec.template
            || o.spec.volume_claim_templates != new.spec.volume_claim_templates
    })
}

/// The pod the dry-run creates: the template's metadata and spec in the CloneSet's namespace, a
/// generated name, and each volumeClaimTemplate mounted as a claim of its name (as the pods get).
pub fn dry_run_pod(cs: &CloneSet, ns: &str) -> Pod {
    let tmeta = cs.spec.template.metadata.clone().unwrap_or_default();
    let mut spec = cs.spec.template.spec.clone().unwrap_or_default();
    for vct in cs.spec.volume_claim_templates.iter().flatten() {
        let Some(name) = vct.metadata.name.clone() else {
            continue;
        };
        let volumes = spec.volumes.get_or_insert_default();
        if !volumes.iter().any(|v| v.name == name) {
            volumes.push(Volume {
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: name.clone(),
                    read_only: None,
                }),
                name,
                ..Default::default()
            });
        }
    }
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!(
                "{}-",
                cs.metadata.name.as_deref().unwrap_or("cloneset")
            )),
            namespace: Some(ns.to_string()),
            labels: tmeta.labels,
            annotations: tmeta.annotations,
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// Where a field of the dry-run pod is in the CloneSet.
fn template_path(pod_field: &str) -> String {
    match pod_field {
        "" => "spec.template".into(),
        "metadata.name" | "metadata.generateName" => "metadata.name".into(),
        f => format!("spec.template.{f}"),
    }
}

/// What the dry-run's answer means for the CloneSet.
#[derive(Debug, PartialEq)]
pub enum DryRun {
    /// The API server would create the pod.
    Valid,
    /// Kubernetes' pod validation refused the template: these are its field errors.
    Invalid(Vec<FieldError>),
    /// Something else stopped the pod (quota, pod security, another webhook, a timeout): not a
    /// fault of the template as such, so the CloneSet is admitted with this warning.
    Unchecked(String),
}

/// Classifies the dry-run's outcome.
pub fn classify_dry_run(res: Result<(), kube::Error>) -> DryRun {
    let status = match res {
        Ok(()) => return DryRun::Valid,
        Err(kube::Error::Api(s)) => s,
        Err(e) => return DryRun::Unchecked(error_text(&e)),
    };
    let causes = status
        .details
        .as_ref()
        .filter(|d| d.kind.is_empty() || d.kind == "Pod")
        .map(|d| d.causes.as_slice())
        .unwrap_or_default();
    // The pod registry's own validation: 422 Invalid with field causes. A webhook's or a policy's
    // denial says so in its message and is not the template's validation.
    let from_validation = status.code == 422
        && !causes.is_empty()
        && !status.message.starts_with("admission webhook")
        && !status.message.contains("ValidatingAdmissionPolicy");
    if from_validation {
        return DryRun::Invalid(
            causes
                .iter()
                .map(|c| FieldError::reported(template_path(&c.field), c.message.clone()))
                .collect(),
        );
    }
    // The request body itself could not be decoded as a pod (e.g. a malformed quantity).
    if status.code == 400 && status.message.contains("cannot be handled as a Pod") {
        return DryRun::Invalid(vec![FieldError::reported(
            "spec.template",
            format!(
                "Invalid value: the API server cannot read a pod made from this template: {}",
                status.message
            ),
        )]);
    }
    DryRun::Unchecked(format!("{} ({})", status.message, status.code))
}

/// The CloneSet validator with its API reads.
pub struct CloneSetValidator {
    validate: Arc<dyn Admit>,
    client: Client,
}

impl CloneSetValidator {
    /// `validate` is the CloneSet's pure validation; `client` reads the pods it names and dry-runs
    /// its template.
    pub fn new(validate: Arc<dyn Admit>, client: Client) -> Self {
        Self { validate, client }
    }

    /// Creates the template's pod with `dryRun=All`: validated and admitted, never stored.
    async fn dry_run(&self, cs: &CloneSet, ns: &str) -> DryRun {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let pp = PostParams {
            dry_run: true,
            field_manager: Some("kruise-rs".into()),
        };
        let pod = dry_run_pod(cs, ns);
        match tokio::time::timeout(DRY_RUN_TIMEOUT, pods.create(&pp, &pod)).await {
            Ok(res) => classify_dry_run(res.map(|_| ())),
            Err(_) => DryRun::Unchecked(format!(
                "the API server did not answer within {} s",
                DRY_RUN_TIMEOUT.as_secs()
            )),
        }
    }

    /// The pods newly named in `podsToDelete`, each with what the API server has (None: not
    /// found). Err is a refusal message: a read failed for another reason.
    async fn read_named_pods(
        &self,
        cs: &CloneSet,
        old: Option<&CloneSet>,
        ns: &str,
    ) -> Result<Vec<(String, Option<Pod>)>, String> {
        let names = added_pods_to_delete(cs, old);
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        futures::stream::iter(names)
            .map(|name| {
                let pods = pods.clone();
                async move {
                    match pods.get_opt(&name).await {
                        Ok(p) => Ok((name, p)),
                        Err(e) => Err(format!(
                            "CloneSet {:?} was not admitted: pod {name:?} named in spec.scaleStrategy.podsToDelete could not be read to check that this CloneSet owns it ({}); try again",
                            cs.metadata.name.as_deref().unwrap_or_default(),
                            error_text(&e)
                        )),
                    }
                }
            })
            .buffered(CONCURRENT_READS)
            .try_collect()
            .await
    }
}

/// The namespace the request is about (the object's, else the request's, else `default`).
fn namespace_of(req: &AdmissionRequest<DynamicObject>, cs: &CloneSet) -> String {
    cs.metadata
        .namespace
        .clone()
        .or_else(|| req.namespace.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".into())
}

impl Admit for CloneSetValidator {
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
            if !resp.allowed || !matches!(req.operation, Operation::Create | Operation::Update) {
                return resp;
            }
            // The pure rules above already refused what cannot be read.
            let Ok(Some(mut new)) = object_as::<CloneSet>(req.object.as_ref()) else {
                return resp;
            };
            let old = object_as::<CloneSet>(req.old_object.as_ref())
                .ok()
                .flatten();
            let ns = namespace_of(req, &new);
            new.metadata.namespace = Some(ns.clone());
            let found = match self.read_named_pods(&new, old.as_ref(), &ns).await {
                Ok(f) => f,
                Err(msg) => {
                    let mut r = resp.deny(msg);
                    r.result.code = 503;
                    return r;
                }
            };
            let errs = validate_pods_to_delete(&new, &found);
            if !errs.is_empty() {
                return deny_invalid(req, render("CloneSet", &req.name, &errs));
            }
            if !template_changed(&new, old.as_ref()) {
                return resp;
            }
            match self.dry_run(&new, &ns).await {
                DryRun::Valid => resp,
                DryRun::Invalid(errs) => deny_invalid(req, render("CloneSet", &req.name, &errs)),
                DryRun::Unchecked(why) => {
                    tracing::info!(cloneset = %req.name, namespace = %ns, %why, "CloneSet admitted without its template checked by a dry-run pod create");
                    let mut r = resp;
                    r.warnings.get_or_insert_default().push(format!(
                        "CloneSet {:?}: a pod made from spec.template was not accepted by a dry-run create in namespace {ns:?}: {why}; the CloneSet's pods may be refused the same way when they are created",
                        req.name
                    ));
                    r
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    //! The API calls the validator makes, against a mock API server.
    use super::*;
    use http::{Request, Response};
    use kube::client::Body;
    use serde_json::{Value, json};

    type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

    fn validator() -> (CloneSetValidator, Handle) {
        let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let pure = crate::handlers::validating::<CloneSet, _>(
            "CloneSet",
            crate::cloneset::validate_cloneset,
        );
        (
            CloneSetValidator::new(pure, Client::new(svc, "default")),
            handle,
        )
    }

    pub(super) fn cloneset(pods_to_delete: &[&str]) -> Value {
        json!({
            "apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet",
            "metadata": {"name": "web", "namespace": "ns1", "uid": "cs-uid"},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "main", "image": "nginx:1"}]}},
                "scaleStrategy": {"podsToDelete": pods_to_delete}
            }
        })
    }

    pub(super) fn request(
        op: &str,
        object: Value,
        old: Option<Value>,
    ) -> AdmissionRequest<DynamicObject> {
        let review: kube::core::admission::AdmissionReview<DynamicObject> =
            serde_json::from_value(json!({
                "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "request": {
                    "uid": "u", "kind": {"group": "apps.kruise.io", "version": "v1alpha1", "kind": "CloneSet"},
                    "resource": {"group": "apps.kruise.io", "version": "v1alpha1", "resource": "clonesets"},
                    "name": "web", "namespace": "ns1", "operation": op,
                    "userInfo": {}, "object": object, "oldObject": old, "dryRun": false
                }
            }))
            .expect("a valid review");
        review.try_into().expect("a request")
    }

    fn pod(name: &str, owner_uid: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": "ns1",
                            "ownerReferences": [{"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet",
                                                 "name": "web", "uid": owner_uid, "controller": true}]},
               "spec": {"containers": [{"name": "main", "image": "nginx:1"}]}})
    }

    fn not_found(name: &str) -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
               "message": format!("pods \"{name}\" not found"), "reason": "NotFound", "code": 404})
    }

    /// Answers the next request, which must be `method uri`, with `status` and `body`.
    pub(super) async fn expect(
        handle: &mut Handle,
        method: &str,
        uri: &str,
        status: u16,
        body: Value,
    ) -> Value {
        let (req, send) = handle.next_request().await.expect("a request");
        assert_eq!(req.method().as_str(), method);
        assert_eq!(req.uri().to_string(), uri);
        let sent = req.into_body().collect_bytes().await.expect("the body");
        let sent: Value = serde_json::from_slice(&sent).unwrap_or(Value::Null);
        send.send_response(
            Response::builder()
                .status(status)
                .body(Body::from(serde_json::to_vec(&body).expect("json")))
                .expect("a response"),
        );
        sent
    }

    fn status(code: u16, reason: &str, message: &str, causes: Value) -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
               "reason": reason, "code": code,
               "details": {"name": "", "kind": "Pod", "causes": causes}})
    }

    /// Answers the dry-run pod create with `status` and `body`; returns the pod sent.
    async fn expect_dry_run(handle: &mut Handle, status: u16, body: Value) -> Value {
        let (req, send) = handle.next_request().await.expect("a request");
        assert_eq!(req.method().as_str(), "POST");
        assert_eq!(req.uri().path(), "/api/v1/namespaces/ns1/pods");
        let query = req.uri().query().unwrap_or_default().to_string();
        assert!(query.contains("dryRun=All"), "{query}");
        let sent = req.into_body().collect_bytes().await.expect("the body");
        send.send_response(
            Response::builder()
                .status(status)
                .body(Body::from(serde_json::to_vec(&body).expect("json")))
                .expect("a response"),
        );
        serde_json::from_slice(&sent).expect("a pod")
    }

    #[tokio::test]
    async fn a_template_kubernetes_refuses_is_refused_at_admission_naming_the_template_field() {
        let (v, mut handle) = validator();
        let mut cs = cloneset(&[]);
        cs["spec"]["template"]["spec"]["containers"][0]["ports"] =
            json!([{"containerPort": 70000}]);
        cs["spec"]["volumeClaimTemplates"] = json!([{"metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]);
        let req = request("CREATE", cs, None);
        let server = expect_dry_run(
            &mut handle,
            422,
            status(
                422,
                "Invalid",
                "Pod \"web-x\" is invalid: spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
                json!([{"reason": "FieldValueInvalid",
                        "message": "Invalid value: 70000: must be between 1 and 65535, inclusive",
                        "field": "spec.containers[0].ports[0].containerPort"},
                       {"reason": "FieldValueInvalid",
                        "message": "Invalid value: \"-x\": a lowercase RFC 1123 label must consist of ...",
                        "field": "metadata.labels"}]),
            ),
        );
        let (resp, sent) = tokio::join!(v.admit_at(&req, "/validate"), server);
        // the pod is the template's, in the CloneSet's namespace, with the claim mounted
        assert_eq!(sent["metadata"]["generateName"], "web-");
        assert_eq!(sent["metadata"]["namespace"], "ns1");
        assert_eq!(sent["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(
            sent["spec"]["volumes"],
            json!([{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}])
        );
        assert!(!resp.allowed);
        assert_eq!(resp.result.code, 422);
        assert_eq!(
            resp.result.message,
            r#"CloneSet "web" is invalid: [spec.template.spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive, spec.template.metadata.labels: Invalid value: "-x": a lowercase RFC 1123 label must consist of ...]"#
        );
    }

    #[tokio::test]
    async fn a_valid_template_is_admitted_and_an_unchanged_one_is_not_dry_run() {
        let (v, mut handle) = validator();
        let req = request("CREATE", cloneset(&[]), None);
        let server = expect_dry_run(&mut handle, 201, pod("web-x", "cs-uid"));
        let (resp, _) = tokio::join!(v.admit_at(&req, "/validate"), server);
        assert!(resp.allowed, "{}", resp.result.message);
        assert!(resp.warnings.is_none());

        // scaling (template unchanged) makes no call: it must not depend on pod admission
        let mut scaled = cloneset(&[]);
        scaled["spec"]["replicas"] = json!(10);
        let req = request("UPDATE", scaled, Some(cloneset(&[])));
        let resp = v.admit_at(&req, "/validate").await;
        assert!(resp.allowed, "{}", resp.result.message);

        // a changed template is dry-run again
        let mut changed = cloneset(&[]);
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
        let req = request("UPDATE", changed, Some(cloneset(&[])));
        let server = expect_dry_run(&mut handle, 201, pod("web-x", "cs-uid"));
        let (resp, _) = tokio::join!(v.admit_at(&req, "/validate"), server);
        assert!(resp.allowed, "{}", resp.result.message);
    }

    #[tokio::test]
    async fn a_pod_stopped_by_quota_admits_the_cloneset_with_a_warning() {
        let (v, mut handle) = validator();
        let req = request("CREATE", cloneset(&[]), None);
        let server = expect_dry_run(
            &mut handle,
            403,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403,
                   "message": "pods \"web-x\" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2"}),
        );
        let (resp, _) = tokio::join!(v.admit_at(&req, "/validate"), server);
        assert!(resp.allowed, "{}", resp.result.message);
        let warnings = resp.warnings.expect("a warning");
        assert_eq!(
            warnings,
            vec![
                r#"CloneSet "web": a pod made from spec.template was not accepted by a dry-run create in namespace "ns1": pods "web-x" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2 (403); the CloneSet's pods may be refused the same way when they are created"#
            ]
        );
    }

    #[test]
    fn dry_run_outcomes() {
        let api = |v: Value| {
            Err(kube::Error::Api(Box::new(
                serde_json::from_value(v).unwrap(),
            )))
        };
        // a body the API server cannot decode (a quantity the pure rules let through)
        assert_eq!(
            classify_dry_run(api(
                json!({"status": "Failure", "reason": "BadRequest", "code": 400,
                "message": "Pod in version \"v1\" cannot be handled as a Pod: quantities must match the regular expression"})
            )),
            DryRun::Invalid(vec![FieldError::reported(
                "spec.template",
                "Invalid value: the API server cannot read a pod made from this template: Pod in version \"v1\" cannot be handled as a Pod: quantities must match the regular expression"
            )])
        );
        // another webhook's denial is not the template's validation
        assert!(matches!(
            classify_dry_run(api(status(
                422,
                "Invalid",
                "admission webhook \"x.example.com\" denied the request: no",
                json!([{"field": "spec", "message": "no"}])
            ))),
            DryRun::Unchecked(_)
        ));
        assert_eq!(template_path(""), "spec.template");
        assert_eq!(template_path("metadata.generateName"), "metadata.name");
        assert_eq!(
            template_path("metadata.annotations"),
            "spec.template.metadata.annotations"
        );
    }

    #[tokio::test]
    async fn pods_newly_named_in_pods_to_delete_are_read_and_must_belong_to_the_cloneset() {
        let (v, mut handle) = validator();
        let old = cloneset(&["web-aaaaa"]);
        let new = cloneset(&["web-aaaaa", "web-bbbbb", "other-ccccc", "gone"]);
        let req = request("UPDATE", new, Some(old));
        let server = async {
            // only the names the update adds, in list order
            expect(
                &mut handle,
                "GET",
                "/api/v1/namespaces/ns1/pods/web-bbbbb",
                200,
                pod("web-bbbbb", "cs-uid"),
            )
            .await;
            expect(
                &mut handle,
                "GET",
                "/api/v1/namespaces/ns1/pods/other-ccccc",
                200,
                pod("other-ccccc", "other-uid"),
            )
            .await;
            expect(
                &mut handle,
                "GET",
                "/api/v1/namespaces/ns1/pods/gone",
                404,
                not_found("gone"),
            )
            .await;
        };
        let (resp, ()) = tokio::join!(v.admit_at(&req, "/validate"), server);
        assert!(!resp.allowed);
        assert_eq!(resp.result.code, 422);
        assert_eq!(
            resp.result.message,
            r#"CloneSet "web" is invalid: [spec.scaleStrategy.podsToDelete[2]: Invalid value: "other-ccccc": the pod is not owned by this CloneSet; list only pods of this CloneSet, spec.scaleStrategy.podsToDelete[3]: Invalid value: "gone": there is no pod of this name in namespace "ns1"; list only pods of this CloneSet]"#
        );
    }

    #[tokio::test]
    async fn owned_pods_are_admitted_and_unchanged_lists_read_nothing() {
        let (v, mut handle) = validator();
        let req = request(
            "UPDATE",
            cloneset(&["web-aaaaa", "web-bbbbb"]),
            Some(cloneset(&["web-aaaaa"])),
        );
        let server = expect(
            &mut handle,
            "GET",
            "/api/v1/namespaces/ns1/pods/web-bbbbb",
            200,
            pod("web-bbbbb", "cs-uid"),
        );
        let (resp, _) = tokio::join!(v.admit_at(&req, "/validate"), server);
        assert!(resp.allowed, "{}", resp.result.message);

        // a list that only shrinks or stays names no new pod: no read at all
        let req = request(
            "UPDATE",
            cloneset(&["web-aaaaa"]),
            Some(cloneset(&["web-aaaaa", "web-bbbbb"])),
        );
        let resp = v.admit_at(&req, "/validate").await;
        assert!(resp.allowed, "{}", resp.result.message);
    }

    #[tokio::test]
    async fn a_failed_read_is_a_retryable_refusal_naming_the_pod() {
        let (v, mut handle) = validator();
        let req = request("UPDATE", cloneset(&["web-bbbbb"]), Some(cloneset(&[])));
        let server = expect(
            &mut handle,
            "GET",
            "/api/v1/namespaces/ns1/pods/web-bbbbb",
            500,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                   "message": "etcd is unavailable", "reason": "InternalError", "code": 500}),
        );
        let (resp, _) = tokio::join!(v.admit_at(&req, "/validate"), server);
        assert!(!resp.allowed);
        assert_eq!(resp.result.code, 503);
        assert!(
            resp.result.message.starts_with(r#"CloneSet "web" was not admitted: pod "web-bbbbb" named in spec.scaleStrategy.podsToDelete could not be read"#),
            "{}",
            resp.result.message
        );
        assert!(resp.result.message.ends_with("; try again"));
    }
}
