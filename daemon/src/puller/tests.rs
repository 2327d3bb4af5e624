//! Puller tests: pure planning, and end-to-end pulls against a fake CRI ImageService served by
//! tonic on a unix socket in a temp dir.

use super::*;
use crate::secrets::Credential;
use k8s_cri::v1::image_service_server::{ImageService, ImageServiceServer};
use k8s_cri::v1::{
    ImageFsInfoRequest, ImageFsInfoResponse, ImageStatusRequest, ImageStatusResponse,
    ListImagesRequest, ListImagesResponse, PullImageResponse, RemoveImageRequest,
    RemoveImageResponse,
};
use k8s_openapi::ByteString;
use kruise_crds::{ImageSpec, ImageTagSpec};
use std::sync::atomic::{AtomicUsize, Ordering};
use tonic::{Request, Response, Status};

const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// ---------------------------------------------------------------------------------------------
// Fake CRI

#[derive(Default)]
struct FakeState {
    images: Vec<Image>,
    pulls: Vec<PullImageRequest>,
    /// reference → failures left before pulls of it succeed
    fail: BTreeMap<String, usize>,
    /// usernames the registry refuses
    reject_users: BTreeSet<String>,
    delay: Duration,
    running: usize,
    max_running: usize,
}

#[derive(Clone, Default)]
struct Fake(Arc<Mutex<FakeState>>);

impl Fake {
    fn st(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.0.lock().unwrap()
    }
}

#[tonic::async_trait]
impl ImageService for Fake {
    async fn list_images(
        &self,
        _: Request<ListImagesRequest>,
    ) -> Result<Response<ListImagesResponse>, Status> {
        Ok(Response::new(ListImagesResponse {
            images: self.st().images.clone(),
        }))
    }
    async fn image_status(
        &self,
        _: Request<ImageStatusRequest>,
    ) -> Result<Response<ImageStatusResponse>, Status> {
        Err(Status::unimplemented("not used"))
    }
    async fn pull_image(
        &self,
        req: Request<PullImageRequest>,
    ) -> Result<Response<PullImageResponse>, Status> {
        let req = req.into_inner();
        let delay = {
            let mut st = self.st();
            st.pulls.push(req.clone());
            st.running += 1;
            st.max_running = st.max_running.max(st.running);
            st.delay
        };
        tokio::time::sleep(delay).await;
        let mut st = self.st();
        st.running -= 1;
        let reference = req.image.map(|i| i.image).unwrap_or_default();
        if let Some(n) = st.fail.get_mut(&reference)
            && *n > 0
        {
            *n -= 1;
            return Err(Status::unavailable(format!(
                "registry down for {reference}"
            )));
        }
        if let Some(a) = &req.auth
            && st.reject_users.contains(&a.username)
        {
            return Err(Status::unauthenticated(format!(
                "bad credentials for {}",
                a.username
            )));
        }
        let r = kruise_webhook::imagepull::reference::parse(&reference).unwrap();
        let id = format!("sha256:{:064x}", st.images.len() + 1);
        let mut img = Image {
            id: id.clone(),
            ..Default::default()
        };
        match &r.digest {
            Some(d) => img.repo_digests.push(format!("{}@{d}", r.repository())),
            None => img
                .repo_tags
                .push(format!("{}:{}", r.repository(), r.tag_or_digest())),
        }
        st.images.push(img);
        Ok(Response::new(PullImageResponse { image_ref: id }))
    }
    async fn remove_image(
        &self,
        _: Request<RemoveImageRequest>,
    ) -> Result<Response<RemoveImageResponse>, Status> {
        Err(Status::unimplemented("the daemon never removes images"))
    }
    async fn image_fs_info(
        &self,
        _: Request<ImageFsInfoRequest>,
    ) -> Result<Response<ImageFsInfoResponse>, Status> {
        Ok(Response::new(ImageFsInfoResponse::default()))
    }
}

static SOCKETS: AtomicUsize = AtomicUsize::new(0);

