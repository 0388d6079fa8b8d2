//! The simulator's mutable state: issued tokens, device codes, counters and runtime changes.
//!
//! One `Mutex` guards it all; no handler holds it across an `.await`, so it never blocks the
//! runtime for longer than a map lookup.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::ids;
use super::scenario::{Account, AccountState, EmbedFault, Scenario, Throttle};

/// Request counters. Every request is counted on arrival, before latency or any fault, so a
/// test can assert "zero token requests" or "exactly one per refresh window".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimStats {
    /// All requests to `/{tenant}/oauth2/v2.0/token`.
    pub token_requests: u64,
    /// Token requests by `grant_type` (`password`, `refresh_token`, ...; `""` when missing).
    pub token_by_grant: BTreeMap<String, u64>,
    /// Token requests by user: the `username` field, or the owner of the refresh token or
    /// device code. Lower-cased.
    pub token_by_username: BTreeMap<String, u64>,
    pub devicecode_requests: u64,
    /// Milliseconds between two polls of the same device code, in order: a client that
    /// honours `interval` never shows a gap below it.
    #[serde(default)]
    pub device_poll_gaps_ms: Vec<u64>,
    pub userrealm_requests: u64,
    /// All requests under `/v1.0/myorg`.
    pub api_requests: u64,
    /// Power BI requests by kind: `groups`, `reports`, `report`, `pages`, `dashboards`,
    /// `dashboard`, `generate_token`, `my_workspace`, `other`.
    pub api_by_kind: BTreeMap<String, u64>,
    /// Requests for `/reportEmbed` and `/dashboardEmbed`.
    pub embed_requests: u64,
    /// Bookmarks the embed page applied (at load or by name), by bookmark name.
    #[serde(default)]
    pub bookmarks_applied: BTreeMap<String, u64>,
    /// Names the embed page was asked to apply that its report has no bookmark for.
    #[serde(default)]
    pub bookmarks_unknown: BTreeMap<String, u64>,
    /// Requests for `/_sim/download`, the file the `offer_download` embed page links to.
    #[serde(default)]
    pub download_requests: u64,
}

/// A runtime change, sent with [`super::SimHandle::control`] or as JSON to `POST /_sim/control`,
/// e.g. `{"action":"set_account_state","username":"kiosk@...","state":"locked"}`.
///
/// Not `Debug`: `SetPassword` carries a password, and nothing here may end up in a log.
#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Control {
    /// Delay every answer (except `/_sim`) by `ms`.
    SetLatency {
        ms: u64,
    },
    /// Token endpoint answers 503 `temporarily_unavailable` while `on`.
    SetTokenOutage {
        on: bool,
        #[serde(default)]
        retry_after_seconds: Option<u64>,
    },
    /// Token requests hang (no answer for two minutes: the client times out) while `on`.
    SetTokenHang {
        on: bool,
    },
    /// The embed host fails this way from now on (`none` lifts it), e.g.
    /// `{"action":"embed_fault","fault":"refuse"}`.
    EmbedFault {
        fault: EmbedFault,
    },
    /// The embed pages loaded from now on post forged player messages while `on` (a hostile
    /// report frame), e.g. `{"action":"forge_page_messages","on":true}`.
    ForgePageMessages {
        on: bool,
    },
    /// The embed pages loaded from now on offer a file download (an "export data" link they
    /// click themselves) while `on`, e.g. `{"action":"offer_download","on":true}`.
    OfferDownload {
        on: bool,
    },
    /// The next `count` token answers are 429 with `Retry-After`.
    ThrottleToken {
        count: u32,
        retry_after_seconds: u64,
    },
    /// The next `count` Power BI answers are 429 with `Retry-After`.
    ThrottleApi {
        count: u32,
        retry_after_seconds: u64,
    },
    /// Token answers carry `value` as `expires_in` (any JSON, e.g. `0` or `"abc"`) instead of
    /// the lifetime; `null` or no value goes back to the lifetime.
    SetExpiresIn {
        #[serde(default)]
        value: Option<serde_json::Value>,
    },
    /// Lifetime of access tokens issued from now on.
    SetTokenLifetime {
        seconds: u64,
    },
    /// Revoke refresh tokens of one user (or everyone): the refresh grant then answers
    /// AADSTS50173.
    RevokeRefreshTokens {
        #[serde(default)]
        username: Option<String>,
    },
    /// Expire the access tokens already issued (to one user, or all) without waiting: Power BI
    /// then answers 403 TokenExpired.
    ExpireAccessTokens {
        #[serde(default)]
        username: Option<String>,
    },
    /// An admin resets the password: the old one fails, and refresh tokens are revoked.
    SetPassword {
        username: String,
        password: String,
    },
    SetAccountState {
        username: String,
        state: AccountState,
    },
    /// userrealm answers 404 while `false`.
    SetUserrealmAvailable {
        available: bool,
    },
    /// The user signs in on the verification page. Without `user_code`, the newest pending code.
    ApproveDeviceCode {
        #[serde(default)]
        user_code: Option<String>,
        username: String,
    },
    DeclineDeviceCode {
        #[serde(default)]
        user_code: Option<String>,
    },
    /// The report's author deletes a bookmark (by name, from whichever report has it): embeds
    /// from now on do not know it.
    DeleteBookmark {
        name: String,
    },
    ResetStats,
}

