//! The OnAir HTTP server: one module per domain (auth, users and follows, streams,
//! archives), each with its routes, DTOs and rules; shared error model, pagination and
//! observability.

mod app;
mod archives;
mod auth;
mod chat;
pub mod config;
mod error;
pub mod jobs;
mod media;
mod notifications;
mod observability;
mod pagination;
mod serve;
mod state;
mod streams;
mod users;
mod viewers;

pub use app::{Application, StartupError, router, run_worker, shutdown_signal};
pub use config::{Config, ConfigError};
pub use pagination::Cursors;
pub use state::AppState;
pub use streams::StreamKeys;
