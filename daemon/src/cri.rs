//! The node's container runtime through the CRI (`runtime.v1` over a unix socket): finding the socket
//! (flag first, then the probe order of OpenKruise's daemon) and probing it. Image pulls build on this.

use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{ImageFsInfoRequest, ListImagesRequest, PullImageRequest, VersionRequest};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint, Uri};

/// Errors talking to the runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The endpoint is not a `unix://` address.
    #[error("unsupported CRI endpoint {0:?}: only unix:// sockets are supported")]
    Endpoint(String),
    /// The socket could not be dialled.
    #[error("connect to {endpoint}: {source}")]
    Connect {
        /// The endpoint.
        endpoint: String,
        /// Why.
        #[source]
        source: tonic::transport::Error,
    },
    /// A CRI call failed.
    #[error("CRI {call} on {endpoint}: {source}")]
    Call {
        /// The RPC.
        call: &'static str,
        /// The endpoint.
        endpoint: String,
        /// The gRPC status.
        #[source]
        source: tonic::Status,
    },
}

/// Where the host's `/var/run` is mounted in the daemon's pod.
pub const HOST_VAR_RUN: &str = "/hostvarrun";

/// Candidate sockets in OpenKruise's order: containerd, CRI-O, cri-dockerd.
pub const PROBE_ORDER: [&str; 6] = [
    "containerd.sock",
    "containerd/containerd.sock",
    "crio.sock",
    "crio/crio.sock",
    "cri-dockerd.sock",
    "cri-dockerd/cri-dockerd.sock",
];

/// The candidates that exist under `root` (normally [`HOST_VAR_RUN`]), in probe order.
pub fn candidates(root: &Path) -> Vec<PathBuf> {
    PROBE_ORDER
        .iter()
        .map(|rel| root.join(rel))
        .filter(|p| p.exists())
        .collect()
}

/// The first existing candidate under [`HOST_VAR_RUN`] as a `unix://` endpoint.
pub fn discover() -> Option<String> {
    candidates(Path::new(HOST_VAR_RUN))
        .first()
        .map(|p| format!("unix://{}", p.display()))
}

/// A connected runtime: its image and runtime services.
#[derive(Clone, Debug)]
pub struct Runtime {
    endpoint: String,
    images: ImageServiceClient<Channel>,
    runtime: RuntimeServiceClient<Channel>,
}

impl Runtime {
    /// Dials `endpoint` (`unix:///path/to.sock`) and probes it as OpenKruise does: `ImageFsInfo`, then
    /// `ListImages`.
    pub async fn connect(endpoint: &str) -> Result<Self, Error> {
        let path = endpoint
            .strip_prefix("unix://")
            .ok_or_else(|| Error::Endpoint(endpoint.to_string()))?
            .to_string();
        // The URI is a placeholder: the connector below always dials the unix socket.
        let channel = Endpoint::from_static("http://[::1]:50051")
            .connect_timeout(Duration::from_secs(10))
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                        tokio::net::UnixStream::connect(path).await?,
                    ))
                }
            }))
            .await
            .map_err(|source| Error::Connect {
                endpoint: endpoint.to_string(),
                source,
            })?;
        let mut rt = Runtime {
            endpoint: endpoint.to_string(),
            images: ImageServiceClient::new(channel.clone()),
            runtime: RuntimeServiceClient::new(channel),
        };
        rt.images
            .image_fs_info(ImageFsInfoRequest {})
            .await
            .map_err(|s| rt.err("ImageFsInfo", s))?;
        rt.list_images().await?;
        Ok(rt)
    }

    fn err(&self, call: &'static str, source: tonic::Status) -> Error {
        Error::Call {
            call,
            endpoint: self.endpoint.clone(),
            source,
        }
    }

    /// `RuntimeService.Version`: `"<runtime_name> <runtime_version>"`.
    pub async fn version(&mut self) -> Result<String, Error> {
        let v = self
            .runtime
            .version(VersionRequest {
                version: "0.1.0".into(),
            })
            .await
            .map_err(|s| self.err("Version", s))?
            .into_inner();
        Ok(format!("{} {}", v.runtime_name, v.runtime_version))
    }

    /// `ImageService.ListImages` with no filter.
    pub async fn list_images(&mut self) -> Result<Vec<k8s_cri::v1::Image>, Error> {
        let resp = self
            .images
            .list_images(ListImagesRequest { filter: None })
            .await
            .map_err(|s| self.err("ListImages", s))?;
        Ok(resp.into_inner().images)
    }

    /// `ImageService.PullImage`: the runtime's image reference of the pulled image. The caller
    /// bounds the call (dropping the future cancels the RPC).
    pub async fn pull_image(&mut self, req: PullImageRequest) -> Result<String, Error> {
        let resp = self
            .images
            .pull_image(req)
            .await
            .map_err(|s| self.err("PullImage", s))?;
        Ok(resp.into_inner().image_ref)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_follow_probe_order_and_skip_missing() {
        let dir = std::env::temp_dir().join(format!("kruise-cri-probe-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("crio")).unwrap();
        std::fs::create_dir_all(dir.join("containerd")).unwrap();
        std::fs::write(dir.join("crio/crio.sock"), b"").unwrap();
        std::fs::write(dir.join("containerd/containerd.sock"), b"").unwrap();
        let got = candidates(&dir);
        assert_eq!(
            got,
            vec![
                dir.join("containerd/containerd.sock"),
                dir.join("crio/crio.sock")
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn non_unix_endpoint_is_refused() {
        let err = Runtime::connect("tcp://127.0.0.1:1").await.unwrap_err();
        assert!(matches!(err, Error::Endpoint(_)), "{err}");
    }
}