impl Control {
    /// The action name, the only part of a control that is logged.
    pub(crate) fn action(&self) -> &'static str {
        match self {
            Control::SetLatency { .. } => "set_latency",
            Control::SetTokenOutage { .. } => "set_token_outage",
            Control::SetTokenHang { .. } => "set_token_hang",
            Control::EmbedFault { .. } => "embed_fault",
            Control::ForgePageMessages { .. } => "forge_page_messages",
            Control::OfferDownload { .. } => "offer_download",
            Control::ThrottleToken { .. } => "throttle_token",
            Control::ThrottleApi { .. } => "throttle_api",
            Control::SetExpiresIn { .. } => "set_expires_in",
            Control::SetTokenLifetime { .. } => "set_token_lifetime",
            Control::RevokeRefreshTokens { .. } => "revoke_refresh_tokens",
            Control::ExpireAccessTokens { .. } => "expire_access_tokens",
            Control::SetPassword { .. } => "set_password",
            Control::SetAccountState { .. } => "set_account_state",
            Control::SetUserrealmAvailable { .. } => "set_userrealm_available",
            Control::ApproveDeviceCode { .. } => "approve_device_code",
            Control::DeclineDeviceCode { .. } => "decline_device_code",
            Control::DeleteBookmark { .. } => "delete_bookmark",
            Control::ResetStats => "reset_stats",
        }
    }
}

/// Who a token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Subject {
    /// A user, by lower-cased username.
    User(String),
    /// A service principal (client_credentials), by client id.
    App(String),
}

