//! The audit log names users and session handles, never ids or data.
#![allow(clippy::unwrap_used)] // a panic is how a test fails

use mcp_auth_core::{ManualClock, UserId};
use mcp_auth_session::{MemorySessionStore, NewSession, SessionConfig, SessionManager};

use mcp_auth_testkit::CapturedLog;

#[tokio::test]
async fn audit_events_carry_no_session_id_or_data() {
    let (captured, _guard) = CapturedLog::install();

    let sessions: SessionManager<String> = SessionManager::new(
        MemorySessionStore::new(),
        SessionConfig::default().max_sessions_per_user(std::num::NonZeroU32::new(1)),
    )
    .unwrap()
    .clock(ManualClock::at_unix(1_800_000_000));
    let user = UserId::new("alice").unwrap();
    let secret_data = "upstream-refresh-token-XYZ".to_owned();
    let first = sessions
        .create(NewSession::new(user.clone(), "client").with_data(secret_data.clone()))
        .await
        .unwrap();
    let second = sessions
        .create(NewSession::new(user.clone(), "client").with_data(secret_data.clone()))
        .await
        .unwrap();
    let (rotated, _) = sessions.rotate(&second.id).await.unwrap();
    sessions.load(&rotated).await.unwrap();
    sessions.revoke(&rotated).await.unwrap();
    sessions.revoke_user(&user).await.unwrap();
    sessions.revoke_everything().await.unwrap();
    let _ = sessions.load(&first.id).await;

    let log = captured.contents();
    for event in [
        "session created",
        "session evicted",
        "session rotated",
        "session revoked",
        "all sessions of user revoked",
        "every session revoked",
    ] {
        assert!(log.contains(event), "missing {event:?} in:\n{log}");
    }
    assert!(log.contains(&rotated.handle().short()));
    for id in [&first.id, &second.id, &rotated] {
        assert!(!log.contains(id.expose()), "session id in log:\n{log}");
        assert!(
            !log.contains(&id.handle().to_hex()),
            "full handle in log:\n{log}"
        );
    }
    assert!(!log.contains(&secret_data), "session data in log:\n{log}");
}
