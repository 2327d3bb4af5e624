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
        // helm never deletes namespaces; this one holds only the test's certificate Secret
        if let (Ok(kubectl), Ok(kc)) = (self.0.get("E2E_KUBECTL"), self.0.get("KUBECONFIG")) {
            let _ = Command::new(kubectl)
                .env("KUBECONFIG", kc)
                .args([
                    "delete",
                    "namespace",
                    NAMESPACE,
                    "--wait=false",
                    "--ignore-not-found",
                ])
                .output();
        }
        // the binaries the suite ran before (no rebuild: the tree may be mid-edit)
        let bin = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release");
        let (manager, daemon) = (
            format!("{bin}/kruise-manager"),
            format!("{bin}/kruise-daemon"),
        );
        if let Err(e) = cluster(&[
            "suite",
            "up",
            "--manager-cmd",
            &manager,
            "--daemon-cmd",
            &daemon,
        ]) {
            eprintln!("could not bring the suite back up: {e:#}");
        }
    }
}

/// A client acting as the release's daemon service account on `node` (the user extra a pod-bound
/// token carries), through impersonation headers.
async fn as_daemon_on(env: &Env, node: &str) -> Result<kube::Client> {
    use http::{HeaderName, HeaderValue};
    let kc = kube::config::Kubeconfig::read_from(env.get("KUBECONFIG")?)?;
    let mut cfg =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await?;
    let user = format!("system:serviceaccount:{NAMESPACE}:kruise-daemon");
    cfg.headers.push((
        HeaderName::from_static("impersonate-user"),
        HeaderValue::from_str(&user)?,
    ));
    cfg.headers.push((
        HeaderName::from_static("impersonate-extra-authentication.kubernetes.io%2fnode-name"),
        HeaderValue::from_str(node)?,
    ));
    Ok(kube::Client::try_from(cfg)?)
}

