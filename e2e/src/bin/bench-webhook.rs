//! Benchmark `webhook-direct` (shared/spec benchmarks.md): pod-CREATE AdmissionReviews over HTTPS
//! keep-alive straight to the webhook with 10 SidecarSets cached, against a floor measured in the same
//! run: the same load on a minimal in-process handler that parses the review and answers "allowed"
//! without reading any SidecarSet. `--selected-by N` sets how many of the 10 SidecarSets select the
//! benchmark pod (0: a pod no SidecarSet selects); `--pin-cpu C` pins kruise-manager to core C and
//! this process (load generator and floor handler) to the other cores, for the one-core targets.
//! Prints one JSON object; nothing fails on a number.
#![forbid(unsafe_code)]

use anyhow::{Context, Result, bail};
use axum::body::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use kruise_crds::SidecarSet;
use kube::api::{Api, DeleteParams, PostParams};
use rustls_pki_types::{CertificateDer, ServerName, pem::PemObject};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// webhook-direct benchmark.
#[derive(Parser, Debug)]
struct Args {
    /// The webhook under test.
    #[arg(long, default_value = "https://127.0.0.1:9443/mutate-pod")]
    url: String,
    /// Requests for the max-throughput run.
    #[arg(long, default_value_t = 20000)]
    requests: usize,
    /// Keep-alive connections.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Fixed request rates (req/s) for the latency runs.
    #[arg(long, default_value = "1000,2000")]
    rates: String,
    /// Seconds per fixed-rate run.
    #[arg(long, default_value_t = 5)]
    rate_seconds: u64,
    /// How many of the 10 SidecarSets select the benchmark pod.
    #[arg(long, default_value_t = 1)]
    selected_by: usize,
    /// Pin kruise-manager (every thread) to this core, this process to the others.
    #[arg(long)]
    pin_cpu: Option<usize>,
    /// Benchmark a webhook-only kruise-manager (`--disable-controllers`) started for the run on
    /// 127.0.0.1:9444 instead of the suite's manager: its RSS is the webhook's own.
    #[arg(long)]
    webhook_only: bool,
    /// Where to write the JSON result too.
    #[arg(long, default_value = "e2e/bench/results/webhook-direct.json")]
    out: String,
}

/// A child process killed when dropped.
struct KillOnDrop(std::process::Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `taskset -a -cp LIST PID`: every thread of `pid` onto the cores in `list`.
fn pin(pid: &str, list: &str) -> Result<()> {
    let st = std::process::Command::new("taskset")
        .args(["-a", "-cp", list, pid])
        .stdout(std::process::Stdio::null())
        .status()?;
    anyhow::ensure!(st.success(), "taskset -a -cp {list} {pid} failed");
    Ok(())
}

/// A pod-CREATE review for pod `i`, labelled so that the first `selected_by` SidecarSets select it.
fn review(i: usize, selected_by: usize) -> String {
    let mut labels = serde_json::Map::new();
    labels.insert("app".into(), json!("bench"));
    for j in 0..selected_by {
        labels.insert(format!("bench-webhook-{j}"), json!("y"));
    }
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": format!("bench-{i}"),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "bench", "operation": "CREATE",
            "userInfo": {"username": "bench"},
            "object": {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("bench-{i}"), "namespace": "bench",
                             "labels": labels},
                "spec": {"containers": [{"name": "main", "image": "example.test/app:v1"}]}
            },
            "dryRun": false
        }
    })
    .to_string()
}

struct Target {
    selected_by: usize,
    addr: SocketAddr,
    host: String,
    path: String,
    tls: tokio_rustls::TlsConnector,
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

impl Target {
    async fn connect(&self) -> Result<Sender> {
        let tcp = tokio::net::TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from(self.host.clone())?;
        let tls = self.tls.connect(name, tcp).await?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await?;
        tokio::spawn(conn);
        Ok(sender)
    }

    async fn call(&self, sender: &mut Sender, body: String) -> Result<Value> {
        let req = http::Request::post(&self.path)
            .header("host", &self.host)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            bail!("HTTP {status}: {}", String::from_utf8_lossy(&bytes));
        }
        Ok(serde_json::from_slice(&bytes)?)
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Max throughput: `requests` over `concurrency` keep-alive connections as fast as answers come.
async fn max_throughput(t: Arc<Target>, requests: usize, concurrency: usize) -> Result<Value> {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (t, next) = (t.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut s = t.connect().await?;
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    break;
                }
                let t0 = Instant::now();
                t.call(&mut s, review(i, t.selected_by)).await?;
                lat.push(t0.elapsed().as_secs_f64() * 1e3);
            }
            anyhow::Ok(lat)
        }));
    }
    let mut lat = Vec::new();
    for w in workers {
        lat.extend(w.await??);
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    Ok(
        json!({"requests": requests, "seconds": secs, "rps": requests as f64 / secs,
              "p50_ms": percentile(&lat, 0.5), "p99_ms": percentile(&lat, 0.99)}),
    )
}

