//! The key cache against a real HTTP issuer on loopback (axum): discovery,
//! rotation, single-flight refetch, outages, garbage, slowness, size caps,
//! redirects, Cache-Control, background refresh. Freshness is driven by a
//! manual clock; only fetch timeouts use real time.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{ISSUER_PATH_AUDIENCE as AUD, Mode, NOW, TestIssuer, TestKey, jwks};
use mcp_auth_core::ManualClock;
use mcp_auth_http::{HttpClient, OutboundClient};
use mcp_auth_jwks::{
    CacheState, FetchError, JwksCache, Policy, ValidationError as E, Validator, default_client,
};
use serde_json::{Value, json};

fn long_lived(issuer: &str) -> Value {
    json!({"iss": issuer, "aud": AUD, "sub": "u", "exp": NOW + 30 * 86_400, "iat": NOW})
}

struct Env {
    issuer: TestIssuer,
    clock: ManualClock,
    cache: JwksCache,
    validator: Validator,
}

async fn env(keys: &[&TestKey], fetcher: Option<Arc<dyn HttpClient>>) -> Env {
    let issuer = TestIssuer::start(jwks(keys)).await;
    let clock = ManualClock::at_unix(NOW);
    let fetcher = fetcher.unwrap_or_else(|| default_client().expect("client"));
    let cache = JwksCache::builder(format!("{}/jwks", issuer.base))
        .http(fetcher)
        .clock(Arc::new(clock.clone()))
        .build()
        .expect("cache");
    let validator = Validator::new(Policy::new(issuer.base.clone(), AUD), cache.clone())
        .clock(Arc::new(clock.clone()));
    Env {
        issuer,
        clock,
        cache,
        validator,
    }
}

impl Env {
    fn token(&self, key: &TestKey) -> String {
        key.token(&long_lived(&self.issuer.base))
    }
    fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }
}

#[tokio::test]
async fn discovery_checks_the_issuer_exactly_and_falls_back_to_rfc8414() {
    let key = TestKey::es256("k1");
    let issuer = TestIssuer::start(jwks(&[&key])).await;
    let fetcher: Arc<dyn HttpClient> = default_client().expect("client");
    let clock = ManualClock::at_unix(NOW);

    let v = Validator::from_issuer_with(Policy::new(issuer.base.clone(), AUD), fetcher.clone())
        .await
        .expect("discovery")
        .clock(Arc::new(clock.clone()));
    assert!(
        v.validate(&key.token(&long_lived(&issuer.base)))
            .await
            .is_ok()
    );
    assert_eq!(
        v.cache().expect("remote").jwks_uri(),
        format!("{}/jwks", issuer.base)
    );

    *issuer.state.oidc_discovery.lock().expect("lock") = false;
    Validator::from_issuer_with(Policy::new(issuer.base.clone(), AUD), fetcher.clone())
        .await
        .expect("RFC 8414 fallback");

    for served in [
        format!("{}/", issuer.base),
        issuer.base.to_uppercase(),
        "https://evil.example".into(),
    ] {
        *issuer.state.issuer.lock().expect("lock") = served.clone();
        let err =
            Validator::from_issuer_with(Policy::new(issuer.base.clone(), AUD), fetcher.clone())
                .await
                .expect_err("issuer mismatch");
        assert!(
            matches!(err, FetchError::IssuerMismatch { .. }),
            "{served}: {err}"
        );
    }
}

#[tokio::test]
async fn rotation_new_key_after_one_refetch_removed_key_after_refresh() {
    let a = TestKey::es256("a");
    let b = TestKey::es256("b");
    let e = env(&[&a], None).await;
    assert!(e.validator.validate(&e.token(&a)).await.is_ok());
    assert_eq!(e.issuer.state.fetches(), 1);

    // The issuer publishes b; the first token signed with b (past the
    // refetch cooldown) triggers one refetch.
    e.issuer.state.set_jwks(jwks(&[&a, &b]));
    e.advance(61);
    assert!(e.validator.validate(&e.token(&b)).await.is_ok());
    assert_eq!(e.issuer.state.fetches(), 2, "exactly one refetch");
    assert!(e.validator.validate(&e.token(&b)).await.is_ok());
    assert_eq!(e.issuer.state.fetches(), 2, "then served from cache");

    // a is withdrawn: still accepted until the cache refreshes, refused after.
    e.issuer.state.set_jwks(jwks(&[&b]));
    assert!(e.validator.validate(&e.token(&a)).await.is_ok());
    e.advance(3601);
    e.cache.refresh_if_due().await;
    assert_eq!(
        e.validator.validate(&e.token(&a)).await.err(),
        Some(E::UnknownKey)
    );
    assert!(e.validator.validate(&e.token(&b)).await.is_ok());
}

