//! HTTP tests: each starts its own server on port 0, once per backend (SQLite always,
//! PostgreSQL when ONAIR_TEST_POSTGRES_URL is set), and checks good and bad paths.

mod support;

mod archives;
mod auth;
mod chat;
mod follows;
mod hooks;
mod media;
mod notifications;
mod operations;
mod streams;
mod users;
mod viewers;
