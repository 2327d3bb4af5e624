//! The CloneSet validating webhook: the pure rules of `validate`, then the checks that need the API
//! server — each pod newly named in `scaleStrategy.podsToDelete` is read (GET, only those pods).
//! Reads only; never writes an object.

use super::validate::{added_pods_to_delete, validate_pods_to_delete};
use crate::field::render;
use crate::server::{Admit, deny_invalid, object_as};
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kruise_crds::CloneSet;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use kube::{Api, Client};
use std::sync::Arc;

/// How many pods of one `podsToDelete` change are read at once.
const CONCURRENT_READS: usize = 8;

/// The CloneSet validator with its API reads.
pub struct CloneSetValidator {
    validate: Arc<dyn Admit>,
    client: Client,
}

impl CloneSetValidator {
    /// `validate` is the CloneSet's pure validation; `client` reads the pods it names.
    pub fn new(validate: Arc<dyn Admit>, client: Client) -> Self {
        Self { validate, client }
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
                            "CloneSet {:?} was not admitted: pod {name:?} named in spec.scaleStrategy.podsToDelete could not be read to check that this CloneSet owns it ({e}); try again",
                            cs.metadata.name.as_deref().unwrap_or_default()
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
            resp
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
