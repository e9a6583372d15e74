use std::fmt;

/// Which uniqueness rule a write broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    Username,
    Email,
    /// The user already has a broadcast that is live (or waiting for its publisher).
    ActiveStream,
    /// The push endpoint is subscribed by another user.
    PushEndpoint,
    /// The account is suspended already.
    AlreadySuspended,
    /// The account is not suspended.
    NotSuspended,
    Other,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Username => "username is taken",
            Self::Email => "email is already registered",
            Self::ActiveStream => "a stream is already live",
            Self::PushEndpoint => "the push endpoint is registered by another account",
            Self::AlreadySuspended => "the account is suspended already",
            Self::NotSuspended => "the account is not suspended",
            Self::Other => "the row already exists",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A page cursor made by a list with another ordering (for example one sorted by
    /// viewers, given to a list sorted by time).
    #[error("the cursor belongs to a list with another ordering")]
    ForeignCursor,
    #[error("conflict: {0}")]
    Conflict(Conflict),
    /// The account is suspended: it may not log in, refresh or go live.
    #[error("the account is suspended")]
    Suspended,
    /// The database could not be reached in time (pool exhausted, statement timeout,
    /// connection refused): the request may succeed if retried.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// A job's lease ran out and another worker claimed it: this worker's write was
    /// refused and rolled back.
    #[error("the job's lease passed to another worker")]
    LeaseLost,
    #[error("invalid database configuration: {0}")]
    Config(String),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
}

/// PostgreSQL's code for `statement_timeout` cancellations.
const QUERY_CANCELED: &str = "57014";

/// PostgreSQL codes that say the server is going, starting, or full, not that the
/// request is wrong: `admin_shutdown`, `crash_shutdown`, `cannot_connect_now`,
/// `too_many_connections`; and the whole `connection_exception` class (08).
fn server_unavailable(code: &str) -> bool {
    code.starts_with("08") || ["57P01", "57P02", "57P03", "53300"].contains(&code)
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::RowNotFound => Self::NotFound,
            // A connection lost mid-query or refused on connect: the pool replaces it.
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => Self::Unavailable(err),
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                // PostgreSQL names the constraint; SQLite names the columns in the message.
                let what = db.constraint().unwrap_or(db.message()).to_owned();
                Self::Conflict(if what.contains("username") {
                    Conflict::Username
                } else if what.contains("email") {
                    Conflict::Email
                } else if what.contains("streams") && what.contains("user_id") {
                    Conflict::ActiveStream
                } else {
                    Conflict::Other
                })
            }
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => Self::NotFound,
            sqlx::Error::Database(db)
                if db
                    .code()
                    .is_some_and(|code| code == QUERY_CANCELED || server_unavailable(&code)) =>
            {
                Self::Unavailable(err)
            }
            _ => Self::Database(err),
        }
    }
}
