//! The token service over real HTTP against the simulator: short tokens are refreshed through
//! the refresh grant before they expire, and a revoked refresh token falls back to ROPC with
//! no moment without a token.

use std::time::{Duration, Instant};

use pbikiosk::Secret;
use pbikiosk::auth::SignInSettings;
use pbikiosk::auth::client::AadClient;
use pbikiosk::auth::service::{TokenService, TokenState};
use pbikiosk::auth::session::TokenSession;
use pbikiosk::sim::scenario::builtin_ids as ids;
use pbikiosk::sim::state::Control;
use pbikiosk::sim::{Scenario, Simulator};

#[tokio::test(flavor = "multi_thread")]
async fn short_tokens_refresh_and_revocation_falls_back_without_a_gap() {
    let mut scenario = Scenario::builtin();
    scenario.token_lifetime_seconds = 5;
    let sim = Simulator::start(scenario, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let user = format!("kiosk@{}", ids::TENANT_DOMAIN);
    let settings = SignInSettings {
        authority: url::Url::parse(&sim.base_url()).unwrap(),
        tenant: ids::TENANT_DOMAIN.into(),
        client_id: ids::APP_ID.into(),
        client_secret: Secret::new(ids::APP_SECRET),
        username: user.clone(),
        password: Secret::new(ids::PASSWORD),
        scope: "https://analysis.windows.net/powerbi/api/.default".into(),
        allow_federated: false,
        permanent_retry: Duration::from_secs(900),
    };
    let client = AadClient::new(pbikiosk::net::build_client(None).unwrap(), settings);
    let service = TokenService::spawn(TokenSession::new(client, false, Duration::from_secs(900)));
    service.token().await.expect("first sign-in");

    let start = Instant::now();
    let mut generations = Vec::new();
    let mut revoked = false;
    while start.elapsed() < Duration::from_secs(14) {
        match service.current() {
            TokenState::Valid {
                generation,
                expires_at,
                ..
            } => {
                assert!(expires_at > Instant::now(), "an expired token was served");
                if generations.last() != Some(&generation) {
                    generations.push(generation);
                }
            }
            other => panic!("no token at {:?}: {other:?}", start.elapsed()),
        }
        if !revoked && start.elapsed() > Duration::from_secs(7) {
            sim.control(Control::RevokeRefreshTokens { username: None });
            revoked = true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = sim.stats();
    let by = |g: &str| stats.token_by_grant.get(g).copied().unwrap_or(0);
    // Refreshed every ~3 s (60 % of 5 s) for 14 s.
    assert!(generations.len() >= 4, "{generations:?}");
    assert!(
        by("refresh_token") >= 3,
        "{stats:?}",
        stats = stats.token_by_grant
    );
    // One sign-in at start, one after the revocation.
    assert_eq!(by("password"), 2, "{:?}", stats.token_by_grant);
}
