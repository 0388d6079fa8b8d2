//! Screen power by the `[display] on` hours, with the black page as the means: out of hours the
//! page goes black, every embed is dropped and nothing is prepared or resolved, so the web view
//! has nothing to render and Power BI gets no queries. Shortly before the hours begin the report
//! is prepared behind the black layer, so the screen lights up on the report itself.

use std::time::Instant;

use serde::Serialize;

use super::{Output, Player};
use crate::bridge::{ScreenLight, ToPage};
use crate::schedule::Power;

#[derive(Debug)]
pub(super) struct ScreenPower {
    power: Power,
    /// Whether the page was last told to be black; `None` for a fresh page, which is told
    /// either way once it is ready (it may have started black, see [`Player::fresh_page_dark`],
    /// or lit).
    page_dark: Option<bool>,
}

impl Default for ScreenPower {
    fn default() -> Self {
        Self {
            power: Power::On,
            page_dark: None,
        }
    }
}

impl ScreenPower {
    /// Out of hours and not yet waking: nothing is to be loaded.
    pub(super) fn idle(&self) -> bool {
        self.power == Power::Off
    }

    fn dark(&self) -> bool {
        self.power != Power::On
    }

    /// A new page (start, reload, recycle): told its light once it is ready.
    pub(super) fn page_reset(&mut self) {
        self.page_dark = None;
    }
}

