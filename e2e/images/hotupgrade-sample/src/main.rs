//! `hotupgrade-sample`: an HTTP sidecar that survives SidecarSet hot upgrades without dropping a
//! request (the mesh-proxy pattern of the SidecarSet hot-upgrade design).
//!
//! `hotupgrade-sample serve` reads `SIDECARSET_VERSION` (V) and `SIDECARSET_VERSION_ALT` (A):
//! - `A == 0` (or no older version reachable): bind `LISTEN` (default 127.0.0.1:8080) itself.
//! - `V > A > 0` (a new version started beside an older one): take the older one's listening
//!   socket over the Unix socket `$SHARED_DIR/handover.sock` (SCM_RIGHTS) and serve on it; the older
//!   one stops accepting and finishes the requests it has.
//!
//! Either way it then offers its own socket to a successor on `handover.sock` and writes
//! `$SHARED_DIR/ready-$V`. `hotupgrade-sample migrate` (the postStart hook) blocks until that file
//! exists, so the SidecarSet controller only switches the working slot once the new version serves.
//! Every response is `version V`.
#![forbid(unsafe_code)]

use anyhow::{Context, Result, bail};
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn env_num(key: &str) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn shared_dir() -> PathBuf {
    std::env::var("SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("/shared"))
}

/// Sends `fd` over `stream` as SCM_RIGHTS with a one-byte payload.
pub fn send_fd(stream: &UnixStream, fd: impl AsFd) -> Result<()> {
    let fds = [fd.as_fd()];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        bail!("control buffer too small");
    }
    rustix::net::sendmsg(
        stream,
        &[IoSlice::new(b"L")],
        &mut control,
        SendFlags::empty(),
    )?;
    Ok(())
}

/// Receives one file descriptor sent by [`send_fd`].
pub fn recv_fd(stream: &UnixStream) -> Result<OwnedFd> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    rustix::net::recvmsg(
        stream,
        &mut [IoSliceMut::new(&mut byte)],
        &mut control,
        RecvFlags::empty(),
    )?;
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = msg
            && let Some(fd) = fds.next()
        {
            return Ok(fd);
        }
    }
    bail!("no file descriptor received")
}

/// Takes the predecessor's listener from `handover.sock`, if one is offering it.
fn take_over(dir: &Path) -> Result<Option<TcpListener>> {
    let path = dir.join("handover.sock");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match UnixStream::connect(&path) {
            Ok(s) => return Ok(Some(TcpListener::from(recv_fd(&s)?))),
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => {
                eprintln!("no predecessor at {}: {e}; binding afresh", path.display());
                return Ok(None);
            }
        }
    }
}

fn handle(mut conn: TcpStream, version: u64) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = [0u8; 4096];
    let mut seen = Vec::new();
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
        if seen.len() > 64 * 1024 {
            return;
        }
    }
    let body = format!("version {version}\n");
    let _ = write!(
        conn,
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// Serves `listener` until `stop` is set; returns once in-flight requests are done.
fn serve(listener: Arc<TcpListener>, version: u64, stop: Arc<AtomicBool>) {
    listener.set_nonblocking(true).ok();
    let mut workers = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((conn, _)) => {
                conn.set_nonblocking(false).ok();
                workers.push(std::thread::spawn(move || handle(conn, version)));
                workers.retain(|w| !w.is_finished());
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2))
            }
            Err(e) => eprintln!("accept: {e}"),
        }
    }
    for w in workers {
        let _ = w.join(); // drain
    }
}

