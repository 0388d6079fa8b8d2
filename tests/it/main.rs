//! The integration tests, one binary: each module used to be a test crate of its own, and
//! every one of them linked the whole WebKit-heavy library again.
//!
//! The GUI tests (`e2e`, `embed_host`, `faults`) need Xvfb, ImageMagick's `import` and the built page
//! (`web/vendor/`), so they are `#[ignore]`d and a plain `cargo test` runs anywhere the crate
//! builds; `scripts/test.sh` runs them with `--include-ignored`.

mod check_sim;
mod common;
mod config_cli;
mod contain;
mod device_code;
mod docs;
mod e2e;
mod embed_host;
mod faults;
mod fixtures_map;
mod fleet;
mod hostile;
mod page_protocol;
mod recycle;
mod sim;
mod trusted_files;
