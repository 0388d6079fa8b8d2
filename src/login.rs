//! `pbikiosk login`: the device-code sign-in on a terminal, for an installer who would rather
//! sign in from a laptop over SSH than at the screen. It fills the same token cache the player
//! reads, so the screen starts signed in.

use std::io::Write;
use std::time::Instant;

use qrcode::QrCode;
use qrcode::render::unicode::Dense1x2;

use crate::auth::device_code::{DeviceSession, Step};
use crate::auth::token_cache::TokenCache;
use crate::config::{AuthMethod, Config, DEFAULT_TOKEN_CACHE};
use crate::problem::{Problem, ProblemId, RetryClass};

/// Why `login` stopped without a sign-in.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error(
        "`pbikiosk login` is for [auth] method = \"device_code\"; this configuration signs in with a password"
    )]
    NotDeviceCode,
    #[error("{}: {}\nWhat to do: {}", .0.id.title(), .0.cause, .0.fix)]
    Problem(Problem),
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

/// Sign in with a code shown on `out` (and its QR code as text with `qr`); the refresh token
/// goes to the configuration's token cache. Returns the cache's path.
pub async fn login(cfg: &Config, qr: bool, out: &mut impl Write) -> Result<String, LoginError> {
    if cfg.auth.method != AuthMethod::DeviceCode {
        return Err(LoginError::NotDeviceCode);
    }
    let http = crate::net::client_for(cfg).map_err(LoginError::Problem)?;
    let path = cfg
        .auth
        .token_cache
        .clone()
        .unwrap_or_else(|| DEFAULT_TOKEN_CACHE.into());
    let cache = TokenCache::new(&path);
    // A login is a new sign-in (perhaps as another account): the old grant is not tried.
    cache.clear().map_err(|e| {
        LoginError::Problem(Problem::new(ProblemId::Config).with_cause(e.to_string()))
    })?;
    let mut session = DeviceSession::for_config(cfg, &http, &path, None);
    let mut shown: Option<String> = None;
    loop {
        match session.poll(Instant::now()).await {
            Step::NewToken => {
                writeln!(
                    out,
                    "Signed in. The screen stays signed in through {}.",
                    path.display()
                )?;
                return Ok(path.display().to_string());
            }
            Step::Failed(p) if p.retry_class() == RetryClass::Permanent => {
                return Err(LoginError::Problem(p));
            }
            Step::Failed(p) => writeln!(out, "{p}; trying again")?,
            Step::Waiting | Step::Idle => {}
        }
        if let Some(prompt) = session.prompt()
            && shown.as_deref() != Some(prompt.user_code.as_str())
        {
            shown = Some(prompt.user_code.clone());
            writeln!(
                out,
                "To sign in, open {} and enter the code {}",
                prompt.verification_uri, prompt.user_code
            )?;
            if qr && let Ok(code) = QrCode::new(prompt.verification_uri.as_bytes()) {
                writeln!(
                    out,
                    "{}",
                    code.render::<Dense1x2>().quiet_zone(true).build()
                )?;
            }
            writeln!(out, "The code works until {} (UTC).", prompt.expires_utc)?;
            out.flush()?;
        }
        let wake = session.next_wake(Instant::now());
        tokio::time::sleep_until(tokio::time::Instant::from_std(wake)).await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::sim::scenario::builtin_ids as ids;
    use crate::sim::state::Control;
    use crate::sim::{Scenario, Simulator};

    /// `login` against the simulator: it prints the code, a person approves it, the cache is
    /// filled, and a password config is refused.
    #[tokio::test(flavor = "multi_thread")]
    async fn login_prints_the_code_and_fills_the_cache() {
        let mut scenario = Scenario::builtin();
        scenario.device_code.interval_seconds = 1;
        let sim = Simulator::start(scenario, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("token-cache.json");
        let text = format!(
            "[auth]\nmethod = \"device_code\"\ntenant = \"{}\"\nclient_id = \"{}\"\ntoken_cache = \"{}\"\n\n[cloud]\nauthority = \"{}\"\napi = \"{}\"\n",
            ids::TENANT_DOMAIN,
            ids::APP_ID,
            cache.display(),
            sim.base_url(),
            sim.base_url(),
        );
        let cfg = crate::config::parse(
            &text,
            std::path::Path::new("/tmp/x.toml"),
            &crate::config::SecretSources::default(),
        )
        .unwrap();
        let approver = {
            let sim = sim.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                sim.control(Control::ApproveDeviceCode {
                    user_code: None,
                    username: format!("kiosk@{}", ids::TENANT_DOMAIN),
                })
            })
        };
        let mut out = Vec::new();
        let path = tokio::time::timeout(Duration::from_secs(20), login(&cfg, true, &mut out))
            .await
            .expect("login finished")
            .unwrap();
        approver.await.unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.contains("open https://microsoft.com/devicelogin and enter the code "),
            "{out}"
        );
        assert!(
            out.contains('▀') || out.contains('█'),
            "a QR code as text: {out}"
        );
        assert!(out.contains("Signed in."), "{out}");
        assert_eq!(path, cache.display().to_string());
        let rt = TokenCache::new(&cache)
            .load(ids::TENANT_DOMAIN, ids::APP_ID)
            .unwrap();
        assert!(rt.is_some());
        assert!(
            !out.contains(rt.unwrap().expose()),
            "no token on the terminal"
        );
    }
}
