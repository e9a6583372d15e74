//! The HTTP client for calls to addresses users gave us (webhook callbacks, push
//! services). Users choose these URLs, so the client must not become a way into our
//! private network (SSRF): targets must be https on an allowed port (443 by default),
//! every address a name resolves to is checked at each connection (so DNS rebinding
//! cannot slip between check and connect), redirects are followed only to targets that
//! pass the same checks (and at most 3), proxy settings in the environment are ignored,
//! and every call has a deadline. Tests and private deployments can allow private
//! targets explicitly.
//!
//! Each destination host has a circuit breaker: a host that keeps failing (no answer in
//! time, or 502/503/504/429) is not called for a cool-down, so its deliveries fail fast
//! and go back to the job queue's backoff instead of holding workers for the whole
//! deadline. One breaker per host, so one user's broken endpoint cuts off only its host.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use onair_infra::{BreakerOpen, Breakers};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect::Policy;
use reqwest::{StatusCode, Url};

use super::global_ip::is_global;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    #[error("not a valid absolute URL")]
    Invalid,
    #[error("must be an https:// URL")]
    NotHttps,
    #[error("must use an allowed port")]
    Port,
    #[error("must not point at a private, loopback or link-local address")]
    Private,
}

/// A call that did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum CallFailure {
    /// The host's breaker is open: nothing was sent.
    #[error(transparent)]
    Open(#[from] BreakerOpen),
    /// Sent, but no answer: [`describe_failure`]'s text, without the URL.
    #[error("{0}")]
    Unreachable(String),
}

#[derive(Clone)]
pub struct Outbound {
    client: reqwest::Client,
    rules: Arc<Rules>,
    breakers: Breakers,
}

/// What a target must satisfy.
struct Rules {
    allow_private: bool,
    /// Ports allowed; empty allows any.
    ports: Vec<u16>,
}

impl Outbound {
    pub fn new(
        timeout: Duration,
        allow_private: bool,
        ports: Vec<u16>,
        breakers: Breakers,
    ) -> Self {
        let rules = Arc::new(Rules {
            allow_private,
            ports,
        });
        let policy_rules = rules.clone();
        let redirects = Policy::custom(move |attempt| {
            if attempt.previous().len() >= 3 {
                attempt.error("too many redirects")
            } else if let Err(e) = policy_rules.check(attempt.url()) {
                attempt.error(format!("redirect refused: {e}"))
            } else {
                attempt.follow()
            }
        });
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(redirects)
            .no_proxy()
            .user_agent(concat!("OnAir/", env!("CARGO_PKG_VERSION")));
        if !allow_private {
            builder = builder.dns_resolver(Arc::new(PublicOnly));
        }
        Self {
            client: builder.build().expect("the HTTP client builds"),
            rules,
            breakers,
        }
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends a request built on [`Outbound::client`] through its host's breaker: refused
    /// at once while the breaker is open; no answer, or an answer that the host is
    /// unwell, counts against the host. Any other answer, an error status included, is
    /// the endpoint's business (one user's endpoint on a shared host).
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, CallFailure> {
        let (_, request) = request.build_split();
        let request = request.map_err(|e| CallFailure::Unreachable(describe_failure("", e)))?;
        let url = request.url().clone();
        let permit = self.breakers.get(&host_of(&url)).try_call()?;
        match crate::telemetry::execute(&self.client, request).await {
            Ok(response) => {
                if host_unwell(response.status()) {
                    permit.failure();
                } else {
                    permit.success();
                }
                Ok(response)
            }
            Err(error) => {
                // A redirect our rules refused says nothing about the host's health.
                if !error.is_redirect() {
                    permit.failure();
                }
                Err(CallFailure::Unreachable(describe_failure(
                    url.as_str(),
                    error,
                )))
            }
        }
    }

    /// Checks a URL a user wants us to call: https on an allowed port, and not a private
    /// address literal (names are checked again when resolved, at every call).
    pub fn check_target(&self, url: &str) -> Result<Url, TargetError> {
        let url = Url::parse(url).map_err(|_| TargetError::Invalid)?;
        self.rules.check(&url)?;
        Ok(url)
    }
}

impl Rules {
    fn check(&self, url: &Url) -> Result<(), TargetError> {
        if url.host_str().is_none_or(str::is_empty) {
            return Err(TargetError::Invalid);
        }
        match url.scheme() {
            "https" => {}
            "http" if self.allow_private => {}
            _ => return Err(TargetError::NotHttps),
        }
        let port = url.port_or_known_default().ok_or(TargetError::Invalid)?;
        if !self.ports.is_empty() && !self.ports.contains(&port) {
            return Err(TargetError::Port);
        }
        if !self.allow_private && literal_is_private(url) {
            return Err(TargetError::Private);
        }
        Ok(())
    }
}

/// A failed call to a user's URL, fit for logs and stored job errors: reqwest's message
/// and causes without the URL, whose path and query carry secrets (push endpoints,
/// webhook callbacks); the host, which does not, says where it went.
pub fn describe_failure(url: &str, error: reqwest::Error) -> String {
    let host = Url::parse(url)
        .ok()
        .and_then(|url| url.host_str().map(str::to_owned))
        .unwrap_or_else(|| "?".into());
    let error = error.without_url();
    let mut text = format!("{host}: {error}");
    let mut cause = std::error::Error::source(&error);
    while let Some(source) = cause {
        text.push_str(&format!(": {source}"));
        cause = source.source();
    }
    text
}

/// The breaker's key and label: the host, with its port unless the scheme's default.
fn host_of(url: &Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// Answers that speak for the host rather than one endpoint: a gateway that cannot reach
/// it, overload, or rate limiting.
fn host_unwell(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
            | StatusCode::TOO_MANY_REQUESTS
    )
}

/// Whether the URL's host is a private address literal or a local name.
fn literal_is_private(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => !is_global(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => !is_global(IpAddr::V6(ip)),
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost") || name.ends_with(".internal")
        }
        None => true,
    }
}

