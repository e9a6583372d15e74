//! HTTP tests: each starts its own server on port 0, on SQLite (`<module>::sqlite::<test>`)
//! and on PostgreSQL (`<module>::postgres::<test>`), and checks good and bad paths (see
//! `onair_store::backend_tests!`). PostgreSQL tests are ignored unless
//! ONAIR_TEST_POSTGRES_URL was set, tests marked `#[redis]` unless ONAIR_TEST_REDIS_URL
//! was: libtest's closing line counts them as ignored.

mod support;

mod admin;
mod archives;
mod auth;
mod avatars;
mod breakers;
mod caches;
mod chat;
mod chat_limits;
mod contract;
mod degradation;
mod follows;
mod hooks;
mod http_cache;
mod low_latency;
mod media;
mod moderation;
mod notifications;
mod operations;
mod payments;
mod private_media;
mod rate_limits;
mod recordings;
mod replicas;
mod roles;
mod security;
mod srt;
mod streams;
mod stripe_stand_in;
mod telemetry;
mod users;
mod viewers;
mod web;
