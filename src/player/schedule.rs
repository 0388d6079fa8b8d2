//! Day-parting: playlist entries outside their `when` windows leave the rotation, and come
//! back, at the next switch. Which entries are in their windows is decided outside (it needs
//! the wall clock and the time zone); here it is only obeyed.

use std::time::Instant;

use super::{ItemState, Output, Player};
use crate::problem::{Problem, ProblemId};

/// Which configured items are inside their windows; every item is until told otherwise.
#[derive(Debug, Default)]
pub(super) struct ItemSchedule {
    in_window: Vec<bool>,
    /// When the next window opens or closes, as the screen says it ("Mon 07:00").
    next_change: Option<String>,
}

impl ItemSchedule {
    pub(super) fn in_window(&self, item: usize) -> bool {
        self.in_window.get(item).copied().unwrap_or(true)
    }
}

impl Player {
    pub(super) fn on_schedule(
        &mut self,
        now: Instant,
        in_window: Vec<bool>,
        next_change: Option<String>,
        out: &mut Vec<Output>,
    ) {
        if next_change != self.schedule.next_change && self.problem_shown.is_some() {
            // The status screen names the next change: show it again with the new one.
            self.problem_shown = None;
        }
        self.schedule.next_change = next_change;
        if self.schedule.in_window == in_window {
            return;
        }
        self.schedule.in_window = in_window;
        if self.items.is_some() {
            self.rebuild_slides(now, out);
        }
    }

