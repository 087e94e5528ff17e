//! The HTTP client rollcall calls out with (the Google Directory API and its token endpoint,
//! webhook receivers): rustls with the ring provider, as for LDAP, and the system's CA
//! certificates.

use std::time::Duration;

/// A client whose every request gives up after `timeout` (connecting included). No
/// redirects are followed: an API or receiver that redirects is misconfigured, and following
/// one would send credentials or signed bodies somewhere not configured.
pub fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("rollcall/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot set up an HTTP client: {e}"))
}
