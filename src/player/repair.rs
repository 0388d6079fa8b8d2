//! Self-repair: load failures and render timeouts, skipping an item that keeps failing and
//! bringing it back after the repair window, and reloading a page that stopped answering.

use std::time::Instant;

use super::{Output, Player};
use crate::bridge::ToPage;

impl Player {
    /// A load failure of `key`. The visible embed is reloaded in place (a broken report is
    /// still better than a blank screen); a prepared one is discarded and prepared again.
    /// Past the repair limit the item is skipped for the repair window.
    pub(super) fn repair(&mut self, now: Instant, key: &str, out: &mut Vec<Output>) {
        let item = if let Some(v) = self.visible.as_mut().filter(|v| v.key == key) {
            out.push(Output::Page(ToPage::Reload {
                key: key.to_owned(),
            }));
            v.rendered = false;
            v.since = now;
            v.token_retried = false;
            v.item
        } else if let Some(p) = self.pending.take_if(|p| p.key == key) {
            out.push(Output::Page(ToPage::Discard {
                key: key.to_owned(),
            }));
            p.item
        } else {
            return;
        };
        let Some(state) = self.items.as_mut().and_then(|v| v.get_mut(item)) else {
            return;
        };
        if self.embed_host.blocked() {
            // The network's fault, not the item's: it is not skipped for it.
            return;
        }
        state.failures.push_back(now);
        if state.failures.len() > self.settings.repair_limit {
            tracing::warn!(item, "item failed to load too often; skipping it for now");
            state.skipped = true;
            self.rebuild_slides(now, out);
        }
        // drive() prepares again (the same slide, or the next one if this item is skipped).
    }

    /// Render timeouts count as load failures.
    pub(super) fn repair_timed_out(&mut self, now: Instant, out: &mut Vec<Output>) {
        let timed_out: Vec<String> = self
            .embeds()
            .filter(|e| !e.rendered && now >= e.since + self.settings.render_timeout)
            .map(|e| e.key.clone())
            .collect();
        for key in timed_out {
            self.repair(now, &key, out);
        }
    }

    /// Skipped items come back once their failures have left the window.
    pub(super) fn readmit_skipped(&mut self, now: Instant, out: &mut Vec<Output>) {
        let mut changed = false;
        for it in self.items.iter_mut().flatten() {
            while it
                .failures
                .front()
                .is_some_and(|t| now >= *t + self.settings.repair_window)
            {
                it.failures.pop_front();
            }
            if it.skipped && it.failures.is_empty() && it.resolved.is_ok() {
                it.skipped = false;
                changed = true;
            }
        }
        if changed {
            self.rebuild_slides(now, out);
        }
    }

    /// Embeds whose document got an HTTP error, from a host that answers: load failures now.
    pub(super) fn repair_http_failures(&mut self, now: Instant, out: &mut Vec<Output>) {
        let failed: Vec<(String, usize, String)> = self
            .embeds()
            .filter(|e| !e.rendered)
            .filter_map(|e| Some((e.key.clone(), e.item, e.http_error.clone()?)))
            .collect();
        for (key, item, error) in failed {
            if let Some(state) = self.items.as_mut().and_then(|v| v.get_mut(item)) {
                state.last_error = Some(error);
            }
            self.repair(now, &key, out);
        }
    }

    pub(super) fn reload_page(&mut self, now: Instant, out: &mut Vec<Output>) {
        self.counters.page_reloads += 1;
        self.page.fruitless_reloads += 1;
        self.page.ready = false;
        self.page.recycling_since = None;
        self.visible = None;
        self.pending = None;
        self.problem_shown = None;
        self.page.last_heartbeat = Some(now);
        if self.page.fruitless_reloads > self.settings.max_fruitless_reloads {
            out.push(Output::Exit(3));
        } else {
            out.push(Output::ReloadPage {
                dark: self.fresh_page_dark(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use super::super::{Input, Output};
    use crate::bridge::FromPage;
    use crate::problem::ProblemId;

    #[test]
    fn silent_page_is_reloaded_and_content_prepared_again() {
        let mut r = Rig::playing(three_items());
        r.rendered("e1");
        r.at(20).page(FromPage::Heartbeat { t: 1.0 });
        assert!(
            !r.at(49)
                .tick()
                .contains(&Output::ReloadPage { dark: false })
        );
        let out = r.at(50).tick();
        assert!(out.contains(&Output::ReloadPage { dark: false }), "{out:?}");
        assert_eq!(r.p.snapshot().page_reloads_total, 1);
        let out = r.at(52).page(FromPage::Ready { version: None });
        assert_eq!(prepared(&out).len(), 1, "{out:?}");
    }

    #[test]
    fn crash_loop_without_any_render_exits_for_the_service_manager() {
        let mut r = Rig::playing(three_items());
        let mut exited = false;
        for i in 0..10 {
            let out = r.at(i * 60).send(Input::WebProcessCrashed);
            if out.contains(&Output::Exit(3)) {
                exited = true;
                break;
            }
            r.page(FromPage::Ready { version: None });
        }
        assert!(exited);
    }

    #[test]
    fn an_item_that_keeps_failing_is_skipped_then_retried_after_the_window() {
        let mut r = Rig::playing(three_items());
        r.rendered("e1");
        // e2 (Ops) never renders: four render timeouts.
        let mut t = 0;
        for _ in 0..4 {
            t += 46;
            r.at(t).page(FromPage::Heartbeat { t: 0.0 });
            r.tick();
        }
        let s = r.p.snapshot();
        assert!(s.items[1].skipped, "{s:?}");
        // Power BI found it; only Power BI may say "not found".
        assert_eq!(s.items[1].problem, Some(ProblemId::EmbedFailed));
        // The lookahead now prepares the dashboard instead.
        let last_prepared = r.p.pending.as_ref().unwrap().shows.item;
        assert_eq!(last_prepared, 2);
        // An hour after the last failure it is back in the rotation.
        r.at(t + 3601).page(FromPage::Heartbeat { t: 0.0 });
        r.tick();
        assert!(!r.p.snapshot().items[1].skipped);
    }
}
