//! The storage contract: every case runs on SQLite and, when ONAIR_TEST_POSTGRES_URL is
//! set, on PostgreSQL, each time on a fresh migrated database (see `support::each_store`).
//! `plans` is the exception: a PostgreSQL-only query-plan check at scale.

mod support;

mod archives;
mod follows;
mod health;
mod jobs;
mod notifications;
mod plans;
mod sessions;
mod streams;
mod users;
