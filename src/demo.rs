//! `pbikiosk demo`: the player on the built-in simulator, with no config file and no Microsoft
//! account — the simulator, its HTTPS front door, and a config in memory that points at them.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::config::{self, Config, ConfigError, SecretSources};
use crate::sim::front::{EmbedFront, FrontCert};
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
    /// How the web view comes to trust the front door.
    pub front_trust: FrontTrust,
    /// The memory policy, in units short enough for tests and soaks.
    pub memory: DemoMemory,
    /// Day-parting, for tests and previews: `N=<window>` gives playlist entry N (from 1) a
    /// `when`, `;` between several windows.
    pub when: Vec<String>,
    /// `[display] on` hours, `;` between several windows.
    pub screen_on: Option<String>,
}

/// Memory policy overrides (`[player] memory_*` and what a config file does not set), in
/// seconds where the config speaks minutes: a test must see a recycle within a minute.
#[derive(Clone, Copy, Debug, Default)]
pub struct DemoMemory {
    pub margin_mib: Option<u64>,
    pub baseline_seconds: Option<u64>,
    pub min_interval_seconds: Option<u64>,
    pub sample_seconds: Option<u64>,
}

impl DemoMemory {
    fn apply(&self, m: &mut crate::player::RecycleSettings) {
        use std::time::Duration;
        if let Some(v) = self.margin_mib {
            m.margin_bytes = v * crate::player::MIB;
        }
        if let Some(v) = self.baseline_seconds {
            m.baseline_window = Duration::from_secs(v);
        }
        if let Some(v) = self.min_interval_seconds {
            m.min_interval = Duration::from_secs(v);
        }
        if let Some(v) = self.sample_seconds {
            m.sample_every = Duration::from_secs(v.max(1));
        }
    }
}

/// How the demo's web view comes to trust its `https://app.powerbi.com` front door: directly,
/// or the way a screen behind a company's TLS-inspecting proxy must (tests of `cloud.ca_file`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum FrontTrust {
    /// A self-signed certificate, trusted for that host only.
    #[default]
    Direct,
    /// A certificate signed by a CA made for the run, which the config names as
    /// `cloud.ca_file`.
    CaFile,
    /// A certificate signed by a CA made for the run that nothing trusts.
    Untrusted,
}

/// Why the demo cannot start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DemoError {
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
    #[error("writing the demo's cloud.ca_file or token cache")]
    CaFile(#[source] std::io::Error),
    #[error("writing the demo's auth.client_certificate_file")]
    CertificateFile(#[source] std::io::Error),
    #[error("{0}: write it N=<days> <HH:MM>-<HH:MM>, N a playlist entry from 1")]
    When(String),
}

/// The running demo. The simulator and the front door serve as long as this value lives.
pub(crate) struct Demo {
    // Held, not read: the simulator stops when its handle goes.
    #[cfg_attr(not(test), expect(dead_code))]
    pub(crate) sim: SimHandle,
    pub(crate) front: EmbedFront,
    pub(crate) config: Config,
    /// With [`FrontTrust::CaFile`]: the config's `cloud.ca_file`, removed when the demo ends.
    _ca_file: Option<tempfile::TempPath>,
    /// With a certificate scenario: the folder of the app's certificate file, removed when
    /// the demo ends.
    _certificate_dir: Option<tempfile::TempDir>,
    /// The device-code sign-in's token cache folder, removed when the demo ends: a demo
    /// never leaves a refresh token behind.
    _token_cache: Option<tempfile::TempDir>,
    front_trust: FrontTrust,
}

impl Demo {
    pub(crate) async fn start(opts: &DemoOptions) -> Result<Self, DemoError> {
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
        let cert = match opts.front_trust {
            FrontTrust::Direct => FrontCert::SelfSigned,
            FrontTrust::CaFile | FrontTrust::Untrusted => FrontCert::RunCa,
        };
        let faults = {
            let sim = sim.clone();
            std::sync::Arc::new(move || sim.embed_fault())
        };
        let front = EmbedFront::start_with_faults(sim.router(), DEMO_EMBED_HOST, cert, faults)
            .await
            .map_err(DemoError::Front)?;
        let certificate_dir = match sim.demo_client_certificate() {
            Some((name, pem)) => {
                Some(write_certificate_file(&name, &pem).map_err(DemoError::CertificateFile)?)
            }
            None => None,
        };
        let mut config = demo_config(
            &sim,
            opts.seconds,
            certificate_dir.as_ref().map(|d| d.path()),
        )
        .map_err(DemoError::Config)?;
        opts.memory.apply(&mut config.player.memory);
        apply_hours(&mut config, &opts.when, opts.screen_on.as_deref())?;
        let token_cache = match config.auth.method {
            crate::config::AuthMethod::DeviceCode => {
                let dir = tempfile::Builder::new()
                    .prefix("pbikiosk-demo-cache-")
                    .tempdir()
                    .map_err(DemoError::CaFile)?;
                config.auth.token_cache = Some(dir.path().join("token-cache.json"));
                Some(dir)
            }
            _ => None,
        };
        let ca_file = match (opts.front_trust, &front.ca_pem) {
            (FrontTrust::CaFile, Some(ca)) => {
                let path = write_ca_file(ca).map_err(DemoError::CaFile)?;
                config.cloud.ca_file = Some(path.to_path_buf());
                Some(path)
            }
            _ => None,
        };
        Ok(Self {
            sim,
            front,
            config,
            _ca_file: ca_file,
            _certificate_dir: certificate_dir,
            _token_cache: token_cache,
            front_trust: opts.front_trust,
        })
    }

    /// The certificate the web view trusts for the front door's host directly, if any: with a
    /// run CA it has to come through `cloud.ca_file` like any other inspecting proxy's.
    pub fn direct_trust(&self) -> Option<(String, String)> {
        (self.front_trust == FrontTrust::Direct)
            .then(|| (self.front.host.clone(), self.front.cert_pem.clone()))
    }
}

fn write_ca_file(pem: &str) -> std::io::Result<tempfile::TempPath> {
    use std::io::Write;
    let mut file = tempfile::Builder::new()
        .prefix("pbikiosk-demo-ca-")
        .suffix(".pem")
        .tempfile()?;
    file.write_all(pem.as_bytes())?;
    file.flush()?;
    Ok(file.into_temp_path())
}

/// The app's certificate and key for a certificate scenario, in a folder of its own that only
/// this user may read (the same file checks apply as to an installer's file).
fn write_certificate_file(name: &str, pem: &str) -> std::io::Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("pbikiosk-demo-cert-")
        .tempdir()?;
    let path = dir.path().join(name);
    std::fs::write(&path, pem)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(dir)
}

