//! The Helm chart on the real kubelet node, installed the way a user installs it: the suite's
//! manager and daemons are stopped, `helm install` runs the pushed images (`e2e/cluster images`), the
//! webhook injects, the daemon pulls, and `helm uninstall` removes everything but the CRDs and the
//! users' objects. Disruptive (it replaces the suite), so `e2e/cluster test` runs it alone, after the
//! others; the suite is brought back up whatever happens.
#![allow(clippy::unwrap_used)]

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kruise_crds::{ImagePullJob, SidecarSet};
use kruise_e2e::{Env, env_or_skip, pod_on_node, wait_for, with_temp_ns};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use serde_json::json;
use std::process::Command;
use std::time::{Duration, Instant};

const RELEASE: &str = "kruise-rs";
const NAMESPACE: &str = "kruise-rs-helm";

fn run(what: &str, cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("run {what}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        out.status.success(),
        "{what} failed ({}): {text}",
        out.status
    );
    Ok(text)
}

fn cluster(args: &[&str]) -> Result<String> {
    run(
        &format!("e2e/cluster {}", args.join(" ")),
        Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/cluster")).args(args),
    )
}

fn helm(env: &Env, args: &[&str]) -> Result<String> {
    run(
        &format!("helm {}", args.join(" ")),
        Command::new(env.get("E2E_HELM")?)
            .env("KUBECONFIG", env.get("KUBECONFIG")?)
            .args(args),
    )
}

/// Uninstalls the release (if any) and brings the suite back, even when the test failed half-way.
struct RestoreSuite(Env);
impl Drop for RestoreSuite {
    fn drop(&mut self) {
        let _ = helm(&self.0, &["uninstall", RELEASE, "-n", NAMESPACE, "--wait"]);
        if let Err(e) = cluster(&["suite", "up"]) {
            eprintln!("could not bring the suite back up: {e:#}");
        }
    }
}

async fn gone<K>(api: &Api<K>, name: &str) -> Result<bool>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    Ok(api.get_opt(name).await?.is_none())
}