fn run_serve() -> Result<()> {
    let version = env_num("SIDECARSET_VERSION");
    let alt = env_num("SIDECARSET_VERSION_ALT");
    let dir = shared_dir();
    std::fs::create_dir_all(&dir).ok();
    if version == 0 {
        eprintln!("version 0: the idle slot; nothing to do");
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    let listener = match (alt > 0 && version > alt)
        .then(|| take_over(&dir))
        .transpose()?
        .flatten()
    {
        Some(l) => {
            eprintln!("version {version}: took the listening socket over from version {alt}");
            l
        }
        None => {
            let addr = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".into());
            eprintln!("version {version}: listening on {addr}");
            TcpListener::bind(&addr).with_context(|| format!("bind {addr}"))?
        }
    };
    let listener = Arc::new(listener);
    let stop = Arc::new(AtomicBool::new(false));
    // offer the socket to a successor
    let sock = dir.join("handover.sock");
    let _ = std::fs::remove_file(&sock);
    let handover = UnixListener::bind(&sock).with_context(|| format!("bind {}", sock.display()))?;
    let offered = Arc::new(Mutex::new(false));
    {
        let (listener, stop, offered) = (listener.clone(), stop.clone(), offered.clone());
        std::thread::spawn(move || {
            for s in handover.incoming().flatten() {
                match send_fd(&s, listener.as_fd()) {
                    Ok(()) => {
                        eprintln!("version {version}: handed the socket over; draining");
                        *offered.lock().unwrap_or_else(|e| e.into_inner()) = true;
                        stop.store(true, Ordering::SeqCst);
                        return;
                    }
                    Err(e) => eprintln!("handover failed: {e}"),
                }
            }
        });
    }
    std::fs::write(dir.join(format!("ready-{version}")), b"ok\n")?;
    serve(listener, version, stop);
    eprintln!("version {version}: drained; idle until replaced");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn run_migrate() -> Result<()> {
    let version = env_num("SIDECARSET_VERSION");
    if version == 0 {
        return Ok(()); // the idle slot has nothing to migrate
    }
    let ready = shared_dir().join(format!("ready-{version}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready.exists() {
        if Instant::now() > deadline {
            bail!("{} did not appear within 60 s", ready.display());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn main() -> Result<()> {
    match std::env::args().nth(1).as_deref() {
        None | Some("serve") => run_serve(),
        Some("migrate") => run_migrate(),
        Some(other) => bail!("unknown command {other:?}: use serve or migrate"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(addr: std::net::SocketAddr) -> Option<String> {
        let mut c = TcpStream::connect(addr).ok()?;
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").ok()?;
        let mut s = String::new();
        c.read_to_string(&mut s).ok()?;
        s.lines().last().map(str::to_string)
    }

    #[test]
    fn listener_is_handed_over_with_no_failed_request() {
        let listener = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
        let addr = listener.local_addr().unwrap();
        let stop_old = Arc::new(AtomicBool::new(false));
        let old = {
            let (l, s) = (listener.clone(), stop_old.clone());
            std::thread::spawn(move || serve(l, 1, s))
        };
        // a client hammering the address throughout
        let done = Arc::new(AtomicBool::new(false));
        let client = {
            let done = done.clone();
            std::thread::spawn(move || {
                let (mut ok, mut failed, mut versions) = (0, 0, std::collections::BTreeSet::new());
                while !done.load(Ordering::SeqCst) {
                    match get(addr) {
                        Some(v) => {
                            ok += 1;
                            versions.insert(v);
                        }
                        None => failed += 1,
                    }
                }
                (ok, failed, versions)
            })
        };
        std::thread::sleep(Duration::from_millis(200));
        // hand over through a socket pair, as the two containers do through handover.sock
        let (a, b) = UnixStream::pair().unwrap();
        send_fd(&a, listener.as_fd()).unwrap();
        let taken = Arc::new(TcpListener::from(recv_fd(&b).unwrap()));
        let stop_new = Arc::new(AtomicBool::new(false));
        let new = {
            let (l, s) = (taken.clone(), stop_new.clone());
            std::thread::spawn(move || serve(l, 2, s))
        };
        stop_old.store(true, Ordering::SeqCst);
        drop(listener);
        old.join().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        done.store(true, Ordering::SeqCst);
        let (ok, failed, versions) = client.join().unwrap();
        stop_new.store(true, Ordering::SeqCst);
        new.join().unwrap();
        assert_eq!(
            failed, 0,
            "{failed} requests failed during the handover ({ok} succeeded)"
        );
        assert!(
            versions.contains("version 1") && versions.contains("version 2"),
            "{versions:?}"
        );
        assert!(ok > 10, "only {ok} requests");
    }
}