#[derive(Debug, Clone)]
pub(crate) struct AccessToken {
    pub(crate) subject: Subject,
    pub(crate) expires_at: Instant,
    /// The same moment in Unix seconds (for GenerateToken's `expiration`).
    pub(crate) expires_unix: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct RefreshGrant {
    pub(crate) username: String,
    pub(crate) client_id: String,
    pub(crate) issued_unix: u64,
    /// `Some(TokensValidFrom)` once revoked.
    pub(crate) revoked_at: Option<u64>,
    /// Issued to a public client (device code, no secret): renewed without a secret.
    pub(crate) public: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DeviceStatus {
    Pending,
    Approved(String),
    Declined,
}

#[derive(Debug, Clone)]
pub(crate) struct DeviceCode {
    pub(crate) user_code: String,
    pub(crate) client_id: String,
    pub(crate) expires_at: Instant,
    pub(crate) last_poll: Option<Instant>,
    pub(crate) status: DeviceStatus,
    pub(crate) created: Instant,
}

/// An embed token from GenerateToken, kept so the fake embed page can check it later: what
/// it was made for, and until when (it dies with the access token it was made from).
#[derive(Debug, Clone)]
pub(crate) struct EmbedToken {
    /// Report and dashboard ids (lower case) the token may embed.
    pub(crate) items: Vec<String>,
    pub(crate) expires_at: Instant,
}

impl EmbedToken {
    /// Whether the token may embed `item` (a report or dashboard id) at `now`: `None` when it
    /// may not embed it at all, `Some(false)` when it expired.
    pub(crate) fn allows(&self, item: Option<&str>, now: Instant) -> Option<bool> {
        if let Some(i) = item
            && !self.items.iter().any(|x| x.eq_ignore_ascii_case(i))
        {
            return None;
        }
        Some(now < self.expires_at)
    }
}

pub(crate) struct State {
    pub(crate) scenario: Scenario,
    pub(crate) stats: SimStats,
    pub(crate) access: HashMap<String, AccessToken>,
    pub(crate) refresh: HashMap<String, RefreshGrant>,
    /// By device_code.
    pub(crate) device: HashMap<String, DeviceCode>,
    /// Wrong passwords in a row, by lower-cased username.
    pub(crate) failed_logins: HashMap<String, u32>,
    pub(crate) embed_tokens: HashMap<String, EmbedToken>,
}

/// Why a control could not be applied.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ControlError {
    #[error("no account '{0}' in the scenario")]
    UnknownAccount(String),
    #[error("no pending device code{0}")]
    NoDeviceCode(String),
    #[error("no report in the scenario has a bookmark named '{0}'")]
    UnknownBookmark(String),
}

impl State {
    pub(crate) fn new(scenario: Scenario) -> Self {
        Self {
            scenario,
            stats: SimStats::default(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            device: HashMap::new(),
            failed_logins: HashMap::new(),
            embed_tokens: HashMap::new(),
        }
    }

    /// Take one answer from a throttle budget: `Some(retry_after)` if this answer is a 429.
    pub(crate) fn take_throttle(slot: &mut Option<Throttle>) -> Option<u64> {
        let t = slot.as_mut()?;
        if t.count == 0 {
            *slot = None;
            return None;
        }
        t.count -= 1;
        let retry = t.retry_after_seconds;
        if t.count == 0 {
            *slot = None;
        }
        Some(retry)
    }

    pub(crate) fn apply(&mut self, c: Control) -> Result<(), ControlError> {
        let f = &mut self.scenario.faults;
        match c {
            Control::SetLatency { ms } => f.latency_ms = ms,
            Control::SetTokenOutage {
                on,
                retry_after_seconds,
            } => {
                f.token_outage = on;
                f.outage_retry_after_seconds = retry_after_seconds;
            }
            Control::SetTokenHang { on } => f.token_hang = on,
            Control::EmbedFault { fault } => f.embed_fault = fault,
            Control::ForgePageMessages { on } => f.forge_page_messages = on,
            Control::OfferDownload { on } => f.offer_download = on,
            Control::ThrottleToken {
                count,
                retry_after_seconds,
            } => {
                f.token_throttle = Some(Throttle {
                    count,
                    retry_after_seconds,
                })
            }
            Control::ThrottleApi {
                count,
                retry_after_seconds,
            } => {
                f.api_throttle = Some(Throttle {
                    count,
                    retry_after_seconds,
                })
            }
            Control::SetExpiresIn { value } => {
                f.expires_in_override = value.filter(|v| !v.is_null())
            }
            Control::SetTokenLifetime { seconds } => {
                self.scenario.token_lifetime_seconds = seconds.max(1)
            }
            Control::SetUserrealmAvailable { available } => f.userrealm_unavailable = !available,
            Control::RevokeRefreshTokens { username } => self.revoke(username.as_deref()),
            Control::ExpireAccessTokens { username } => {
                let now = Instant::now();
                let user = username.map(|u| u.to_ascii_lowercase());
                for t in self.access.values_mut() {
                    let hit = match (&user, &t.subject) {
                        (None, _) => true,
                        (Some(u), Subject::User(s)) => u == s,
                        (Some(_), Subject::App(_)) => false,
                    };
                    if hit {
                        t.expires_at = now;
                        t.expires_unix = ids::unix_now();
                    }
                }
            }
            Control::SetPassword { username, password } => {
                self.named_account(&username)?.password = password;
                self.failed_logins.remove(&username.to_ascii_lowercase());
                // Entra moves TokensValidFrom on a password reset: old refresh tokens die.
                self.revoke(Some(&username));
            }
            Control::SetAccountState { username, state } => {
                self.named_account(&username)?.state = state;
                if state == AccountState::Ok {
                    // An admin unlock also clears the smart-lockout counter.
                    self.failed_logins.remove(&username.to_ascii_lowercase());
                }
            }
            Control::ApproveDeviceCode {
                user_code,
                username,
            } => {
                self.named_account(&username)?;
                let d = self.pending_device_code(user_code.as_deref())?;
                d.status = DeviceStatus::Approved(username.to_ascii_lowercase());
            }
            Control::DeclineDeviceCode { user_code } => {
                let d = self.pending_device_code(user_code.as_deref())?;
                d.status = DeviceStatus::Declined;
            }
            Control::DeleteBookmark { name } => {
                let mut found = false;
                for r in self
                    .scenario
                    .workspaces
                    .iter_mut()
                    .flat_map(|w| &mut w.reports)
                {
                    let before = r.bookmarks.len();
                    r.bookmarks.retain(|b| b.name != name);
                    found |= r.bookmarks.len() != before;
                }
                if !found {
                    return Err(ControlError::UnknownBookmark(name));
                }
            }
            Control::ResetStats => self.stats = SimStats::default(),
        }
        Ok(())
    }

    /// The account a control names: a control about an account the scenario lacks is refused.
    fn named_account(&mut self, username: &str) -> Result<&mut Account, ControlError> {
        self.scenario
            .account_mut(username)
            .ok_or_else(|| ControlError::UnknownAccount(username.to_owned()))
    }

    fn revoke(&mut self, username: Option<&str>) {
        let now = ids::unix_now();
        for g in self.refresh.values_mut() {
            if username.is_none_or(|u| g.username.eq_ignore_ascii_case(u)) && g.revoked_at.is_none()
            {
                g.revoked_at = Some(now);
            }
        }
    }

    fn pending_device_code(
        &mut self,
        user_code: Option<&str>,
    ) -> Result<&mut DeviceCode, ControlError> {
        let now = Instant::now();
        self.device
            .values_mut()
            .filter(|d| d.status == DeviceStatus::Pending && d.expires_at > now)
            .filter(|d| user_code.is_none_or(|c| d.user_code.eq_ignore_ascii_case(c)))
            .max_by_key(|d| d.created)
            .ok_or_else(|| {
                ControlError::NoDeviceCode(user_code.map(|c| format!(" '{c}'")).unwrap_or_default())
            })
    }

    /// The access token behind an `Authorization: Bearer` value, if it was ever issued.
    pub(crate) fn access_token(&self, token: &str) -> Option<&AccessToken> {
        self.access.get(token)
    }

    /// Lifetime of new access tokens.
    pub(crate) fn token_lifetime(&self) -> Duration {
        Duration::from_secs(self.scenario.token_lifetime_seconds)
    }
}

#[cfg(test)]
mod tests {

