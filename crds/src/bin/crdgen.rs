//! Writes the CRD YAML of every kind into `crds/manifests/` and `charts/kruise-rs/crds/`.
//! `crdgen --check` writes nothing and exits 1 when the committed files drift from the types.
#![forbid(unsafe_code)]

use std::path::Path;

fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let check = std::env::args().any(|a| a == "--check");
    if check {
        let bad = kruise_crds::crdgen::drifted(&root)?;
        if bad.is_empty() {
            println!("CRDs up to date");
            return Ok(());
        }
        for f in &bad {
            eprintln!("drifted: {}", f.display());
        }
        anyhow::bail!(
            "{} CRD file(s) drifted: run `cargo run -p kruise-crds --bin crdgen`",
            bad.len()
        );
    }
    for (rel, text) in kruise_crds::crdgen::files()? {
        let path = root.join(&rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, text)?;
        println!("wrote {}", rel.display());
    }
    Ok(())
}