/// Resolves names to their public addresses only: a name that resolves to a private
/// address (DNS rebinding included) cannot be reached.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let public: Vec<SocketAddr> = found.filter(|a| is_global(a.ip())).collect();
            if public.is_empty() {
                return Err(format!("{} has no public address", name.as_str()).into());
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breakers() -> Breakers {
        Breakers::new("test", onair_infra::BreakerSettings::default(), 10)
    }

    fn strict() -> Outbound {
        Outbound::new(Duration::from_secs(2), false, vec![443], breakers())
    }

    #[test]
    fn targets_must_be_public_https_on_an_allowed_port() {
        let strict = strict();
        for url in [
            "https://hooks.example.com/x",
            "https://hooks.example.com:443/x",
            "https://8.8.8.8/x",
            "https://[2001:4860:4860::8888]/x",
        ] {
            assert!(strict.check_target(url).is_ok(), "{url}");
        }
        for (url, err) in [
            ("http://hooks.example.com/x", TargetError::NotHttps),
            ("ftp://hooks.example.com/x", TargetError::NotHttps),
            ("https://hooks.example.com:8443/x", TargetError::Port),
            ("https://hooks.example.com:80/x", TargetError::Port),
            ("https://127.0.0.1/x", TargetError::Private),
            ("https://10.1.2.3/x", TargetError::Private),
            ("https://169.254.169.254/latest", TargetError::Private),
            ("https://100.64.0.1/", TargetError::Private),
            ("https://[::1]/", TargetError::Private),
            ("https://[fd00::1]/", TargetError::Private),
            ("https://[::ffff:192.168.0.1]/", TargetError::Private),
            ("https://[64:ff9b::7f00:1]/", TargetError::Private),
            ("https://[2002:7f00:1::]/", TargetError::Private),
            ("https://localhost/", TargetError::Private),
            ("https://db.internal/", TargetError::Private),
            ("not a url", TargetError::Invalid),
        ] {
            assert_eq!(strict.check_target(url), Err(err), "{url}");
        }
        let ports = Outbound::new(Duration::from_secs(1), false, vec![443, 8443], breakers());
        assert!(
            ports
                .check_target("https://hooks.example.com:8443/")
                .is_ok()
        );
        let open = Outbound::new(Duration::from_secs(1), true, Vec::new(), breakers());
        assert!(open.check_target("http://127.0.0.1:9000/hook").is_ok());
        assert_eq!(
            open.check_target("ftp://127.0.0.1/"),
            Err(TargetError::NotHttps)
        );
    }

    /// Answers every request with a redirect to `location`.
    async fn redirecting_to(location: &'static str) -> SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = [0; 4096];
                let _ = socket.read(&mut buf).await;
                let answer = format!(
                    "HTTP/1.1 302 Found\r\nLocation: {location}\r\n\
                     Content-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn redirects_are_checked_like_targets() {
        // The first hop is a loopback literal, which only registration would refuse:
        // the redirect it answers is what is under test.
        for location in [
            "http://hooks.example.com/x",
            "https://hooks.example.com:8443/x",
            "https://127.0.0.1/x",
            "https://[64:ff9b::a00:1]/x",
        ] {
            let addr = redirecting_to(location).await;
            let error = strict()
                .client()
                .get(format!("http://{addr}/"))
                .send()
                .await
                .expect_err(location);
            assert!(error.is_redirect(), "{location}: {error:?}");
        }
    }
}