    /// The fake embed page's decision: an embed token opens only what it was made for, and
    /// only until it expires.
    #[test]
    fn embed_tokens_open_their_own_items_until_they_expire() {
        let now = Instant::now();
        let t = EmbedToken {
            items: vec!["aa".into(), "bb".into()],
            expires_at: now + std::time::Duration::from_secs(60),
        };
        assert_eq!(t.allows(Some("AA"), now), Some(true));
        assert_eq!(t.allows(None, now), Some(true));
        assert_eq!(t.allows(Some("cc"), now), None);
        assert_eq!(
            t.allows(Some("bb"), now + std::time::Duration::from_secs(61)),
            Some(false)
        );
    }

    use super::*;

    #[test]
    fn throttle_budget_runs_out() {
        let mut slot = Some(Throttle {
            count: 2,
            retry_after_seconds: 7,
        });
        assert_eq!(State::take_throttle(&mut slot), Some(7));
        assert_eq!(State::take_throttle(&mut slot), Some(7));
        assert_eq!(State::take_throttle(&mut slot), None);
        assert!(slot.is_none());
    }

    #[test]
    fn control_json_uses_action_tags() {
        let c: Control = serde_json::from_str(
            r#"{"action":"set_account_state","username":"kiosk@contoso-demo.onmicrosoft.com","state":"locked"}"#,
        )
        .unwrap();
        assert_eq!(c.action(), "set_account_state");
        let mut s = State::new(Scenario::builtin());
        s.apply(c).unwrap();
        assert_eq!(
            s.scenario
                .account("kiosk@contoso-demo.onmicrosoft.com")
                .unwrap()
                .state,
            AccountState::Locked
        );
        let err = s
            .apply(Control::SetAccountState {
                username: "ghost@x".into(),
                state: AccountState::Ok,
            })
            .unwrap_err();
        assert_eq!(err, ControlError::UnknownAccount("ghost@x".into()));
    }

    #[test]
    fn embed_faults_are_switched_by_name() {
        let mut s = State::new(Scenario::builtin());
        for fault in EmbedFault::ALL {
            let json = format!(r#"{{"action":"embed_fault","fault":"{}"}}"#, fault.as_str());
            let c: Control = serde_json::from_str(&json).unwrap();
            assert_eq!(c.action(), "embed_fault");
            s.apply(c).unwrap();
            assert_eq!(s.scenario.faults.embed_fault, fault);
        }
    }
}
