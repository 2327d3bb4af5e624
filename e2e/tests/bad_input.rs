//! Bad input through `kubectl`: every case of `e2e/testdata/bad-input.yaml` (one invalid object per
//! validation rule, for all five kinds) is refused by the CRD schema or the validating webhook with a
//! message naming the field, and nothing is stored or changed. Prints one table row per case.
#![allow(clippy::unwrap_used)]

use anyhow::{Context, Result, bail, ensure};
use kruise_e2e::{Env, env_or_skip, with_temp_ns};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

#[derive(Deserialize)]
struct Table {
    bases: BTreeMap<String, Value>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    kind: String,
    what: String,
    patch: Value,
    field: String,
    #[serde(default)]
    update: bool,
}

fn table() -> Result<Table> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/bad-input.yaml");
    let text = std::fs::read_to_string(path).context("read bad-input.yaml")?;
    serde_saphyr::from_str(&text).context("parse bad-input.yaml")
}

fn namespaced(kind: &str) -> bool {
    matches!(kind, "CloneSet" | "ImagePullJob" | "ImageListPullJob")
}

/// Runs kubectl with `stdin` on its standard input; returns (success, stdout + stderr).
fn kubectl(env: &Env, args: &[&str], stdin: Option<&Value>) -> Result<(bool, String)> {
    let mut child = Command::new(env.get("E2E_KUBECTL")?)
        .env("KUBECONFIG", env.get("KUBECONFIG")?)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("run kubectl")?;
    let mut input = child.stdin.take().context("kubectl stdin")?;
    if let Some(v) = stdin {
        input.write_all(serde_json::to_string(v)?.as_bytes())?;
    }
    drop(input);
    let out = child.wait_with_output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), text.trim().to_string()))
}

fn object(t: &Table, c: &Case, name: &str, ns: &str) -> Result<Value> {
    let mut o = t
        .bases
        .get(&c.kind)
        .with_context(|| format!("no base for {}", c.kind))?
        .clone();
    o["metadata"]["name"] = json!(name);
    if namespaced(&c.kind) {
        o["metadata"]["namespace"] = json!(ns);
    }
    Ok(o)
}

/// Who refused: the webhook's messages come back as "admission webhook ... denied the request".
fn refused_by(msg: &str) -> &'static str {
    if msg.contains("admission webhook") {
        "webhook"
    } else {
        "schema"
    }
}

fn resource_version(env: &Env, kind: &str, name: &str, ns: &str) -> Result<String> {
    let mut args = vec![
        "get",
        kind,
        name,
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ];
    if namespaced(kind) {
        args.extend(["-n", ns]);
    }
    let (ok, out) = kubectl(env, &args, None)?;
    ensure!(ok, "get {kind}/{name}: {out}");
    Ok(out)
}

/// One case: Ok(row) when refused naming the field (and, for updates, nothing changed).
fn run_case(env: &Env, t: &Table, c: &Case, i: usize, ns: &str) -> Result<String> {
    let name = format!("bad-input-{i}-{}", std::process::id());
    let mut obj = object(t, c, &name, ns)?;
    let msg = if c.update {
        let (ok, out) = kubectl(env, &["create", "-f", "-"], Some(&obj))?;
        ensure!(ok, "the valid base was refused: {out}");
        let before = resource_version(env, &c.kind, &name, ns)?;
        let patch = serde_json::to_string(&c.patch)?;
        let mut args = vec![
            "patch",
            c.kind.as_str(),
            &name,
            "--type",
            "merge",
            "-p",
            &patch,
        ];
        if namespaced(&c.kind) {
            args.extend(["-n", ns]);
        }
        let (ok, out) = kubectl(env, &args, None)?;
        let after = resource_version(env, &c.kind, &name, ns)?;
        let mut del = vec!["delete", c.kind.as_str(), &name, "--wait=false"];
        if namespaced(&c.kind) {
            del.extend(["-n", ns]);
        }
        let _ = kubectl(env, &del, None);
        ensure!(!ok, "the invalid update was accepted: {out}");
        ensure!(
            before == after,
            "the refused update changed resourceVersion {before} -> {after}"
        );
        out
    } else {
        json_patch::merge(&mut obj, &c.patch);
        let (ok, out) = kubectl(env, &["create", "--dry-run=server", "-f", "-"], Some(&obj))?;
        ensure!(!ok, "accepted: {out}");
        out
    };
    ensure!(
        msg.contains(&c.field),
        "refused, but the message does not name {}: {msg}",
        c.field
    );
    Ok(format!(
        "| {} | {} | {} | {} |",
        c.kind,
        c.what,
        refused_by(&msg),
        msg.lines()
            .last()
            .unwrap_or_default()
            .chars()
            .take(160)
            .collect::<String>()
    ))
}

#[tokio::test]
async fn every_invalid_object_is_refused_naming_the_field() -> Result<()> {
    let Some(env) = env_or_skip("bad_input") else {
        return Ok(());
    };
    if env.get("E2E_SUITE").map(|v| v != "1").unwrap_or(true) {
        eprintln!("SKIP bad_input: the suite is not running");
        return Ok(());
    }
    let t = table()?;
    let client = env.client().await?;
    with_temp_ns(&client, "bad-input", |_client, ns| {
        let env = env.clone();
        async move {
            // every base is valid, so each refusal below is the patch's doing
            for (kind, base) in &t.bases {
                let mut o = base.clone();
                o["metadata"]["name"] = json!(format!("bad-input-base-{}", std::process::id()));
                if namespaced(kind) {
                    o["metadata"]["namespace"] = json!(ns);
                }
                let (ok, out) =
                    kubectl(&env, &["create", "--dry-run=server", "-f", "-"], Some(&o))?;
                ensure!(ok, "the valid {kind} base was refused: {out}");
            }
            println!("| kind | invalid input | refused by | message |\n|---|---|---|---|");
            let mut failed = Vec::new();
            for (i, c) in t.cases.iter().enumerate() {
                match run_case(&env, &t, c, i, &ns) {
                    Ok(row) => println!("{row}"),
                    Err(e) => {
                        println!(
                            "| {} | {} | NOT REFUSED AS EXPECTED | {e:#} |",
                            c.kind, c.what
                        );
                        failed.push(format!("{} / {}: {e:#}", c.kind, c.what));
                    }
                }
            }
            println!(
                "bad input: {} cases, {} refused naming the field, 0 objects stored",
                t.cases.len(),
                t.cases.len() - failed.len()
            );
            if !failed.is_empty() {
                bail!("{} case(s) failed:\n{}", failed.len(), failed.join("\n"));
            }
            Ok(())
        }
    })
    .await
}
