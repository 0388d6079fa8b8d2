//! When the player asks for a probe of the embed host, and what it does with the answer: a
//! blocked host drops the embeds that cannot render, an answering one turns HTTP errors of
//! embed documents into load failures at once.

use std::time::Instant;

use super::embed_host::Change;
use super::{Embed, Output, Player};
use crate::bridge::ToPage;
use crate::problem::Problem;

impl Player {
    /// The web view could not load a document of an embed host (`url`): `detail` says how.
    pub(super) fn on_embed_trouble(
        &mut self,
        now: Instant,
        url: &str,
        detail: String,
        out: &mut Vec<Output>,
    ) {
        tracing::warn!(url, detail, "the web view could not load an embed");
        let host = url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned));
        if detail.starts_with("HTTP ")
            && let Some(e) = self.embed_of_document(url)
        {
            e.http_error = Some(detail);
        }
        if let Some(host) = host {
            // No new probe (one passed moments ago): the host answers, so an HTTP
            // error is the embed's own.
            if !self.probe(now, &host, out) && self.embed_host.recently_reachable() {
                self.repair_http_failures(now, out);
            }
        }
    }

    /// Embeds that did not even load: is their host reachable?
    pub(super) fn probe_slow_loads(&mut self, now: Instant, out: &mut Vec<Output>) {
        let load_timeout = self.settings.load_timeout;
        let slow: Vec<String> = self
            .embeds_mut()
            .filter(|e| !e.loaded && !e.probed && now >= e.since + load_timeout)
            .map(|e| {
                e.probed = true;
                e.key.clone()
            })
            .collect();
        for key in slow {
            if let Some(host) = self.embed_host_of(&key) {
                self.probe(now, &host, out);
            }
        }
        if self.embed_host.retry_due(now) {
            out.push(Output::Probe {
                host: self.embed_host.host().to_owned(),
            });
        }
    }

    /// Ask for a probe of `host`, unless one runs or ran moments ago; whether it was asked.
    fn probe(&mut self, now: Instant, host: &str, out: &mut Vec<Output>) -> bool {
        let asked = self.embed_host.ask(now, host);
        if asked {
            out.push(Output::Probe {
                host: host.to_owned(),
            });
        }
        asked
    }

    pub(super) fn on_probed(
        &mut self,
        now: Instant,
        result: Result<(), Problem>,
        out: &mut Vec<Output>,
    ) {
        if let Err(p) = &result {
            tracing::warn!(problem = %p, "the embed host cannot be reached");
        }
        let before = self.embed_host.problem().map(|(p, _)| p.cause.clone());
        match self.embed_host.on_result(now, result) {
            Change::Unreachable => {
                // The way it fails changed (the proxy now refuses instead of timing out...):
                // the screen says the new cause.
                let after = self.embed_host.problem().map(|(p, _)| &p.cause);
                if before.is_some() && before.as_ref() != after {
                    self.problem_shown = None;
                }
                // Embeds that have not rendered will not: drop them without counting a load
                // failure, so the status screen shows and nothing is skipped.
                if let Some(p) = self.pending.take_if(|p| !p.rendered) {
                    out.push(Output::Page(ToPage::Discard { key: p.key }));
                }
                if let Some(v) = self.visible.take_if(|v| !v.rendered) {
                    out.push(Output::Page(ToPage::Discard { key: v.key }));
                }
            }
            Change::Recovered => tracing::info!("the embed host answers again"),
            // Reachable: an embed whose document got an HTTP error will not render, so it is
            // repaired now rather than after the render timeout; others are slow or broken for
            // another reason, and the render timeout handles them as before.
            Change::Reachable => self.repair_http_failures(now, out),
        }
    }

    /// The live embed whose frame document is `url` (the page's embed URL, plus what
    /// powerbi-client appends).
    fn embed_of_document(&mut self, url: &str) -> Option<&mut Embed> {
        let items = self.items.as_ref()?;
        let embed_url = |e: &Embed| {
            let st = items.get(e.item)?;
            st.resolved
                .as_ref()
                .ok()
                .map(|it| it.resolved.embed_url.clone())
        };
        let key = self
            .embeds()
            .find(|e| embed_url(e).is_some_and(|u| url.starts_with(&u)))?
            .key
            .clone();
        self.embed_mut(&key)
    }

    /// The host an embed loads from (its embed URL's).
    fn embed_host_of(&self, key: &str) -> Option<String> {
        let e = self.embeds().find(|e| e.key == key)?;
        let url = url::Url::parse(&self.item(e.item)?.resolved.embed_url).ok()?;
        url.host_str().map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use super::super::{Input, Output, State};
    use crate::bridge::{FromPage, ToPage};
    use crate::content::ContentKind;
    use crate::problem::{Problem, ProblemId};

    fn probes(out: &[Output]) -> Vec<&str> {
        out.iter()
            .filter_map(|o| match o {
                Output::Probe { host } => Some(host.as_str()),
                _ => None,
            })
            .collect()
    }

    fn unreachable() -> Result<(), Problem> {
        Err(Problem::new(ProblemId::EmbedUnreachable)
            .with_cause("This screen cannot load reports from app.powerbi.com: no answer."))
    }

    fn shows(out: &[Output], id: ProblemId) -> bool {
        has(
            out,
            |o| matches!(o, Output::ShowProblem { problem, .. } if problem.id == id),
        )
    }

    #[test]
    fn an_unreachable_embed_host_is_named_retried_and_plays_once_it_answers() {
        let mut r = Rig::playing(three_items());
        // e1 never loads: its host is probed after the load timeout, once.
        assert!(probes(&r.at(9).tick()).is_empty());
        assert_eq!(probes(&r.at(10).tick()), ["app.powerbi.com"]);
        assert!(probes(&r.at(11).tick()).is_empty());
        let out = r.at(12).send(Input::Probed(unreachable()));
        assert!(out.contains(&Output::Page(ToPage::Discard { key: "e1".into() })));
        assert!(shows(&out, ProblemId::EmbedUnreachable), "{out:?}");
        let s = r.p.snapshot();
        assert_eq!(s.problem, Some(ProblemId::EmbedUnreachable));
        assert_eq!(s.state, State::WaitingNetwork);
        // Nothing is prepared meanwhile, nothing is skipped; retried 5 s after the failure.
        for t in 13..17 {
            r.at(t).page(FromPage::Heartbeat { t: 0.0 });
            let out = r.tick();
            assert!(
                prepared(&out).is_empty() && probes(&out).is_empty(),
                "{out:?}"
            );
        }
        assert_eq!(probes(&r.at(17).tick()), ["app.powerbi.com"]);
        let out = r.at(18).send(Input::Probed(unreachable()));
        assert!(
            !shows(&out, ProblemId::EmbedUnreachable),
            "already on screen"
        );
        // Then 10 s after the second failure; a new way of failing is shown with its cause.
        r.at(27).page(FromPage::Heartbeat { t: 0.0 });
        assert!(probes(&r.tick()).is_empty());
        assert_eq!(probes(&r.at(28).tick()), ["app.powerbi.com"]);
        let refused = Problem::new(ProblemId::EmbedUnreachable).with_cause("refused");
        let out = r.send(Input::Probed(Err(refused)));
        assert!(
            has(
                &out,
                |o| matches!(o, Output::ShowProblem { problem, .. } if problem.cause == "refused")
            ),
            "{out:?}"
        );
        assert_eq!(r.p.snapshot().problem_message.as_deref(), Some("refused"));
        // Then 20 s after the third failure.
        r.at(47).page(FromPage::Heartbeat { t: 0.0 });
        assert!(probes(&r.tick()).is_empty());
        assert_eq!(probes(&r.at(48).tick()), ["app.powerbi.com"]);
        let out = r.at(49).send(Input::Probed(Ok(())));
        assert!(out.contains(&Output::HideProblem), "{out:?}");
        assert_eq!(prepared(&out), vec![("e2".into(), Some("Sales-p0".into()))]);
        r.at(50).page(FromPage::Loaded { key: "e2".into() });
        let out = r.rendered("e2");
        assert_eq!(shown(&out), ["e2"]);
        let s = r.p.snapshot();
        assert_eq!((s.state, s.problem), (State::Playing, None));
        assert!(
            s.items.iter().all(|i| !i.skipped && i.problem.is_none()),
            "{s:?}"
        );
    }

    #[test]
    fn a_failed_embed_document_probes_at_once_but_not_over_and_over() {
        let mut r = Rig::playing(three_items());
        let trouble = || Input::EmbedTrouble {
            url: "https://app.powerbi.com/reportEmbed?reportId=id-Sales".into(),
            detail: "failed: Connection refused".into(),
        };
        assert_eq!(probes(&r.at(1).send(trouble())), ["app.powerbi.com"]);
        assert!(probes(&r.at(2).send(trouble())).is_empty(), "one at a time");
        // The host answers: the embed is left to its render timeout, not dropped.
        let out = r.at(3).send(Input::Probed(Ok(())));
        assert!(out.is_empty(), "{out:?}");
        assert!(r.p.pending.is_some());
        assert!(probes(&r.at(5).send(trouble())).is_empty(), "too soon");
        assert_eq!(probes(&r.at(6).send(trouble())), ["app.powerbi.com"]);
        // A loaded embed is not probed for slowness.
        let mut r = Rig::playing(three_items());
        r.at(2).page(FromPage::Loaded { key: "e1".into() });
        assert!(probes(&r.at(11).tick()).is_empty());
    }

    #[test]
    fn an_http_error_for_the_embed_document_is_a_load_failure_at_once_and_named() {
        let mut r = Rig::playing(vec![Ok(item("Sales", ContentKind::Report, &["A"], 10))]);
        let mut all = Vec::new();
        // Probes 7 s apart; the third failure comes too soon after a passed probe for another.
        for (n, t) in [(1u64, 1u64), (2, 8), (3, 9), (4, 22)] {
            let key = format!("e{n}");
            let url = "https://app.powerbi.com/reportEmbed?reportId=id-Sales&uid=x1".to_owned();
            let out = r.at(t).send(Input::EmbedTrouble {
                url,
                detail: "HTTP 403".into(),
            });
            let out = if n == 3 {
                assert!(probes(&out).is_empty(), "{out:?}");
                out
            } else {
                assert_eq!(probes(&out), ["app.powerbi.com"], "{key}");
                r.at(t + 1).send(Input::Probed(Ok(())))
            };
            assert!(
                out.contains(&Output::Page(ToPage::Discard { key: key.clone() })),
                "{key}: {out:?}"
            );
            all.extend(out);
        }
        let s = r.p.snapshot();
        assert!(s.items[0].skipped, "{s:?}");
        assert_eq!(s.problem, Some(ProblemId::EmbedFailed));
        assert!(
            has(&all, |o| matches!(o, Output::ShowProblem { problem, .. }
                if problem.id == ProblemId::EmbedFailed && problem.cause.contains("(HTTP 403)"))),
            "{all:?}"
        );
    }

    #[test]
    fn embeds_failing_with_a_reachable_host_are_not_called_not_found() {
        let mut r = Rig::playing(vec![Ok(item("Sales", ContentKind::Report, &["A"], 10))]);
        let mut all = Vec::new();
        let mut t = 0;
        for _ in 0..4 {
            t += 46;
            r.at(t).page(FromPage::Heartbeat { t: 0.0 });
            all.extend(r.tick());
            all.extend(r.send(Input::Probed(Ok(()))));
        }
        assert!(shows(&all, ProblemId::EmbedFailed), "{all:?}");
        assert!(!shows(&all, ProblemId::ReportNotFound));
        let s = r.p.snapshot();
        assert_eq!(s.problem, Some(ProblemId::EmbedFailed));
        assert_eq!(s.items[0].problem, Some(ProblemId::EmbedFailed));
    }
}
