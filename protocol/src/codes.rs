//! The `code` of every error body the API answers: stable strings clients branch on (the agent
//! decides retry or reject by them, the load tester and the simulator expect them), spelled
//! once here.

/// 401: `X-Api-Token` is missing or wrong, or the development token came from beyond loopback.
pub const BAD_TOKEN: &str = "bad_token";
/// 401: `X-Signature` is missing, malformed or does not match the body and timestamp.
pub const BAD_SIGNATURE: &str = "bad_signature";
/// 401: `X-Signature-Ts` is missing, not unix seconds, or more than `HMAC_DRIFT` from the
/// server clock.
pub const STALE_TIMESTAMP: &str = "stale_timestamp";
/// 401: the same signature was received within `HMAC_REPLAY_TTL`; sign every send anew.
pub const REPLAY: &str = "replay";
/// 422: the body or a query parameter breaks the API's rules; resending it cannot succeed.
pub const INVALID: &str = "invalid";
/// 413: the body is larger than `MAX_BODY_BYTES`.
pub const TOO_LARGE: &str = "too_large";
/// 429: the replay guard is full, or `/ws` already has `WS_MAX_CLIENTS`; retry later.
pub const BUSY: &str = "busy";
/// 404: no such route, or no agent of that id has reported.
pub const NOT_FOUND: &str = "not_found";
/// 503: the database cannot be reached or written just now; retry later.
pub const STORAGE_UNAVAILABLE: &str = "storage_unavailable";
/// 405: the route exists, but not for this method.
pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
/// 500: a bug in the backend; the cause is in its log.
pub const INTERNAL: &str = "internal";
/// 408: the body did not arrive within `BODY_TIMEOUT`.
pub const TIMEOUT: &str = "timeout";
/// 401: reads need a credential here (`READ_TOKEN`, `ADMIN_TOKEN` or a session from
/// `POST /api/session`) and the request had no valid one.
pub const LOGIN_REQUIRED: &str = "login_required";
/// 403: clearing needs `ADMIN_TOKEN`, and the credential sent is not it.
pub const FORBIDDEN: &str = "forbidden";
/// 403: `Host` does not name this machine while reads are open or the development
/// credentials are in use (see `ALLOWED_HOSTS`).
pub const HOST_NOT_ALLOWED: &str = "host_not_allowed";
/// 403: a page's `/ws` upgrade came from an `Origin` outside `CORS_ORIGINS`.
pub const ORIGIN_NOT_ALLOWED: &str = "origin_not_allowed";
/// 429: the client's address already holds its share of the connections
/// (`MAX_CONNECTIONS_PER_ADDRESS`).
pub const TOO_MANY_CONNECTIONS: &str = "too_many_connections";
/// 429: too many wrong credentials came from this client address within a minute
/// (`LOGIN_MAX_FAILURES`); wait the `Retry-After` seconds.
pub const LOGIN_THROTTLED: &str = "login_throttled";
