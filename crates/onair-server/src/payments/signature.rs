//! Stripe's webhook signatures, checked before the payload is parsed:
//! `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>…][,v0=…]`, where each `v1` is
//! HMAC-SHA256 keyed with the endpoint's secret over `<t>.<raw body>`. Several `v1`
//! appear while Stripe rolls the secret; any one matching ours will do. The timestamp
//! must be within the tolerance of our clock (a replayed old delivery is refused), and
//! signatures are compared in constant time.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no Stripe-Signature header with a timestamp and a v1 signature")]
    Missing,
    #[error("the Stripe-Signature timestamp is outside the tolerance")]
    Stale,
    #[error("no v1 signature matches the payload")]
    Mismatch,
}

/// Checks `header` against `payload`, signed with `secret`, at `now` (unix seconds).
pub fn verify(
    secret: &str,
    header: Option<&str>,
    payload: &[u8],
    now: i64,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v1)) => signatures.push(v1),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Missing)?;
    if signatures.is_empty() {
        return Err(SignatureError::Missing);
    }
    if now.abs_diff(timestamp) > tolerance.as_secs() {
        return Err(SignatureError::Stale);
    }
    let expected = sign(secret, timestamp, payload);
    let matched = signatures
        .iter()
        .fold(subtle::Choice::from(0), |any, candidate| {
            any | expected.as_bytes().ct_eq(candidate.as_bytes())
        });
    if bool::from(matched) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The hex `v1` signature of `payload` at `timestamp`, as Stripe computes it.
pub fn sign(secret: &str, timestamp: i64, payload: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test";
    const FIVE_MINUTES: Duration = Duration::from_secs(300);

    fn header(t: i64, signatures: &[&str]) -> String {
        let mut header = format!("t={t}");
        for v1 in signatures {
            header.push_str(&format!(",v1={v1}"));
        }
        header
    }

    #[test]
    fn accepts_any_matching_v1_within_the_tolerance() {
        let body = br#"{"id":"evt_1"}"#;
        let good = sign(SECRET, 1_000, body);
        let check = |h: &str, now| verify(SECRET, Some(h), body, now, FIVE_MINUTES);
        assert_eq!(check(&header(1_000, &[&good]), 1_000), Ok(()));
        let rolled = header(1_000, &[&sign("whsec_old", 1_000, body), &good]);
        assert_eq!(check(&format!("{rolled},v0=abc"), 1_299), Ok(()));
        assert_eq!(
            check(&header(1_000, &[&good]), 1_301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            check(&header(1_000, &[&good]), 699),
            Err(SignatureError::Stale)
        );
        // Signed at another time, or over another body.
        assert_eq!(
            check(&header(1_001, &[&good]), 1_001),
            Err(SignatureError::Mismatch)
        );
        let other = sign(SECRET, 1_000, b"{}");
        assert_eq!(
            check(&header(1_000, &[&other]), 1_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(check("t=1000", 1_000), Err(SignatureError::Missing));
        assert_eq!(
            check(&format!("v1={good}"), 1_000),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(SECRET, None, body, 1_000, FIVE_MINUTES),
            Err(SignatureError::Missing)
        );
    }
}
