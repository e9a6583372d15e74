//! The OnAir HTTP server. Layered with no import cycle: at the bottom, what every domain
//! shares (`error`, `secrets`, `identity`, `pagination`, `dto`, `jobs`, `observability`,
//! `openapi`, `rate_limit`, `read_your_writes`, `roles`, `http_cache`, `serve`, `shutdown`); above
//! it one module per domain (`accounts`, `users`, `streams`, `archives`, `viewers`,
//! `media`, `chat`, `notifications`, `payments`, and `admin` above `streams`), each with its routes, its DTOs and a
//! service type that owns its logic, and the web UI's pages (`web`); on top, `routes`
//! (the state and the router), `config` and `app`, which assemble them. Handlers take
//! only the service they need (axum `FromRef` sub-states), and each service only the
//! storage traits it uses.

mod accounts;
mod admin;
mod app;
mod archives;
mod avatars;
mod caches;
mod chat;
mod clips;
pub mod config;
mod dto;
mod error;
mod http_cache;
mod identity;
pub mod jobs;
mod media;
mod notifications;
mod observability;
mod openapi;
mod pagination;
mod payments;
mod processing;
mod rate_limit;
mod read_your_writes;
mod roles;
mod routes;
mod secrets;
mod serve;
mod settings;
mod shutdown;
mod streams;
pub mod telemetry;
mod users;
mod viewers;
mod web;

pub use admin::{Admin, AdminCreated, AuditEntryDto, DeadJobDto};
pub use app::{Application, StartupError, run_worker, shutdown_signal};
pub use config::{Config, ConfigError};
pub use error::ApiError;
pub use observability::database_events;
pub use pagination::Cursors;
pub use roles::Role;
pub use streams::StreamKeys;
pub use web::{ASSETS as UI_ASSETS, PAGES as UI_PAGES};
