//! A credential that never prints.

use std::fmt;

/// `Debug` shows a placeholder, and there is no `Display`, so a secret cannot reach a log line
/// by accident; `expose` makes each real use visible in review.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential; from here on it prints as `Secret(***)`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The real value, where it must be compared or sent.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(***)");
    }
}
