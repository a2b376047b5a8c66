//! How long a response may be cached, from its `Cache-Control` header: one
//! reading for every cached fetch (JWKS, discovery, client metadata
//! documents).

use std::time::Duration;

/// `max-age` from a `Cache-Control` value; `no-cache` and `no-store` mean
/// zero; `None` when the value says nothing about it (the caller's default
/// applies). Directive names are case-insensitive; a quoted number is
/// accepted.
///
/// ```
/// use std::time::Duration;
/// use mcp_auth_http::cache_max_age;
/// assert_eq!(cache_max_age("public, max-age=300"), Some(Duration::from_secs(300)));
/// assert_eq!(cache_max_age("no-store"), Some(Duration::ZERO));
/// assert_eq!(cache_max_age("public"), None);
/// ```
pub fn cache_max_age(value: &str) -> Option<Duration> {
    let mut max_age = None;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-cache" || lower == "no-store" {
            return Some(Duration::ZERO);
        }
        if let Some(secs) = lower.strip_prefix("max-age=") {
            max_age = secs
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    max_age
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_parsing() {
        assert_eq!(
            cache_max_age("public, max-age=3600"),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            cache_max_age("max-age=60, must-revalidate"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(cache_max_age("Max-Age=\"5\""), Some(Duration::from_secs(5)));
        assert_eq!(cache_max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(cache_max_age("private, No-Cache"), Some(Duration::ZERO));
        assert_eq!(cache_max_age("public"), None);
        assert_eq!(cache_max_age("max-age=abc"), None);
        assert_eq!(cache_max_age("max-age=-1"), None);
    }
}