/// `--when` and `--screen-on`: the same windows a config file takes, on the demo's entries.
fn apply_hours(
    config: &mut Config,
    when: &[String],
    screen_on: Option<&str>,
) -> Result<(), DemoError> {
    use crate::schedule::{Schedule, Window};
    let windows = |text: &str| -> Result<Schedule, DemoError> {
        text.split(';')
            .map(|w| Window::parse(w).map_err(|e| DemoError::When(format!("{w:?}: {e}"))))
            .collect::<Result<Vec<_>, _>>()
            .map(Schedule::new)
    };
    for arg in when {
        let (n, text) = arg
            .split_once('=')
            .ok_or_else(|| DemoError::When(arg.clone()))?;
        let item = n
            .parse::<usize>()
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| config.playlist.get_mut(i))
            .ok_or_else(|| DemoError::When(format!("{arg}: no entry {n}")))?;
        item.when = windows(text)?;
    }
    if let Some(text) = screen_on {
        config.display.on = windows(text)?;
    }
    Ok(())
}

/// The config the simulator writes for its demo account, with the demo's own timing.
/// `certificate_dir` holds the app's certificate file when the scenario signs in with one.
fn demo_config(
    sim: &SimHandle,
    seconds: u32,
    certificate_dir: Option<&Path>,
) -> Result<Config, ConfigError> {
    let user = sim
        .demo_username()
        .unwrap_or_else(|| format!("kiosk@{}", crate::sim::scenario::builtin_ids::TENANT_DOMAIN));
    // In memory only: the simulator's test secrets never touch the disk (a certificate
    // scenario's key file excepted, which the config names relative to its folder).
    let at =
        certificate_dir.map_or_else(|| Path::new("(demo)").to_path_buf(), |d| d.join("(demo)"));
    let mut config = config::parse(&sim.config_snippet(&user), &at, &SecretSources::default())?;
    config.path = Path::new("(demo)").to_path_buf();
    config.auth.permanent_retry = DEMO_PERMANENT_RETRY;
    // Set after validation: a config file takes 5 s and up, the demo allows shorter pages for
    // soak tests and benchmarks.
    for item in &mut config.playlist {
        item.seconds = seconds.max(1);
    }
    // A demo on a desk, or a test run, never turns the real monitor or TV off: its screen hours
    // show the black page only.
    config.display.power.via = crate::screen_power::PowerVia::Black;
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
    async fn the_certificate_scenario_signs_in_with_its_certificate_file() {
        let sim = sim(Scenario::named("certificate").unwrap()).await;
        let (name, pem) = sim.demo_client_certificate().unwrap();
        let dir = write_certificate_file(&name, &pem).unwrap();
        let c = demo_config(&sim, 2, Some(dir.path())).unwrap();
        assert!(
            matches!(
                &c.auth.client,
                crate::auth::ClientCredential::Certificate(_)
            ),
            "{:?}",
            c.auth.client
        );
        assert_eq!(c.path, Path::new("(demo)"));
        // Without its file the config names the missing file.
        let e = demo_config(&sim, 2, None).unwrap_err();
        assert!(e.to_string().contains("client_certificate_file"), "{e}");
    }

    #[tokio::test]
    async fn demo_config_plays_every_report_of_the_demo_account() {
        let sim = sim(Scenario::builtin()).await;
        let c = demo_config(&sim, 2, None).unwrap();
        assert_eq!(c.auth.permanent_retry, Duration::from_secs(60));
        assert_eq!(c.auth.username, format!("kiosk@{TENANT_DOMAIN}"));
        assert_eq!(c.auth.client_id, APP_ID);
        assert_eq!(c.auth.client.secret().unwrap().expose(), APP_SECRET);
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
        assert_eq!(demo_config(&sim, 0, None).unwrap().playlist[0].seconds, 1);
    }

    #[tokio::test]
    async fn a_scenario_twist_reaches_the_config() {
        let sim = sim(Scenario::named("wrong-password").unwrap()).await;
        let c = demo_config(&sim, 8, None).unwrap();
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
            front_trust: FrontTrust::Direct,
            memory: DemoMemory {
                margin_mib: Some(8),
                baseline_seconds: Some(20),
                min_interval_seconds: Some(30),
                sample_seconds: Some(2),
            },
            when: vec!["2=mon-sun 00:00-24:00".into()],
            screen_on: None,
        })
        .await
        .unwrap();
        assert_eq!(
            demo.direct_trust(),
            Some((DEMO_EMBED_HOST.to_owned(), demo.front.cert_pem.clone()))
        );
        assert_eq!(demo.config.cloud.ca_file, None);
        assert!(demo.sim.scenario().faults.token_outage);
        assert_eq!(demo.sim.scenario().token_lifetime_seconds, 60);
        assert_eq!(demo.front.host, DEMO_EMBED_HOST);
        assert_eq!(demo.config.auth.permanent_retry, Duration::from_secs(60));
        assert!(demo.config.playlist.iter().all(|i| i.seconds == 3));
        let m = demo.config.player.memory;
        assert_eq!(m.margin_bytes, 8 * crate::player::MIB);
        assert_eq!(m.baseline_window, Duration::from_secs(20));
        assert_eq!(m.min_interval, Duration::from_secs(30));
        assert_eq!(m.sample_every, Duration::from_secs(2));
    }

    #[tokio::test]
    async fn start_refuses_what_it_cannot_do() {
        let opts = |scenario: Option<&str>, listen: &str| DemoOptions {
            scenario: scenario.map(str::to_owned),
            seconds: 8,
            sim_listen: listen.parse().unwrap(),
            token_lifetime: None,
            front_trust: FrontTrust::Direct,
            memory: DemoMemory::default(),
            when: Vec::new(),
            screen_on: None,
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

    #[tokio::test]
    async fn behind_a_run_ca_the_screen_trusts_only_through_ca_file() {
        let opts = |front_trust| DemoOptions {
            scenario: None,
            seconds: 8,
            sim_listen: "127.0.0.1:0".parse().unwrap(),
            token_lifetime: None,
            front_trust,
            memory: DemoMemory::default(),
            when: Vec::new(),
            screen_on: None,
        };
        let demo = Demo::start(&opts(FrontTrust::CaFile)).await.unwrap();
        assert_eq!(demo.direct_trust(), None);
        let path = demo.config.cloud.ca_file.clone().expect("a ca_file");
        let written = std::fs::read_to_string(&path).unwrap();
        assert_eq!(Some(written), demo.front.ca_pem);
        drop(demo);
        assert!(!path.exists(), "the CA file lives as long as the demo");

        let demo = Demo::start(&opts(FrontTrust::Untrusted)).await.unwrap();
        assert_eq!(demo.direct_trust(), None);
        assert_eq!(demo.config.cloud.ca_file, None);
        assert!(demo.front.ca_pem.is_some());
    }
}
