//! The storage contract: every case runs on SQLite and, when ONAIR_TEST_POSTGRES_URL is
//! set, on PostgreSQL, each time on a fresh database.

mod support;

mod archives;
mod follows;
mod plans;
mod sessions;
mod streams;
mod users;