#[tokio::test]
async fn unknown_kid_refetch_has_a_cooldown() {
    let a = TestKey::es256("a");
    let late = TestKey::es256("late");
    let e = env(&[&a], None).await;
    let first = e.validator.validate(&e.token(&late)).await.err();
    assert_eq!(first, Some(E::UnknownKey));
    assert_eq!(
        e.issuer.state.fetches(),
        1,
        "the set was just fetched: no refetch"
    );
    e.issuer.state.set_jwks(jwks(&[&a, &late]));
    e.advance(30);
    let within = e.validator.validate(&e.token(&late)).await.err();
    assert_eq!(within, Some(E::UnknownKey), "within the cooldown");
    assert_eq!(e.issuer.state.fetches(), 1);
    e.advance(31);
    let after = e.validator.validate(&e.token(&late)).await;
    assert!(after.is_ok(), "after the cooldown");
    assert_eq!(e.issuer.state.fetches(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_unknown_kids_cause_one_fetch() {
    let a = TestKey::es256("a");
    let e = env(&[&a], None).await;
    e.cache.refresh().await.expect("prime");
    assert_eq!(e.issuer.state.fetches(), 1);
    e.advance(61);
    e.issuer
        .state
        .set_mode(Mode::Slow(Duration::from_millis(200)));
    let unknown = TestKey::es256("unknown").token(&long_lived(&e.issuer.base));
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let v = e.validator.clone();
            let t = unknown.clone();
            tokio::spawn(async move { v.validate(&t).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.expect("join").err(), Some(E::UnknownKey));
    }
    assert_eq!(e.issuer.state.fetches(), 2, "1,000 requests, one refetch");
}

#[tokio::test]
async fn a_flood_of_random_kids_causes_no_fetch_storm() {
    let a = TestKey::es256("a");
    let attacker = TestKey::es256("attacker");
    let e = env(&[&a], None).await;
    e.cache.refresh().await.expect("prime");
    e.advance(61);
    for i in 0..2_000 {
        let token = attacker.token_with_header(
            json!({"kid": format!("random-{i}")}),
            &long_lived(&e.issuer.base),
        );
        assert_eq!(
            e.validator.validate(&token).await.err(),
            Some(E::UnknownKey)
        );
        if i % 500 == 0 {
            e.advance(1);
        }
    }
    assert!(
        e.issuer.state.fetches() <= 2,
        "{} fetches",
        e.issuer.state.fetches()
    );
    assert!(
        e.validator.validate(&e.token(&a)).await.is_ok(),
        "legitimate tokens still pass"
    );
}

#[tokio::test]
async fn outage_serves_the_last_good_set_until_max_staleness_then_recovers() {
    let a = TestKey::es256("a");
    let e = env(&[&a], None).await;
    *e.issuer.state.cache_control.lock().expect("lock") = Some("max-age=300".into());
    e.cache.refresh().await.expect("prime");
    assert_eq!(e.cache.state(), CacheState::Fresh);

    e.issuer.state.set_mode(Mode::Status(500));
    e.advance(301);
    assert_eq!(e.cache.state(), CacheState::Stale);
    assert!(
        e.validator.validate(&e.token(&a)).await.is_ok(),
        "stale keys keep serving"
    );
    e.cache
        .refresh()
        .await
        .expect("refresh fails but the stale set is still usable");
    assert_eq!(e.cache.state(), CacheState::Stale);

    e.advance(6 * 3600);
    assert_eq!(e.cache.state(), CacheState::Failed);
    let err = e
        .validator
        .validate(&e.token(&a))
        .await
        .expect_err("past max staleness");
    assert!(matches!(err, E::KeysUnavailable(_)), "{err}");

    e.issuer.state.set_mode(Mode::Serve);
    e.advance(11);
    assert!(
        e.validator.validate(&e.token(&a)).await.is_ok(),
        "recovers by itself"
    );
    assert_eq!(e.cache.state(), CacheState::Fresh);
}

#[tokio::test]
async fn bad_responses_never_replace_a_good_key_set() {
    let a = TestKey::es256("a");
    let e = env(&[&a], None).await;
    e.cache.refresh().await.expect("prime");
    for mode in [Mode::Garbage, Mode::Huge, Mode::Redirect, Mode::Status(404)] {
        e.issuer.state.set_mode(mode.clone());
        e.advance(3601);
        let before = e.issuer.state.fetches();
        e.cache.refresh().await.expect("stale set still usable");
        assert_eq!(e.issuer.state.fetches(), before + 1, "{mode:?} was fetched");
        assert!(
            e.validator.validate(&e.token(&a)).await.is_ok(),
            "{mode:?} replaced the key set"
        );
        e.issuer.state.set_mode(Mode::Serve);
        e.advance(11);
        e.cache.refresh().await.expect("good again");
    }
    for body in [
        r#"{"keys":[]}"#,
        r#"{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}"#,
        "[]",
    ] {
        e.issuer.state.set_jwks(body.into());
        e.advance(3601);
        e.cache.refresh().await.expect("stale set still usable");
        assert!(
            e.validator.validate(&e.token(&a)).await.is_ok(),
            "{body} replaced the key set"
        );
        e.advance(11);
    }
}

#[tokio::test]
async fn start_up_without_keys_fails_clearly_then_recovers() {
    let a = TestKey::es256("a");
    let e = env(&[&a], None).await;
    e.issuer.state.set_mode(Mode::Status(503));
    let err = e
        .validator
        .validate(&e.token(&a))
        .await
        .expect_err("no keys yet");
    assert!(
        matches!(
            &err,
            E::KeysUnavailable(Some(FetchError::Status { status: 503, .. }))
        ),
        "{err}"
    );
    assert_eq!(e.cache.state(), CacheState::Empty);
    assert!(e.validator.validate(&e.token(&a)).await.is_err());
    assert_eq!(
        e.issuer.state.fetches(),
        1,
        "failure backoff: no fetch per request"
    );
    e.issuer.state.set_mode(Mode::Serve);
    e.advance(11);
    assert!(e.validator.validate(&e.token(&a)).await.is_ok());
}

#[tokio::test]
async fn a_slow_endpoint_times_out() {
    let a = TestKey::es256("a");
    let fetcher: Arc<dyn HttpClient> = Arc::new(
        OutboundClient::builder()
            .timeout(Duration::from_millis(300))
            .max_response(64 * 1024)
            .build()
            .expect("client"),
    );
    let e = env(&[&a], Some(fetcher)).await;
    e.issuer.state.set_mode(Mode::Slow(Duration::from_secs(3)));
    let started = std::time::Instant::now();
    let err = e
        .validator
        .validate(&e.token(&a))
        .await
        .expect_err("timeout");
    assert!(
        matches!(&err, E::KeysUnavailable(Some(FetchError::Timeout { .. }))),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn cache_control_max_age_is_honoured_within_bounds() {
    let a = TestKey::es256("a");
    let e = env(&[&a], None).await;
    for (header, fresh_for) in [
        ("max-age=120", 120),
        ("max-age=5", 60),
        ("public, max-age=999999", 86_400),
        ("no-store", 60),
    ] {
        *e.issuer.state.cache_control.lock().expect("lock") = Some(header.into());
        e.advance(90_000);
        e.cache.refresh().await.expect("refresh");
        e.advance(fresh_for - 1);
        assert_eq!(e.cache.state(), CacheState::Fresh, "{header}");
        e.advance(2);
        assert_eq!(e.cache.state(), CacheState::Stale, "{header}");
    }
}

#[tokio::test]
async fn the_background_task_refreshes_before_expiry() {
    let a = TestKey::es256("a");
    let e = env(&[&a], None).await;
    *e.issuer.state.cache_control.lock().expect("lock") = Some("max-age=600".into());
    e.cache.refresh().await.expect("prime");
    let task = e.cache.spawn_background_refresh(Duration::from_millis(20));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(e.issuer.state.fetches(), 1, "not due yet");
    e.advance(320); // within refresh_ahead (5 min) of expiry
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while e.issuer.state.fetches() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(e.issuer.state.fetches(), 2, "refreshed in the background");
    assert_eq!(e.cache.state(), CacheState::Fresh);
    task.abort();
}

#[tokio::test]
async fn only_https_or_loopback_urls() {
    let err = JwksCache::builder("http://example.com/jwks")
        .build()
        .expect_err("plain http");
    assert!(matches!(err, FetchError::InsecureUrl { .. }), "{err}");
    assert!(
        JwksCache::builder("https://example.com/jwks")
            .build()
            .is_ok()
    );
}
