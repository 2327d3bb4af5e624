//! The HTTPS admission server: OpenKruise's webhook paths, `/healthz`, `/readyz`. Each path is an
//! [`Admit`] implementation; this module only decodes AdmissionReviews, calls it and encodes the
//! answer. A body that is not an AdmissionReview gets HTTP 400; nothing here panics on input.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Largest AdmissionReview accepted, in bytes. The API server takes request bodies up to 3 MiB and
/// an UPDATE review carries `object` and `oldObject`: 2 × 3 MiB plus the review's envelope. (axum's
/// default, 2 MB, refused legitimate large pods with an opaque "length limit exceeded".)
pub const MAX_REVIEW_BYTES: usize = 7 * 1024 * 1024;

/// One admission decision: a mutating or validating webhook behind one path.
pub trait Admit: Send + Sync + 'static {
    /// Answers `req`. Must not panic; errors are denials with a message.
    fn admit(&self, req: &AdmissionRequest<DynamicObject>) -> AdmissionResponse;

    /// Whether [`Admit::admit_at`] must be used: the handler awaits API calls (the pod webhook's
    /// fresh reads, the SidecarSet admission's fence). The others run off the async workers.
    fn is_async(&self) -> bool {
        false
    }

    /// Answers `req` called on `path` (the pod webhook's path carries its routing token).
    fn admit_at<'a>(
        &'a self,
        req: &'a AdmissionRequest<DynamicObject>,
        _path: &'a str,
    ) -> futures::future::BoxFuture<'a, AdmissionResponse> {
        Box::pin(std::future::ready(self.admit(req)))
    }
}

impl<F> Admit for F
where
    F: Fn(&AdmissionRequest<DynamicObject>) -> AdmissionResponse + Send + Sync + 'static,
{
    fn admit(&self, req: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        self(req)
    }
}

/// Readiness of the webhook: ready once the serving certificate is loaded and the `caBundle` is in
/// the webhook configurations (OpenKruise's `Inited()`), and not while a problem is reported (the
/// configurations have been failing to be written, see [`crate::write_health`]).
#[derive(Clone, Default, Debug)]
pub struct Readiness(Arc<ReadinessState>);

#[derive(Default, Debug)]
struct ReadinessState {
    ready: AtomicBool,
    problem: std::sync::RwLock<Option<String>>,
}

/// What `/readyz` says before the certificates are in place.
pub const NOT_INITIALIZED: &str = "webhook certificates are not in place yet";

impl Readiness {
    /// Marks the webhook ready.
    pub fn set_ready(&self) {
        self.0.ready.store(true, Ordering::SeqCst);
    }
    /// Reports a problem that makes the replica unready (the sentence `/readyz` answers), or
    /// clears it with `None`.
    pub fn set_problem(&self, why: Option<String>) {
        *self.0.problem.write().unwrap_or_else(|e| e.into_inner()) = why;
    }
    /// Ready, or the sentence saying why not.
    pub fn check(&self) -> Result<(), String> {
        if let Some(why) = self
            .0
            .problem
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Err(why);
        }
        if self.0.ready.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(NOT_INITIALIZED.to_string())
        }
    }
    /// Whether it is ready.
    pub fn is_ready(&self) -> bool {
        self.check().is_ok()
    }
}

/// One answered admission call, as metrics see it.
#[derive(Clone, Copy, Debug)]
pub struct Observation<'a> {
    /// The webhook path.
    pub path: &'a str,
    /// The reviewed kind (`Pod`, `SidecarSet`...).
    pub kind: &'a str,
    /// Whether the object was admitted.
    pub allowed: bool,
    /// Whether the handler panicked (the answer is then an internal error).
    pub panicked: bool,
    /// Time spent deciding.
    pub seconds: f64,
}

/// Observes each admission call; metrics plug in here.
pub type Observer = Arc<dyn Fn(&Observation<'_>) + Send + Sync>;

#[derive(Clone)]
struct AppState {
    routes: Arc<BTreeMap<String, Arc<dyn Admit>>>,
    observe: Option<Observer>,
}

/// The router: every `(path, handler)` as `POST path`, plus `/healthz` and `/readyz`.
pub fn router(
    routes: Vec<(String, Arc<dyn Admit>)>,
    ready: Readiness,
    observe: Option<Observer>,
) -> Router {
    let mut app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                async move {
                    match ready.check() {
                        Ok(()) => (StatusCode::OK, "ok".to_string()),
                        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
                    }
                }
            }),
        );
    let state = AppState {
        routes: Arc::new(routes.into_iter().collect()),
        observe,
    };
    for path in state.routes.keys() {
        app = app.route(path, post(serve_review));
        if path == kruise_crds::keys::sidecarset::POD_MUTATING_WEBHOOK_PATH {
            // the pod webhook is called on `/mutate-pod/<routing token>`
            app = app.route(&format!("{path}/{{token}}"), post(serve_review));
        }
    }
    app.layer(axum::extract::DefaultBodyLimit::max(MAX_REVIEW_BYTES))
        .with_state(state)
}