/// Fixed rate: requests scheduled at `rate`/s for `secs`; latency counted from the scheduled time, so
/// a stall shows up instead of slowing the schedule down.
async fn fixed_rate(t: Arc<Target>, rate: usize, secs: u64, concurrency: usize) -> Result<Value> {
    let total = rate * secs as usize;
    let start = Instant::now() + Duration::from_millis(50);
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (t, next) = (t.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut s = t.connect().await?;
            let (mut lat, mut sent_lat) = (Vec::new(), Vec::new());
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
                tokio::time::sleep_until(due.into()).await;
                let sent = Instant::now();
                t.call(&mut s, review(i, t.selected_by)).await?;
                lat.push(due.elapsed().as_secs_f64() * 1e3);
                sent_lat.push(sent.elapsed().as_secs_f64() * 1e3);
            }
            anyhow::Ok((lat, sent_lat))
        }));
    }
    let (mut lat, mut sent) = (Vec::new(), Vec::new());
    for w in workers {
        let (l, s) = w.await??;
        lat.extend(l);
        sent.extend(s);
    }
    lat.sort_by(f64::total_cmp);
    sent.sort_by(f64::total_cmp);
    // p50/p99: from each request's scheduled time (a stall or a late timer counts); *_from_send:
    // from the moment it went out (the server's answer time plus the client's own overhead)
    Ok(json!({"rate": rate, "requests": total,
              "p50_ms": percentile(&lat, 0.5), "p99_ms": percentile(&lat, 0.99),
              "p50_ms_from_send": percentile(&sent, 0.5), "p99_ms_from_send": percentile(&sent, 0.99)}))
}

async fn measure(t: Arc<Target>, args: &Args) -> Result<Value> {
    // warm up connections and caches
    max_throughput(t.clone(), 500, args.concurrency).await?;
    let max = max_throughput(t.clone(), args.requests, args.concurrency).await?;
    let mut rates = serde_json::Map::new();
    for r in args
        .rates
        .split(',')
        .filter_map(|r| r.trim().parse::<usize>().ok())
    {
        rates.insert(
            r.to_string(),
            fixed_rate(t.clone(), r, args.rate_seconds, args.concurrency * 4).await?,
        );
    }
    Ok(json!({"max": max, "fixed_rate": rates}))
}

