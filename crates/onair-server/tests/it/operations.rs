use reqwest::StatusCode;

use crate::support::{assert_error, each_backend};

#[tokio::test]
async fn health_readiness_metrics_and_request_ids() {
    each_backend(|app| async move {
        let response = app.client.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers().contains_key("x-request-id"));
        assert_eq!(
            app.client
                .get(app.url("/readyz"))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );

        app.get("/api/streams").await;
        let metrics = app
            .client
            .get(app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains("http_request_duration_seconds_bucket"),
            "{metrics}"
        );
        assert!(metrics.contains("route=\"/api/streams\""), "{metrics}");
        assert!(metrics.contains("db_pool_connections"), "{metrics}");

        assert_error(&app.get("/api/no-such-thing").await, 404, "route_not_found");
        let wrong_method = app
            .client
            .delete(app.url("/api/streams"))
            .send()
            .await
            .unwrap();
        assert_error(
            &crate::support::read(wrong_method).await,
            405,
            "method_not_allowed",
        );
    })
    .await;
}

#[tokio::test]
async fn openapi_lists_every_endpoint() {
    each_backend(|app| async move {
        let (status, doc) = app.get("/api/openapi.json").await;
        assert_eq!(status, StatusCode::OK);
        let paths = doc["paths"].as_object().unwrap();
        for (path, method) in [
            ("/api/auth/signup", "post"),
            ("/api/auth/login", "post"),
            ("/api/auth/refresh", "post"),
            ("/api/auth/logout", "post"),
            ("/api/users/me", "get"),
            ("/api/users/me", "patch"),
            ("/api/users/{id}", "get"),
            ("/api/users/{id}/follow", "post"),
            ("/api/users/{id}/follow", "delete"),
            ("/api/users/{id}/followers", "get"),
            ("/api/users/{id}/following", "get"),
            ("/api/users/{id}/streams", "get"),
            ("/api/users/{id}/archives", "get"),
            ("/api/me/stream-key", "get"),
            ("/api/me/stream-key/rotate", "post"),
            ("/api/streams", "get"),
            ("/api/streams/start", "post"),
            ("/api/streams/end", "post"),
            ("/api/streams/{id}", "get"),
            ("/api/streams/{id}", "patch"),
            ("/api/archives", "get"),
            ("/api/archives/{id}", "get"),
            ("/healthz", "get"),
            ("/readyz", "get"),
            ("/metrics", "get"),
        ] {
            assert!(
                paths.get(path).and_then(|p| p.get(method)).is_some(),
                "{method} {path} missing"
            );
        }
        assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    })
    .await;
}

#[tokio::test]
async fn shutdown_is_graceful() {
    each_backend(|app| async move {
        app.signup("leaver").await;
        app.shutdown().await;
    })
    .await;
}
