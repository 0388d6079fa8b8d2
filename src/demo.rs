//! `pbikiosk demo`: the player on the built-in simulator, with no config file and no Microsoft
//! account — the simulator, its HTTPS front door, and a config in memory that points at them.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::config::{self, Config, ConfigError, SecretSources};
use crate::sim::front::EmbedFront;
use crate::sim::{Scenario, ScenarioArgError, SimHandle, Simulator};

/// The host the demo's front door impersonates; the simulator's embed URLs point at it.
pub const DEMO_EMBED_HOST: &str = "app.powerbi.com";

/// A preview retries a refused sign-in every minute (not the file's default 15) so that a
/// scenario changed through `/_sim/control` shows its effect soon.
const DEMO_PERMANENT_RETRY: Duration = Duration::from_secs(60);

pub struct DemoOptions {
    /// A built-in problem scenario (mfa, federated, outage...) or a scenario file; `None` =
    /// everything works.
    pub scenario: Option<String>,
    /// Seconds per report page.
    pub seconds: u32,
    /// Where the simulator listens (its `/_sim/control` lets tests and previews change the
    /// scenario while the player runs).
    pub sim_listen: SocketAddr,
    /// Access token lifetime, to watch refreshes happen.
    pub token_lifetime: Option<u64>,
}

/// Why the demo cannot start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Scenario(#[from] ScenarioArgError),
    #[error("--sim-listen {0}: the simulator only listens on loopback")]
    NotLoopback(SocketAddr),
    #[error("starting the simulator")]
    Simulator(#[source] std::io::Error),
    #[error("starting the demo's https front door")]
    Front(#[source] std::io::Error),
    #[error("demo config: {0}")]
    Config(ConfigError),
}

/// The running demo. The simulator and the front door serve as long as this value lives.
pub struct Demo {
    pub sim: SimHandle,
    pub front: EmbedFront,
    pub config: Config,
}

impl Demo {
    pub async fn start(opts: &DemoOptions) -> Result<Self, DemoError> {
        let mut scenario = Scenario::from_arg(opts.scenario.as_deref())?;
        if let Some(t) = opts.token_lifetime {
            scenario.token_lifetime_seconds = t;
        }
        if !opts.sim_listen.ip().is_loopback() {
            return Err(DemoError::NotLoopback(opts.sim_listen));
        }
        let sim = Simulator::start(scenario, opts.sim_listen)
            .await
            .map_err(DemoError::Simulator)?;
        tracing::info!(url = %sim.base_url(), "demo simulator (POST /_sim/control to change the scenario)");
        let faults = {
            let sim = sim.clone();
            std::sync::Arc::new(move || sim.embed_fault())
        };
        let front = EmbedFront::start_with_faults(sim.router(), DEMO_EMBED_HOST, faults)
            .await
            .map_err(DemoError::Front)?;
        let config = demo_config(&sim, opts.seconds).map_err(DemoError::Config)?;
        Ok(Self { sim, front, config })
    }
}

/// The config the simulator writes for its demo account, with the demo's own timing.
fn demo_config(sim: &SimHandle, seconds: u32) -> Result<Config, ConfigError> {
    let user = sim
        .demo_username()
        .unwrap_or_else(|| format!("kiosk@{}", crate::sim::scenario::builtin_ids::TENANT_DOMAIN));
    // In memory only: the simulator's test secrets never touch the disk.
    let mut config = config::parse(
        &sim.config_snippet(&user),
        Path::new("(demo)"),
        &SecretSources::default(),
    )?;
    config.auth.permanent_retry = DEMO_PERMANENT_RETRY;
    // Set after validation: a config file takes 5 s and up, the demo allows shorter pages for
    // soak tests and benchmarks.
    for item in &mut config.playlist {
        item.seconds = seconds.max(1);
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::ContentKind;
    use crate::sim::scenario::builtin_ids::*;

    async fn sim(scenario: Scenario) -> SimHandle {
        Simulator::start(scenario, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn demo_config_plays_every_report_of_the_demo_account() {
        let sim = sim(Scenario::builtin()).await;
        let c = demo_config(&sim, 2).unwrap();
        assert_eq!(c.auth.permanent_retry, Duration::from_secs(60));
        assert_eq!(c.auth.username, format!("kiosk@{TENANT_DOMAIN}"));
        assert_eq!(c.auth.client_id, APP_ID);
        assert_eq!(c.auth.client_secret.expose(), APP_SECRET);
        assert_eq!(c.auth.password.expose(), PASSWORD);
        assert_eq!(c.cloud.api.as_str(), format!("{}/", sim.base_url()));
        assert_eq!(c.cloud.authority.as_str(), format!("{}/", sim.base_url()));
        assert_eq!(c.path, Path::new("(demo)"));
        let reports: Vec<(&str, ContentKind, &str)> = c
            .playlist
            .iter()
            .map(|i| (i.workspace.as_str(), i.kind, i.id.as_str()))
            .collect();
        assert_eq!(
            reports,
            [
                (WS_SALES, ContentKind::Report, REPORT_SALES),
                (WS_OPERATIONS, ContentKind::Report, REPORT_OPERATIONS),
                (WS_SERVICE, ContentKind::Report, REPORT_SERVICE),
            ]
        );
        assert!(
            c.playlist.iter().all(|i| i.seconds == 2),
            "below a file's 5"
        );
        assert_eq!(demo_config(&sim, 0).unwrap().playlist[0].seconds, 1);
    }

    #[tokio::test]
    async fn a_scenario_twist_reaches_the_config() {
        let sim = sim(Scenario::named("wrong-password").unwrap()).await;
        let c = demo_config(&sim, 8).unwrap();
        assert_ne!(c.auth.password.expose(), PASSWORD);
        assert!(c.playlist.iter().all(|i| i.seconds == 8));
    }

    #[tokio::test]
    async fn start_serves_the_simulator_and_the_front_door() {
        let demo = Demo::start(&DemoOptions {
            scenario: Some("outage".into()),
            seconds: 3,
            sim_listen: "127.0.0.1:0".parse().unwrap(),
            token_lifetime: Some(60),
        })
        .await
        .unwrap();
        assert!(demo.sim.scenario().faults.token_outage);
        assert_eq!(demo.sim.scenario().token_lifetime_seconds, 60);
        assert_eq!(demo.front.host, DEMO_EMBED_HOST);
        assert_eq!(demo.config.auth.permanent_retry, Duration::from_secs(60));
        assert!(demo.config.playlist.iter().all(|i| i.seconds == 3));
    }

    #[tokio::test]
    async fn start_refuses_what_it_cannot_do() {
        let opts = |scenario: Option<&str>, listen: &str| DemoOptions {
            scenario: scenario.map(str::to_owned),
            seconds: 8,
            sim_listen: listen.parse().unwrap(),
            token_lifetime: None,
        };
        let e = Demo::start(&opts(None, "0.0.0.0:0")).await.err().unwrap();
        assert_eq!(
            e.to_string(),
            "--sim-listen 0.0.0.0:0: the simulator only listens on loopback"
        );
        let e = Demo::start(&opts(Some("no-such-scenario"), "127.0.0.1:0"))
            .await
            .err()
            .unwrap();
        assert!(matches!(e, DemoError::Scenario(_)), "{e:?}");
    }
}