    /// Entries could play but none is in its window: a calm screen, not a failure.
    pub(super) fn nothing_scheduled(&self, items: &[ItemState]) -> Option<Problem> {
        let waiting = items
            .iter()
            .enumerate()
            .any(|(i, st)| st.resolved.is_ok() && !st.skipped && !self.schedule.in_window(i));
        if !waiting {
            return None;
        }
        let p = Problem::new(ProblemId::NothingScheduled);
        Some(match &self.schedule.next_change {
            Some(at) => {
                let cause = format!("{} The next entry starts {at}.", p.cause);
                p.with_cause(cause)
            }
            None => p,
        })
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::tests::{Rig, item, token};
    use super::super::{FromPage, Input, Output};
    use crate::bridge::ToPage;
    use crate::content::ContentKind;
    use crate::problem::{Problem, ProblemId};

    /// A player whose page renders everything it is asked to prepare, at once.
    pub(in crate::player) struct Screen {
        pub(in crate::player) r: Rig,
        t: u64,
    }

    impl Screen {
        pub(in crate::player) fn playing(names: &[&str]) -> Self {
            let mut s = Screen {
                r: Rig::new(),
                t: 0,
            };
            s.r.page(FromPage::Ready { version: None });
            s.r.send(Input::Token(token(1)));
            let items = names
                .iter()
                .map(|n| Ok(item(n, ContentKind::Report, &["P1"], 10)))
                .collect();
            let out = s.r.send(Input::Resolved(Ok(items)));
            s.render(out);
            s
        }

        /// Answer every prepare with a render, and what that causes in turn.
        pub(in crate::player) fn render(&mut self, out: Vec<Output>) -> Vec<Output> {
            let mut all = Vec::new();
            let mut todo = out;
            while !todo.is_empty() {
                let mut next = Vec::new();
                for o in &todo {
                    if let Output::Page(ToPage::Prepare { key, .. }) = o {
                        next.extend(self.r.rendered(key));
                    }
                }
                all.append(&mut todo);
                todo = next;
            }
            all
        }

        pub(in crate::player) fn play_for(&mut self, secs: u64) -> Vec<Output> {
            let mut all = Vec::new();
            for _ in 0..secs {
                self.t += 1;
                // A live page beats; without it the watchdog would reload the page.
                let mut out = self.r.at(self.t).page(FromPage::Heartbeat { t: 0.0 });
                out.extend(self.r.tick());
                all.extend(self.render(out));
            }
            all
        }

        pub(in crate::player) fn schedule(&mut self, in_window: &[bool]) -> Vec<Output> {
            let out = self.r.send(Input::Schedule {
                in_window: in_window.to_vec(),
                next_change: Some("Mon 07:00".into()),
            });
            self.render(out)
        }

        pub(in crate::player) fn showing(&self) -> Option<String> {
            self.r.p.snapshot().item.map(|i| i.name)
        }
    }

    #[test]
    fn an_entry_out_of_its_window_leaves_at_the_next_switch_and_comes_back() {
        let mut s = Screen::playing(&["A", "B", "C"]);
        assert_eq!(s.showing().as_deref(), Some("A"));
        // B's window closes while A is on screen: A keeps its full time, then C follows.
        s.schedule(&[true, false, true]);
        assert_eq!(s.showing().as_deref(), Some("A"));
        s.play_for(10);
        assert_eq!(s.showing().as_deref(), Some("C"));
        s.play_for(10);
        assert_eq!(s.showing().as_deref(), Some("A"));
        // B's window opens: it comes after A again.
        s.schedule(&[true, true, true]);
        s.play_for(10);
        assert_eq!(s.showing().as_deref(), Some("B"));
        let snap = s.r.p.snapshot();
        assert!(snap.items.iter().all(|i| !i.skipped), "{snap:?}");
    }

    #[test]
    fn the_entry_on_screen_keeps_its_time_when_its_window_closes() {
        let mut s = Screen::playing(&["A", "B"]);
        s.play_for(4);
        s.schedule(&[false, true]);
        s.play_for(5);
        assert_eq!(s.showing().as_deref(), Some("A"), "not cut short");
        s.play_for(2);
        assert_eq!(s.showing().as_deref(), Some("B"));
        s.play_for(30);
        assert_eq!(s.showing().as_deref(), Some("B"), "A stays out");
    }

    #[test]
    fn nothing_in_its_window_shows_a_calm_screen_and_frees_the_embeds() {
        let mut s = Screen::playing(&["A", "B"]);
        s.play_for(1);
        let out = s.schedule(&[false, false]);
        assert!(
            out.iter()
                .any(|o| matches!(o, Output::Page(ToPage::Discard { .. }))),
            "{out:?}"
        );
        let shown = out.iter().find_map(|o| match o {
            Output::ShowProblem { problem, .. } => Some(problem.clone()),
            _ => None,
        });
        let p = shown.expect("a screen says why nothing plays");
        assert_eq!(p.id, ProblemId::NothingScheduled);
        assert!(p.cause.contains("Mon 07:00"), "{}", p.cause);
        assert_eq!(s.showing(), None);
        // Nothing is prepared while nothing is scheduled.
        let out = s.play_for(60);
        assert!(
            !out.iter()
                .any(|o| matches!(o, Output::Page(ToPage::Prepare { .. }))),
            "{out:?}"
        );
        // A window opens: the report comes back and the screen goes.
        let out = s.schedule(&[false, true]);
        assert!(out.contains(&Output::HideProblem), "{out:?}");
        assert_eq!(s.showing().as_deref(), Some("B"));
        assert_eq!(s.r.p.snapshot().problem, None);
    }

    #[test]
    fn a_broken_entry_does_not_hide_that_the_rest_are_out_of_their_windows() {
        let mut r = Rig::new();
        r.page(FromPage::Ready { version: None });
        r.send(Input::Token(token(1)));
        r.send(Input::Schedule {
            in_window: vec![true, false],
            next_change: None,
        });
        let broken = Problem::new(ProblemId::ReportNotFound);
        let out = r.send(Input::Resolved(Ok(vec![
            Err(broken),
            Ok(item("A", ContentKind::Report, &["P1"], 10)),
        ])));
        assert!(
            out.iter().any(|o| matches!(o, Output::ShowProblem { problem, .. } if problem.id == ProblemId::NothingScheduled)),
            "{out:?}"
        );
        // With nothing waiting for a window, the broken entry is what the screen names.
        let out = r.send(Input::Schedule {
            in_window: vec![true, true],
            next_change: None,
        });
        assert!(
            out.iter()
                .any(|o| matches!(o, Output::Page(ToPage::Prepare { .. }))),
            "{out:?}"
        );
    }
}
