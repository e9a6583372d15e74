//! A node's roles (`onair serve --role api,chat,ingest,worker`, `ONAIR_ROLE`; default
//! all): a node runs only the listeners and loops of its roles, so each tier scales
//! apart — API nodes (stateless, behind a balancer) by requests, chat nodes by sockets,
//! ingest nodes by encoders, workers by queue depth. Every node answers `/healthz`,
//! `/readyz` and `/metrics`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The HTTP API, the web UI, media (HLS, VOD, clips, avatars) and inbound hooks; the
    /// viewer-count flush.
    Api,
    /// Chat WebSockets.
    Chat,
    /// The RTMP ingest and its transcoders.
    Ingest,
    /// Background jobs (notifications, webhooks, push, archive processing) and retention.
    Worker,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Api, Role::Chat, Role::Ingest, Role::Worker];

    fn name(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Chat => "chat",
            Self::Ingest => "ingest",
            Self::Worker => "worker",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        Self::ALL
            .into_iter()
            .find(|role| role.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown role {s:?}: api, chat, ingest or worker"))
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
