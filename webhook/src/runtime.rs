//! Wiring of the admission webhook inside kruise-manager: certificates, the caches the handlers read,
//! the HTTPS server, and the webhook configurations kept in the cluster (with the pod webhook's
//! `matchConditions` following the SidecarSets). Readiness is set once the `caBundle` is in place.

use crate::configuration::{self, Endpoint, Options, PodMatch};
use crate::routing::{Routing, Writer};
use crate::server::{self, Readiness};
use crate::sidecarset::routing;
use crate::write_health::{self, WriteEvent, WriteHealth, WriteObserver};
use crate::{certs, handlers};
use anyhow::{Context as _, Result};
use futures::StreamExt;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ObjectReference};
use kruise_crds::SidecarSet;
use kube::api::{Api, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How the webhook runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address the HTTPS server binds.
    pub bind: SocketAddr,
    /// How the API server reaches it.
    pub endpoint: Endpoint,
    /// The suite's namespace (certificate Secret, revisions, never injected).
    pub namespace: String,
    /// Name of the certificate Secret.
    pub secret_name: String,
    /// Hosts the generated serving certificate covers.
    pub hosts: Vec<String>,
    /// Externally provided `(ca, cert, key)` PEM files; when set, nothing is generated.
    pub external_certs: Option<(String, String, String)>,
    /// `Fail` or `Ignore` for the pod webhook.
    pub pod_failure_policy: String,
    /// More namespaces never injected.
    pub excluded_namespaces: Vec<String>,
    /// How this replica writes the webhook configurations.
    pub configurations: ConfigurationMode,
    /// OpenKruise feature gates that change admission.
    pub features: Features,
}

/// OpenKruise feature gates that change admission (all off by default, as in OpenKruise).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Features {
    /// `EnableSortSidecarContainerByName`: SidecarSet containers injected into a pod are sorted by
    /// name (init containers always are).
    pub sort_sidecar_containers_by_name: bool,
    /// `SidecarSetPatchPodMetadataDefaultsAllowed`: patchPodMetadata is allowed when there is no
    /// whitelist, or no whitelist rule selects the SidecarSet.
    pub patch_pod_metadata_defaults_allowed: bool,
    /// `ResourcesDeletionProtection`: DELETEs of objects labelled `policy.kruise.io/delete-protection`
    /// are refused as OpenKruise refuses them (see [`crate::deletionprotection`]).
    pub deletion_protection: bool,
    /// `DeletionProtectionForCRDCascadingGate`: `Cascading` on a CRD counts its custom resources
    /// (without it, such a CRD cannot be deleted, as in OpenKruise).
    pub crd_cascading_deletion_protection: bool,
}

/// How the manager keeps the webhook configurations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigurationMode {
    /// Create them and keep them (server-side apply): standalone runs and the e2e suite.
    Own,
    /// Only fill in configurations that already exist (the Helm chart creates them, so
    /// `helm uninstall` removes them); never re-create one that was deleted.
    PatchExisting,
    /// Do not touch them.
    Off,
}

/// What the admission handlers read: SidecarSets, namespace labels, the suite's ControllerRevisions.
#[derive(Clone)]
pub struct Caches {
    /// Every SidecarSet.
    pub sidecarsets: Store<SidecarSet>,
    /// Every Namespace's metadata.
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    /// ControllerRevisions of the suite's namespace (SidecarSet history).
    pub revisions: Store<ControllerRevision>,
    /// The `kruise-configuration` ConfigMap of the suite's namespace (patchPodMetadata whitelist).
    pub configuration: Store<ConfigMap>,
    /// The pod MutatingWebhookConfiguration (its pending routes and resourceVersion).
    pub mutating_configuration: Store<MutatingWebhookConfiguration>,
}

