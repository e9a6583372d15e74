//! Throwaway databases for tests (feature `testing`): a fresh SQLite file, and a fresh
//! PostgreSQL database when `ONAIR_TEST_POSTGRES_URL` points at a server, dropped after
//! the test whether it passed or not.

use std::future::Future;
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::DbConfig;

/// Which backends to run a test against: SQLite always, PostgreSQL when configured.
pub fn backends() -> Vec<&'static str> {
    let mut names = vec!["sqlite"];
    if postgres_url().is_some() {
        names.push("postgres");
    }
    names
}

fn postgres_url() -> Option<String> {
    std::env::var("ONAIR_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// Small pools: tests run in parallel and PostgreSQL allows 100 connections in all.
fn test_config(url: String) -> DbConfig {
    DbConfig {
        url,
        max_connections: 3,
        min_connections: 0,
        acquire_timeout: Duration::from_secs(10),
        ..DbConfig::default()
    }
}

/// Runs `test` once per backend, each time with a new empty database, and removes the
/// database afterwards. A panic in `test` is re-raised after the clean-up.
pub async fn with_each_backend<F, Fut>(test: F)
where
    F: Fn(&'static str, DbConfig) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    for backend in backends() {
        with_backend(backend, &test).await;
    }
}

pub async fn with_backend<F, Fut>(backend: &'static str, test: F)
where
    F: Fn(&'static str, DbConfig) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let outcome = match backend {
        "sqlite" => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}", dir.path().join("test.db").display());
            tokio::spawn(test(backend, test_config(url))).await
        }
        _ => {
            let admin_url = postgres_url().expect("ONAIR_TEST_POSTGRES_URL");
            let name = format!("onair_test_{}", uuid::Uuid::new_v4().simple());
            let mut admin = PgConnection::connect(&admin_url)
                .await
                .expect("connect to test server");
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut admin)
                .await
                .expect("create test database");
            let outcome =
                tokio::spawn(test(backend, test_config(database_url(&admin_url, &name)))).await;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut admin)
            .await
            .expect("drop test database");
            outcome
        }
    };
    if let Err(err) = outcome {
        std::panic::resume_unwind(err.into_panic());
    }
}

/// The admin URL with its database name replaced.
fn database_url(admin_url: &str, database: &str) -> String {
    let (base, query) = admin_url
        .split_once('?')
        .map_or((admin_url, None), |(b, q)| (b, Some(q)));
    let server = match base.rfind('/') {
        Some(i) if base[..i].ends_with('/') => base, // postgres://host with no path
        Some(i) => &base[..i],
        None => base,
    };
    let mut url = format!("{}/{database}", server.trim_end_matches('/'));
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_url_replaces_the_name() {
        use super::database_url;
        assert_eq!(
            database_url("postgres://root@127.0.0.1:5432/postgres", "x"),
            "postgres://root@127.0.0.1:5432/x"
        );
        assert_eq!(
            database_url("postgres://127.0.0.1", "x"),
            "postgres://127.0.0.1/x"
        );
        assert_eq!(
            database_url("postgres://h/db?sslmode=disable", "x"),
            "postgres://h/x?sslmode=disable"
        );
    }
}
