//! Access tokens (HS256 JWTs, short-lived, verified without a database round-trip) and
//! refresh tokens (random, opaque, stored only as SHA-256, rotated on every use).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use hmac::{Hmac, KeyInit, Mac};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::ApiError;

/// 256 random bits, base64url: refresh tokens and generated secrets.
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// How refresh tokens are stored and looked up: a fast hash is enough for 256-bit
/// random values (nothing to brute-force), and it makes the lookup an index hit.
pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A subkey of the root secret for one purpose, so no two uses share key material.
pub fn derive_key(root: &[u8], purpose: &str) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(root).expect("HMAC takes any key length");
    mac.update(purpose.as_bytes());
    mac.finalize().into_bytes().into()
}

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
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation) {
            Ok(data) => Ok(data.claims.sub),
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

    #[test]
    fn derived_keys_differ_by_purpose() {
        assert_ne!(derive_key(b"root", "a"), derive_key(b"root", "b"));
    }
}
