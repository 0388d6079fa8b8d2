//! Slide rotation: which embed is prepared off-screen, when the next slide replaces the
//! current one, and how the slides follow the playlist when items are skipped or come back.

use std::time::{Duration, Instant};

use super::{Embed, Output, Player};
use crate::bridge::ToPage;
use crate::playlist::{self, Item, Slide};
use crate::secret::Secret;

impl Player {
    /// Show what rendered, switch once the slide's time is up, and keep the next embed
    /// rendering off-screen.
    pub(super) fn rotate(&mut self, now: Instant, token: &Secret, out: &mut Vec<Output>) {
        if self.slide >= self.slides.len() {
            self.slide = 0;
        }
        // Nothing can load while the embed host is unreachable: what is on screen stays, and
        // the next embed waits for the host to answer again.
        if self.embed_host.blocked() {
            return;
        }
        // Nothing on screen yet: prepare the current slide, show it once rendered.
        if self.visible.is_none() {
            match &self.pending {
                None => {
                    let e = self.prepare(now, self.slide, token, out);
                    self.pending = Some(e);
                    return;
                }
                Some(p) if p.rendered => {
                    let p = self.pending.take().expect("checked");
                    self.show(now, p, false, out);
                }
                Some(_) => return,
            }
        }
        // A slide's time is up: the moment to replace the web process, if memory says so.
        if self.slide_until.is_some_and(|t| now >= t)
            && self.recycle_at_switch(now, (self.slide + 1) % self.slides.len(), out)
        {
            return;
        }
        let visible = self.visible.as_ref().expect("shown above");
        if self.slide_until.is_some_and(|t| now >= t) {
            let next = (self.slide + 1) % self.slides.len();
            if same_embed(&visible.shows, &self.slides[next]) {
                // Another page of the report on screen: switch in place, no reload.
                let target = self.slides[next].clone();
                if target.page != visible.shows.page
                    && let Some(page) = target.page.clone()
                {
                    out.push(Output::Page(ToPage::SetPage {
                        key: visible.key.clone(),
                        page,
                    }));
                    self.counters.switches += 1;
                }
                let v = self.visible.as_mut().expect("checked");
                v.shows = target;
                v.slide = next;
                self.current_page = v.shows.page_display.clone();
                self.slide = next;
                self.slide_until = Some(now + self.slides[next].duration);
            } else if let Some(p) = &self.pending
                && p.slide == next
                && p.rendered
            {
                let p = self.pending.take().expect("checked");
                let old = self.visible.take().expect("checked");
                self.show(now, p, true, out);
                out.push(Output::Page(ToPage::Discard { key: old.key }));
            }
            // Otherwise the next item is still rendering: the current one stays up.
        }
        // Look ahead: have the next different embed rendering off-screen.
        if self.pending.is_none()
            && let Some(j) = self.next_other_embed()
        {
            let e = self.prepare(now, j, token, out);
            self.pending = Some(e);
        }
    }

    fn show(&mut self, now: Instant, mut e: Embed, switch: bool, out: &mut Vec<Output>) {
        out.push(Output::Page(ToPage::Show { key: e.key.clone() }));
        self.counters.switches += u64::from(switch);
        self.slide = e.slide;
        self.slide_until = Some(now + e.shows.duration);
        self.current_page = e.shows.page_display.clone();
        let every = self.item(e.item).and_then(|it| it.refresh_seconds);
        e.next_refresh = every.map(|s| now + Duration::from_secs(s.into()));
        self.visible = Some(e);
    }

    fn prepare(
        &mut self,
        now: Instant,
        slide: usize,
        token: &Secret,
        out: &mut Vec<Output>,
    ) -> Embed {
        let s = self.slides[slide].clone();
        self.next_key += 1;
        let item = self.item(s.item).expect("slides only name resolved items");
        let key = format!("e{}", self.next_key);
        out.push(Output::Page(ToPage::Prepare {
            key: key.clone(),
            kind: item.resolved.kind,
            id: item.resolved.id.clone(),
            group_id: item.resolved.workspace.clone(),
            embed_url: item.resolved.embed_url.clone(),
            access_token: self.token_for(s.item, token).clone(),
            token_type: self.settings.token_type,
            page: s.page.clone(),
            bookmark: s.bookmark.clone(),
            report_layout: self.settings.report_layout,
        }));
        Embed {
            key,
            slide,
            shows: s.clone(),
            item: s.item,
            since: now,
            loaded: false,
            probed: false,
            http_error: None,
            rendered: false,
            token_retried: false,
            refresh_in_flight: false,
            next_refresh: None,
            reported_page: None,
        }
    }