/// Starts the reflectors behind [`Caches`]; returns once they have listed.
pub async fn start_caches(client: &Client, namespace: &str) -> Result<Caches> {
    let (ss_reader, ss_writer) = reflector::store::<SidecarSet>();
    let ss_stream = watcher(
        Api::<SidecarSet>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(|o| {
        o.managed_fields_mut().clear();
    })
    .reflect(ss_writer)
    .applied_objects();
    let (ns_reader, ns_writer) = reflector::store::<PartialObjectMeta<Namespace>>();
    let ns_stream = watcher(
        Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(|o| {
        o.managed_fields_mut().clear();
    })
    .reflect(ns_writer)
    .applied_objects();
    let (rev_reader, rev_writer) = reflector::store::<ControllerRevision>();
    let rev_stream = watcher(
        Api::<ControllerRevision>::namespaced(client.clone(), namespace),
        watcher::Config::default().labels(kruise_crds::keys::sidecarset::SIDECARSET_NAME_LABEL),
    )
    .default_backoff()
    .modify(|o| {
        o.managed_fields_mut().clear();
    })
    .reflect(rev_writer)
    .applied_objects();
    let (cm_reader, cm_writer) = reflector::store::<ConfigMap>();
    let cm_stream = watcher(
        Api::<ConfigMap>::namespaced(client.clone(), namespace),
        watcher::Config::default().fields(&format!(
            "metadata.name={}",
            kruise_crds::keys::sidecarset::KRUISE_CONFIGURATION_CONFIGMAP
        )),
    )
    .default_backoff()
    .modify(|o| {
        o.managed_fields_mut().clear();
    })
    .reflect(cm_writer)
    .applied_objects();
    let (mwc_reader, mwc_writer) = reflector::store::<MutatingWebhookConfiguration>();
    let mwc_stream = watcher(
        Api::<MutatingWebhookConfiguration>::all(client.clone()),
        watcher::Config::default().fields(&format!(
            "metadata.name={}",
            configuration::MUTATING_CONFIGURATION
        )),
    )
    .default_backoff()
    .modify(|o| {
        o.managed_fields_mut().clear();
    })
    .reflect(mwc_writer)
    .applied_objects();
    tokio::spawn(mwc_stream.for_each(|_| async {}));
    tokio::spawn(cm_stream.for_each(|_| async {}));
    tokio::spawn(ss_stream.for_each(|_| async {}));
    tokio::spawn(ns_stream.for_each(|_| async {}));
    tokio::spawn(rev_stream.for_each(|_| async {}));
    let wait = async {
        ss_reader.wait_until_ready().await?;
        ns_reader.wait_until_ready().await?;
        rev_reader.wait_until_ready().await?;
        mwc_reader.wait_until_ready().await?;
        cm_reader.wait_until_ready().await
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .context("webhook caches did not sync within 60 s")?
        .context("webhook caches")?;
    Ok(Caches {
        sidecarsets: ss_reader,
        namespaces: ns_reader,
        revisions: rev_reader,
        configuration: cm_reader,
        mutating_configuration: mwc_reader,
    })
}

async fn load_certs(client: &Client, cfg: &Config) -> Result<certs::CertBundle> {
    Ok(match &cfg.external_certs {
        Some((ca, cert, key)) => certs::from_files(ca, cert, key)?,
        None => {
            certs::ensure_secret(client.clone(), &cfg.namespace, &cfg.secret_name, &cfg.hosts)
                .await?
        }
    })
}

/// Runs the webhook until `shutdown` resolves: serves admission, keeps certificates fresh and the
/// configurations in the cluster current.
pub async fn run(
    client: Client,
    cfg: Config,
    ready: Readiness,
    observe: Option<server::Observer>,
    write_observe: Option<WriteObserver>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let caches = start_caches(&client, &cfg.namespace).await?;
    let mut bundle = load_certs(&client, &cfg).await?;
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem(
        bundle.cert.clone().into_bytes(),
        bundle.key.clone().into_bytes(),
    )
    .await
    .context("load the webhook serving certificate")?;
    let routing_shared = Routing::new(client.clone(), caches.clone());
    let routes = handlers::routes(caches.clone(), routing_shared.clone(), &cfg);
    let served: BTreeSet<String> = routes.iter().map(|(p, _)| p.clone()).collect();
    let app = server::router(routes, ready.clone(), observe);
    let handle = axum_server::Handle::new();
    // TCP_NODELAY: an answer is one small write or two (HTTP/2 headers, then data); Nagle would
    // hold the second until the API server acknowledges the first
    let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls.clone())
        .acceptor(axum_server::accept::NoDelayAcceptor::new());
    let server = axum_server::bind(cfg.bind)
        .acceptor(acceptor)
        .handle(handle.clone())
        .serve(app.into_make_service());
    let server = tokio::spawn(server);
    tracing::info!(bind = %cfg.bind, "webhook serving");

    let opts = |ca: &str| Options {
        endpoint: cfg.endpoint.clone(),
        ca_bundle: ca.to_string(),
        pod_failure_policy: cfg.pod_failure_policy.clone(),
        suite_namespace: cfg.namespace.clone(),
        excluded_namespaces: cfg.excluded_namespaces.clone(),
        deletion_protection: cfg.features.deletion_protection,
    };
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "kruise-rs".into(),
            instance: None,
        },
    );
    let mut applied: Option<(String, PodMatch)> = None;
    let mut health = WriteHealth::default();
    let write_event = |ev: WriteEvent| {
        if let Some(obs) = &write_observe {
            obs(ev);
        }
    };
    let mut shutdown = Box::pin(shutdown);
    // Every replica reads the Secret (or the external files) each minute: the one that renews
    // writes it, the others serve the new certificate within a minute (the CA stays, so the
    // caBundle does not change); rotated external files are picked up the same way.
    let mut renew = tokio::time::interval(Duration::from_secs(60));
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    // Re-apply now and then even when nothing changed here, to undo edits made by hand.
    let mut resync = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = renew.tick() => {
                // the Secret (renewed by whichever replica gets there first) or the external files
                // (cert-manager rotates them in the mounted Secret): serve what is there now, and
                // the caBundle follows on the next tick when the CA changed
                match load_certs(&client, &cfg).await {
                    Ok(b) if b != bundle => {
                        match tls.reload_from_pem(b.cert.clone().into_bytes(), b.key.clone().into_bytes()).await {
                            Ok(()) => {
                                tracing::info!(external = cfg.external_certs.is_some(), "webhook serving certificate reloaded");
                                bundle = b;
                            }
                            // a half-written rotation: keep serving the old pair, try again next tick
                            Err(e) => tracing::warn!(error = %e, "new webhook certificate not usable yet"),
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "webhook certificate check failed"),
                }
            }
            _ = resync.tick() => applied = None,
            _ = tick.tick() => {
                routing_shared.set_writer(Writer { opts: opts(&bundle.ca_cert), served: served.clone(), mode: cfg.configurations });
                if cfg.configurations == ConfigurationMode::Off {
                    ready.set_ready();
                    continue;
                }
                let sidecarsets: Vec<SidecarSet> = caches.sidecarsets.state().iter().map(|s| (**s).clone()).collect();
                // the routes SidecarSet admissions added before the caches have their SidecarSets,
                // and the resourceVersion they were read at: a writer that has not seen the last
                // admission's routes conflicts instead of removing them
                let current = caches.mutating_configuration.state().into_iter().next();
                let pending = routing::parse_pending(
                    current.as_ref().and_then(|c| c.annotations().get(routing::PENDING_ROUTES_ANNOTATION)).map(String::as_str),
                );
                let want = configuration::pod_match_with(&sidecarsets, &pending, jiff::Timestamp::now().as_second());
                let key = (bundle.ca_cert.clone(), want.clone());
                if applied.as_ref() == Some(&key) {
                    continue;
                }
                let rv = current.and_then(|c| c.metadata.resource_version.clone());
                match apply_configurations(&client, &opts(&bundle.ca_cert), &want, &served, cfg.configurations, rv).await {
                    Ok(()) => {
                        if let Some(why) = &want.fallback {
                            tracing::warn!(%why, "pod webhook called for every pod");
                            let ev = Event {
                                type_: EventType::Warning,
                                reason: "SelectorUnionFallback".into(),
                                note: Some(format!("pod webhook is called for every pod: {why}")),
                                action: "UpdateMatchConditions".into(),
                                secondary: None,
                            };
                            if let Err(e) = recorder.publish(&ev, &mutating_reference()).await {
                                tracing::warn!(error = %e, "could not publish the fallback event");
                            }
                        }
                        tracing::info!(expression_len = want.expression.len(), "webhook configurations applied");
                        applied = Some(key);
                        ready.set_ready();
                        if health.succeeded().recovered {
                            tracing::info!("webhook configurations written again; the replica is ready");
                            ready.set_problem(None);
                            write_event(WriteEvent::Failing(false));
                        }
                    }
                    // a conflict: another writer (a SidecarSet admission's fence, another replica)
                    // changed the configuration since this replica's watch saw it; the next tick
                    // computes from the newer one. Normal: not a failure.
                    Err(e) if is_conflict(&e) => {
                        health.conflicted();
                        tracing::debug!(error = %write_health::error_text(&e), "webhook configuration changed meanwhile; recomputing");
                    }
                    Err(e) => {
                        let text = write_health::error_text(&e);
                        tracing::warn!(error = %text, "applying webhook configurations failed; retrying");
                        let report = health.failed(std::time::Instant::now(), &text);
                        if report.count_failure {
                            write_event(WriteEvent::Failed);
                        }
                        if let Some(why) = report.started_failing {
                            tracing::error!(reason = %why, "webhook configurations cannot be written; the replica is not ready");
                            ready.set_problem(Some(why.clone()));
                            write_event(WriteEvent::Failing(true));
                            let ev = Event {
                                type_: EventType::Warning,
                                reason: "ConfigurationWriteFailing".into(),
                                note: Some(why),
                                action: "UpdateMatchConditions".into(),
                                secondary: None,
                            };
                            if let Err(e) = recorder.publish(&ev, &mutating_reference()).await {
                                tracing::warn!(error = %e, "could not publish the write failure event");
                            }
                        }
                        if let Some(why) = report.still_failing {
                            ready.set_problem(Some(why));
                        }
                    }
                }
            }
        }
    }
    handle.graceful_shutdown(Some(Duration::from_secs(10)));
    let _ = server.await;
    Ok(())
}

