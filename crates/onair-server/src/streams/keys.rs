//! Stream keys. The key is never stored: the database keeps a random nonce and the key's
//! SHA-256. The key itself is `live_<user id>_<HMAC(server subkey, user id ‖ nonce)>`, so
//! the owner can be shown it again (it is re-derived), a database leak alone reveals no
//! key, rotation (a new nonce) kills the old one, and publish-time checks compare hashes
//! in constant time.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use onair_store::{StreamKeyRecord, Timestamp};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::secrets::derive_key;

const PREFIX: &str = "live_";

pub struct StreamKeys {
    derivation_key: [u8; 32],
}

impl StreamKeys {
    pub fn new(root_secret: &[u8]) -> Self {
        Self {
            derivation_key: derive_key(root_secret, "onair/stream-key"),
        }
    }

    /// New key material for `user_id` (a fresh nonce).
    pub fn generate(&self, user_id: Uuid) -> StreamKeyRecord {
        let nonce = rand::random::<[u8; 16]>().to_vec();
        let key = self.derive(user_id, &nonce);
        StreamKeyRecord {
            user_id,
            key_hash: Sha256::digest(key.as_bytes()).to_vec(),
            nonce,
            created_at: Timestamp::now(),
        }
    }

    /// The key as the owner pastes it into OBS.
    pub fn reveal(&self, record: &StreamKeyRecord) -> String {
        self.derive(record.user_id, &record.nonce)
    }

    /// Whose key this claims to be, read from its shape (not yet verified).
    pub fn claimed_user(presented: &str) -> Option<Uuid> {
        let rest = presented.strip_prefix(PREFIX)?;
        let (user, _) = rest.split_once('_')?;
        Uuid::try_parse(user).ok()
    }

    /// Whether `presented` is the current key of `record`, in constant time.
    pub fn verify(presented: &str, record: &StreamKeyRecord) -> bool {
        let hash = Sha256::digest(presented.as_bytes());
        hash.as_slice().ct_eq(&record.key_hash).into()
    }

    fn derive(&self, user_id: Uuid, nonce: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.derivation_key).expect("any key length");
        mac.update(user_id.as_bytes());
        mac.update(nonce);
        let tag = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{PREFIX}{}_{tag}", user_id.simple())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_verify_until_rotated() {
        let keys = StreamKeys::new(b"0123456789abcdef0123456789abcdef");
        let user = Uuid::now_v7();
        let record = keys.generate(user);
        let key = keys.reveal(&record);
        assert_eq!(keys.reveal(&record), key, "the same key is shown again");
        assert_eq!(StreamKeys::claimed_user(&key), Some(user));
        assert!(StreamKeys::verify(&key, &record));
        let rotated = keys.generate(user);
        assert!(!StreamKeys::verify(&key, &rotated));
        assert!(!StreamKeys::verify(&format!("{key}x"), &record));
        assert_eq!(StreamKeys::claimed_user("garbage"), None);
    }
}
