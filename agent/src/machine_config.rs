//! Settings an installer left for the whole machine: on Windows the string values under
//! `HKLM\SOFTWARE\telemetry-agent` (the MSI writes `API_URL`, `API_TOKEN`, `HMAC_SECRET`,
//! `AGENT_ID`, `CA_CERT` and the rest there from its properties), named like the environment
//! variables. A service has
//! no environment of its own to carry them, and the MSI cannot write a config file. Elsewhere
//! there are none.

use std::collections::HashMap;

/// The key under `HKEY_LOCAL_MACHINE`.
pub const KEY: &str = r"SOFTWARE\telemetry-agent";

/// Every non-empty string value of [`KEY`]; none when the key is missing or unreadable.
#[cfg(windows)]
pub(crate) fn machine_settings() -> HashMap<String, String> {
    use winreg::RegKey;
    use winreg::enums::{HKEY_LOCAL_MACHINE, KEY_READ};
    let Ok(key) = RegKey::predef(HKEY_LOCAL_MACHINE).open_subkey_with_flags(KEY, KEY_READ) else {
        return HashMap::new();
    };
    key.enum_values()
        .filter_map(Result::ok)
        .filter_map(|(name, value)| {
            let text: String = winreg::types::FromRegValue::from_reg_value(&value).ok()?;
            let text = text.trim_end_matches('\0').to_owned();
            (!text.is_empty()).then_some((name, text))
        })
        .collect()
}

/// Every value an installer left; none outside Windows.
#[cfg(not(windows))]
pub(crate) fn machine_settings() -> HashMap<String, String> {
    HashMap::new()
}