#[tokio::test]
#[ignore = "disruptive: replaces the suite's manager and daemons with a helm release; run alone by e2e/cluster test"]
async fn helm_install_serves_the_api_and_uninstall_keeps_crds_and_user_objects() -> Result<()> {
    let Some(env) = env_or_skip("helm_install") else {
        return Ok(());
    };
    if env.tier() != "kubelet" || env.get("E2E_SUITE").map(|v| v != "1").unwrap_or(true) {
        if std::env::var("E2E_REQUIRED").is_ok_and(|v| v == "1") {
            bail!("helm_install needs the kubelet tier with the suite running");
        }
        eprintln!("SKIP helm_install: needs the kubelet tier with the suite running");
        return Ok(());
    }
    let client = env.client().await?;
    let real_node = env.get("E2E_REAL_NODE")?.to_string();
    let registry = env.get("E2E_REGISTRY")?.to_string();
    let e2e_dir = env.get("E2E_DIR")?.to_string();

    // the suite's manager owns the same webhook configurations and daemon namespace: stop it first
    cluster(&["suite", "down"])?;
    let _restore = RestoreSuite(env.clone());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if namespaces.get_opt("kruise-daemon-config").await?.is_some() {
        namespaces
            .delete("kruise-daemon-config", &DeleteParams::default())
            .await?;
        wait_for(
            "kruise-daemon-config deleted",
            Duration::from_secs(60),
            || async {
                Ok(gone(&namespaces, "kruise-daemon-config")
                    .await?
                    .then_some(()))
            },
        )
        .await?;
    }

    let t0 = Instant::now();
    let sets = [
        format!("manager.image.repository={registry}/kruise-rs/kruise-manager"),
        "manager.image.tag=dev".to_string(),
        format!("daemon.image.repository={registry}/kruise-rs/kruise-daemon"),
        "daemon.image.tag=dev".to_string(),
        // one real node: two hostNetwork replicas would collide on their ports
        "manager.replicas=1".to_string(),
        "manager.hostNetwork=true".to_string(),
        "manager.listenAddress=127.0.0.1".to_string(),
        "manager.healthPort=18000".to_string(),
        "manager.webhook.port=19876".to_string(),
        "daemon.listenAddress=127.0.0.1".to_string(),
        "daemon.healthPort=18021".to_string(),
        format!("daemon.criSocketDir={e2e_dir}/cri-0"),
        "daemon.criSocketFile=containerd.sock".to_string(),
        format!("daemon.nodeSelector.kubernetes\\.io/hostname={real_node}"),
        "apiServer.host=127.0.0.1".to_string(),
        "apiServer.port=6443".to_string(),
    ];
    let mut args = vec![
        "install",
        RELEASE,
        concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/kruise-rs"),
        "-n",
        NAMESPACE,
        "--create-namespace",
        "--wait",
        "--timeout",
        "180s",
    ];
    for s in &sets {
        args.extend(["--set", s.as_str()]);
    }
    helm(&env, &args)?;
    println!("helm install --wait: {:.1} s", t0.elapsed().as_secs_f64());

    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let ready = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    };
    let list = pods.list(&ListParams::default()).await?.items;
    for component in ["manager", "daemon"] {
        let p = list
            .iter()
            .find(|p| {
                p.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("app.kubernetes.io/component"))
                    .is_some_and(|c| c == component)
            })
            .with_context(|| format!("no {component} pod"))?;
        ensure!(ready(p), "{component} pod not Ready: {:?}", p.status);
        let sc = p.spec.as_ref().unwrap().containers[0]
            .security_context
            .clone()
            .unwrap_or_default();
        ensure!(
            sc.read_only_root_filesystem == Some(true),
            "{component}: root filesystem not read-only"
        );
        if component == "manager" {
            ensure!(sc.run_as_non_root == Some(true), "manager may run as root");
        }
    }

    // the manager wrote the caBundle into the configurations the chart created
    let mwc: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    wait_for(
        "caBundle in the mutating configuration",
        Duration::from_secs(60),
        || async {
            let c = mwc.get("kruise-rs-mutating-webhook-configuration").await?;
            let ok = c.webhooks.iter().flatten().any(|w| {
                w.client_config
                    .ca_bundle
                    .as_ref()
                    .is_some_and(|b| !b.0.is_empty())
                    && w.client_config
                        .service
                        .as_ref()
                        .is_some_and(|s| s.namespace == NAMESPACE)
            });
            Ok(ok.then_some(()))
        },
    )
    .await?;

    let name = format!("helm-e2e-{}", std::process::id());
    let ss: SidecarSet = serde_json::from_value(json!({
        "apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet", "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"helm-e2e": name}},
                 "containers": [{"name": "helm-sidecar", "image": format!("{registry}/sleeper:v1")}]}
    }))?;
    kruise_e2e::create_sidecarset_and_wait(&client, &ss, &name).await?;
    let job_name = name.clone();
    let result = with_temp_ns(&client, "helm", |client, ns| {
        let (name, real_node, registry) = (name.clone(), real_node.clone(), registry.clone());
        async move {
            let kwok = env_or_skip("helm_install")
                .context("env")?
                .list("E2E_KWOK_NODES")
                .into_iter()
                .next()
                .context("no kwok node")?;
            let mut p = pod_on_node("injected", &kwok, "example.test/app:v1", false);
            p.metadata
                .labels
                .get_or_insert_with(Default::default)
                .insert("helm-e2e".into(), name.clone());
            let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
            let created = pods.create(&PostParams::default(), &p).await?;
            let names: Vec<String> = created
                .spec
                .as_ref()
                .unwrap()
                .containers
                .iter()
                .map(|c| c.name.clone())
                .collect();
            ensure!(
                names.contains(&"helm-sidecar".to_string()),
                "the helm-installed webhook did not inject: containers {names:?}"
            );

            let jobs: Api<ImagePullJob> = Api::namespaced(client.clone(), &ns);
            let job: ImagePullJob = serde_json::from_value(json!({
                "apiVersion": "apps.kruise.io/v1alpha1", "kind": "ImagePullJob",
                "metadata": {"name": name},
                "spec": {"image": format!("{registry}/sleeper:v2"),
                         "selector": {"names": [real_node]},
                         "completionPolicy": {"type": "Always"}}
            }))?;
            jobs.create(&PostParams::default(), &job).await?;
            let st = wait_for(
                "the ImagePullJob succeeded on the real node",
                Duration::from_secs(120),
                || async {
                    let s = jobs.get(&name).await?.status.unwrap_or_default();
                    Ok((s.completion_time.is_some()).then_some(s))
                },
            )
            .await?;
            ensure!(
                st.succeeded == Some(1) && st.failed.unwrap_or(0) == 0,
                "job finished with {st:?}"
            );

            // uninstall: everything of the release goes, CRDs and user objects stay
            let env = env_or_skip("helm_install").context("env")?;
            helm(
                &env,
                &[
                    "uninstall",
                    RELEASE,
                    "-n",
                    NAMESPACE,
                    "--wait",
                    "--timeout",
                    "120s",
                ],
            )?;
            let deploys: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
            let dss: Api<DaemonSet> = Api::namespaced(client.clone(), NAMESPACE);
            let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), NAMESPACE);
            let crs: Api<ClusterRole> = Api::all(client.clone());
            let vwc: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
            let mwc: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
            ensure!(
                gone(&deploys, "kruise-manager").await?,
                "manager Deployment left behind"
            );
            ensure!(
                gone(&dss, "kruise-daemon").await?,
                "daemon DaemonSet left behind"
            );
            ensure!(
                gone(&sas, "kruise-manager").await?,
                "manager ServiceAccount left behind"
            );
            let left: Vec<String> = crs
                .list(
                    &ListParams::default().labels(&format!("app.kubernetes.io/instance={RELEASE}")),
                )
                .await?
                .items
                .iter()
                .filter_map(|c| c.metadata.name.clone())
                .collect();
            ensure!(left.is_empty(), "ClusterRoles left behind: {left:?}");
            ensure!(
                gone(&mwc, "kruise-rs-mutating-webhook-configuration").await?
                    && gone(&vwc, "kruise-rs-validating-webhook-configuration").await?,
                "webhook configurations left behind"
            );
            let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
            for crd in [
                "sidecarsets",
                "clonesets",
                "imagepulljobs",
                "imagelistpulljobs",
                "nodeimages",
            ] {
                ensure!(
                    crds.get_opt(&format!("{crd}.apps.kruise.io"))
                        .await?
                        .is_some(),
                    "CRD {crd} removed by helm uninstall"
                );
            }
            ensure!(
                jobs.get_opt(&name).await?.is_some(),
                "the user's ImagePullJob was removed"
            );
            ensure!(
                pods.get_opt("injected").await?.is_some(),
                "the user's pod was removed"
            );
            Ok(())
        }
    })
    .await;
    let sss: Api<SidecarSet> = Api::all(client.clone());
    let kept = sss.get_opt(&job_name).await.ok().flatten().is_some();
    let _ = sss.delete(&job_name, &DeleteParams::default()).await;
    result?;
    ensure!(kept, "the user's SidecarSet was removed by helm uninstall");
    Ok(())
}
