//! How a browser authenticates the live feed without a credential in the URL, which proxies'
//! access logs keep: a page cannot set headers on a WebSocket, but it can offer subprotocols,
//! and those travel in the `Sec-WebSocket-Protocol` header. The page offers [`PROTOCOL`] and
//! [`bearer`] of its session; the server selects [`PROTOCOL`] alone, so the credential is never
//! echoed. (Kubernetes' API server takes bearer tokens from browsers the same way.)

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The live feed's subprotocol: the server selects it whenever a client offers it.
pub const PROTOCOL: &str = "telemetry.v1";
/// What precedes the credential, base64url without padding, in the other offered subprotocol.
pub const BEARER_PREFIX: &str = "base64url.bearer.telemetry.";
/// The close code of a live socket whose session expired or ended (policy violation): the
/// client must log in again rather than reconnect.
pub const CLOSE_SESSION_ENDED: u16 = 1008;

/// The subprotocol that carries `credential`; base64url keeps any token within the characters
/// a subprotocol may hold.
pub fn bearer(credential: &str) -> String {
    format!("{BEARER_PREFIX}{}", URL_SAFE_NO_PAD.encode(credential))
}

/// The credential an offered subprotocol carries; `None` for any other subprotocol, or one
/// whose credential does not decode.
pub fn credential(offered: &str) -> Option<String> {
    let encoded = offered.trim().strip_prefix(BEARER_PREFIX)?;
    String::from_utf8(URL_SAFE_NO_PAD.decode(encoded).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_round_trips_in_subprotocol_characters() {
        for token in ["s2.r.0.1800000000.ab12.ff", "a token, with: spaces/and+more=", "ä"] {
            let offered = bearer(token);
            assert!(
                offered.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
                "{offered}"
            );
            assert_eq!(credential(&offered).as_deref(), Some(token));
        }
        assert_eq!(credential(PROTOCOL), None);
        assert_eq!(credential("base64url.bearer.telemetry.!!"), None);
    }
}
