//! Access tokens: HS256 JWTs, short-lived, verified without a database round-trip.

use std::time::Duration;

use chrono::Utc;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ApiError;
use crate::secrets::derive_key;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: Uuid,
    iat: i64,
    exp: i64,
}

pub struct AccessTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub ttl: Duration,
}

impl AccessTokens {
    pub fn new(root_secret: &[u8], ttl: Duration) -> Self {
        let key = derive_key(root_secret, "onair/access-token");
        // Only HS256 is accepted: `alg: none` and tokens for other algorithms fail.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(&key),
            decoding: DecodingKey::from_secret(&key),
            validation,
            ttl,
        }
    }

    pub fn issue(&self, user_id: Uuid) -> String {
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: user_id,
            iat: now,
            exp: now + i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX / 2),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    pub fn verify(&self, token: &str) -> Result<Uuid, ApiError> {
        self.verify_expiring(token).map(|(user, _)| user)
    }

    /// The token's user and how long the token has left (zero within the leeway): a
    /// connection opened with it ends then, unless a fresher token extends it.
    pub fn verify_expiring(&self, token: &str) -> Result<(Uuid, Duration), ApiError> {
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation) {
            Ok(data) => {
                let left = data.claims.exp.saturating_sub(Utc::now().timestamp());
                let left = Duration::from_secs(u64::try_from(left).unwrap_or(0));
                Ok((data.claims.sub, left))
            }
            Err(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => {
                Err(ApiError::TokenExpired)
            }
            Err(_) => Err(ApiError::InvalidToken),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_foreign_keys() {
        let tokens =
            AccessTokens::new(b"0123456789abcdef0123456789abcdef", Duration::from_secs(60));
        let user = Uuid::now_v7();
        assert_eq!(tokens.verify(&tokens.issue(user)).unwrap(), user);
        let other = AccessTokens::new(
            b"another secret of thirty-two bytes!",
            Duration::from_secs(60),
        );
        assert!(matches!(
            other.verify(&tokens.issue(user)),
            Err(ApiError::InvalidToken)
        ));
    }

    #[test]
    fn expired_tokens_are_told_apart() {
        let tokens =
            AccessTokens::new(b"0123456789abcdef0123456789abcdef", Duration::from_secs(60));
        let claims = Claims {
            sub: Uuid::now_v7(),
            iat: 0,
            exp: Utc::now().timestamp() - 60,
        };
        let expired =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &tokens.encoding)
                .unwrap();
        assert!(matches!(
            tokens.verify(&expired),
            Err(ApiError::TokenExpired)
        ));
    }
}