async fn serve_review(
    State(st): State<AppState>,
    uri: axum::http::Uri,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let path = uri.path().to_string();
    let pod = kruise_crds::keys::sidecarset::POD_MUTATING_WEBHOOK_PATH;
    let key = match crate::sidecarset::routing::token_of_path(pod, &path) {
        Some(_) => pod,
        None => path.as_str(),
    };
    let Some(handler) = st.routes.get(key).cloned() else {
        return (StatusCode::NOT_FOUND, "no such webhook").into_response();
    };
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            tracing::warn!(webhook = %path, limit = MAX_REVIEW_BYTES, "AdmissionReview over the size limit refused");
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the AdmissionReview sent to {path} is larger than the webhook's limit of {} MiB \
                     ({MAX_REVIEW_BYTES} bytes: twice the API server's 3 MiB object limit, for object \
                     and oldObject, plus the envelope); the object is too large to review",
                    MAX_REVIEW_BYTES / (1024 * 1024)
                ),
            )
                .into_response();
        }
        Err(e) => {
            return (
                e.status(),
                format!("cannot read the AdmissionReview body: {}", e.body_text()),
            )
                .into_response();
        }
    };
    let started = Instant::now();
    let review: AdmissionReview<DynamicObject> = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("not an AdmissionReview: {e}"),
            )
                .into_response();
        }
    };
    let req: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("AdmissionReview without a request: {e}"),
            )
                .into_response();
        }
    };
    // The decision is CPU-only and short; run it off the async workers anyway so a slow one cannot
    // stall the accept loop. A panic in it refuses this one object with an internal error. The
    // async handlers (they await API calls) run on the async workers.
    let decided = if handler.is_async() {
        let at = path.clone();
        tokio::spawn(async move {
            let resp = crate::panics::CatchPanic::new(handler.admit_at(&req, &at)).await;
            (resp, req)
        })
        .await
    } else {
        tokio::task::spawn_blocking(move || {
            let resp = crate::panics::guarded(|| handler.admit(&req));
            (resp, req)
        })
        .await
    };
    let (resp, panicked, kind) = match decided {
        Ok((Ok(resp), req)) => (resp, false, req.kind.kind),
        Ok((Err(panic), req)) => (internal_error(&path, &req, &panic), true, req.kind.kind),
        Err(e) => {
            tracing::error!(%path, error = %e, "admission handler failed");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "admission handler failed",
            )
                .into_response();
        }
    };
    if let Some(obs) = &st.observe {
        // the path without the pod webhook's routing token: one metric series per webhook
        obs(&Observation {
            path: key,
            kind: &kind,
            allowed: resp.allowed,
            panicked,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    encode_review(resp)
}

/// `<ns>/<name>` of the reviewed object (`<ns>/<generateName>*` before the API server names it).
fn object_name(req: &AdmissionRequest<DynamicObject>) -> String {
    let name = if req.name.is_empty() {
        let generated = req
            .object
            .as_ref()
            .and_then(|o| o.metadata.generate_name.as_deref())
            .unwrap_or_default();
        format!("{generated}*")
    } else {
        req.name.clone()
    };
    match req.namespace.as_deref().filter(|n| !n.is_empty()) {
        Some(ns) => format!("{ns}/{name}"),
        None => name,
    }
}

/// The answer to a review whose handler panicked: refused with an internal error (HTTP 500 in the
/// status), logged once with the panic; the other reviews are unaffected.
fn internal_error(
    path: &str,
    req: &AdmissionRequest<DynamicObject>,
    panic: &crate::panics::Panic,
) -> AdmissionResponse {
    let kind = &req.kind.kind;
    let object = object_name(req);
    tracing::error!(
        webhook = %path,
        kind = %kind,
        object = %object,
        operation = ?req.operation,
        panic = %panic,
        "the admission webhook {path} panicked while reviewing {kind} {object}: {panic}. The request \
         was refused with an internal error; other requests are unaffected. This is a kruise-rs bug: \
         please report it with this line"
    );
    let mut resp = AdmissionResponse::from(req).deny(format!(
        "internal error while reviewing {kind} {object}; see the manager log"
    ));
    resp.result.code = 500;
    resp.result.reason = "InternalError".into();
    resp
}

/// Encodes the answer. kube serializes `response.patch` as an array of numbers; the API server takes
/// that, but the standard form (and 4x smaller on the wire) is a base64 string.
fn encode_review(resp: AdmissionResponse) -> Response {
    use base64::Engine as _;
    let patch = resp.patch.clone();
    let mut v = match serde_json::to_value(resp.into_review()) {
        Ok(v) => v,
        Err(e) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("encode the review: {e}"),
            )
                .into_response();
        }
    };
    if let (Some(p), Some(r)) = (patch, v.get_mut("response")) {
        r["patch"] = serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(p));
    }
    axum::Json(v).into_response()
}

