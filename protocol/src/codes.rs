//! The `code` of every error body the API answers: stable strings clients branch on (the agent
//! decides retry or reject by them, the load tester and the simulator expect them), spelled
//! once here.

pub const BAD_TOKEN: &str = "bad_token";
pub const BAD_SIGNATURE: &str = "bad_signature";
pub const STALE_TIMESTAMP: &str = "stale_timestamp";
pub const REPLAY: &str = "replay";
pub const INVALID: &str = "invalid";
pub const TOO_LARGE: &str = "too_large";
pub const BUSY: &str = "busy";
pub const NOT_FOUND: &str = "not_found";
pub const STORAGE_UNAVAILABLE: &str = "storage_unavailable";
pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
pub const INTERNAL: &str = "internal";
pub const TIMEOUT: &str = "timeout";
pub const LOGIN_REQUIRED: &str = "login_required";
pub const FORBIDDEN: &str = "forbidden";
pub const HOST_NOT_ALLOWED: &str = "host_not_allowed";
pub const ORIGIN_NOT_ALLOWED: &str = "origin_not_allowed";