/// `display` on `/status`: whether the screen is lit and by what means it was turned off.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DisplayStatus {
    /// `"on"` or `"off"` (still off while the report is prepared ahead of the hours).
    pub power: &'static str,
    /// How it was turned off: `"cec"` (the TV acknowledged `<Standby>`), `"ddc"` (a monitor
    /// acknowledged power mode off) or `"black"` (the page alone). The page goes black and the
    /// web view idles in each case. `None` while on.
    pub via: Option<&'static str>,
    /// What the last switch of the screen itself said (the run loop fills it in, see
    /// `screen_power`); `None` until the screen was switched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Player {
    pub(super) fn on_power(&mut self, now: Instant, power: Power, out: &mut Vec<Output>) {
        let was = self.power.power;
        self.power.power = power;
        if power == Power::Off {
            let going_dark = was != Power::Off && self.page.ready;
            if going_dark {
                // Black first, so nothing of what is dropped, nor the page whose process is
                // replaced, is seen on the way.
                self.sync_dark(out);
            }
            self.release_embeds(out);
            if going_dark {
                self.recycle_for_the_night(now, out);
            }
        }
    }

    /// Whether a page loaded now must start black: out of the screen's hours (or while the
    /// report is prepared behind the black page).
    pub(super) fn fresh_page_dark(&self) -> bool {
        self.power.dark()
    }

    /// Tell a ready page whether to be black, once per change and once to every fresh page:
    /// a page that is not ready would not hear it.
    pub(super) fn sync_dark(&mut self, out: &mut Vec<Output>) {
        let dark = self.power.dark();
        if Some(dark) != self.power.page_dark {
            self.power.page_dark = Some(dark);
            let power = if dark {
                ScreenLight::Off
            } else {
                ScreenLight::On
            };
            out.push(Output::Page(ToPage::ScreenPower { power }));
        }
    }

    /// Drop what is on the page; the rotation starts from its first slide when it resumes.
    fn release_embeds(&mut self, out: &mut Vec<Output>) {
        for e in [self.visible.take(), self.pending.take()]
            .into_iter()
            .flatten()
        {
            out.push(Output::Page(ToPage::Discard { key: e.key }));
        }
        self.slide = 0;
        self.slide_until = None;
        self.current_page = None;
    }

    pub(super) fn display_status(&self) -> DisplayStatus {
        DisplayStatus {
            power: if self.power.dark() { "off" } else { "on" },
            via: self.power.dark().then_some("black"),
            detail: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::schedule::tests::Screen;
    use super::super::{Input, Output};
    use crate::bridge::{ScreenLight, ToPage};
    use crate::schedule::Power;

    fn power(s: &mut Screen, p: Power) -> Vec<Output> {
        let out = s.r.send(Input::ScreenPower(p));
        s.render(out)
    }

    fn light(out: &[Output]) -> Option<ScreenLight> {
        out.iter().find_map(|o| match o {
            Output::Page(ToPage::ScreenPower { power }) => Some(*power),
            _ => None,
        })
    }

    fn count(out: &[Output], f: impl Fn(&ToPage) -> bool) -> usize {
        out.iter()
            .filter(|o| matches!(o, Output::Page(m) if f(m)))
            .count()
    }

    #[test]
    fn out_of_hours_the_page_goes_black_and_nothing_loads() {
        let mut s = Screen::playing(&["A", "B"]);
        s.play_for(3);
        let out = power(&mut s, Power::Off);
        assert_eq!(light(&out), Some(ScreenLight::Off));
        // The report on screen and the one prepared behind it are both dropped.
        assert_eq!(
            count(&out, |m| matches!(m, ToPage::Discard { .. })),
            2,
            "{out:?}"
        );
        let snap = s.r.p.snapshot();
        assert_eq!(
            (snap.display.power, snap.display.via),
            ("off", Some("black"))
        );
        assert_eq!(snap.item, None);
        // An hour of night: nothing prepared, nothing resolved, no refresh.
        let out = s.play_for(3600);
        assert_eq!(count(&out, |m| matches!(m, ToPage::Prepare { .. })), 0);
        assert!(
            !out.iter().any(|o| matches!(o, Output::Resolve { .. })),
            "{out:?}"
        );
        // The same power again says nothing new.
        assert_eq!(light(&power(&mut s, Power::Off)), None);
    }

    #[test]
    fn a_page_that_comes_up_while_off_is_told_to_be_black() {
        let mut s = Screen::playing(&["A"]);
        power(&mut s, Power::Off);
        // The web process is replaced (a crash, a recycle): the new page starts lit.
        let out = s.r.page(super::super::FromPage::Ready { version: None });
        assert_eq!(light(&out), Some(ScreenLight::Off), "{out:?}");
        assert_eq!(light(&power(&mut s, Power::Off)), None, "told once");
    }

    #[test]
    fn the_report_is_ready_behind_the_black_page_before_the_screen_lights() {
        let mut s = Screen::playing(&["A", "B"]);
        power(&mut s, Power::Off);
        s.play_for(60);
        // Waking: still black, but the first report is prepared and put up behind it.
        let out = power(&mut s, Power::Waking);
        assert_eq!(light(&out), None, "still dark");
        assert_eq!(
            count(
                &out,
                |m| matches!(m, ToPage::Prepare { id, .. } if id == "id-A")
            ),
            1,
            "{out:?}"
        );
        assert_eq!(s.showing().as_deref(), Some("A"));
        assert_eq!(s.r.p.snapshot().display.power, "off");
        // Lit: only the black layer goes; no new load, so the report is there at once.
        let out = power(&mut s, Power::On);
        assert_eq!(light(&out), Some(ScreenLight::On));
        assert_eq!(
            count(&out, |m| matches!(
                m,
                ToPage::Prepare { .. } | ToPage::Show { .. }
            )),
            0
        );
        assert_eq!(s.showing().as_deref(), Some("A"));
        let snap = s.r.p.snapshot();
        assert_eq!((snap.display.power, snap.display.via), ("on", None));
        s.play_for(10);
        assert_eq!(s.showing().as_deref(), Some("B"), "the rotation goes on");
    }

    /// The sign-in rested through the night and the token ran out: waking prepares nothing
    /// with it (it would only load an error), and the renewed token starts the preparation.
    #[test]
    fn waking_with_a_token_that_ran_out_waits_for_the_renewal() {
        use crate::auth::service::TokenState;
        use crate::secret::Secret;
        use std::time::Duration;
        let mut s = Screen::playing(&["A", "B"]);
        let now = s.r.now();
        s.r.send(Input::Token(TokenState::Valid {
            token: Secret::new("TOKEN-old"),
            item_tokens: Default::default(),
            expires_at: now + Duration::from_secs(600),
            generation: 2,
        }));
        power(&mut s, Power::Off);
        s.play_for(3600);
        let out = power(&mut s, Power::Waking);
        assert_eq!(
            count(&out, |m| matches!(m, ToPage::Prepare { .. })),
            0,
            "{out:?}"
        );
        let now = s.r.now();
        let out = s.r.send(Input::Token(TokenState::Valid {
            token: Secret::new("TOKEN-new"),
            item_tokens: Default::default(),
            expires_at: now + Duration::from_secs(3600),
            generation: 3,
        }));
        let out = s.render(out);
        let prepared: Vec<&str> = out
            .iter()
            .filter_map(|o| match o {
                Output::Page(ToPage::Prepare { access_token, .. }) => Some(access_token.expose()),
                _ => None,
            })
            .collect();
        assert!(
            !prepared.is_empty() && prepared.iter().all(|t| *t == "TOKEN-new"),
            "{out:?}"
        );
        assert_eq!(s.showing().as_deref(), Some("A"));
        assert_eq!(
            s.r.p.snapshot().display.power,
            "off",
            "still dark until the hours"
        );
    }
}
