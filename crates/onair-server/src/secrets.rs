//! Secrets derived from the root secret, and random tokens. At the bottom of the crate:
//! every domain that keys or signs something uses it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_keys_differ_by_purpose() {
        assert_ne!(derive_key(b"root", "a"), derive_key(b"root", "b"));
    }
}
