// Shared by the binaries' build scripts (`include!`d): sets KRUISE_RS_VERSION to
// "kruise-rs <version> (commit <sha>[-dirty], serves apps.kruise.io/v1alpha1)" for `--version`.
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn main() {
    // Rebuild when HEAD moves (a checkout or a commit) or the index changes (dirty flag).
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        println!("cargo:rerun-if-changed={dir}/index");
        if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={dir}/{r}");
        }
    }
    println!("cargo:rerun-if-env-changed=KRUISE_RS_GIT_COMMIT");
    let commit = std::env::var("KRUISE_RS_GIT_COMMIT").ok().filter(|c| !c.is_empty()).or_else(|| {
        let sha = git(&["rev-parse", "--short=12", "HEAD"])?;
        let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
        Some(if dirty { format!("{sha}-dirty") } else { sha })
    });
    let commit = commit.unwrap_or_else(|| "unknown (built outside a git checkout)".to_owned());
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    println!(
        "cargo:rustc-env=KRUISE_RS_VERSION=kruise-rs {version} (commit {commit}, serves apps.kruise.io/v1alpha1)"
    );
}
