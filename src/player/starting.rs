//! What the start screen says while nothing is on screen yet: the player's progress from
//! signing in to the first item, one step at a time.

use super::Player;

/// A step on the way to the first item. The wording (and the account name) is the outlet's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activity {
    SigningIn,
    FindingReports,
    /// The item being prepared for the screen, by name.
    Loading(String),
}

impl Player {
    /// The step the start screen should show now, or `None` when it is not on screen (a fresh
    /// page shows it until the first item; a problem covers it with a status screen, and the
    /// next step is sent once the problem is gone).
    pub(super) fn activity(&self) -> Option<Activity> {
        if !self.page.ready
            || self.visible.is_some()
            || self.config_problem.is_some()
            || self.blocking_problem().is_some()
        {
            return None;
        }
        if self.tokens.current.is_none() {
            return Some(Activity::SigningIn);
        }
        match &self.pending {
            Some(p) => self
                .item(p.item)
                .map(|it| Activity::Loading(it.resolved.name.clone())),
            None => Some(Activity::FindingReports),
        }
    }

    /// Tell the start screen the current step, once per change.
    pub(super) fn report_activity(&mut self, out: &mut Vec<super::Output>) {
        let now = self.activity();
        if now.is_some() && now != self.activity_shown {
            out.push(super::Output::Starting(now.clone().expect("checked")));
        }
        self.activity_shown = now;
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::auth::service::TokenState;
    use crate::bridge::FromPage;
    use crate::player::tests::{three_items, token};
    use crate::player::{Input, Output, Settings};
    use crate::problem::{Problem, ProblemId};

    fn steps(out: &[Output]) -> Vec<Activity> {
        out.iter()
            .filter_map(|o| match o {
                Output::Starting(a) => Some(a.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_start_screen_follows_the_way_to_the_first_item() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut p = Player::new(Settings::default());
        // Nothing before the page is there to show it.
        assert!(steps(&p.handle(at(0), Input::Token(TokenState::Starting))).is_empty());
        let out = p.handle(at(1), Input::Page(FromPage::Ready { version: None }));
        assert_eq!(steps(&out), [Activity::SigningIn]);
        // Heartbeats change nothing: each step is sent once.
        let out = p.handle(at(2), Input::Page(FromPage::Heartbeat { t: 1.0 }));
        assert!(steps(&out).is_empty());
        let out = p.handle(at(3), Input::Token(token(1)));
        assert_eq!(steps(&out), [Activity::FindingReports]);
        let out = p.handle(at(4), Input::Resolved(Ok(three_items())));
        assert_eq!(steps(&out), [Activity::Loading("Sales".into())]);
        let out = p.handle(
            at(5),
            Input::Page(FromPage::Rendered {
                key: "e1".into(),
                ms: None,
            }),
        );
        // The first item goes on screen: the page takes the start screen away by itself.
        assert!(steps(&out).is_empty());
        assert!(p.activity().is_none());
        // A fresh page (reloaded) shows the start screen again, and hears where things are.
        let out = p.handle(at(60), Input::WebProcessCrashed);
        assert!(steps(&out).is_empty());
        let out = p.handle(at(61), Input::Page(FromPage::Ready { version: None }));
        assert_eq!(steps(&out), [Activity::Loading("Sales".into())]);
    }

    #[test]
    fn a_problem_covers_the_start_screen_and_the_step_after_it_is_sent_again() {
        let t0 = Instant::now();
        let mut p = Player::new(Settings::default());
        p.handle(t0, Input::Page(FromPage::Ready { version: None }));
        let failed = TokenState::Failed {
            problem: Problem::new(ProblemId::InvalidCredentials),
            next_attempt: None,
        };
        let out = p.handle(t0, Input::Token(failed));
        assert!(steps(&out).is_empty());
        assert!(p.activity().is_none());
        let out = p.handle(t0, Input::Token(token(1)));
        assert_eq!(steps(&out), [Activity::FindingReports]);
    }

    #[test]
    fn a_config_problem_has_no_start_steps() {
        let t0 = Instant::now();
        let mut p = Player::new(Settings::default());
        p.handle(
            t0,
            Input::Config {
                problem: Problem::new(ProblemId::Config),
                not_configured: true,
            },
        );
        let out = p.handle(t0, Input::Page(FromPage::Ready { version: None }));
        assert!(steps(&out).is_empty());
    }
}
