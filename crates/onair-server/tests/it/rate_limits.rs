//! API rate limits (review M1): the default quotas per anonymous address and per user,
//! their own classes for logins (per address and per account), heartbeats and
//! registrations, the headers of the IETF draft, client addresses from trusted proxies
//! only, limits shared by two nodes through Redis, and a lost Redis failing open or closed.

use std::time::Instant;

use onair_server::Config;
use onair_store::DbConfig;
use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{TestApp, assert_error, header, redis_url, send};

onair_store::backend_tests!(onair_store::testing::with_backend =>
    anonymous_addresses_get_20_a_minute_and_users_100,
    classes_have_quotas_of_their_own,
    outside_the_api_nothing_is_limited,
    disabled_limits_never_refuse,
    logins_are_limited_per_account_from_any_address,
    forwarded_addresses_count_only_from_trusted_proxies,
    #[redis] two_nodes_share_the_limits_through_redis,
    #[redis] a_lost_redis_fails_open_or_closed_as_configured,
);

fn limited(config: &mut Config) {
    config.rate_limit.enabled = true;
}

/// A 429 of `policy`: the error code, `Retry-After` within one refill of `interval_secs`,
/// and the draft's headers saying the same.
#[track_caller]
fn assert_refused(
    (status, headers, body): &(StatusCode, HeaderMap, Value),
    policy: &str,
    quota: u32,
) {
    assert_error(&(*status, body.clone()), 429, "rate_limited");
    let interval = 60_u64.div_ceil(u64::from(quota));
    let retry: u64 = header(headers, "retry-after").parse().unwrap();
    assert!((1..=interval).contains(&retry), "{headers:?}");
    assert_eq!(
        header(headers, "ratelimit-policy"),
        format!("\"{policy}\";q={quota};w=60")
    );
    assert_eq!(
        header(headers, "ratelimit"),
        format!("\"{policy}\";r=0;t={retry}")
    );
}

/// Sends `request()` until refused, and asserts the refusal: after `quota` answers plus
/// what refilled meanwhile (one every 60 / `quota` s: a busy machine is slow), each
/// telling its policy, the first also what is left and when the quota is whole again.
async fn exhaust(
    mut request: impl FnMut() -> RequestBuilder,
    policy: &str,
    quota: u32,
) -> (StatusCode, HeaderMap, Value) {
    let started = Instant::now();
    let mut answered = 0;
    loop {
        let answer = send(request()).await;
        if answer.0 == StatusCode::TOO_MANY_REQUESTS {
            let refilled = (started.elapsed().as_secs_f64() * f64::from(quota) / 60.0).ceil();
            assert!(
                answered >= quota && f64::from(answered) <= f64::from(quota) + refilled,
                "refused after {answered} of {quota}"
            );
            assert_refused(&answer, policy, quota);
            return answer;
        }
        let (status, headers, body) = &answer;
        assert!(status.is_success(), "answer {answered}: {body}");
        assert_eq!(
            header(headers, "ratelimit-policy"),
            format!("\"{policy}\";q={quota};w=60")
        );
        if answered == 0 {
            let whole_in = 60_u32.div_ceil(quota);
            assert_eq!(
                header(headers, "ratelimit"),
                format!("\"{policy}\";r={};t={whole_in}", quota - 1)
            );
        }
        answered += 1;
        assert!(answered <= 2 * quota, "never refused");
    }
}

async fn anonymous_addresses_get_20_a_minute_and_users_100(db: DbConfig) {
    // The defaults: the review's numbers.
    let app = TestApp::spawn_configured(db, limited).await;
    let list = || app.client.get(app.url("/api/streams"));
    exhaust(list, "anonymous", 20).await;

    // Signing up is a class of its own; then the user has a quota of its own.
    let user = app.signup("quota_user").await;
    let me = || {
        app.client
            .get(app.url("/api/users/me"))
            .bearer_auth(&user.access)
    };
    exhaust(me, "user", 100).await;
    // A bad token is anonymous until the handler refuses it, so it cannot dodge a limit.
    let forged = app
        .client
        .get(app.url("/api/users/me"))
        .bearer_auth("forged");
    assert_refused(&send(forged).await, "anonymous", 20);

    let (_, metrics) = app.get("/metrics").await;
    let metrics = metrics.as_str().unwrap().to_owned();
    for class in ["anonymous", "user"] {
        assert!(
            metrics.contains(&format!("onair_rate_limited_total{{class=\"{class}\"}}")),
            "{metrics}"
        );
    }
}

