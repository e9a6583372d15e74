//! Throwaway databases for tests (feature `testing`): a fresh SQLite file, or a fresh
//! database on the PostgreSQL server at `ONAIR_TEST_POSTGRES_URL`, dropped after the test
//! whether it passed or not; `backend_tests!`, which declares a test once per backend;
//! and a streaming replica of the PostgreSQL server ([`StreamingReplica`]).

mod replica;

use std::future::Future;
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::DbConfig;

pub use replica::StreamingReplica;

/// The database a backend test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestBackend {
    /// A new SQLite file in a temporary directory.
    Sqlite,
    /// A new database on the server at `ONAIR_TEST_POSTGRES_URL`.
    Postgres,
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

/// Runs `test` with a new empty database on `backend`, and removes the database
/// afterwards. A panic in `test` is re-raised after the clean-up.
pub async fn with_backend<F, Fut>(backend: TestBackend, test: F)
where
    F: FnOnce(DbConfig) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let outcome = match backend {
        TestBackend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}", dir.path().join("test.db").display());
            tokio::spawn(test(test_config(url))).await
        }
        TestBackend::Postgres => {
            // Tests built without the variable are ignored (see `backend_tests!`).
            let admin_url = std::env::var("ONAIR_TEST_POSTGRES_URL")
                .expect("ONAIR_TEST_POSTGRES_URL must be set to run this test");
            with_postgres(&admin_url, |config| tokio::spawn(test(config))).await
        }
    };
    if let Err(err) = outcome {
        std::panic::resume_unwind(err.into_panic());
    }
}

