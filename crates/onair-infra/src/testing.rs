//! Servers of a test's own, each on a free loopback port. A real S3-compatible server:
//! moto's server mode (from PyPI, installed by `scripts/setup` under `target/tools/moto`),
//! with a bucket of its own; tests that use it are built ignored unless
//! `ONAIR_TEST_MOTO_SERVER` names the `moto_server` program (the `onair_test_s3` cfg from
//! scripts/test-backends.rs); CI sets it. And a `redis-server` for a test that stops
//! Redis, never the shared one.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::{MediaStore, S3Options};

/// Names the `moto_server` program.
pub const MOTO_SERVER_VAR: &str = "ONAIR_TEST_MOTO_SERVER";
/// How long moto may take to answer on a busy machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A running `redis-server` without persistence; killed by [`RedisServer::stop`] or
/// when dropped.
pub struct RedisServer {
    server: Child,
    port: u16,
    url: String,
}

impl RedisServer {
    /// Starts it and waits until it accepts connections.
    pub async fn start() -> Self {
        let port = free_port();
        Self {
            server: Self::spawn(port).await,
            port,
            url: format!("redis://127.0.0.1:{port}"),
        }
    }

    async fn spawn(port: u16) -> Child {
        let server = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server is installed by scripts/setup");
        let deadline = Instant::now() + START_TIMEOUT;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "redis-server never listened");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Kills it, as a crashed or unreachable Redis.
    pub async fn stop(&mut self) {
        self.server.kill().await.expect("redis-server killed");
    }

    /// Starts it again, empty, on the same port (a Redis that came back).
    pub async fn restart(&mut self) {
        self.server = Self::spawn(self.port).await;
    }
}

/// A running moto server with one bucket; the server is killed when this is dropped.
pub struct MotoS3 {
    _server: Child,
    program: PathBuf,
    endpoint: String,
    bucket: String,
}

impl MotoS3 {
    /// Starts moto and creates the bucket; panics when moto is missing or never answers.
    pub async fn start() -> Self {
        let program = PathBuf::from(
            std::env::var(MOTO_SERVER_VAR)
                .ok()
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| {
                    panic!("{MOTO_SERVER_VAR} must name moto_server (scripts/setup installs it)")
                }),
        );
        let port = free_port();
        let mut server = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
        let endpoint = format!("http://127.0.0.1:{port}");
        let bucket = format!("onair-{}", uuid::Uuid::new_v4().simple());
        // Creating the bucket is also the readiness check (moto needs no signature).
        // Straight to the loopback port, whatever proxy the environment names.
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("an HTTP client");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match client.put(format!("{endpoint}/{bucket}")).send().await {
                Ok(response) if response.status().is_success() => break,
                Ok(response) => panic!("moto refused the bucket: {}", response.status()),
                Err(error) => {
                    if let Ok(Some(status)) = server.try_wait() {
                        panic!("moto_server exited with {status}");
                    }
                    assert!(
                        Instant::now() < deadline,
                        "moto_server never answered: {error}"
                    );
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self {
            _server: server,
            program,
            endpoint,
            bucket,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// `s3://<bucket>/<prefix>`, for [`MediaStore::open_with`] or `OBJECT_STORE_URL`.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.bucket)
    }

    /// The endpoint and moto's accepted dummy credentials, so no `AWS_*` variable of
    /// the process matters.
    pub fn options(&self) -> S3Options {
        S3Options {
            endpoint: Some(self.endpoint.clone()),
            region: Some("us-east-1".into()),
            access_key_id: Some("testing".into()),
            secret_access_key: Some("testing".into()),
            allow_http: Some(true),
            ..S3Options::default()
        }
    }

    /// A media store on this bucket under `prefix`.
    pub fn store(&self, prefix: &str) -> MediaStore {
        let spool = std::env::temp_dir();
        MediaStore::open_with(Some(&self.url(prefix)), &spool, &self.options())
            .expect("an S3 media store")
    }

    /// The Python of moto's virtualenv, which has boto3 (what the AWS CLI is built on).
    pub fn python(&self) -> PathBuf {
        self.program.with_file_name("python")
    }
}