async fn classes_have_quotas_of_their_own(db: DbConfig) {
    let app = TestApp::spawn_configured(db, |config| {
        limited(config);
        config.rate_limit.heartbeat_per_minute = 2.try_into().unwrap();
        config.rate_limit.registration_per_minute = 1.try_into().unwrap();
    })
    .await;
    let heartbeat = || {
        app.client
            .post(app.url(&format!("/api/streams/{}/heartbeat", Uuid::now_v7())))
            .json(&json!({"viewer_token": "forged"}))
    };
    for _ in 0..2 {
        let (status, _, body) = send(heartbeat()).await;
        assert_ne!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    }
    assert_refused(&send(heartbeat()).await, "heartbeat", 2);
    // Heartbeats took nothing from the general quota.
    let (_, headers, _) = send(app.client.get(app.url("/api/streams"))).await;
    assert!(header(&headers, "ratelimit").starts_with("\"anonymous\";r=19;"));

    let user = app.signup("registrar").await;
    let register = || {
        app.client
            .post(app.url("/api/webhooks"))
            .bearer_auth(&user.access)
            .json(&json!({"url": "not a url"}))
    };
    let (status, headers, body) = send(register()).await;
    assert_ne!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(
        header(&headers, "ratelimit-policy"),
        "\"registration\";q=1;w=60"
    );
    assert_refused(&send(register()).await, "registration", 1);
}

async fn outside_the_api_nothing_is_limited(db: DbConfig) {
    let app = TestApp::spawn_configured(db, |config| {
        limited(config);
        config.rate_limit.anonymous_per_minute = 1.try_into().unwrap();
    })
    .await;
    let (status, _, _) = send(app.client.get(app.url("/api/streams"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_refused(
        &send(app.client.get(app.url("/api/streams"))).await,
        "anonymous",
        1,
    );
    let media = format!("/live/{}/index.m3u8", Uuid::now_v7());
    let vod = format!("/vod/{}/index.m3u8", Uuid::now_v7());
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/",
        "/api/openapi.json",
        "/api/docs/",
        media.as_str(),
        vod.as_str(),
    ] {
        for _ in 0..5 {
            let (status, headers, _) = send(app.client.get(app.url(path))).await;
            assert_ne!(status, StatusCode::TOO_MANY_REQUESTS, "{path}");
            assert!(headers.get("ratelimit").is_none(), "{path}: {headers:?}");
        }
    }
    for _ in 0..5 {
        let hook = app.client.post(app.url("/api/hooks/media/publish"));
        let (status, headers, _) = send(hook).await;
        assert_ne!(status, StatusCode::TOO_MANY_REQUESTS);
        assert!(headers.get("ratelimit").is_none(), "{headers:?}");
    }
}

async fn disabled_limits_never_refuse(db: DbConfig) {
    let app = TestApp::spawn_configured(db, |config| {
        config.rate_limit.enabled = false;
        config.rate_limit.anonymous_per_minute = 1.try_into().unwrap();
    })
    .await;
    for _ in 0..30 {
        let (status, headers, _) = send(app.client.get(app.url("/api/streams"))).await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers.get("ratelimit").is_none());
    }
}

async fn login(
    app: &TestApp,
    forwarded_for: &str,
    login: &str,
    password: &str,
) -> (StatusCode, HeaderMap, Value) {
    let request = app
        .client
        .post(app.url("/api/auth/login"))
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({"login": login, "password": password}));
    send(request).await
}