    /// The next slide (cyclically after the current one) that needs an embed of its own.
    fn next_other_embed(&self) -> Option<usize> {
        let cur = &self.visible.as_ref()?.shows;
        if cur.item == super::REPLACED_ITEM {
            // Every slide of the new playlist needs its own embed: the next one.
            return Some((self.slide + 1) % self.slides.len());
        }
        // Up to and including the current index: what is on screen may have left the slides
        // (its window closed), and then even the slide at the current index is another embed.
        (1..=self.slides.len())
            .map(|k| (self.slide + k) % self.slides.len())
            .find(|&j| !same_embed(cur, &self.slides[j]))
    }

    pub(super) fn rebuild_slides(&mut self, now: Instant, out: &mut Vec<Output>) {
        let Some(all) = &self.items else { return };
        // slides() indexes into the list it is given; map back to configured indices.
        let (index_of, items): (Vec<usize>, Vec<Item>) = all
            .iter()
            .enumerate()
            .filter_map(|(i, st)| st.resolved.as_ref().ok().map(|it| (i, it.clone())))
            .unzip();
        let skipped: Vec<bool> = index_of
            .iter()
            .map(|&i| all[i].skipped || !self.schedule.in_window(i))
            .collect();
        let mut slides = playlist::slides(&items, &skipped);
        for s in &mut slides {
            s.item = index_of[s.item];
        }
        self.slides = slides;
        // A prepared embed's slide index is stale now: drop it, drive() prepares afresh.
        if let Some(p) = self.pending.take() {
            out.push(Output::Page(ToPage::Discard { key: p.key }));
        }
        if self.slides.is_empty()
            && let Some(v) = self.visible.take()
        {
            // Nothing may play now (out of every window, or all broken): a report left behind
            // the status screen would keep rendering and asking Power BI for data.
            out.push(Output::Page(ToPage::Discard { key: v.key }));
            self.slide_until = None;
            self.current_page = None;
        }
        let Some(v) = &mut self.visible else {
            self.slide = 0;
            return;
        };
        // A replaced playlist's item has no entry in the new list.
        let out_of_window_only = all.get(v.item).is_some_and(|st| !st.skipped);
        let cur = &v.shows;
        match self
            .slides
            .iter()
            .position(|s| s.item == cur.item && s.page == cur.page && s.bookmark == cur.bookmark)
        {
            Some(i) => {
                v.slide = i;
                self.slide = i;
            }
            None => {
                // What is on screen was skipped, its window closed, or it belongs to a replaced
                // playlist: it stays until the first slide is ready, which the next advance
                // shows: at once for a broken item, at the end of its time otherwise (neither a
                // schedule nor a new playlist cuts a slide short).
                self.slide = self.slides.len().saturating_sub(1);
                v.slide = self.slide;
                if !out_of_window_only && v.item != super::REPLACED_ITEM {
                    self.slide_until = Some(now);
                }
            }
        }
    }
}

