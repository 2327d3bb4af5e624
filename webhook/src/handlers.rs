//! The admission handlers: thin adapters from AdmissionRequests to the pure functions of each kind
//! (`sidecarset::inject`, `*::validate_*`, `*::default_*`). Decoding failures are denials that say
//! what could not be read; nothing here panics on input.

use crate::configuration::{mutate_path, validate_path};
use crate::field::{FieldError, render};
use crate::runtime::{Caches, Config};
use crate::server::{Admit, deny_invalid, object_as};
use kube::Client;
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
            Err(e) => return deny_invalid(req, format!("cannot read the object: {e}")),
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

/// Every path the webhook serves, with its handler.
pub fn routes(caches: Caches, _client: Client, _cfg: &Config) -> Vec<(String, Arc<dyn Admit>)> {
    use crate::imagepull;
    use kruise_crds::{ImageListPullJob, ImagePullJob, NodeImage};
    let _ = &caches;
    let routes: Vec<(String, Arc<dyn Admit>)> = vec![
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
    routes
}
