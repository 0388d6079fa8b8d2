//! The device-code sign-in started from the phone: the device asks Microsoft for a code (with
//! the player's own [`DeviceSession`]), the phone shows it with the verification address, and
//! a person signs in on Microsoft's page. Nothing secret crosses the LAN: the phone only ever
//! sees the user code, which alone signs in no one; the refresh token goes from Microsoft to
//! this device and into a token cache in the setup folder, which a save moves to where the
//! service reads it.
//!
//! Unlike the screen's own sign-in, an expired or declined code is not replaced by itself: the
//! phone says so and offers a new one, so a page left open does not ask Microsoft for codes
//! for ever.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use tokio::sync::watch;

use crate::auth::device_code::{DeviceEndpoint, DeviceSession, SignInPrompt, Step};
use crate::config::Config;
use crate::problem::{ProblemId, RetryClass};

/// What the phone shows of the sign-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub(crate) enum View {
    /// The device is asking Microsoft for a code.
    Starting,
    /// A code waits for a person. `note`: a passing network problem (polling goes on).
    Waiting {
        user_code: String,
        verification_uri: String,
        expires_in_s: u64,
        expires_utc: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    SignedIn,
    /// The code's time ran out before anyone signed in with it.
    Expired,
    /// The person declined the sign-in on Microsoft's page.
    Declined,
    /// Microsoft refused (the app, the tenant, a policy): a new code would not help until
    /// someone fixes it. `retry`: a passing problem, worth another try.
    Failed {
        problem: &'static str,
        error: String,
        fix: String,
        retry: bool,
    },
}

impl View {
    /// Whether the sign-in is over (the task ends with this view).
    pub(crate) fn is_final(&self) -> bool {
        matches!(
            self,
            View::SignedIn | View::Expired | View::Declined | View::Failed { .. }
        )
    }
}

fn waiting(prompt: &SignInPrompt, now: Instant, note: Option<String>) -> View {
    View::Waiting {
        user_code: prompt.user_code.clone(),
        verification_uri: prompt.verification_uri.clone(),
        expires_in_s: prompt.expires_at.saturating_duration_since(now).as_secs(),
        expires_utc: prompt.expires_utc.clone(),
        note,
    }
}

/// Before a poll at `now`: the code on the phone has run out (pure).
pub(crate) fn expired_before_poll(prompt: Option<&SignInPrompt>, now: Instant) -> bool {
    prompt.is_some_and(|p| now >= p.expires_at)
}

/// After a step of the session (pure): what the phone shows. `shown` is the code the phone
/// was given first; the session replacing it means Microsoft said it expired.
pub(crate) fn view_after(
    step: &Step,
    prompt: Option<&SignInPrompt>,
    shown: Option<&str>,
    now: Instant,
) -> View {
    match step {
        Step::NewToken => View::SignedIn,
        Step::Failed(p) if p.id == ProblemId::SignInDeclined => View::Declined,
        Step::Failed(p) if p.retry_class() == RetryClass::Transient => match prompt {
            Some(prompt) => waiting(prompt, now, Some(format!("{} Trying again.", p.id.title()))),
            None => View::Failed {
                problem: p.id.as_str(),
                error: p.cause.clone(),
                fix: p.fix.clone(),
                retry: true,
            },
        },
        Step::Failed(p) => View::Failed {
            problem: p.id.as_str(),
            error: p.cause.clone(),
            fix: p.fix.clone(),
            retry: false,
        },
        Step::Waiting | Step::Idle => match (prompt, shown) {
            (Some(p), Some(first)) if p.user_code != first => View::Expired,
            (Some(p), _) => waiting(p, now, None),
            (None, _) => View::Starting,
        },
    }
}

const CACHE_PREFIX: &str = "sign-in-";

/// A sign-in's token cache in `dir` (the setup folder): a new name each time, so a sign-in
/// started again never finds the last one's file.
pub(crate) fn new_cache_path(dir: &Path) -> PathBuf {
    dir.join(format!("{CACHE_PREFIX}{:016x}.json", rand::random::<u64>()))
}

