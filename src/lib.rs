//! pbikiosk: an unattended Power BI signage player.
//!
//! The core (this library) owns every decision and is testable without a window:
//! configuration, sign-in, the Power BI REST client, problem classification and the simulator
//! of the Microsoft services that the tests and the demo run against.

pub mod auth;
pub mod bridge;
pub mod check;
pub mod config;
pub(crate) mod config_source;
pub mod content;
pub mod demo;
pub mod health;
pub mod logging;
pub mod net;
pub(crate) mod outlet;
pub mod player;
pub mod playlist;
pub mod powerbi;
pub mod problem;
pub(crate) mod reach;
pub mod reports;
pub mod run;
pub mod secret;
pub mod shell;
pub mod sim;
pub(crate) mod status_screen;

pub use problem::{Problem, ProblemId};
pub use secret::Secret;

/// The version shown on status screens and in `pbikiosk version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