/// Decodes the request's object (or old object) into a typed `K`.
pub fn object_as<K: serde::de::DeserializeOwned>(
    obj: Option<&DynamicObject>,
) -> Result<Option<K>, String> {
    match obj {
        None => Ok(None),
        Some(o) => {
            let v = serde_json::to_value(o).map_err(|e| e.to_string())?;
            // name the field that does not fit, e.g. `spec.replicas: invalid type: string "five"`
            serde_path_to_error::deserialize(v)
                .map(Some)
                .map_err(|e| format!("{}: {}", e.path(), e.inner()))
        }
    }
}

/// A kube error as a sentence fragment: the API server's message with its code and reason
/// (kube's own `Display` of an API error appends the Debug form of the whole Status).
pub fn kube_error_text(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} (HTTP {} {})", s.message, s.code, s.reason),
        other => other.to_string(),
    }
}

/// `AdmissionResponse::from(req)` denied with `msg`, as an Invalid (422) status like the API
/// server's own validation.
pub fn deny_invalid(
    req: &AdmissionRequest<DynamicObject>,
    msg: impl ToString,
) -> AdmissionResponse {
    let mut resp = AdmissionResponse::from(req).deny(msg);
    resp.result.code = 422;
    resp.result.reason = "Invalid".into();
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    fn app() -> Router {
        let allow: Arc<dyn Admit> =
            Arc::new(|req: &AdmissionRequest<DynamicObject>| AdmissionResponse::from(req));
        let deny: Arc<dyn Admit> = Arc::new(|req: &AdmissionRequest<DynamicObject>| {
            deny_invalid(req, "spec.x: Invalid value")
        });
        router(
            vec![("/allow".into(), allow), ("/deny".into(), deny)],
            Readiness::default(),
            None,
        )
    }

    fn review(uid: &str) -> String {
        serde_json::json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": uid, "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
                "requestResource": {"group": "", "version": "v1", "resource": "pods"},
                "name": "p", "namespace": "default", "operation": "CREATE",
                "userInfo": {"username": "u"},
                "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}},
                "dryRun": false
            }
        })
        .to_string()
    }

    async fn call(app: Router, path: &str, body: String) -> (StatusCode, serde_json::Value) {
        let resp = app
            .oneshot(
                Request::post(path)
                    .header("content-type", "application/json")
                    .body(Body::from(body))
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }

    #[tokio::test]
    async fn answers_with_the_request_uid() {
        let (status, body) = call(app(), "/allow", review("abc-1")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["response"]["uid"], "abc-1");
        assert_eq!(body["response"]["allowed"], true);
        let (_, body) = call(app(), "/deny", review("abc-2")).await;
        assert_eq!(body["response"]["allowed"], false);
        assert_eq!(
            body["response"]["status"]["message"],
            "spec.x: Invalid value"
        );
        assert_eq!(body["response"]["status"]["code"], 422);
    }

    #[tokio::test]
    async fn patches_are_base64_strings() {
        use base64::Engine as _;
        let patching: Arc<dyn Admit> = Arc::new(|req: &AdmissionRequest<DynamicObject>| {
            let patch: json_patch::Patch = serde_json::from_value(
                serde_json::json!([{"op": "add", "path": "/metadata/labels", "value": {"a": "b"}}]),
            )
            .unwrap();
            AdmissionResponse::from(req).with_patch(patch).unwrap()
        });
        let app = router(vec![("/p".into(), patching)], Readiness::default(), None);
        let (_, body) = call(app, "/p", review("u")).await;
        let b64 = body["response"]["patch"]
            .as_str()
            .expect("patch is a string");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        let ops: serde_json::Value = serde_json::from_slice(&decoded).unwrap();
        assert_eq!(ops[0]["path"], "/metadata/labels");
        assert_eq!(body["response"]["patchType"], "JSONPatch");
    }

    #[tokio::test]
    async fn malformed_reviews_get_400_not_a_panic() {
        for body in [
            "",
            "{",
            "[]",
            "{\"kind\":\"AdmissionReview\"}",
            "{\"request\": 5}",
            "\u{0}\u{1}",
        ] {
            let (status, _) = call(app(), "/allow", body.to_string()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "body {body:?}");
        }
    }

    /// A handler that panics answers this review with an internal error naming the object, is
    /// counted, and the next review on the same server is answered normally.
    #[tokio::test]
    async fn a_panicking_handler_refuses_one_review_and_the_server_carries_on() {
        use std::sync::Mutex;
        crate::panics::install_hook();
        let boom: Arc<dyn Admit> = Arc::new(|req: &AdmissionRequest<DynamicObject>| {
            if req.uid.starts_with("boom") {
                panic!("handler bug");
            }
            AdmissionResponse::from(req)
        });
        let seen: Arc<Mutex<Vec<(String, bool, bool)>>> = Arc::default();
        let record = seen.clone();
        let observe: Observer = Arc::new(move |o: &Observation<'_>| {
            if let Ok(mut v) = record.lock() {
                v.push((o.kind.to_string(), o.allowed, o.panicked));
            }
        });
        let app = router(
            vec![("/boom".into(), boom)],
            Readiness::default(),
            Some(observe),
        );
        let (status, body) = call(app.clone(), "/boom", review("boom-1")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["response"]["uid"], "boom-1");
        assert_eq!(body["response"]["allowed"], false);
        assert_eq!(body["response"]["status"]["code"], 500);
        assert_eq!(
            body["response"]["status"]["message"],
            "internal error while reviewing Pod default/p; see the manager log"
        );
        let (status, body) = call(app, "/boom", review("ok-2")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["response"]["uid"], "ok-2");
        assert_eq!(body["response"]["allowed"], true);
        let seen = seen.lock().map(|v| v.clone()).unwrap_or_default();
        assert_eq!(
            seen,
            vec![("Pod".into(), false, true), ("Pod".into(), true, false)]
        );
    }

    /// A review of a 3 MiB pod (an UPDATE carries it twice) is answered; one over the limit gets
    /// 413 naming the limit. Before, axum's default 2 MB limit refused both with an opaque error.
    #[tokio::test]
    async fn large_reviews_up_to_the_limit_are_answered() {
        let big = |bytes: usize| {
            let mut v: serde_json::Value = serde_json::from_str(&review("big")).unwrap();
            let value = "x".repeat(bytes);
            v["request"]["object"]["metadata"]["annotations"] = serde_json::json!({"a": value});
            v["request"]["oldObject"] = v["request"]["object"].clone();
            v.to_string()
        };
        let (status, body) = call(app(), "/allow", big(3 * 1024 * 1024 - 1024)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["response"]["allowed"], true);
        let resp = app()
            .oneshot(
                Request::post("/allow")
                    .header("content-type", "application/json")
                    .body(Body::from(big(4 * 1024 * 1024)))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let text = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&text);
        assert!(
            text.contains("larger than the webhook's limit of 7 MiB"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn readyz_follows_readiness() {
        let ready = Readiness::default();
        let app = router(vec![], ready.clone(), None);
        let get = |app: Router| async move {
            app.oneshot(Request::get("/readyz").body(Body::empty()).unwrap())
                .await
                .unwrap()
                .status()
        };
        assert_eq!(get(app.clone()).await, StatusCode::SERVICE_UNAVAILABLE);
        ready.set_ready();
        assert_eq!(get(app.clone()).await, StatusCode::OK);
        // a reported problem makes the replica unready, saying why, until it is cleared
        ready.set_problem(Some("the configurations cannot be written.".into()));
        let resp = app
            .clone()
            .oneshot(Request::get("/readyz").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        let text = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        assert_eq!(&text[..], b"the configurations cannot be written.");
        assert!(!ready.is_ready());
        ready.set_problem(None);
        assert_eq!(get(app).await, StatusCode::OK);
    }
}
