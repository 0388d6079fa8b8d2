//! pbikiosk: an unattended Power BI signage player.
//!
//! The core (this library) owns every decision and is testable without a window:
//! configuration, sign-in, the Power BI REST client, problem classification and the simulator
//! of the Microsoft services that the tests and the demo run against.

mod auth;
pub mod boot_import;
pub mod bridge;
pub(crate) mod ca_trust;
pub mod check;
pub mod config;
pub(crate) mod config_source;
pub mod content;
pub mod demo;
pub mod display_power;
mod embed_token;
pub(crate) mod embed_url;
pub(crate) mod fleet;
mod health;
pub mod hotplug;
#[cfg(test)]
mod input_props;
pub mod logging;
pub mod login;
pub(crate) mod memory;
pub(crate) mod metrics;
mod net;
pub(crate) mod outlet;
mod page_gate;
mod player;
mod playlist;
mod powerbi;
mod problem;
#[cfg(target_os = "linux")]
pub mod process_guard;
mod reach;
pub mod report_layout;
pub mod reports;
pub mod run;
pub(crate) mod sandbox_view;
pub(crate) mod schedule;
pub(crate) mod screen_power;
pub mod screenshot;
mod secret;
pub(crate) mod setup;
mod shell;
pub(crate) mod sign_in_qr;
pub mod sim;
pub(crate) mod status_access;
pub(crate) mod status_screen;
pub(crate) mod textfile;
pub(crate) mod web_context;

pub use problem::{Problem, ProblemId};
pub use secret::Secret;

/// The version shown on status screens and in `pbikiosk version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
