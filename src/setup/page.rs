//! The phone page: static HTML, script and style built into the binary (no framework, no
//! inline script, so a strict Content-Security-Policy holds).

use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/setup.js");
const STYLE: &str = include_str!("page/setup.css");

/// Only this page's own files; no frames, no other origin.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn with(body: &'static str, content_type: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    r
}

pub(super) async fn index() -> Response {
    with(INDEX, "text/html; charset=utf-8")
}

pub(super) async fn script() -> Response {
    with(SCRIPT, "text/javascript; charset=utf-8")
}

pub(super) async fn style() -> Response {
    with(STYLE, "text/css; charset=utf-8")
}