async fn logins_are_limited_per_account_from_any_address(db: DbConfig) {
    let app = TestApp::spawn_configured(db, |config| {
        limited(config);
        config.http.trusted_proxies = vec!["127.0.0.1/32".into()];
        config.rate_limit.auth_account_per_minute = 3.try_into().unwrap();
    })
    .await;
    app.signup("victim").await;
    app.signup("bystander").await;
    // A guesser spread over addresses: each address is fresh, the account is not.
    for (n, login_as) in ["victim", "VICTIM ", "victim@example.com"]
        .iter()
        .enumerate()
    {
        let (status, _, body) = login(&app, &format!("203.0.113.{n}"), login_as, "guess").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    let refused = login(&app, "198.51.100.7", "Victim", "correct horse battery").await;
    assert_refused(&refused, "auth_account", 3);
    // Other accounts are untouched.
    let (status, _, body) = login(&app, "198.51.100.7", "bystander", "correct horse battery").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn forwarded_addresses_count_only_from_trusted_proxies(db: DbConfig) {
    let quota = |config: &mut Config| {
        limited(config);
        config.rate_limit.auth_ip_per_minute = 2.try_into().unwrap();
    };
    let behind_proxy = TestApp::spawn_configured(db.clone(), |config| {
        quota(config);
        config.http.trusted_proxies = vec!["10.0.0.0/8".into(), "127.0.0.1".into()];
    })
    .await;
    for _ in 0..2 {
        let (status, _, _) = login(&behind_proxy, "192.0.2.1, 10.1.1.1", "nobody", "x").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_refused(
        &login(&behind_proxy, "192.0.2.1, 10.1.1.1", "nobody", "x").await,
        "auth_ip",
        2,
    );
    // The address the proxy saw counts, not what the client prepended.
    assert_refused(
        &login(&behind_proxy, "192.0.2.99, 192.0.2.1", "nobody", "x").await,
        "auth_ip",
        2,
    );
    let (status, _, _) = login(&behind_proxy, "192.0.2.2", "nobody", "x").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "another client, its own quota"
    );

    // Without trusted proxies the header is anyone's to write: the peer counts.
    let direct = TestApp::spawn_configured(db, quota).await;
    for n in 0..2 {
        let (status, _, _) = login(&direct, &format!("192.0.2.{n}"), "nobody", "x").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_refused(
        &login(&direct, "192.0.2.50", "nobody", "x").await,
        "auth_ip",
        2,
    );
}

/// Redis shared with every other test: buckets under a prefix of this test's own.
fn on_redis(prefix: &str) -> impl Fn(&mut Config) {
    let prefix = prefix.to_owned();
    move |config| {
        limited(config);
        config.redis.url = Some(redis_url());
        config.rate_limit.key_prefix.clone_from(&prefix);
    }
}

async fn two_nodes_share_the_limits_through_redis(db: DbConfig) {
    let prefix = format!("onair-test-{}:rl:", Uuid::new_v4().simple());
    let node_a = TestApp::spawn_configured(db, on_redis(&prefix)).await;
    let node_b = TestApp::spawn_configured(node_a.db.clone(), on_redis(&prefix)).await;
    let user = node_a.signup("everywhere").await;
    let me = |node: &TestApp| {
        node.client
            .get(node.url("/api/users/me"))
            .bearer_auth(&user.access)
    };
    // Half on each node: together, one quota.
    let mut n = 0;
    let alternate = || {
        n += 1;
        me(if n % 2 == 0 { &node_a } else { &node_b })
    };
    exhaust(alternate, "user", 100).await;
    assert_refused(&send(me(&node_a)).await, "user", 100);
}

async fn a_lost_redis_fails_open_or_closed_as_configured(db: DbConfig) {
    // A Redis of its own, stopped mid-test (never the shared one).
    let mut redis = onair_infra::testing::RedisServer::start().await;
    let node = |fail_open: bool| {
        let url = redis.url().to_owned();
        move |config: &mut Config| {
            limited(config);
            config.redis.url = Some(url);
            config.rate_limit.fail_open = fail_open;
        }
    };
    let open = TestApp::spawn_configured(db, node(true)).await;
    let closed = TestApp::spawn_configured(open.db.clone(), node(false)).await;
    // A path that needs nothing of Redis but the limiter.
    let path = format!("/api/users/{}", Uuid::now_v7());
    for app in [&open, &closed] {
        let (status, headers, _) = send(app.client.get(app.url(&path))).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(headers.get("ratelimit").is_some(), "{headers:?}");
    }

    redis.stop().await;
    let errors = || async {
        let (_, metrics) = open.get("/metrics").await;
        metrics
            .as_str()
            .unwrap()
            .lines()
            .find_map(|line| line.strip_prefix("onair_rate_limit_backend_errors_total "))
            .map_or(0.0, |n| n.parse::<f64>().unwrap())
    };
    let before = errors().await;
    // Fail open: served, uncounted, and the failure is counted.
    let (status, headers, body) = send(open.client.get(open.url(&path))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(headers.get("ratelimit").is_none(), "{headers:?}");
    assert!(errors().await > before);
    // Fail closed: 503, Redis' unavailability rather than the client's excess.
    let (status, headers, body) = send(closed.client.get(closed.url(&path))).await;
    assert_error(&(status, body), 503, "service_unavailable");
    assert!(headers.get("retry-after").is_some());
}
