//! The integration tests, one binary: each module used to be a test crate of its own, and
//! every one of them linked the whole WebKit-heavy library again.
//!
//! The GUI tests (`e2e`, `embed_host`, `faults`, and `monitoring`'s ignored one) need Xvfb, ImageMagick's `import` and the built page
//! (`web/vendor/`), so they are `#[ignore]`d and a plain `cargo test` runs anywhere the crate
//! builds; `scripts/test.sh` runs them with `--include-ignored`.

mod boot_import;
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
mod hotplug;
mod manpage;
mod monitoring;
mod page_protocol;
mod proxy;
mod recycle;
mod screen_power;
mod setup;
mod sim;
mod test_proxy;
mod trusted_files;
