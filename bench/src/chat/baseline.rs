//! The baseline chat server: `bench/baseline/chat-ws`, a minimal room broadcast on Node's
//! `ws` package, speaking just enough of OnAir's chat protocol for this generator. It runs
//! as a child process like an OnAir node and answers `heap` on stdin too (the V8 heap in
//! use plus memory held outside it, such as socket buffers).

use std::path::Path;
use std::process::Stdio;

use anyhow::{Context as _, ensure};
use tokio::process::Command;

use crate::node::{Node, free_port};

/// Where the baseline's `package.json`, `package-lock.json` and `server.js` are.
const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/baseline/chat-ws");

/// Starts the baseline on a free loopback port, installing its pinned packages first.
pub async fn start() -> anyhow::Result<Node> {
    install().await?;
    let port = free_port()?;
    let mut command = Command::new("node");
    command
        .arg("server.js")
        .current_dir(DIR)
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string());
    Node::spawn(command, port).await
}

/// `npm ci` (exactly what `package-lock.json` pins) unless it has been run.
async fn install() -> anyhow::Result<()> {
    if Path::new(DIR).join("node_modules/ws").is_dir() {
        return Ok(());
    }
    eprintln!("baseline: npm ci in {DIR}…");
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(DIR)
        // The tables go to stdout.
        .stdout(Stdio::null())
        .status()
        .await
        .context("the baseline needs Node.js 20 and npm")?;
    ensure!(status.success(), "npm ci in {DIR} failed");
    Ok(())
}
