//! The start-time baseline: nginx with Debian's RTMP module (`libnginx-mod-rtmp`), which
//! only repackages the publisher's stream into one HLS rendition (no transcoding), with
//! `hls_fragment` equal to OnAir's segment length. Started by the benchmark in a
//! temporary directory on free ports, and fed the same ffmpeg input as OnAir.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::process::{Child, Command};

const MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

pub struct NginxRtmp {
    rtmp: String,
    http: String,
    _process: Child,
    _dir: tempfile::TempDir,
}

/// Debian's nginx and RTMP module, installed if this machine lacks them.
fn ensure_installed() -> anyhow::Result<()> {
    if Path::new(MODULE).exists() {
        return Ok(());
    }
    let status = std::process::Command::new("sh")
        .args(["-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-core libnginx-mod-rtmp"])
        .status()
        .context("running apt-get")?;
    anyhow::ensure!(
        status.success(),
        "installing nginx-core and libnginx-mod-rtmp failed"
    );
    Ok(())
}

impl NginxRtmp {
    /// nginx-rtmp cutting `segment_seconds` fragments, serving them over HTTP.
    pub async fn start(segment_seconds: u32) -> anyhow::Result<Self> {
        ensure_installed()?;
        let dir = tempfile::tempdir()?;
        let (rtmp_port, http_port) = (crate::node::free_port()?, crate::node::free_port()?);
        let root: PathBuf = dir.path().to_owned();
        let config = format!(
            "load_module {MODULE};\n\
             daemon off; master_process off; worker_processes 1;\n\
             error_log {root}/error.log warn; pid {root}/nginx.pid;\n\
             events {{ worker_connections 256; }}\n\
             rtmp {{ server {{ listen 127.0.0.1:{rtmp_port}; application live {{\n\
               live on; hls on; hls_path {root}/hls; hls_fragment {segment_seconds}s;\n\
               hls_playlist_length {playlist}s; }} }} }}\n\
             http {{ access_log off; client_body_temp_path {root}/body;\n\
               proxy_temp_path {root}/proxy; fastcgi_temp_path {root}/fastcgi;\n\
               uwsgi_temp_path {root}/uwsgi; scgi_temp_path {root}/scgi;\n\
               server {{ listen 127.0.0.1:{http_port}; location /hls {{ root {root}; }} }} }}\n",
            root = root.display(),
            playlist = segment_seconds * 6,
        );
        let config_path = root.join("nginx.conf");
        std::fs::write(&config_path, config)?;
        let process = Command::new("nginx")
            .arg("-p")
            .arg(&root)
            .arg("-c")
            .arg(&config_path)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting nginx")?;
        let nginx = Self {
            rtmp: format!("rtmp://127.0.0.1:{rtmp_port}/live"),
            http: format!("http://127.0.0.1:{http_port}"),
            _process: process,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", rtmp_port))
            .await
            .is_err()
        {
            anyhow::ensure!(Instant::now() < deadline, "nginx did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(nginx)
    }

    /// Publishes a `size` test pattern as `name` and returns the time from starting the
    /// encoder until its playlist is served listing a segment; the encoder is stopped.
    pub async fn publish_to_playable(
        &self,
        client: &reqwest::Client,
        name: &str,
        size: &str,
    ) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let mut publisher = crate::media::test_pattern(size, &format!("{}/{name}", self.rtmp))
            .spawn()
            .context("starting the ffmpeg publisher")?;
        let url = format!("{}/hls/{name}.m3u8", self.http);
        let deadline = started + Duration::from_secs(30);
        loop {
            let response = client.get(&url).send().await?;
            if response.status().is_success() && response.text().await?.contains(".ts") {
                let elapsed = started.elapsed();
                publisher.kill().await?;
                return Ok(elapsed);
            }
            if Instant::now() > deadline {
                bail!("nginx-rtmp: not playable within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
