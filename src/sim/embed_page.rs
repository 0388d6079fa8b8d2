//! The fake Power BI embed page (`src/sim/embed/`) and the two helper endpoints it calls.
//!
//! Served at the real paths (`/reportEmbed`, `/dashboardEmbed`) so that, reached through the
//! front door as `https://app.powerbi.com`, Microsoft's real powerbi-client embeds it.

use std::time::Instant;

use axum::Json;
use axum::extract::{Query, State as AxState};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::server::Sim;

const EMBED_HTML: &str = include_str!("embed/embed.html");
const EMBED_JS: &str = include_str!("embed/embed.js");

pub(crate) async fn page(AxState(sim): AxState<Sim>) -> Response {
    sim.count_and_wait(|st| st.stats.embed_requests += 1).await;
    Html(EMBED_HTML).into_response()
}

pub(crate) async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        EMBED_JS,
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InfoQuery {
    report_id: Option<String>,
    dashboard_id: Option<String>,
}

/// `GET /_sim/embed-info?reportId=..` → `{name, kind, pages:[{name, displayName, order}],
/// mobileLayout, bookmarks:[{name, displayName, page?}], forgePageMessages, offerDownload}`.
pub(crate) async fn info(AxState(sim): AxState<Sim>, Query(q): Query<InfoQuery>) -> Response {
    let st = sim.lock();
    let forge = st.scenario.faults.forge_page_messages;
    let download = st.scenario.faults.offer_download;
    for w in &st.scenario.workspaces {
        if let Some(id) = &q.report_id
            && let Some(r) = w.reports.iter().find(|r| r.id.eq_ignore_ascii_case(id))
        {
            let pages = super::powerbi::pages_json(r);
            let bookmarks: Vec<_> = r
                .bookmarks
                .iter()
                .map(|b| json!({"name": b.name, "displayName": b.display_name, "page": b.page}))
                .collect();
            return Json(
                json!({"name": r.name, "kind": "report", "workspace": w.name, "pages": pages,
                    "mobileLayout": r.mobile_layout, "bookmarks": bookmarks,
                    "forgePageMessages": forge, "offerDownload": download}),
            )
            .into_response();
        }
        if let Some(id) = &q.dashboard_id
            && let Some(d) = w.dashboards.iter().find(|d| d.id.eq_ignore_ascii_case(id))
        {
            return Json(
                json!({"name": d.name, "kind": "dashboard", "workspace": w.name, "pages": [],
                    "forgePageMessages": forge, "offerDownload": download}),
            )
            .into_response();
        }
    }
    (
        axum::http::StatusCode::NOT_FOUND,
        Json(json!({"error": "unknown report or dashboard"})),
    )
        .into_response()
}

/// `GET /_sim/download` → a small CSV as an attachment, what a report's "export data" sends:
/// a browser that accepts it writes it to the downloads folder.
pub(crate) async fn download(AxState(sim): AxState<Sim>) -> Response {
    sim.count_and_wait(|st| st.stats.download_requests += 1)
        .await;
    (
        [
            (header::CONTENT_TYPE, "text/csv"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"pbikiosk-sim-export.csv\"",
            ),
        ],
        "region,sales\nNorth,1200\nSouth,900\n",
    )
        .into_response()
}

/// `POST /_sim/check-token` (body: the token) → `{valid, expired}`: what Power BI would decide
/// about the token the page embedded with.
pub(crate) async fn check_token(
    AxState(sim): AxState<Sim>,
    axum::extract::Query(q): axum::extract::Query<CheckFor>,
    body: String,
) -> Json<serde_json::Value> {
    let st = sim.lock();
    let token = body.trim();
    let now = Instant::now();
    // A token given as the other type is refused, as the service refuses it.
    let is_embed = st.embed_tokens.contains_key(token);
    if q.token_type
        .is_some_and(|t| (t == EMBED_TOKEN_TYPE) != is_embed)
    {
        return Json(json!({"valid": false, "expired": false}));
    }
    if let Some(t) = st.access_token(token) {
        let expired = t.expires_at <= now;
        return Json(json!({"valid": !expired, "expired": expired}));
    }
    if let Some(e) = st.embed_tokens.get(token) {
        // An embed token opens only what it was made for, and only until it expires.
        let item = q.report_id.as_deref().or(q.dashboard_id.as_deref());
        return Json(match e.allows(item, now) {
            None => json!({"valid": false, "expired": false}),
            Some(live) => json!({"valid": live, "expired": !live}),
        });
    }
    Json(json!({"valid": false, "expired": false}))
}

/// What the page embeds with the token it asks about (`?reportId=` or `?dashboardId=`).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CheckFor {
    #[serde(default)]
    report_id: Option<String>,
    #[serde(default)]
    dashboard_id: Option<String>,
    /// powerbi-client's `models.TokenType` the page embedded with (0 Aad, 1 Embed).
    #[serde(default)]
    token_type: Option<u8>,
}

/// `models.TokenType.Embed`.
const EMBED_TOKEN_TYPE: u8 = 1;

#[derive(Deserialize)]
pub(crate) struct BookmarkApplied {
    name: String,
    known: bool,
}

/// `POST /_sim/bookmark-applied` `{name, known}`: the embed page applied a bookmark of its
/// report (`known`), or was asked for a name its report lacks. Counted in the stats by name.
pub(crate) async fn bookmark_applied(
    AxState(sim): AxState<Sim>,
    Json(b): Json<BookmarkApplied>,
) -> axum::http::StatusCode {
    let mut st = sim.lock();
    let counts = if b.known {
        &mut st.stats.bookmarks_applied
    } else {
        &mut st.stats.bookmarks_unknown
    };
    *counts.entry(b.name).or_default() += 1;
    axum::http::StatusCode::NO_CONTENT
}