fn rss_kib(pid: &str) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |k: &str| {
        s.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

#[tokio::main]
async fn main() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    let env = kruise_e2e::Env::load()?.context("no e2e cluster is up")?;
    let client = env.client().await?;

    let ca_pem = std::fs::read(env.get("E2E_CA")?)?;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&ca_pem) {
        roots.add(c?)?;
    }
    let tls_cfg = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls_cfg));

    // 10 SidecarSets in the webhook's cache; the benchmark pod is selected by `selected_by` of them.
    let ssapi: Api<SidecarSet> = Api::all(client.clone());
    let names: Vec<String> = (0..10).map(|i| format!("bench-webhook-{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        let ss: SidecarSet = serde_json::from_value(json!({
            "apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {format!("bench-webhook-{i}"): "y"}},
                     "containers": [{"name": format!("agent-{i}"), "image": "example.test/agent:v1"}]}
        }))?;
        let _ = ssapi.delete(name, &DeleteParams::default()).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        ssapi
            .create(&PostParams::default(), &ss)
            .await
            .with_context(|| format!("create {name}"))?;
    }

    // a webhook-only manager of our own (killed when the benchmark ends)
    let mut webhook_only = None;
    let url = if args.webhook_only {
        let bin = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/release/kruise-manager"
        );
        let child = std::process::Command::new(bin)
            .args([
                "--disable-controllers",
                "--webhook-configurations",
                "off",
                "--kubeconfig",
                env.get("KUBECONFIG")?,
                "--namespace",
                "kruise-system",
                "--health-addr",
                "127.0.0.1:8002",
                "--webhook-bind",
                "127.0.0.1:9444",
                "--webhook-ca",
                env.get("E2E_CA")?,
                "--webhook-cert",
                env.get("E2E_WEBHOOK_CERT")?,
                "--webhook-key",
                env.get("E2E_WEBHOOK_KEY")?,
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("start {bin} (cargo build --release first)"))?;
        webhook_only = Some(KillOnDrop(child));
        "https://127.0.0.1:9444/mutate-pod".to_string()
    } else {
        args.url.clone()
    };
    let (host, rest) = url
        .trim_start_matches("https://")
        .split_once('/')
        .context("--url needs a path")?;
    let ours = Arc::new(Target {
        selected_by: args.selected_by,
        addr: host.parse()?,
        host: host.split(':').next().unwrap_or(host).to_string(),
        path: format!("/{rest}"),
        tls: connector.clone(),
    });
    // wait until the webhook injects for a pod all 10 select (its cache has every SidecarSet)
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut s = loop {
        match ours.connect().await {
            Ok(s) => break s,
            Err(e) if Instant::now() > deadline => return Err(e.context("connect to the webhook")),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    loop {
        let v = ours.call(&mut s, review(0, 10)).await?;
        let patch = v["response"]["patch"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if (0..10).all(|j| {
            use base64::Engine;
            let p = base64::engine::general_purpose::STANDARD
                .decode(&patch)
                .unwrap_or_default();
            String::from_utf8_lossy(&p).contains(&format!("agent-{j}"))
        }) {
            break;
        }
        if Instant::now() > deadline {
            bail!("the webhook never injected the benchmark pod: {v}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let floor_addr =
        kruise_e2e::allow_all_webhook(env.get("E2E_WEBHOOK_CERT")?, env.get("E2E_WEBHOOK_KEY")?)
            .await?;
    let floor = Arc::new(Target {
        selected_by: args.selected_by,
        addr: floor_addr,
        host: "127.0.0.1".into(),
        path: "/mutate-pod".into(),
        tls: connector,
    });

    let manager_pid = match &webhook_only {
        Some(c) => Some(c.0.id().to_string()),
        None => std::fs::read_to_string(format!("{}/pids/manager.pid", env.get("E2E_DIR")?)).ok(),
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if let Some(c) = args.pin_cpu {
        let pid = manager_pid
            .as_deref()
            .map(str::trim)
            .context("no manager PID to pin")?;
        let others: Vec<String> = (0..cores)
            .filter(|&o| o != c)
            .map(|o| o.to_string())
            .collect();
        pin(pid, &c.to_string())?;
        pin(&std::process::id().to_string(), &others.join(","))?;
    }
    let floor_res = measure(floor, &args).await;
    let ours_res = measure(ours, &args).await;
    if args.pin_cpu.is_some() {
        // give the manager every core again
        if let Some(pid) = manager_pid.as_deref().map(str::trim) {
            pin(pid, &format!("0-{}", cores - 1))?;
        }
    }
    let (floor_res, ours_res) = (floor_res?, ours_res?);
    let rss = manager_pid.as_deref().map(str::trim).and_then(rss_kib);
    let ratio = |k: &str| {
        ours_res["max"][k].as_f64().unwrap_or(f64::NAN)
            / floor_res["max"][k].as_f64().unwrap_or(f64::NAN)
    };
    let out = json!({
        "name": "webhook-direct",
        "params": {"requests": args.requests, "concurrency": args.concurrency, "sidecarsets": 10,
                   "selected_by": args.selected_by, "rates": args.rates, "rate_seconds": args.rate_seconds,
                   "manager_pinned_to_core": args.pin_cpu, "webhook_only_manager": args.webhook_only,
                   "note": if args.pin_cpu.is_some() { "the floor handler runs in the load generator's process, on the cores the manager does not have" } else { "manager, load generator and floor share every core" }},
        "floor": floor_res,
        "ours": ours_res,
        "ratio": {"rps": ratio("rps"), "p50_ms": ratio("p50_ms"), "p99_ms": ratio("p99_ms")},
        "api_writes": 0,
        "rss_kib": rss.map(|(now, peak)| json!({if args.webhook_only { "webhook_only_manager" } else { "manager" }: {"rss": now, "hwm": peak}})),
    });
    for name in &names {
        let _ = ssapi.delete(name, &DeleteParams::default()).await;
    }
    println!("{out}");
    if let Some(dir) = std::path::Path::new(&args.out).parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&out)?)?;
    Ok(())
}
