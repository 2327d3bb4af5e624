#!/usr/bin/env python3
"""Builds OCI image layouts with no container engine.

usage: build-oci.py OUT_DIR                      the e2e test images, from the host's busybox-static
       build-oci.py --binary NAME PATH TAG OUT [--version-file]
                                                 an image of one binary (kruise-manager, kruise-daemon,
                                                 hotupgrade-sample); --version-file adds
                                                 /etc/kruise-rs-version holding TAG, so each tag of the
                                                 same binary gets its own digest (hot-upgrade v1, v2, ...)

Writes OUT_DIR/<name>/ (an OCI image layout, one tag each) for:
  sleeper:v1, sleeper:v2  busybox; the tags differ in /etc/kruise-rs-version, so their digests differ
  pause:3.10              busybox running `sleep inf` (containerd's sandbox image)
  empty:v1                the hot-upgrade "empty" image: sleeps forever, does nothing else
  big:v1                  busybox plus ~50 MB of incompressible data, for pull benchmarks
Layers are deterministic (fixed mtimes, gzip without timestamps), so digests are stable across runs.
"""
import gzip, hashlib, io, json, os, subprocess, sys, tarfile

BUSYBOX = "/bin/busybox"


def tar_layer(entries):
    """entries: list of (path, kind, data_or_target, mode). Returns (gzipped bytes, diff_id)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        for path, kind, data, mode in entries:
            ti = tarfile.TarInfo(path)
            ti.mtime, ti.uid, ti.gid, ti.mode = 0, 0, 0, mode
            if kind == "dir":
                ti.type = tarfile.DIRTYPE
                t.addfile(ti)
            elif kind == "link":
                ti.type, ti.linkname = tarfile.SYMTYPE, data
                t.addfile(ti)
            else:
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
    raw_bytes = raw.getvalue()
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0, compresslevel=6) as g:
        g.write(raw_bytes)
    return gz.getvalue(), "sha256:" + hashlib.sha256(raw_bytes).hexdigest()


def busybox_entries(version):
    bb = open(BUSYBOX, "rb").read()
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    e = [("bin", "dir", None, 0o755), ("etc", "dir", None, 0o755), ("tmp", "dir", None, 0o1777),
         ("bin/busybox", "file", bb, 0o755)]
    e += [(f"bin/{a}", "link", "busybox", 0o777) for a in sorted(set(applets)) if a != "busybox"]
    e += [("etc/passwd", "file", b"root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n", 0o644),
          ("etc/group", "file", b"root:x:0:\nnobody:x:65534:\n", 0o644),
          ("etc/kruise-rs-version", "file", version.encode() + b"\n", 0o644)]
    return e


def write_blob(out, data):
    d = hashlib.sha256(data).hexdigest()
    os.makedirs(os.path.join(out, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(out, "blobs", "sha256", d), "wb") as f:
        f.write(data)
    return "sha256:" + d, len(data)


def image(out, tag, layers, entrypoint, labels):
    os.makedirs(out, exist_ok=True)
    descs, diff_ids = [], []
    for data, diff_id in layers:
        dg, size = write_blob(out, data)
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": dg, "size": size})
        diff_ids.append(diff_id)
    config = {"architecture": "amd64", "os": "linux",
              "config": {"Entrypoint": entrypoint, "Env": ["PATH=/bin"], "WorkingDir": "/", "Labels": labels},
              "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    cdg, csize = write_blob(out, json.dumps(config, sort_keys=True).encode())
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdg, "size": csize},
                "layers": descs}
    mdg, msize = write_blob(out, json.dumps(manifest, sort_keys=True).encode())
    index_path = os.path.join(out, "index.json")
    index = json.load(open(index_path)) if os.path.exists(index_path) else {"schemaVersion": 2, "manifests": []}
    index["manifests"] = [m for m in index["manifests"]
                          if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != tag]
    index["manifests"].append({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdg,
                               "size": msize, "annotations": {"org.opencontainers.image.ref.name": tag}})
    json.dump(index, open(index_path, "w"), sort_keys=True)
    json.dump({"imageLayoutVersion": "1.0.0"}, open(os.path.join(out, "oci-layout"), "w"))
    print(f"{os.path.basename(out)}:{tag} {mdg}")


def binary_entries(name, path, version=None):
    """The binary at /usr/local/bin/NAME, the shared libraries ldd lists for it, and a non-root user;
    with VERSION, also /etc/kruise-rs-version holding it."""
    out = subprocess.run(["ldd", path], capture_output=True, text=True).stdout
    libs = []
    for line in out.splitlines():
        parts = line.split()
        lib = parts[2] if "=>" in parts and len(parts) > 2 else (parts[0] if parts and parts[0].startswith("/") else None)
        if lib and os.path.exists(lib):
            libs.append(lib)
    dirs, e = set(), []
    def add_dirs(p):
        parts = p.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in dirs:
                dirs.add(d)
                e.append((d, "dir", None, 0o755))
    for lib in libs:
        add_dirs(lib)
        e.append((lib.lstrip("/"), "file", open(os.path.realpath(lib), "rb").read(), 0o755))
    add_dirs(f"/usr/local/bin/{name}")
    e.append((f"usr/local/bin/{name}", "file", open(path, "rb").read(), 0o755))
    add_dirs("/etc/passwd")
    e += [("etc/passwd", "file", b"root:x:0:0:root:/:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/:/sbin/nologin\n", 0o644),
          ("etc/group", "file", b"root:x:0:\nnonroot:x:65532:\n", 0o644),
          ("tmp", "dir", None, 0o1777)]
    if version is not None:
        e.append(("etc/kruise-rs-version", "file", version.encode() + b"\n", 0o644))
    return e


def binary_image(name, path, tag, out, version_file=False):
    layer = tar_layer(binary_entries(name, path, tag if version_file else None))
    os.makedirs(out, exist_ok=True)
    image(out, tag, [layer], [f"/usr/local/bin/{name}"], {"org.opencontainers.image.title": name})
    # run as the non-root user
    idx = json.load(open(os.path.join(out, "index.json")))
    for m in idx["manifests"]:
        if m["annotations"]["org.opencontainers.image.ref.name"] != tag:
            continue
        blobs = os.path.join(out, "blobs", "sha256")
        manifest = json.load(open(os.path.join(blobs, m["digest"].split(":")[1])))
        config = json.load(open(os.path.join(blobs, manifest["config"]["digest"].split(":")[1])))
        config["config"]["User"] = "65532:65532"
        cdg, csize = write_blob(out, json.dumps(config, sort_keys=True).encode())
        manifest["config"].update({"digest": cdg, "size": csize})
        mdg, msize = write_blob(out, json.dumps(manifest, sort_keys=True).encode())
        m.update({"digest": mdg, "size": msize})
    json.dump(idx, open(os.path.join(out, "index.json"), "w"), sort_keys=True)


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "--binary":
        args = [a for a in sys.argv[2:] if a != "--version-file"]
        if len(args) != 4:
            sys.exit("usage: build-oci.py --binary NAME PATH TAG OUT [--version-file]")
        binary_image(*args, version_file="--version-file" in sys.argv[2:])
        return
    out = sys.argv[1]
    base = {}
    for v in ("v1", "v2"):
        base[v] = tar_layer(busybox_entries(v))
    sleep = ["/bin/sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
    image(os.path.join(out, "sleeper"), "v1", [base["v1"]], sleep, {"kruise-rs.test/version": "v1"})
    image(os.path.join(out, "sleeper"), "v2", [base["v2"]], sleep, {"kruise-rs.test/version": "v2"})
    image(os.path.join(out, "pause"), "3.10", [base["v1"]], ["/bin/sleep", "inf"], {})
    image(os.path.join(out, "empty"), "v1", [base["v1"]], ["/bin/sleep", "inf"], {"kruise-rs.test/role": "empty"})
    # ~50 MB that gzip cannot shrink: a SHA-256 counter stream (deterministic, incompressible)
    chunks, h = [], b"kruise-rs"
    for i in range((50 << 20) // 32):
        h = hashlib.sha256(h + i.to_bytes(4, "little")).digest()
        chunks.append(h)
    big = tar_layer([("data", "dir", None, 0o755), ("data/blob", "file", b"".join(chunks), 0o644)])
    image(os.path.join(out, "big"), "v1", [base["v1"], big], sleep, {"kruise-rs.test/role": "big"})


if __name__ == "__main__":
    main()
