//! The HTTP client for calls to addresses users gave us (webhook callbacks, push
//! services). Users choose these URLs, so the client must not become a way into our
//! private network (SSRF): targets must be public, names are resolved to public
//! addresses only, redirects are followed only to public addresses (and at most 3),
//! and every call has a deadline. Tests and private deployments can allow private
//! targets explicitly.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect::Policy;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    #[error("not a valid absolute URL")]
    Invalid,
    #[error("must be an https:// URL")]
    NotHttps,
    #[error("must not point at a private, loopback or link-local address")]
    Private,
}

#[derive(Clone)]
pub struct Outbound {
    client: reqwest::Client,
    allow_private: bool,
}

impl Outbound {
    pub fn new(timeout: Duration, allow_private: bool) -> Self {
        let redirects = Policy::custom(move |attempt| {
            if attempt.previous().len() >= 3 {
                attempt.error("too many redirects")
            } else if !allow_private && literal_is_private(attempt.url()) {
                attempt.stop()
            } else {
                attempt.follow()
            }
        });
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(redirects)
            .user_agent(concat!("OnAir/", env!("CARGO_PKG_VERSION")));
        if !allow_private {
            builder = builder.dns_resolver(Arc::new(PublicOnly));
        }
        Self {
            client: builder.build().expect("the HTTP client builds"),
            allow_private,
        }
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Checks a URL a user wants us to call: https, and not obviously private (names
    /// are checked again when resolved, at every call).
    pub fn check_target(&self, url: &str) -> Result<Url, TargetError> {
        let url = Url::parse(url).map_err(|_| TargetError::Invalid)?;
        if url.host_str().is_none_or(str::is_empty) {
            return Err(TargetError::Invalid);
        }
        if self.allow_private {
            return match url.scheme() {
                "https" | "http" => Ok(url),
                _ => Err(TargetError::NotHttps),
            };
        }
        if url.scheme() != "https" {
            return Err(TargetError::NotHttps);
        }
        if literal_is_private(&url) {
            return Err(TargetError::Private);
        }
        Ok(url)
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

/// Whether the URL's host is a private address literal or a local name.
fn literal_is_private(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => is_private(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => is_private(IpAddr::V6(ip)),
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost") || name.ends_with(".internal")
        }
        None => true,
    }
}

fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => {
            let [a, b, ..] = ip.octets();
            ip.is_private()
                || ip.is_loopback()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_broadcast()
                || ip.is_documentation()
                || a == 0
                // Carrier-grade NAT (100.64.0.0/10).
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(ip) => {
            if let Some(v4) = ip.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let first = ip.segments()[0];
            ip.is_loopback()
                || ip.is_unspecified()
                // Unique local (fc00::/7) and link-local (fe80::/10).
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// Resolves names to their public addresses only: a name that resolves to a private
/// address (DNS rebinding included) cannot be reached.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let public: Vec<SocketAddr> = found.filter(|a| !is_private(a.ip())).collect();
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

    #[test]
    fn private_targets_are_refused_unless_allowed() {
        let strict = Outbound::new(Duration::from_secs(1), false);
        assert!(strict.check_target("https://hooks.example.com/x").is_ok());
        for (url, err) in [
            ("http://hooks.example.com/x", TargetError::NotHttps),
            ("ftp://hooks.example.com/x", TargetError::NotHttps),
            ("https://127.0.0.1/x", TargetError::Private),
            ("https://10.1.2.3/x", TargetError::Private),
            ("https://169.254.169.254/latest", TargetError::Private),
            ("https://100.64.0.1/", TargetError::Private),
            ("https://[::1]/", TargetError::Private),
            ("https://[fd00::1]/", TargetError::Private),
            ("https://[::ffff:192.168.0.1]/", TargetError::Private),
            ("https://localhost/", TargetError::Private),
            ("https://db.internal/", TargetError::Private),
            ("not a url", TargetError::Invalid),
        ] {
            assert_eq!(strict.check_target(url), Err(err), "{url}");
        }
        let open = Outbound::new(Duration::from_secs(1), true);
        assert!(open.check_target("http://127.0.0.1:9000/hook").is_ok());
        assert_eq!(
            open.check_target("ftp://127.0.0.1/"),
            Err(TargetError::NotHttps)
        );
    }
}
