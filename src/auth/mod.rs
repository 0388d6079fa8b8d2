//! Unattended sign-in with the five "Advanced Integration" credentials.
//!
//! - [`lifetime`]: token lifetimes from the network, validated and bounded.
//! - [`realm`]: home realm discovery, so a federated account is recognised *before* its
//!   password is sent (ROPC cannot work for it and retries would lock it out).
//! - [`certificate`], [`credential`]: how the app proves itself: a client secret, or a
//!   certificate's signed client assertion.
//! - [`client`]: the HTTP calls to the Microsoft identity platform (ROPC, refresh).
//! - [`session`]: the decisions: when to refresh, when to fall back to ROPC, how long to wait
//!   after a failure. Driven by an explicit clock so a day can be simulated in a test.
//! - [`service`]: the task that runs a session for the player and hands out tokens.
//! - [`device_code`]: sign-in by a person with the code shown on the screen, and
//!   [`token_cache`], where its refresh token survives restarts.
//! - [`app_only`]: sign-in as a service principal, handing out Power BI embed tokens.
//! - [`quiet`]: no renewal while the screen is dark out of its hours.

pub(crate) mod app_only;
pub(crate) mod certificate;
pub mod client;
pub mod credential;
pub(crate) mod device_code;
pub(crate) mod lifetime;
pub(crate) mod quiet;
pub mod realm;
pub mod service;
pub mod session;
pub(crate) mod token_cache;

use std::time::Duration;

use crate::secret::Secret;

pub use self::credential::ClientCredential;

/// What a successful token answer gives us.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub access_token: Secret,
    pub refresh_token: Option<Secret>,
    pub expires_in: Duration,
    /// Embed tokens of single items (a service principal's dashboards); `expires_in` covers
    /// them too.
    pub item_tokens: crate::embed_token::ItemTokens,
}

/// The sign-in settings, taken from the config.
#[derive(Debug, Clone)]
pub struct SignInSettings {
    /// `https://login.microsoftonline.com` or a national cloud's authority.
    pub authority: url::Url,
    pub tenant: String,
    pub client_id: String,
    /// The app's client secret or certificate.
    pub client: ClientCredential,
    pub username: String,
    pub password: Secret,
    /// `https://analysis.windows.net/powerbi/api/.default`
    pub scope: String,
}

impl SignInSettings {
    pub fn from_config(cfg: &crate::config::Config) -> Self {
        Self {
            authority: cfg.cloud.authority.clone(),
            tenant: cfg.auth.tenant.clone(),
            client_id: cfg.auth.client_id.clone(),
            client: cfg.auth.client.clone(),
            username: cfg.auth.username.clone(),
            password: cfg.auth.password.clone(),
            scope: cfg.cloud.scope(),
        }
    }
}