/// Declares each listed test once per backend: `sqlite::name` and `postgres::name`, each
/// calling `run(TestBackend::…, name)` (`with_backend`, or a wrapper of it whose test
/// takes what the crate's tests need). The PostgreSQL one is `#[ignore]`d unless
/// `ONAIR_TEST_POSTGRES_URL` was set when it was built, so a run without the server says
/// "N ignored" instead of passing tests that did not run; `#[redis]` before a name does
/// the same for `ONAIR_TEST_REDIS_URL` on both backends, `#[s3]` for
/// `ONAIR_TEST_MOTO_SERVER` (an S3-compatible server the test starts). The cfgs come from
/// `scripts/test-backends.rs`, the build script of every crate with such tests.
///
/// ```ignore
/// onair_store::backend_tests!(crate::support::on_store => follow_is_counted, #[redis] spans_nodes);
/// ```
#[macro_export]
macro_rules! backend_tests {
    ($run:path => $($(#[$needs:ident])? $name:ident),+ $(,)?) => {
        mod sqlite {
            $($crate::backend_tests!(@test $run, Sqlite [$($needs)?] $name);)+
        }
        mod postgres {
            $($crate::backend_tests!(@test $run, Postgres [$($needs)?] $name);)+
        }
    };
    (@test $run:path, Sqlite [] $name:ident) => {
        $crate::backend_tests!(@emit $run, Sqlite $name);
    };
    (@test $run:path, Sqlite [redis] $name:ident) => {
        $crate::backend_tests!(@emit $run, Sqlite $name
            #[cfg_attr(not(onair_test_redis), ignore = "set ONAIR_TEST_REDIS_URL")]);
    };
    (@test $run:path, Postgres [] $name:ident) => {
        $crate::backend_tests!(@emit $run, Postgres $name
            #[cfg_attr(not(onair_test_postgres), ignore = "set ONAIR_TEST_POSTGRES_URL")]);
    };
    (@test $run:path, Postgres [redis] $name:ident) => {
        $crate::backend_tests!(@emit $run, Postgres $name
            #[cfg_attr(
                not(all(onair_test_postgres, onair_test_redis)),
                ignore = "set ONAIR_TEST_POSTGRES_URL and ONAIR_TEST_REDIS_URL"
            )]);
    };
    (@test $run:path, Sqlite [s3] $name:ident) => {
        $crate::backend_tests!(@emit $run, Sqlite $name
            #[cfg_attr(not(onair_test_s3), ignore = "set ONAIR_TEST_MOTO_SERVER")]);
    };
    (@test $run:path, Postgres [s3] $name:ident) => {
        $crate::backend_tests!(@emit $run, Postgres $name
            #[cfg_attr(
                not(all(onair_test_postgres, onair_test_s3)),
                ignore = "set ONAIR_TEST_POSTGRES_URL and ONAIR_TEST_MOTO_SERVER"
            )]);
    };
    (@emit $run:path, $backend:ident $name:ident $(#[$ignore:meta])?) => {
        #[tokio::test]
        $(#[$ignore])?
        async fn $name() {
            $run($crate::testing::TestBackend::$backend, super::$name).await;
        }
    };
}

/// Creates a new database on the server at `admin_url`, runs `body` with it, and drops
/// it (even if `body` panicked inside a task it spawned).
pub async fn with_postgres<F, Fut, T>(admin_url: &str, body: F) -> T
where
    F: FnOnce(DbConfig) -> Fut,
    Fut: Future<Output = T>,
{
    let name = format!("onair_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(admin_url)
        .await
        .expect("connect to PostgreSQL");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create database");
    let outcome = body(test_config(database_url(admin_url, &name))).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .expect("drop database");
    outcome
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

/// The hot list queries exactly as the store sends them, for query-plan checks:
/// `(name, sql)`; each takes `$1` filter value, `$2`/`$3` keyset, `$4` limit.
pub fn hot_queries() -> [(&'static str, String); 4] {
    use crate::follows::{FOLLOWERS, FOLLOWING, follow_page};
    use crate::streams::{LIVE_LIST_FILTER, stream_page, streams_by_viewers};
    [
        ("live streams", stream_page(LIVE_LIST_FILTER)),
        ("live streams by viewers", streams_by_viewers()),
        ("followers", follow_page(FOLLOWERS)),
        ("following", follow_page(FOLLOWING)),
    ]
}

/// Seeds a PostgreSQL database at review scale: 100 k users (`md5(i)::uuid` for user i),
/// ten follows per user plus one creator (`md5('0')::uuid`) followed by everyone
/// (~1.1 M follows), 50 000 ended and 500 live streams; then ANALYZE. Used by the
/// query-plan test and the benchmark.
pub const SCALE_SEED: &str = r#"
INSERT INTO users (id, username, email, password_hash, created_at, updated_at)
SELECT md5(i::text)::uuid, 'user' || i, 'user' || i || '@example.com', 'x',
       now() - (i || ' seconds')::interval, now()
FROM generate_series(0, 99999) AS i;

-- Ten follows per user, to ten different users.
INSERT INTO follows (follower_id, following_id, created_at)
SELECT md5(f::text)::uuid, md5(((f + 1 + k * (k + 1) * 37) % 100000)::text)::uuid,
       now() - ((f * 10 + k) || ' milliseconds')::interval
FROM generate_series(0, 99999) AS f, generate_series(0, 9) AS k;

-- One popular creator followed by everyone.
INSERT INTO follows (follower_id, following_id, created_at)
SELECT md5(f::text)::uuid, md5('0')::uuid, now() - (f || ' milliseconds')::interval
FROM generate_series(1, 99999) AS f
ON CONFLICT DO NOTHING;

-- 50 000 past broadcasts and 500 live ones.
INSERT INTO streams (id, user_id, title, status, started_at, ended_at, updated_at)
SELECT gen_random_uuid(), md5((i % 100000)::text)::uuid, 'past ' || i, 'ended',
       now() - (i || ' minutes')::interval, now() - (i || ' minutes')::interval + interval '1 hour', now()
FROM generate_series(1, 50000) AS i;
INSERT INTO streams (id, user_id, title, status, started_at, updated_at, viewer_count)
SELECT gen_random_uuid(), md5(i::text)::uuid, 'live ' || i, 'live', now() - (i || ' seconds')::interval, now(),
       (i * 7919) % 5000
FROM generate_series(1, 500) AS i;

ANALYZE;
"#;

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
