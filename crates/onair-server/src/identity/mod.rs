//! Who is calling: short-lived access tokens (HS256 JWTs verified without a database
//! round-trip) and the extractors that read them. At the bottom of the crate: every
//! domain's handlers use it, and it knows no domain.

mod extract;
mod tokens;

pub use extract::{AuthUser, ExpiringAuthUser, MaybeAuthUser};
pub use tokens::AccessTokens;
