//! Long-lived connections (chat sockets, live feeds) held per client address, capped so
//! that one client cannot take all of a node's slots. A client is keyed like the rate
//! limits key it: an IPv4 address or an IPv6 /64.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::client_ip::client_key;
use crate::error::ApiError;

/// The client address of an `/api` request, as the rate-limit middleware resolved it
/// (trusted proxies' forwarding headers included).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts.extensions.get::<Self>().copied().ok_or_else(|| {
            tracing::error!("ClientIp used outside the rate-limit middleware");
            ApiError::Internal
        })
    }
}

/// How many connections each client holds, up to `max`.
pub struct PerClient {
    max: usize,
    held: Mutex<HashMap<String, usize>>,
}

/// One connection of a client; dropping it (the connection ended) gives the slot back.
#[derive(Debug)]
pub struct ClientSlot {
    owner: Arc<PerClient>,
    key: String,
}

impl std::fmt::Debug for PerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerClient").field("max", &self.max).finish()
    }
}

impl PerClient {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            held: Mutex::default(),
        })
    }

    /// A slot for one more connection of `client`; `too_many_connections` (503, like the
    /// node's own cap) when it already holds `max`.
    pub fn acquire(self: &Arc<Self>, client: IpAddr) -> Result<ClientSlot, ApiError> {
        let key = client_key(client);
        let mut held = self.held.lock().expect("per-client lock");
        let count = held.entry(key.clone()).or_default();
        if *count >= self.max {
            metrics::counter!("onair_per_client_connections_refused_total").increment(1);
            return Err(ApiError::TooManyConnections);
        }
        *count += 1;
        Ok(ClientSlot {
            owner: Arc::clone(self),
            key,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut held = self.owner.held.lock().expect("per-client lock");
        if let Some(count) = held.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_holds_at_most_max_and_gets_slots_back() {
        let caps = PerClient::new(2);
        let client: IpAddr = [192, 0, 2, 1].into();
        let first = caps.acquire(client).unwrap();
        let second = caps.acquire(client).unwrap();
        assert!(matches!(
            caps.acquire(client),
            Err(ApiError::TooManyConnections)
        ));
        // Another client is not affected; a /64 is one client.
        caps.acquire([192, 0, 2, 2].into()).unwrap();
        let v6 = caps.acquire("2001:db8::1".parse().unwrap()).unwrap();
        let same_network = caps.acquire("2001:db8::2".parse().unwrap()).unwrap();
        assert!(caps.acquire("2001:db8::3".parse().unwrap()).is_err());
        drop((first, v6));
        caps.acquire(client).unwrap();
        caps.acquire("2001:db8::3".parse().unwrap()).unwrap();
        drop((second, same_network));
        assert!(caps.held.lock().unwrap().is_empty());
    }
}
