//! Audit events, all on the `mcp_auth::audit` tracing target.
//!
//! Fields hold rule names, status codes, subjects and tool names: never a
//! token, a session id or a header value.

pub(crate) const TARGET: &str = "mcp_auth::audit";

pub(crate) fn auth_failed(rule: &'static str, status: u16) {
    tracing::warn!(target: TARGET, event = "auth_failed", rule, status, "request refused");
}

pub(crate) fn scope_denied(subject: &str, tool: Option<&str>, missing: &str) {
    tracing::warn!(
        target: TARGET,
        event = "insufficient_scope",
        subject,
        tool = tool.unwrap_or("-"),
        missing,
        "request refused: insufficient scope"
    );
}

pub(crate) fn rate_limited(subject: &str, tool: Option<&str>, by: &'static str, retry_after: u64) {
    tracing::warn!(
        target: TARGET,
        event = "rate_limited",
        subject,
        tool = tool.unwrap_or("-"),
        by,
        retry_after,
        "request refused: rate limit"
    );
}

pub(crate) fn session_refused(subject: &str, rule: &'static str, session: &str) {
    tracing::warn!(
        target: TARGET,
        event = "session_refused",
        subject,
        rule,
        session,
        "MCP session refused"
    );
}

pub(crate) fn session_event(event: &'static str, subject: &str, session: &str) {
    tracing::info!(target: TARGET, event, subject, session, "MCP session");
}

pub(crate) fn verification_limited(client: &str, retry_after: u64) {
    tracing::warn!(
        target: TARGET,
        event = "verification_limited",
        client,
        retry_after,
        "request refused: too many token verifications from this client"
    );
}