/// The daemon may read Secrets only in kruise-daemon-config, may not touch NodeImage specs, and may
/// write the status of its own node's NodeImage only (the chart's ValidatingAdmissionPolicy).
async fn least_privilege_daemon(env: &Env, node: &str) -> Result<()> {
    use k8s_openapi::api::core::v1::Secret;
    use kruise_crds::NodeImage;
    use kube::api::{Patch, PatchParams};
    let daemon = as_daemon_on(env, node).await?;
    let forbidden = |r: std::result::Result<(), kube::Error>, what: &str| -> Result<String> {
        match r {
            Err(kube::Error::Api(s)) if s.code == 403 => Ok(s.message),
            other => bail!("{what}: want 403 Forbidden, got {other:?}"),
        }
    };
    let all: Api<Secret> = Api::all(daemon.clone());
    forbidden(
        all.list(&ListParams::default()).await.map(|_| ()),
        "list Secrets cluster-wide",
    )?;
    let own: Api<Secret> = Api::namespaced(daemon.clone(), "kruise-daemon-config");
    own.list(&ListParams::default())
        .await
        .context("list Secrets in kruise-daemon-config")?;
    let nis: Api<NodeImage> = Api::all(daemon.clone());
    let other = env
        .list("E2E_KWOK_NODES")
        .into_iter()
        .next()
        .context("no kwok node")?;
    // valid status bodies (the schema runs before admission policies): `desired` unchanged for its own
    // node; for the other node, refused before anything is stored
    let own_desired = Api::<NodeImage>::all(env.client().await?)
        .get(node)
        .await?
        .status
        .map(|s| s.desired)
        .unwrap_or(0);
    let status = json!({"status": {"desired": 0}});
    let msg = forbidden(
        nis.patch_status(&other, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .map(|_| ()),
        "write another node's NodeImage status",
    )?;
    ensure!(
        msg.contains("may only write the NodeImage of its own node"),
        "refused, but by what? {msg}"
    );
    let same = json!({"status": {"desired": own_desired}});
    nis.patch_status(node, &PatchParams::default(), &Patch::Merge(&same))
        .await
        .context("write its own node's NodeImage status")?;
    let spec = json!({"metadata": {"labels": {"kruise-rs.e2e/touched": "yes"}}});
    forbidden(
        nis.patch(node, &PatchParams::default(), &Patch::Merge(&spec))
            .await
            .map(|_| ()),
        "write a NodeImage (not its status)",
    )?;
    println!(
        "daemon service account: Secrets only in kruise-daemon-config; NodeImage status of its own node only ({msg})"
    );
    Ok(())
}

/// The last lines of every container of the release, for failure messages.
fn release_logs(env: &Env) -> String {
    let out = Command::new(env.get("E2E_KUBECTL").unwrap_or("kubectl"))
        .env("KUBECONFIG", env.get("KUBECONFIG").unwrap_or_default())
        .args([
            "-n",
            NAMESPACE,
            "logs",
            "--all-containers",
            "--prefix",
            "--tail=30",
        ])
        .args(["-l", &format!("app.kubernetes.io/instance={RELEASE}")])
        .output();
    match out {
        Ok(o) => format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => format!("kubectl logs: {e}"),
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

    // the manager generates its serving certificate: no certificate Secret of an earlier run
    if namespaces.get_opt(NAMESPACE).await?.is_none() {
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NAMESPACE}}))?;
        namespaces.create(&PostParams::default(), &ns).await?;
    }
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), NAMESPACE);
    let _ = secrets
        .delete("kruise-webhook-certs", &DeleteParams::default())
        .await;

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
        // kwok would run a fake pod on its nodes: only the real node runs real containers
        format!("manager.nodeSelector.kubernetes\\.io/hostname={real_node}"),
        // Endpoints may not hold loopback addresses, and this node's address is 127.0.0.1: the API
        // server calls the webhook by URL; the manager's own CA and certificate cover 127.0.0.1
        "manager.webhook.url=https://127.0.0.1:19876".to_string(),
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
    helm(&env, &args).map_err(|e| e.context(format!("logs:\n{}", release_logs(&env))))?;
    println!("helm install --wait: {:.1} s", t0.elapsed().as_secs_f64());

    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let ready = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    };
    // `helm --wait` does not wait for a one-node DaemonSet whose maxUnavailable rounds to 1
    let list = wait_for(
        "manager and daemon pods Ready",
        Duration::from_secs(120),
        || async {
            let list = pods.list(&ListParams::default()).await?.items;
            Ok((list.len() >= 2 && list.iter().all(ready)).then_some(list))
        },
    )
    .await
    .map_err(|e| e.context(format!("pods not Ready; logs:\n{}", release_logs(&env))))?;
    println!(
        "manager and daemon pods Ready: {:.1} s after install",
        t0.elapsed().as_secs_f64()
    );
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
        ensure!(
            sc.run_as_non_root == Some(true) && sc.run_as_user.is_some_and(|u| u != 0),
            "{component} may run as root"
        );
    }

    least_privilege_daemon(&env, &real_node).await?;

    // the manager generated a CA and a serving certificate into its Secret, and wrote that CA as
    // the caBundle into the configurations the chart created
    let ca = wait_for(
        "the certificate Secret",
        Duration::from_secs(60),
        || async {
            let s = secrets.get_opt("kruise-webhook-certs").await?;
            Ok(s.and_then(|s| s.data?.get("ca-cert.pem").map(|b| b.0.clone())))
        },
    )
    .await?;
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
                    .is_some_and(|b| b.0 == ca)
                    && w.client_config
                        .url
                        .as_deref()
                        .is_some_and(|u| u.starts_with("https://127.0.0.1:19876/"))
            });
            Ok(ok.then_some(()))
        },
    )
    .await
    .map_err(|e| {
        let c = run(
            "kubectl get",
            Command::new(env.get("E2E_KUBECTL").unwrap_or("kubectl"))
                .env("KUBECONFIG", env.get("KUBECONFIG").unwrap_or_default())
                .args(["get", "mutatingwebhookconfigurations", "-o", "yaml"]),
        );
        e.context(format!(
            "configurations: {c:?}\nlogs:\n{}",
            release_logs(&env)
        ))
    })?;

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
            let env = env_or_skip("helm_install").context("env")?;
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
            .await
            .map_err(|e| {
                let state = Command::new(env.get("E2E_KUBECTL").unwrap_or("kubectl"))
                    .env("KUBECONFIG", env.get("KUBECONFIG").unwrap_or_default())
                    .args(["get", "imagepulljobs", "-A", "-o", "yaml"])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                let ni = Command::new(env.get("E2E_KUBECTL").unwrap_or("kubectl"))
                    .env("KUBECONFIG", env.get("KUBECONFIG").unwrap_or_default())
                    .args(["get", "nodeimage", &real_node, "-o", "yaml"])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                e.context(format!(
                    "jobs:\n{state}\nNodeImage:\n{ni}\nlogs:\n{}",
                    release_logs(&env)
                ))
            })?;
            ensure!(
                st.succeeded == Some(1) && st.failed.unwrap_or(0) == 0,
                "job finished with {st:?}"
            );

            // uninstall: everything of the release goes, CRDs and user objects stay
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

/// `helm lint --strict` is clean and `helm template` output applies with `--dry-run=server` (schema,
/// admission and CEL of every object checked by the API server; nothing stored).
#[tokio::test]
async fn chart_lints_clean_and_its_template_applies_with_server_dry_run() -> Result<()> {
    let Some(env) = env_or_skip("chart_dry_run") else {
        return Ok(());
    };
    let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/kruise-rs");
    helm(&env, &["lint", "--strict", chart])?;
    let rendered = helm(&env, &["template", RELEASE, chart, "-n", "kruise-system"])?;
    let mut child = Command::new(env.get("E2E_KUBECTL")?)
        .env("KUBECONFIG", env.get("KUBECONFIG")?)
        .args(["apply", "--dry-run=server", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    std::io::Write::write_all(
        &mut child.stdin.take().context("stdin")?,
        rendered.as_bytes(),
    )?;
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "kubectl apply --dry-run=server refused the chart: {}{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let objects = text
        .lines()
        .filter(|l| l.contains("(server dry run)"))
        .count();
    let rendered_objects = rendered.lines().filter(|l| l.starts_with("kind: ")).count();
    ensure!(
        objects == rendered_objects && objects > 0,
        "{objects} of {rendered_objects} rendered objects applied:\n{text}"
    );
    println!("helm template: {objects} objects accepted by --dry-run=server");
    Ok(())
}