/// Remove the sign-ins' caches next to `config` (the saved configuration): those a stopped
/// player left behind.
pub(crate) fn remove_leftovers(config: &Path) {
    let Some(Ok(entries)) = config.parent().map(std::fs::read_dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(CACHE_PREFIX) && name.ends_with(".json") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// One sign-in in progress for one phone session. Dropping it stops the polling and removes
/// the token cache unless a save took it.
pub(crate) struct PhoneSignIn {
    view: watch::Receiver<View>,
    task: tokio::task::JoinHandle<()>,
    cache: PathBuf,
}

impl PhoneSignIn {
    /// Start a sign-in for `cfg` whose refresh token goes to `cache` (a new file in the
    /// setup folder).
    pub(crate) fn start(cfg: &Config, cache: PathBuf) -> Result<Self, crate::problem::Problem> {
        let http = crate::net::client_for(cfg)?;
        let session = DeviceSession::for_config(cfg, &http, &cache, None);
        Ok(Self::with_session(session, cache))
    }

    pub(crate) fn with_session<E>(session: DeviceSession<E>, cache: PathBuf) -> Self
    where
        E: DeviceEndpoint + Send + Sync + 'static,
    {
        let (tx, view) = watch::channel(View::Starting);
        let task = tokio::spawn(drive(session, tx));
        Self { view, task, cache }
    }

    pub(crate) fn view(&self) -> View {
        self.view.borrow().clone()
    }

    /// The first view past [`View::Starting`] (the code, or why there is none).
    pub(crate) async fn started(&mut self) -> View {
        let _ = self.view.wait_for(|v| *v != View::Starting).await;
        self.view()
    }

    /// The token cache, once the sign-in is complete.
    pub(crate) fn signed_in_cache(&self) -> Option<&Path> {
        (*self.view.borrow() == View::SignedIn).then_some(self.cache.as_path())
    }
}

impl Drop for PhoneSignIn {
    fn drop(&mut self) {
        self.task.abort();
        // Gone already when a save moved it to where the service reads it.
        let _ = std::fs::remove_file(&self.cache);
    }
}

async fn drive<E: DeviceEndpoint>(mut session: DeviceSession<E>, tx: watch::Sender<View>) {
    let mut shown: Option<String> = None;
    loop {
        let now = Instant::now();
        if expired_before_poll(session.prompt(), now) {
            tracing::info!("setup page: the sign-in code expired");
            tx.send_replace(View::Expired);
            return;
        }
        let step = session.poll(now).await;
        let view = view_after(&step, session.prompt(), shown.as_deref(), Instant::now());
        if shown.is_none()
            && let Some(p) = session.prompt()
        {
            shown = Some(p.user_code.clone());
        }
        if step != Step::Idle || view.is_final() {
            if view == View::SignedIn {
                tracing::info!("setup page: signed in with the code");
            }
            let last = view.is_final();
            tx.send_replace(view);
            if last {
                return;
            }
        }
        if tx.is_closed() {
            return;
        }
        let wake = session.next_wake(Instant::now());
        tokio::time::sleep_until(tokio::time::Instant::from_std(wake)).await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::problem::Problem;

    fn prompt(code: &str, now: Instant, left: u64) -> SignInPrompt {
        SignInPrompt {
            user_code: code.into(),
            verification_uri: "https://microsoft.com/devicelogin".into(),
            expires_at: now + Duration::from_secs(left),
            expires_utc: "2026-12-02T09:00:00Z".into(),
        }
    }

    #[test]
    fn the_phone_sees_the_code_then_the_end_of_it() {
        let now = Instant::now();
        let p = prompt("ABC123XYZ", now, 900);
        let v = view_after(&Step::Waiting, Some(&p), None, now);
        assert_eq!(
            v,
            View::Waiting {
                user_code: "ABC123XYZ".into(),
                verification_uri: "https://microsoft.com/devicelogin".into(),
                expires_in_s: 900,
                expires_utc: "2026-12-02T09:00:00Z".into(),
                note: None,
            }
        );
        assert!(!v.is_final());
        assert_eq!(
            view_after(&Step::NewToken, None, Some("ABC123XYZ"), now),
            View::SignedIn
        );
        // Microsoft said the code expired and the session took a new one: the phone is told
        // it expired, and offers a new code itself.
        let renewed = prompt("NEW000000", now, 900);
        let v = view_after(&Step::Waiting, Some(&renewed), Some("ABC123XYZ"), now);
        assert_eq!(v, View::Expired);
        assert!(v.is_final());
        assert!(!expired_before_poll(Some(&p), now));
        assert!(expired_before_poll(
            Some(&p),
            now + Duration::from_secs(900)
        ));
        assert!(!expired_before_poll(None, now));
    }

    #[test]
    fn declined_blocked_and_passing_problems() {
        let now = Instant::now();
        let p = prompt("ABC", now, 60);
        let declined = Step::Failed(Problem::new(ProblemId::SignInDeclined));
        assert_eq!(
            view_after(&declined, Some(&p), Some("ABC"), now),
            View::Declined
        );
        let blocked = Step::Failed(Problem::new(ProblemId::DeviceCodeBlocked));
        let v = view_after(&blocked, None, None, now);
        assert!(
            matches!(&v, View::Failed { problem: "device_code_blocked", retry: false, fix, .. } if !fix.is_empty()),
            "{v:?}"
        );
        // A network problem while a code waits: the code stays, with a note, and polling goes on.
        let passing = Step::Failed(Problem::new(ProblemId::ServiceUnavailable));
        let v = view_after(&passing, Some(&p), Some("ABC"), now);
        assert!(
            matches!(&v, View::Waiting { note: Some(n), user_code, .. } if user_code == "ABC" && n.contains("Trying again")),
            "{v:?}"
        );
        assert!(!v.is_final());
        // ... and before any code: the phone offers to try again.
        let v = view_after(&passing, None, None, now);
        assert!(matches!(v, View::Failed { retry: true, .. }), "{v:?}");
    }

    #[test]
    fn what_the_phone_is_sent_names_the_state() {
        let v = serde_json::to_value(View::Failed {
            problem: "device_code_blocked",
            error: "e".into(),
            fix: "f".into(),
            retry: false,
        })
        .unwrap();
        assert_eq!(v["state"], "failed");
        assert_eq!(
            serde_json::to_value(View::SignedIn).unwrap()["state"],
            "signed_in"
        );
    }

    #[test]
    fn leftover_sign_ins_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let a = new_cache_path(dir.path());
        let b = new_cache_path(dir.path());
        assert_ne!(a, b);
        for f in [&a, &b] {
            std::fs::write(f, "{}").unwrap();
        }
        let config = dir.path().join("pbikiosk.toml");
        std::fs::write(&config, "").unwrap();
        remove_leftovers(&config);
        assert!(!a.exists() && !b.exists());
        assert!(config.exists());
    }
}
