//! Node failure, with real processes: an API node and an ingest node share a database;
//! ffmpeg publishes to the ingest node, which is then killed (SIGKILL, no goodbye). Its
//! broadcast must not stay live forever: the ingest lease lapses, the broadcast goes
//! offline, then ends after the reconnect window.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Ports for a node: taken from the OS, then released for the node to bind.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the process when dropped, whatever the test's outcome.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `onair serve` with `roles`, on the shared database, its own data directory.
fn node(dir: &Path, name: &str, roles: &str, http: u16, rtmp: u16) -> Process {
    let data = dir.join(name);
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_onair"))
        .arg("serve")
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ONAIR_ROLE", roles)
        .env("ONAIR_DATA_DIR", &data)
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.join("shared.db").display()),
        )
        .env("ONAIR_SECRET_KEY", "nodes-test-secret-nodes-test-secret!")
        .env("ONAIR_BIND", format!("127.0.0.1:{http}"))
        .env("ONAIR_RTMP_BIND", format!("127.0.0.1:{rtmp}"))
        .env("ONAIR_SRT_BIND", "127.0.0.1:0")
        .env("ONAIR_RATE_LIMIT_ENABLED", "false")
        .env("ONAIR_INGEST_LEASE_SECS", "6")
        .env("ONAIR_RECONNECT_GRACE_SECS", "4")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("the onair binary runs");
    Process(child)
}

const DEADLINE: Duration = Duration::from_secs(60);

/// Polls `check` every 100 ms until it returns something.
async fn eventually<T, F: AsyncFnMut() -> Option<T>>(what: &str, mut check: F) -> T {
    let started = Instant::now();
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn ready(client: &reqwest::Client, port: u16) {
    let url = format!("http://127.0.0.1:{port}/readyz");
    eventually("the node to be ready", async || {
        let response = client.get(&url).send().await.ok()?;
        response.status().is_success().then_some(())
    })
    .await;
}

fn publish(rtmp: u16, key: &str) -> Process {
    let child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc=size=320x180:rate=30"])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "30"])
        .args(["-pix_fmt", "yuv420p", "-f", "flv"])
        .arg(format!("rtmp://127.0.0.1:{rtmp}/live/{key}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg runs (bash scripts/setup installs it)");
    Process(child)
}

#[tokio::test]
async fn a_killed_ingest_node_leaves_no_broadcast_live() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let (api_port, ingest_port, rtmp_port) = (free_port(), free_port(), free_port());
    // The API node migrates the database first; then the ingest node joins it.
    let _api = node(dir.path(), "api", "api,chat,worker", api_port, free_port());
    ready(&client, api_port).await;
    let mut ingest = node(dir.path(), "ingest", "ingest", ingest_port, rtmp_port);
    ready(&client, ingest_port).await;

    let api = format!("http://127.0.0.1:{api_port}");
    let signup = json!({"username": "leased", "email": "leased@example.com",
                        "password": "correct horse battery"});
    let body: Value = client
        .post(format!("{api}/api/auth/signup"))
        .json(&signup)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (user, token) = (body["user"]["id"].clone(), body["access_token"].clone());
    let key: Value = client
        .get(format!("{api}/api/me/stream-key"))
        .bearer_auth(token.as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let _encoder = publish(rtmp_port, key["stream_key"].as_str().unwrap());

    let latest = format!("{api}/api/users/{}/streams?limit=1", user.as_str().unwrap());
    let status = async || -> Option<Value> {
        let page: Value = client.get(&latest).send().await.ok()?.json().await.ok()?;
        Some(page["data"].get(0)?.clone())
    };
    let broadcast = eventually("the broadcast live", async || {
        status().await.filter(|b| b["status"] == "live")
    })
    .await;

    ingest.0.kill().unwrap();
    ingest.0.wait().unwrap();
    // No node tells us it ended: the lease lapses, the broadcast goes offline…
    eventually("the broadcast offline", async || {
        status().await.filter(|b| b["status"] == "offline")
    })
    .await;
    // …and, nobody reconnecting, ends after the window.
    let ended = eventually("the broadcast ended", async || {
        status().await.filter(|b| b["status"] == "ended")
    })
    .await;
    assert_eq!(ended["id"], broadcast["id"]);
    assert!(ended["ended_at"].is_string(), "{ended}");
}