/// The pod MutatingWebhookConfiguration, as events name it.
fn mutating_reference() -> ObjectReference {
    ObjectReference {
        api_version: Some("admissionregistration.k8s.io/v1".into()),
        kind: Some("MutatingWebhookConfiguration".into()),
        name: Some(configuration::MUTATING_CONFIGURATION.into()),
        ..Default::default()
    }
}

fn is_conflict(e: &anyhow::Error) -> bool {
    e.chain().any(
        |c| matches!(c.downcast_ref::<kube::Error>(), Some(kube::Error::Api(ae)) if ae.code == 409),
    )
}

/// Writes both configurations with server-side apply (field manager `kruise-rs`), keeping only the
/// webhooks whose path this process serves (a path without a handler would fail every call).
///
/// `resource_version` is that of the MutatingWebhookConfiguration the caller computed from: the
/// write fails with a conflict when another writer changed it since (e.g. a SidecarSet
/// admission added a pending route).
pub async fn apply_configurations(
    client: &Client,
    opts: &Options,
    pod_match: &PodMatch,
    served: &BTreeSet<String>,
    mode: ConfigurationMode,
    resource_version: Option<String>,
) -> Result<()> {
    let keep = |p: Option<String>| p.is_some_and(|p| served.contains(&p));
    let mut m = configuration::mutating(opts, pod_match);
    m.metadata.resource_version = resource_version;
    if let Some(hooks) = m.webhooks.as_mut() {
        hooks.retain(|h| keep(configuration::path_of(&h.client_config)));
    }
    let mut v = configuration::validating(opts);
    if let Some(hooks) = v.webhooks.as_mut() {
        hooks.retain(|h| keep(configuration::path_of(&h.client_config)));
    }
    let mapi = Api::<MutatingWebhookConfiguration>::all(client.clone());
    let vapi = Api::<ValidatingWebhookConfiguration>::all(client.clone());
    match mode {
        ConfigurationMode::Off => {}
        ConfigurationMode::Own => {
            let pp = PatchParams::apply(kruise_crds::FIELD_MANAGER).force();
            mapi.patch(
                configuration::MUTATING_CONFIGURATION,
                &pp,
                &Patch::Apply(&m),
            )
            .await
            .context("apply the MutatingWebhookConfiguration")?;
            vapi.patch(
                configuration::VALIDATING_CONFIGURATION,
                &pp,
                &Patch::Apply(&v),
            )
            .await
            .context("apply the ValidatingWebhookConfiguration")?;
        }
        ConfigurationMode::PatchExisting => {
            // A merge patch never creates: a configuration removed by `helm uninstall` stays gone.
            let pp = PatchParams::default();
            let body = serde_json::json!({ "metadata": { "annotations": m.metadata.annotations, "resourceVersion": m.metadata.resource_version }, "webhooks": m.webhooks });
            mapi.patch(
                configuration::MUTATING_CONFIGURATION,
                &pp,
                &Patch::Merge(&body),
            )
            .await
            .context("patch the MutatingWebhookConfiguration the chart created")?;
            let body = serde_json::json!({ "webhooks": v.webhooks });
            vapi.patch(
                configuration::VALIDATING_CONFIGURATION,
                &pp,
                &Patch::Merge(&body),
            )
            .await
            .context("patch the ValidatingWebhookConfiguration the chart created")?;
        }
    }
    Ok(())
}

/// Shared handle for handlers that need the caches.
pub type SharedCaches = Arc<Caches>;

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16) -> anyhow::Error {
        let status = kube::core::Status::failure("refused", "Reason").with_code(code);
        Err::<(), _>(kube::Error::Api(Box::new(status)))
            .context("apply the MutatingWebhookConfiguration")
            .unwrap_err()
    }

    /// Conflicts are another writer being first; only other errors count as write failures.
    #[test]
    fn only_409_is_a_conflict() {
        assert!(is_conflict(&api_error(409)));
        for code in [403, 404, 422, 500, 503] {
            assert!(!is_conflict(&api_error(code)), "{code}");
        }
        assert!(!is_conflict(&anyhow::anyhow!("connection refused")));
    }
}