/// Serves `fake` on a fresh unix socket; returns a connected runtime.
async fn serve(fake: Fake) -> cri::Runtime {
    let dir = std::env::temp_dir().join(format!(
        "kruise-fake-cri-{}-{}",
        std::process::id(),
        SOCKETS.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("cri.sock");
    let listener = tokio::net::UnixListener::bind(&sock).unwrap();
    let incoming = futures::stream::unfold(listener, |l| async move {
        let conn = l.accept().await.map(|(s, _)| s);
        Some((conn, l))
    });
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(ImageServiceServer::new(fake))
            .serve_with_incoming(incoming),
    );
    cri::Runtime::connect(&format!("unix://{}", sock.display()))
        .await
        .unwrap()
}

fn opts(max_workers: usize) -> Options {
    Options {
        max_workers,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        metrics: crate::metrics::Metrics::default(),
    }
}

fn tag(t: &str, version: i64, policy: ImagePullPolicy, pp: ImageTagPullPolicy) -> ImageTagSpec {
    ImageTagSpec {
        tag: t.into(),
        version: Some(version),
        image_pull_policy: Some(policy),
        pull_policy: Some(pp),
        owner_references: Some(vec![ObjectReference {
            kind: Some("ImagePullJob".into()),
            name: Some("job".into()),
            namespace: Some("ns".into()),
            uid: Some("u1".into()),
            ..Default::default()
        }]),
        created_at: None,
    }
}

fn spec(images: Vec<(&str, Vec<ImageTagSpec>)>) -> NodeImageSpec {
    NodeImageSpec {
        images: Some(
            images
                .into_iter()
                .map(|(n, tags)| {
                    (
                        n.to_string(),
                        ImageSpec {
                            tags,
                            pull_secrets: None,
                            sandbox_config: Some(SandboxConfig {
                                labels: Some(BTreeMap::from([("l".into(), "v".into())])),
                                annotations: Some(BTreeMap::from([("a".into(), "b".into())])),
                            }),
                        },
                    )
                })
                .collect(),
        ),
    }
}

/// Waits until every spec tag has a finished status (5 s at most).
async fn wait_done(p: &Puller, n: usize) -> BTreeMap<TagKey, ImageTagStatus> {
    let until = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let st = p.statuses();
        if st.values().filter(|s| s.completion_time.is_some()).count() >= n {
            return st;
        }
        assert!(std::time::Instant::now() < until, "timed out: {st:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn no_keys(_: &str) -> Keyring {
    Keyring::default()
}

fn key(i: &str, t: &str) -> TagKey {
    (i.to_string(), t.to_string())
}

// ---------------------------------------------------------------------------------------------
// Pure

fn st(t: &str, version: i64, phase: ImagePullPhase, done: bool) -> ImageTagStatus {
    ImageTagStatus {
        tag: t.into(),
        phase,
        progress: None,
        start_time: None,
        completion_time: done.then(now_time),
        version: Some(version),
        image_id: None,
        message: None,
    }
}

#[test]
fn plan_sync_table() {
    let pp = ImageTagPullPolicy::default();
    let s = spec(vec![(
        "nginx",
        vec![
            tag("a", 1, ImagePullPolicy::Always, pp.clone()), // new: start
            tag("b", 2, ImagePullPolicy::Always, pp.clone()), // finished at 2 in memory: nothing
            tag("c", 3, ImagePullPolicy::Always, pp.clone()), // running at 3: nothing
            tag("d", 4, ImagePullPolicy::Always, pp.clone()), // running at 3: restart at 4
            tag("e", 1, ImagePullPolicy::Always, pp.clone()), // stored finished (restart / controller): adopt
            tag("f", 2, ImagePullPolicy::Always, pp.clone()), // stored finished at old version: start
        ],
    )]);
    let known = BTreeMap::from([
        (
            key("nginx", "b"),
            Known {
                version: 2,
                finished: true,
                running: false,
            },
        ),
        (
            key("nginx", "c"),
            Known {
                version: 3,
                finished: false,
                running: true,
            },
        ),
        (
            key("nginx", "d"),
            Known {
                version: 3,
                finished: false,
                running: true,
            },
        ),
        (
            key("nginx", "gone"),
            Known {
                version: 1,
                finished: false,
                running: true,
            },
        ),
    ]);
    let stored = NodeImageStatus {
        image_statuses: Some(BTreeMap::from([(
            "nginx".to_string(),
            ImageStatus {
                tags: vec![
                    st("c", 3, ImagePullPhase::Pulling, false),
                    st("e", 1, ImagePullPhase::Failed, true),
                    st("f", 1, ImagePullPhase::Succeeded, true),
                ],
            },
        )])),
        ..Default::default()
    };
    let plan = plan_sync(&s, Some(&stored), &known);
    let started: Vec<(&str, i64)> = plan
        .start
        .iter()
        .map(|t| (t.tag.as_str(), t.version))
        .collect();
    assert_eq!(started, vec![("a", 1), ("d", 4), ("f", 2)]);
    assert_eq!(plan.adopt.len(), 1);
    assert_eq!(plan.adopt[0].0, key("nginx", "e"));
    assert_eq!(plan.forget, vec![key("nginx", "gone")]);
    let t = &plan.start[0];
    assert_eq!(t.owners.len(), 1);
    assert_eq!(t.reference(), "nginx:a");
}

#[test]
fn build_status_counts_and_sync_condition() {
    let pp = ImageTagPullPolicy::default();
    let s = spec(vec![
        (
            "nginx",
            vec![
                tag("b", 1, ImagePullPolicy::Always, pp.clone()),
                tag("a", 1, ImagePullPolicy::Always, pp.clone()),
            ],
        ),
        (
            "busybox",
            vec![tag("1", 0, ImagePullPolicy::Always, pp.clone())],
        ),
    ]);
    let statuses = BTreeMap::from([
        (
            key("nginx", "b"),
            st("b", 1, ImagePullPhase::Succeeded, true),
        ),
        (
            key("nginx", "a"),
            st("a", 1, ImagePullPhase::Waiting, false),
        ),
        (key("old", "x"), st("x", 1, ImagePullPhase::Failed, true)), // not in spec: dropped
    ]);
    let now = Timestamp::now();
    let out = build_status(&s, &statuses, None, Some(7), now);
    assert_eq!(out.desired, 3);
    assert_eq!(
        (out.succeeded, out.failed, out.pulling, out.waiting),
        (Some(1), Some(0), Some(0), Some(1))
    );
    let imgs = out.image_statuses.as_ref().unwrap();
    assert_eq!(imgs.keys().collect::<Vec<_>>(), vec!["nginx"]);
    assert_eq!(
        imgs["nginx"]
            .tags
            .iter()
            .map(|t| t.tag.as_str())
            .collect::<Vec<_>>(),
        vec!["a", "b"]
    );
    let c = &out.conditions.as_ref().unwrap()[0];
    assert_eq!((c.type_.as_str(), c.status.as_str()), ("Synced", "False"));
    assert_eq!(out.observed_generation, Some(7));
    // empty spec: synced, no image map
    let empty = build_status(
        &NodeImageSpec::default(),
        &BTreeMap::new(),
        Some(&out),
        None,
        now,
    );
    assert_eq!(empty.image_statuses, None);
    assert_eq!(empty.conditions.as_ref().unwrap()[0].status, "True");
}

#[test]
fn presence_by_tag_and_digest() {
    let images = vec![Image {
        id: "sha256:1".into(),
        repo_tags: vec![
            "docker.io/library/nginx:latest".into(),
            "myreg:5000/app:v1".into(),
        ],
        repo_digests: vec![format!("docker.io/library/nginx@{D}")],
        ..Default::default()
    }];
    assert_eq!(
        image_present(&images, "nginx", "latest").as_deref(),
        Some("sha256:1")
    );
    assert_eq!(
        image_present(&images, "myreg:5000/app", "v1").as_deref(),
        Some("sha256:1")
    );
    assert_eq!(
        image_present(&images, "nginx", D).as_deref(),
        Some("sha256:1")
    );
    assert_eq!(image_present(&images, "nginx", "1.25"), None);
    assert_eq!(image_present(&images, "busybox", D), None);
}

#[test]
fn request_shape() {
    let task = PullTask {
        image: "nginx".into(),
        tag: D.into(),
        version: 0,
        pull_policy: Default::default(),
        image_pull_policy: None,
        secrets: vec![],
        sandbox: Some(SandboxConfig {
            labels: Some(BTreeMap::from([("l".into(), "v".into())])),
            annotations: None,
        }),
        owners: vec![],
    };
    let cred = Credential {
        username: "u".into(),
        password: "p".into(),
    };
    let r = pull_request(&task, Some(&cred));
    assert_eq!(r.image.unwrap().image, format!("nginx@{D}"));
    let auth = r.auth.unwrap();
    assert_eq!((auth.username.as_str(), auth.password.as_str()), ("u", "p"));
    let sb = r.sandbox_config.unwrap();
    assert_eq!(sb.labels["l"], "v");
    assert_eq!(
        sb.annotations[keys::PULLING_IMAGE_BY_ANNOTATION],
        keys::PULLING_IMAGE_BY_DAEMON
    );
    assert!(pull_request(&task, None).auth.is_none());
}

// ---------------------------------------------------------------------------------------------
// End to end against the fake CRI

#[tokio::test]
async fn if_not_present_skips_pull_and_always_pulls() {
    let fake = Fake::default();
    fake.st().images.push(Image {
        id: "sha256:abc".into(),
        repo_tags: vec!["docker.io/library/nginx:1.25".into()],
        ..Default::default()
    });
    let rt = serve(fake.clone()).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let p = Puller::new(rt, opts(2), tx);
    let pp = ImageTagPullPolicy::default();
    let s = spec(vec![
        (
            "nginx",
            vec![tag("1.25", 0, ImagePullPolicy::IfNotPresent, pp.clone())],
        ),
        (
            "busybox",
            vec![tag("1.36", 3, ImagePullPolicy::Always, pp.clone())],
        ),
    ]);
    p.sync(&s, None, &no_keys);
    let st = wait_done(&p, 2).await;
    let nginx = &st[&key("nginx", "1.25")];
    assert_eq!(nginx.phase, ImagePullPhase::Succeeded);
    assert_eq!(nginx.image_id.as_deref(), Some("nginx@sha256:abc"));
    assert_eq!(nginx.progress, Some(100));
    let bb = &st[&key("busybox", "1.36")];
    assert_eq!((bb.phase, bb.version), (ImagePullPhase::Succeeded, Some(3)));
    assert!(bb.start_time.is_some());
    let pulls = fake.st().pulls.clone();
    assert_eq!(pulls.len(), 1, "nginx was present");
    let req = &pulls[0];
    assert_eq!(req.image.as_ref().unwrap().image, "busybox:1.36");
    assert!(req.auth.is_none());
    let sb = req.sandbox_config.as_ref().unwrap();
    assert_eq!(sb.labels["l"], "v");
    assert_eq!(sb.annotations["a"], "b");
    assert_eq!(
        sb.annotations[keys::PULLING_IMAGE_BY_ANNOTATION],
        "kruise-daemon"
    );
    let ev = rx.recv().await.unwrap();
    assert_eq!(ev.reason, keys::REASON_PULL_IMAGE_SUCCEED);
    assert!(!ev.warning);
    // a second sync with nothing new starts nothing
    let plan = p.sync(&s, None, &no_keys);
    assert!(plan.start.is_empty(), "{plan:?}");
    // the status written from it
    let out = build_status(&s, &p.statuses(), None, None, Timestamp::now());
    assert_eq!((out.desired, out.succeeded), (2, Some(2)));
}

#[tokio::test]
async fn digests_are_pulled_by_digest_with_credentials() {
    let fake = Fake::default();
    fake.st().reject_users.insert("wrong".into());
    let rt = serve(fake.clone()).await;
    let (tx, _rx) = mpsc::unbounded_channel();
    let p = Puller::new(rt, opts(2), tx);
    let s = spec(vec![(
        "myreg:5000/app",
        vec![tag(D, 0, ImagePullPolicy::IfNotPresent, Default::default())],
    )]);
    let json = r#"{"auths":{"myreg:5000":{"username":"wrong","password":"x"},"myreg:5000/app":{"username":"right","password":"y"}}}"#;
    let secret = k8s_openapi::api::core::v1::Secret {
        data: Some(BTreeMap::from([(
            ".dockerconfigjson".to_string(),
            ByteString(json.as_bytes().to_vec()),
        )])),
        ..Default::default()
    };
    let (ring, errs) = Keyring::from_secrets(&[secret]);
    assert!(errs.is_empty());
    p.sync(&s, None, &|img| {
        if img == "myreg:5000/app" {
            ring.clone()
        } else {
            Keyring::default()
        }
    });
    let st = wait_done(&p, 1).await;
    let s0 = &st[&key("myreg:5000/app", D)];
    assert_eq!(s0.phase, ImagePullPhase::Succeeded, "{s0:?}");
    assert_eq!(
        s0.image_id.as_deref(),
        Some(
            "myreg:5000/app@sha256:0000000000000000000000000000000000000000000000000000000000000001"
        )
    );
    let pulls = fake.st().pulls.clone();
    // most specific key first: "right" succeeds at once
    assert_eq!(pulls.len(), 1);
    assert_eq!(
        pulls[0].image.as_ref().unwrap().image,
        format!("myreg:5000/app@{D}")
    );
    assert_eq!(pulls[0].auth.as_ref().unwrap().username, "right");
    // a second request for the same digest is satisfied by repo_digests
    let s2 = spec(vec![(
        "myreg:5000/app",
        vec![tag(D, 1, ImagePullPolicy::IfNotPresent, Default::default())],
    )]);
    p.sync(&s2, None, &no_keys);
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while p.statuses()[&key("myreg:5000/app", D)].version != Some(1)
        || p.statuses()[&key("myreg:5000/app", D)]
            .completion_time
            .is_none()
    {
        assert!(std::time::Instant::now() < until);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(fake.st().pulls.len(), 1);
}

#[tokio::test]
async fn retries_then_fails_with_events_to_owners() {
    let fake = Fake::default();
    fake.st().fail.insert("nginx:flaky".into(), 2);
    fake.st().fail.insert("nginx:down".into(), 100);
    let rt = serve(fake.clone()).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let o = opts(4);
    let metrics = o.metrics.clone();
    let p = Puller::new(rt, o, tx);
    let pp = ImageTagPullPolicy {
        backoff_limit: Some(2),
        ..Default::default()
    };
    let s = spec(vec![(
        "nginx",
        vec![
            tag("flaky", 0, ImagePullPolicy::Always, pp.clone()),
            tag("down", 0, ImagePullPolicy::Always, pp.clone()),
        ],
    )]);
    p.sync(&s, None, &no_keys);
    let st = wait_done(&p, 2).await;
    assert_eq!(st[&key("nginx", "flaky")].phase, ImagePullPhase::Succeeded);
    let down = &st[&key("nginx", "down")];
    assert_eq!(down.phase, ImagePullPhase::Failed);
    assert!(
        down.message
            .as_deref()
            .unwrap()
            .contains("registry down for nginx:down"),
        "{down:?}"
    );
    let attempts = |r: &str| {
        fake.st()
            .pulls
            .iter()
            .filter(|p| p.image.as_ref().unwrap().image == r)
            .count()
    };
    assert_eq!(attempts("nginx:flaky"), 3);
    assert_eq!(attempts("nginx:down"), 3, "backoffLimit 2 = 3 attempts");
    let text = metrics.encode();
    for (name, want) in [
        ("kruise_daemon_image_pulls_started_total", "2"),
        ("kruise_daemon_image_pulls_succeeded_total", "1"),
        ("kruise_daemon_image_pulls_failed_total", "1"),
        // flaky: 2 failed attempts; down: 3
        ("kruise_daemon_image_pull_attempts_failed_total", "5"),
        ("kruise_daemon_image_pull_duration_seconds_count", "2"),
        ("kruise_daemon_image_pull_workers_busy", "0"),
    ] {
        assert!(
            text.lines().any(|l| l == format!("{name} {want}")),
            "{name} {want}: {text}"
        );
    }
    let mut evs = [rx.recv().await.unwrap(), rx.recv().await.unwrap()];
    evs.sort_by_key(|e| e.reason);
    assert_eq!(evs[0].reason, keys::REASON_PULL_IMAGE_FAILED);
    assert!(evs[0].warning);
    assert_eq!(evs[0].owners[0].name.as_deref(), Some("job"));
    assert!(
        evs[0].note.starts_with("Image nginx:down "),
        "{}",
        evs[0].note
    );
}

#[tokio::test]
async fn timeout_and_deadline() {
    let fake = Fake::default();
    fake.st().delay = Duration::from_millis(1500);
    let rt = serve(fake.clone()).await;
    let (tx, _rx) = mpsc::unbounded_channel();
    let p = Puller::new(rt, opts(4), tx);
    let s = spec(vec![(
        "nginx",
        vec![
            tag(
                "t",
                0,
                ImagePullPolicy::Always,
                ImageTagPullPolicy {
                    timeout_seconds: Some(1),
                    backoff_limit: Some(0),
                    ..Default::default()
                },
            ),
            tag(
                "d",
                0,
                ImagePullPolicy::Always,
                ImageTagPullPolicy {
                    timeout_seconds: Some(600),
                    backoff_limit: Some(5),
                    active_deadline_seconds: Some(1),
                    ..Default::default()
                },
            ),
        ],
    )]);
    p.sync(&s, None, &no_keys);
    let st = wait_done(&p, 2).await;
    let t = &st[&key("nginx", "t")];
    assert_eq!(t.phase, ImagePullPhase::Failed);
    assert!(
        t.message.as_deref().unwrap().contains("is canceled"),
        "{t:?}"
    );
    let d = &st[&key("nginx", "d")];
    assert_eq!(d.phase, ImagePullPhase::Failed);
    assert_eq!(
        d.message.as_deref(),
        Some(keys::MESSAGE_PULL_DEADLINE_EXCEEDED),
        "{d:?}"
    );
}

#[tokio::test]
async fn worker_pool_is_bounded_and_removed_tags_stop() {
    let fake = Fake::default();
    fake.st().delay = Duration::from_millis(100);
    let rt = serve(fake.clone()).await;
    let (tx, _rx) = mpsc::unbounded_channel();
    let p = Puller::new(rt, opts(1), tx);
    let pp = ImageTagPullPolicy::default();
    let s = spec(vec![(
        "nginx",
        vec![
            tag("1", 0, ImagePullPolicy::Always, pp.clone()),
            tag("2", 0, ImagePullPolicy::Always, pp.clone()),
            tag("3", 0, ImagePullPolicy::Always, pp.clone()),
        ],
    )]);
    p.sync(&s, None, &no_keys);
    // queued ones wait in phase Waiting
    tokio::time::sleep(Duration::from_millis(30)).await;
    let waiting = p
        .statuses()
        .values()
        .filter(|s| s.phase == ImagePullPhase::Waiting)
        .count();
    assert_eq!(waiting, 2);
    wait_done(&p, 3).await;
    assert_eq!(fake.st().max_running, 1);
    // removing a tag forgets it
    let s2 = spec(vec![(
        "nginx",
        vec![tag("1", 0, ImagePullPolicy::Always, pp.clone())],
    )]);
    let plan = p.sync(&s2, None, &no_keys);
    assert_eq!(plan.forget.len(), 2);
    assert_eq!(p.statuses().len(), 1);
}

#[tokio::test]
async fn adopts_controller_failure_and_restart_state() {
    let fake = Fake::default();
    fake.st().delay = Duration::from_secs(30);
    let rt = serve(fake.clone()).await;
    let (tx, _rx) = mpsc::unbounded_channel();
    let p = Puller::new(rt, opts(1), tx);
    let s = spec(vec![(
        "nginx",
        vec![tag("slow", 2, ImagePullPolicy::Always, Default::default())],
    )]);
    p.sync(&s, None, &no_keys);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        p.statuses()[&key("nginx", "slow")].phase,
        ImagePullPhase::Pulling
    );
    // the NodeImage controller failed the tag (response timeout): the worker stops
    let mut failed = st("slow", 2, ImagePullPhase::Failed, true);
    failed.message = Some(keys::MESSAGE_NODE_NOT_RESPONDING.into());
    let stored = NodeImageStatus {
        image_statuses: Some(BTreeMap::from([(
            "nginx".to_string(),
            ImageStatus {
                tags: vec![failed.clone()],
            },
        )])),
        ..Default::default()
    };
    let plan = p.sync(&s, Some(&stored), &no_keys);
    assert_eq!(plan.adopt.len(), 1);
    assert_eq!(p.statuses()[&key("nginx", "slow")], failed);
    assert!(!p.known()[&key("nginx", "slow")].running);
    // a fresh puller (daemon restart) does not re-pull what the stored status says is done
    let (tx2, _rx2) = mpsc::unbounded_channel();
    let p2 = Puller::new(serve(fake.clone()).await, opts(1), tx2);
    let plan = p2.sync(&s, Some(&stored), &no_keys);
    assert!(plan.start.is_empty());
    assert_eq!(fake.st().pulls.len(), 1);
}
