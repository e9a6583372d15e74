//! Waiting for a shutdown signal (a `watch` flag that turns true). At the bottom of the
//! crate: every long-running loop stops on one.

use tokio::sync::watch;

/// Resolves once `signal` is true. The flag's read guard is released before this
/// returns, so the future can be held across other awaits in a `select!`.
pub async fn signalled(signal: &mut watch::Receiver<bool>) {
    let _ = signal.wait_for(|stop| *stop).await;
}