/// Two slides can share one embed when they are pages of the same report (no bookmark).
fn same_embed(a: &Slide, b: &Slide) -> bool {
    a.item == b.item && a.bookmark.is_none() && b.bookmark.is_none()
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use super::super::{Output, State};
    use crate::bridge::{FromPage, ToPage};

    #[test]
    fn rotates_pages_in_place_and_items_off_screen() {
        let mut r = Rig::playing(three_items());
        let out = r.rendered("e1");
        assert_eq!(shown(&out), vec!["e1"]);
        // The next item starts rendering off-screen right away.
        assert_eq!(prepared(&out), vec![("e2".into(), Some("Ops-p0".into()))]);
        let s = r.p.snapshot();
        assert_eq!(s.state, State::Playing);
        assert_eq!(s.item.as_ref().unwrap().name, "Sales");
        assert_eq!(s.item.as_ref().unwrap().page.as_deref(), Some("Overview"));

        r.rendered("e2");
        // Second page of Sales: set_page on the visible embed, no new embed.
        let out = r.at(10).tick();
        assert!(
            has(
                &out,
                |o| matches!(o, Output::Page(ToPage::SetPage { key, page }) if key == "e1" && page == "Sales-p1")
            ),
            "{out:?}"
        );
        assert!(prepared(&out).is_empty() && shown(&out).is_empty());
        assert_eq!(
            r.p.snapshot().item.unwrap().page.as_deref(),
            Some("Regions")
        );

        // Ops: swap to the prepared embed, drop the old one, prepare the dashboard.
        let out = r.at(20).tick();
        assert_eq!(shown(&out), vec!["e2"]);
        assert!(has(
            &out,
            |o| matches!(o, Output::Page(ToPage::Discard { key }) if key == "e1")
        ));
        assert_eq!(prepared(&out), vec![("e3".into(), None)]);
        assert_eq!(r.p.snapshot().item.unwrap().name, "Ops");

        r.rendered("e3");
        let out = r.at(30).tick();
        assert_eq!(shown(&out), vec!["e3"]);
        // And round again to Sales page 1.
        assert_eq!(prepared(&out), vec![("e4".into(), Some("Sales-p0".into()))]);
        let s = r.p.snapshot();
        assert_eq!(s.item.unwrap().name, "Board");
        assert_eq!(s.switches_total, 3);
        assert_eq!(s.rendered_total, 3);
    }

    #[test]
    fn switch_gaps_are_summarised() {
        let mut r = Rig::playing(three_items());
        r.rendered("e1");
        for (i, g) in [16.0, 17.0, 15.0, 40.0].iter().enumerate() {
            let _ = i;
            r.page(FromPage::Shown {
                key: "e1".into(),
                gap_ms: Some(*g),
            });
        }
        let g = r.p.snapshot().switch_gaps.unwrap();
        assert_eq!(g.count, 4);
        assert_eq!(g.median_ms, 17.0);
        assert_eq!(g.max_ms, 40.0);
        assert_eq!(r.p.snapshot().last_switch_gap_ms, Some(40.0));
        assert_eq!(r.p.snapshot().shown_total, 4);
        // A `shown` for a key that is not the visible item (a late message from a discarded
        // embed) is not counted.
        r.page(FromPage::Shown {
            key: "e99".into(),
            gap_ms: Some(1.0),
        });
        assert_eq!(r.p.snapshot().shown_total, 4);
    }

    #[test]
    fn keeps_the_current_item_until_the_next_one_rendered() {
        let mut r = Rig::playing(three_items());
        r.rendered("e1");
        r.at(10).tick();
        let out = r.at(20).tick();
        assert!(shown(&out).is_empty(), "e2 has not rendered: {out:?}");
        assert_eq!(r.p.snapshot().item.unwrap().name, "Sales");
        let out = r.at(22).rendered("e2");
        assert_eq!(shown(&out), vec!["e2"]);
    }

    fn new_playlist() -> Vec<Result<crate::playlist::Item, crate::problem::Problem>> {
        use crate::content::ContentKind;
        vec![
            Ok(item("Canteen", ContentKind::Report, &["Menu"], 20)),
            Ok(item("Safety", ContentKind::Report, &["Days"], 20)),
        ]
    }

    fn prepared_ids(out: &[Output]) -> Vec<String> {
        out.iter()
            .filter_map(|o| match o {
                Output::Page(ToPage::Prepare { id, .. }) => Some(id.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_new_playlist_starts_at_the_next_item_boundary_without_a_blank() {
        use super::super::Input;
        let mut r = Rig::playing(three_items());
        assert_eq!(shown(&r.rendered("e1")), vec!["e1"]);
        // A new fleet file at 3 s: resolve the new playlist at once.
        let out = r.at(3).send(Input::Fleet {
            problem: None,
            playlist_changed: true,
        });
        assert!(
            has(&out, |o| matches!(o, Output::Resolve { .. })),
            "{out:?}"
        );
        let out = r.send(Input::Resolved(Ok(new_playlist())));
        // The old look-ahead goes; the new playlist's first item renders off-screen, while
        // Sales stays on screen: nothing is shown or reloaded.
        assert!(
            has(
                &out,
                |o| matches!(o, Output::Page(ToPage::Discard { key }) if key == "e2")
            ),
            "{out:?}"
        );
        assert_eq!(prepared_ids(&out), vec!["id-Canteen"]);
        assert!(shown(&out).is_empty(), "{out:?}");
        assert!(!has(&out, |o| matches!(o, Output::ReloadPage { .. })));
        let key = prepared(&out)[0].0.clone();
        let out = r.at(5).rendered(&key);
        assert!(shown(&out).is_empty(), "Sales keeps its time: {out:?}");
        assert_eq!(r.p.snapshot().state, State::Playing);
        assert_eq!(r.p.snapshot().item.unwrap().name, "Sales", "still named");
        assert!(shown(&r.at(9).tick()).is_empty());
        // Sales' 10 s are up: the new playlist's first item replaces it.
        let out = r.at(10).tick();
        assert_eq!(shown(&out), vec![key.clone()]);
        assert!(
            has(
                &out,
                |o| matches!(o, Output::Page(ToPage::Discard { key }) if key == "e1")
            ),
            "{out:?}"
        );
        assert_eq!(r.p.snapshot().item.unwrap().name, "Canteen");
        // And it goes on with the new playlist only.
        assert_eq!(prepared_ids(&out), vec!["id-Safety"]);
    }

    #[test]
    fn a_new_playlist_during_a_resolution_is_resolved_after_it() {
        use super::super::Input;
        let mut r = Rig::playing(three_items());
        r.rendered("e1");
        // The first new playlist sends a resolution out.
        let out = r.at(2).send(Input::Fleet {
            problem: None,
            playlist_changed: true,
        });
        assert!(has(&out, |o| matches!(o, Output::Resolve { .. })));
        // Another fleet file while the first resolution is out.
        let out = r.send(Input::Fleet {
            problem: None,
            playlist_changed: true,
        });
        assert!(
            !has(&out, |o| matches!(o, Output::Resolve { .. })),
            "one at a time"
        );
        // The answer for the first one: taken, and the newest is resolved right after.
        let out = r.send(Input::Resolved(Ok(three_items())));
        assert!(
            has(&out, |o| matches!(o, Output::Resolve { .. })),
            "{out:?}"
        );
        let out = r.send(Input::Resolved(Ok(new_playlist())));
        assert_eq!(prepared_ids(&out), vec!["id-Canteen"]);
        assert!(shown(&out).is_empty());
    }

    #[test]
    fn a_fleet_problem_covers_the_screen_only_without_a_playlist() {
        use super::super::Input;
        use crate::problem::{Problem, ProblemId};
        let fleet = || Input::Fleet {
            problem: Some(Problem::new(ProblemId::FleetUnreachable)),
            playlist_changed: false,
        };
        // Playing: the report stays, nothing covers it.
        let mut r = Rig::playing(three_items());
        r.rendered("e1");
        let out = r.send(fleet());
        assert!(
            !has(&out, |o| matches!(o, Output::ShowProblem { .. })),
            "{out:?}"
        );
        assert_eq!(r.p.snapshot().state, State::Playing);
        // No playlist at all: the fleet problem is why, and says so.
        let mut r = Rig::new();
        r.page(FromPage::Ready { version: None });
        r.send(fleet());
        r.send(Input::Token(token(1)));
        let out = r.send(Input::Resolved(Ok(vec![])));
        assert!(
            has(
                &out,
                |o| matches!(o, Output::ShowProblem { problem, .. } if problem.id == ProblemId::FleetUnreachable)
            ),
            "{out:?}"
        );
        // Without a fleet problem it is the empty playlist's own message.
        let out = r.send(Input::Fleet {
            problem: None,
            playlist_changed: false,
        });
        assert!(
            has(
                &out,
                |o| matches!(o, Output::ShowProblem { problem, .. } if problem.id == ProblemId::Config)
            ),
            "{out:?}"
        );
    }
}
