//! The authorization server's counters, through the [`metrics`] facade
//! (recorded only when the application installs a recorder; mcp-auth-app
//! does on its admin listener). Labels are bounded: an event, an OAuth
//! error code, a fixed reason, a configured provider's name; never a user
//! id, a token, a client id or free text.
//!
//! | metric | labels |
//! |---|---|
//! | `mcp_auth_sign_ins_total` | `event`: `started` (an authorization request accepted), `completed` (a code issued), `refused`; `reason` (for `refused`: an OAuth error code such as `invalid_request` or `access_denied` (the person denied), or `unknown_client`, `unregistered_redirect_uri`, `csrf`, `another_browser`) |
//! | `mcp_auth_consents_total` | `decision`: `approved`, `denied` |
//! | `mcp_auth_token_grants_total` | `grant`: `authorization_code`, `refresh_token`; `outcome`: `issued`, `code_replayed`, `refresh_reused` |
//! | `mcp_auth_token_refusals_total` | `error`: the OAuth error code a token, revocation or registration request was refused with (`invalid_grant`, `invalid_client`, …) |
//! | `mcp_auth_upstream_refresh_total` | `provider`; `outcome`: `ok`, `reconnect_needed`, `unavailable` |
//! | `mcp_auth_rate_limited_total` | `tier`: `as_<endpoint>` (the server's per-address limits) |

pub(crate) const SIGN_INS: &str = "mcp_auth_sign_ins_total";
pub(crate) const CONSENTS: &str = "mcp_auth_consents_total";
pub(crate) const TOKEN_GRANTS: &str = "mcp_auth_token_grants_total";
pub(crate) const TOKEN_REFUSALS: &str = "mcp_auth_token_refusals_total";
pub(crate) const UPSTREAM_REFRESH: &str = "mcp_auth_upstream_refresh_total";

pub(crate) fn sign_in_started() {
    metrics::counter!(SIGN_INS, "event" => "started", "reason" => "").increment(1);
}

pub(crate) fn sign_in_completed() {
    metrics::counter!(SIGN_INS, "event" => "completed", "reason" => "").increment(1);
}

pub(crate) fn sign_in_refused(reason: &'static str) {
    metrics::counter!(SIGN_INS, "event" => "refused", "reason" => reason).increment(1);
}

pub(crate) fn consent(approved: bool) {
    let decision = if approved { "approved" } else { "denied" };
    metrics::counter!(CONSENTS, "decision" => decision).increment(1);
}

pub(crate) fn token_grant(grant: &'static str, outcome: &'static str) {
    metrics::counter!(TOKEN_GRANTS, "grant" => grant, "outcome" => outcome).increment(1);
}

pub(crate) fn token_refused(error: &'static str) {
    metrics::counter!(TOKEN_REFUSALS, "error" => error).increment(1);
}

pub(crate) fn upstream_refresh(provider: &str, outcome: &'static str) {
    metrics::counter!(UPSTREAM_REFRESH, "provider" => provider.to_owned(), "outcome" => outcome)
        .increment(1);
}

pub(crate) fn rate_limited(endpoint: &str) {
    metrics::counter!("mcp_auth_rate_limited_total", "tier" => format!("as_{endpoint}"))
        .increment(1);
}
