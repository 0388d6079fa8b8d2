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
    pub(super) fn probe(&mut self, now: Instant, host: &str, out: &mut Vec<Output>) -> bool {
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
