//! `X-Signature` = lowercase hex of HMAC-SHA256(secret, ts + "." + raw body bytes).

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Why [`verify`] refused a signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Not 64 lowercase hex characters, so no MAC at all.
    #[error("signature is not 64 lowercase hex characters")]
    Malformed,
    /// Well-formed, but no secret gives it for this timestamp and body.
    #[error("signature does not match the body")]
    Mismatch,
}

fn mac(secret: &[u8], ts: &str, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The signature an agent puts in `X-Signature` for this timestamp and body.
pub fn sign(secret: &[u8], ts: &str, body: &[u8]) -> String {
    hex::encode(mac(secret, ts, body).finalize().into_bytes())
}

/// Checks `signature` against each secret (several during a key rotation) in constant time.
///
/// Returns the raw 32 signature bytes on success, which the replay guard keys on.
pub fn verify<S: AsRef<[u8]>>(
    secrets: &[S],
    ts: &str,
    body: &[u8],
    signature: &str,
) -> Result<[u8; 32], SignatureError> {
    let raw = decode_signature(signature)?;
    for secret in secrets {
        if mac(secret.as_ref(), ts, body).verify_slice(&raw).is_ok() {
            return Ok(raw);
        }
    }
    Err(SignatureError::Mismatch)
}

fn decode_signature(signature: &str) -> Result<[u8; 32], SignatureError> {
    // Upper-case hex is refused so that one MAC has exactly one spelling for the replay guard.
    if signature.len() != 64 || !signature.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(SignatureError::Malformed);
    }
    let mut raw = [0u8; 32];
    hex::decode_to_slice(signature, &mut raw).map_err(|_| SignatureError::Malformed)?;
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Vector {
        secret: String,
        ts: String,
        body: String,
        signature: String,
    }

    fn vectors() -> Vec<Vector> {
        serde_json::from_str(include_str!("../testdata/signing_vectors.json")).unwrap()
    }

    #[test]
    fn matches_the_published_vectors() {
        for v in vectors() {
            assert_eq!(sign(v.secret.as_bytes(), &v.ts, v.body.as_bytes()), v.signature);
            assert!(verify(&[v.secret.as_bytes()], &v.ts, v.body.as_bytes(), &v.signature).is_ok());
        }
    }

    #[test]
    fn any_of_several_secrets_verifies() {
        let sig = sign(b"new", "1", b"{}");
        assert!(verify(&["old", "new"], "1", b"{}", &sig).is_ok());
        assert_eq!(verify(&["old"], "1", b"{}", &sig), Err(SignatureError::Mismatch));
    }

    #[test]
    fn malformed_signatures_are_told_apart_from_wrong_ones() {
        let sig = sign(b"s", "1", b"{}");
        assert_eq!(verify(&["s"], "1", b"{}", &sig.to_uppercase()), Err(SignatureError::Malformed));
        assert_eq!(verify(&["s"], "1", b"{}", &sig[..63]), Err(SignatureError::Malformed));
        assert_eq!(verify(&["s"], "1", b"{}", "zz"), Err(SignatureError::Malformed));
    }

    proptest! {
        #[test]
        fn any_change_to_ts_or_body_breaks_the_signature(
            secret in proptest::collection::vec(any::<u8>(), 0..80),
            ts in "[0-9]{1,12}",
            body in proptest::collection::vec(any::<u8>(), 0..512),
            flip in any::<proptest::sample::Index>(),
        ) {
            let sig = sign(&secret, &ts, &body);
            prop_assert_eq!(sig.len(), 64);
            prop_assert!(verify(&[&secret], &ts, &body, &sig).is_ok());
            let mut tampered = body.clone();
            if tampered.is_empty() { tampered.push(b' ') } else {
                let i = flip.index(tampered.len());
                tampered[i] ^= 1;
            }
            prop_assert_eq!(verify(&[&secret], &ts, &tampered, &sig), Err(SignatureError::Mismatch));
            let other_ts = format!("{ts}0");
            prop_assert_eq!(verify(&[&secret], &other_ts, &body, &sig), Err(SignatureError::Mismatch));
        }

        #[test]
        fn verify_never_panics(sig in ".{0,80}", ts in ".{0,20}", body in ".{0,64}") {
            let _ = verify(&["k"], &ts, body.as_bytes(), &sig);
        }
    }
}
