//! The storage contract: every case runs on SQLite (`<module>::sqlite::<case>`) and on
//! PostgreSQL (`<module>::postgres::<case>`), each time on a fresh migrated database (see
//! `onair_store::backend_tests!`). The PostgreSQL cases are ignored, and counted so in
//! the closing line, unless ONAIR_TEST_POSTGRES_URL was set. `plans` is a
//! PostgreSQL-only query-plan check at scale.

mod support;

mod admin;
mod archives;
mod clips;
mod follows;
mod health;
mod jobs;
mod notifications;
mod plans;
mod sessions;
mod streams;
mod users;
