//! `pbikiosk check` and `pbikiosk reports`, the real binary, against the in-process simulator.

use std::path::PathBuf;
use std::process::{Command, Output};

use pbikiosk::sim::front::{EmbedFront, FrontCert};
use pbikiosk::sim::scenario::EmbedFault;
use pbikiosk::sim::scenario::builtin_ids as ids;
use pbikiosk::sim::{Scenario, SimHandle, Simulator};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
    fn problems(&self) -> Vec<String> {
        self.json()["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    }
}

fn run_env(args: &[&str], config: &PathBuf, env: &[(&str, String)]) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(env!("CARGO_BIN_EXE_pbikiosk"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "trace")
        .env_remove("PBIKIOSK_PASSWORD")
        .env_remove("PBIKIOSK_CLIENT_SECRET")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Write a config for `user` (as the simulator prints it), edited by `edit`.
fn config(
    sim: &SimHandle,
    user: &str,
    dir: &tempfile::TempDir,
    edit: impl Fn(String) -> String,
) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.path().join(format!("{}.toml", rand_name()));
    std::fs::write(&path, edit(sim.config_snippet(user))).unwrap();
    // The file holds (test) secrets: pbikiosk refuses it if others can read it.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    // A certificate scenario's config names the app's certificate file next to it.
    if let Some((name, pem)) = sim.demo_client_certificate() {
        let cert = dir.path().join(name);
        std::fs::write(&cert, pem).unwrap();
        std::fs::set_permissions(&cert, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    path
}

fn rand_name() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("c{}", N.fetch_add(1, Ordering::Relaxed))
}

fn good_user() -> String {
    format!("kiosk@{}", ids::TENANT_DOMAIN)
}

async fn sim(s: Scenario) -> SimHandle {
    Simulator::start(s, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// `check` blocks; run it off the runtime that serves the simulator.
async fn check(args: &'static [&'static str], cfg: PathBuf) -> Run {
    check_env(args, cfg, Vec::new()).await
}

async fn check_env(
    args: &'static [&'static str],
    cfg: PathBuf,
    env: Vec<(&'static str, String)>,
) -> Run {
    tokio::task::spawn_blocking(move || run_env(args, &cfg, &env))
        .await
        .unwrap()
}

/// The report data cluster the simulator's embed URLs name in their `config` parameter.
const CLUSTER: &str = "wabi-north-europe-redirect.analysis.windows.net";
/// Microsoft's CDN, which `check` probes for public-cloud embeds.
const CDN: &str = "content.powerapps.com";

/// The simulator's HTTPS front door standing in for `app.powerbi.com` (where the simulator's
/// embed URLs point), failing as the simulator's `embed_fault` says, and for the report's
/// content hosts (its cluster, the CDN), which do not fail unless a test says so. `check`
/// probes these hosts once items resolve; through this door the probes stay on loopback, as
/// every test's must (this machine has no network, and tests never try Microsoft's real hosts).
struct Front {
    door: EmbedFront,
    /// The door's CA (PEM), for `cloud.ca_file`.
    ca: PathBuf,
}

async fn front(sim: &SimHandle, dir: &tempfile::TempDir) -> Front {
    front_failing(sim, dir, &[]).await
}

/// [`front`], with `faults` for the content hosts named there.
async fn front_failing(
    sim: &SimHandle,
    dir: &tempfile::TempDir,
    faults: &[(&'static str, EmbedFault)],
) -> Front {
    let faults = {
        let sim = sim.clone();
        let faults = faults.to_vec();
        std::sync::Arc::new(move |host: &str| {
            if host == "app.powerbi.com" {
                return sim.embed_fault();
            }
            faults
                .iter()
                .find(|(h, _)| *h == host)
                .map_or(EmbedFault::None, |(_, f)| *f)
        })
    };
    let door = EmbedFront::start_for_hosts(
        sim.router(),
        &["app.powerbi.com", CLUSTER, CDN],
        FrontCert::RunCa,
        faults,
    )
    .await
    .unwrap();
    let ca = dir.path().join(format!("{}-ca.pem", rand_name()));
    std::fs::write(&ca, door.ca_pem.as_deref().unwrap()).unwrap();
    Front { door, ca }
}

impl Front {
    /// The environment that sends the web view's way out (and reqwest's https) to the door.
    fn env(&self) -> Vec<(&'static str, String)> {
        let proxy = format!("http://{}", self.door.proxy);
        vec![
            ("https_proxy", proxy.clone()),
            ("HTTPS_PROXY", proxy),
            ("NO_PROXY", String::new()),
            ("no_proxy", String::new()),
        ]
    }

    /// `config` with the door's CA as `cloud.ca_file`.
    fn trusted(&self, config: String) -> String {
        let ca = self.ca.to_str().unwrap();
        assert!(config.contains("[cloud]\n"), "{config}");
        config.replace("[cloud]\n", &format!("[cloud]\nca_file = {ca:?}\n"))
    }

    /// Write a config for `user` that trusts the door, edited by `edit`.
    fn config(
        &self,
        sim: &SimHandle,
        user: &str,
        dir: &tempfile::TempDir,
        edit: impl Fn(String) -> String,
    ) -> PathBuf {
        config(sim, user, dir, |s| self.trusted(edit(s)))
    }

    /// `check` with the embed host behind the door.
    async fn check(&self, args: &'static [&'static str], cfg: PathBuf) -> Run {
        check_env(args, cfg, self.env()).await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn good_account_names_every_item_and_page() {
    let sim = sim(Scenario::builtin()).await;
    let dir = tempfile::tempdir().unwrap();
    let front = front(&sim, &dir).await;
    let cfg = front.config(&sim, &good_user(), &dir, |s| s);
    let r = front.check(&["check"], cfg.clone()).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    for text in [
        "All checks passed",
        "playlist[1]",
        "Sales Overview",
        "Summary, By Region, By Product, Trends",
        "Operations",
        "Customer Service",
        "Tickets, Satisfaction, Agents",
    ] {
        assert!(r.stdout.contains(text), "missing {text:?} in\n{}", r.stdout);
    }
    let j = front.check(&["check", "--json"], cfg.clone()).await;
    assert_eq!(j.code, 0);
    let v = j.json();
    assert_eq!(v["ok"], true);
    assert_eq!(v["problems"], serde_json::json!([]));
    let names: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "config",
            "screen power",
            "account type",
            "sign-in",
            "power bi",
            "playlist[1]",
            "playlist[2]",
            "playlist[3]",
            "sign-in host",
            "api host",
            "embed host",
            "cluster host",
            "content host"
        ]
    );
    // The screen power line names a means, or warns without failing the check (a machine
    // with no CEC adapter and no DDC bus, like a test machine, is blacked out only).
    let screen = &v["checks"][1];
    assert_eq!(screen["ok"], true, "{screen}");
    let message = screen["message"].as_str().unwrap();
    assert!(
        message.starts_with("HDMI-CEC ")
            || message.starts_with("DDC/CI ")
            || (message.ends_with("the screen is blacked out but stays lit out of hours")
                && screen["fix"].as_str().unwrap().contains("vc4-kms-v3d")),
        "{screen}"
    );
    // reports --toml gives a playlist that check accepts as is.
    let listing = front.check(&["reports", "--toml"], cfg.clone()).await;
    assert_eq!(listing.code, 0, "{}", listing.stdout);
    assert!(
        listing
            .stdout
            .contains(&format!("report = \"{}\"", ids::REPORT_SALES))
    );
    assert!(
        listing
            .stdout
            .contains(&format!("dashboard = \"{}\"", ids::DASHBOARD_EXEC))
    );
    let auth_part: String = std::fs::read_to_string(&cfg)
        .unwrap()
        .split("[[playlist]]")
        .next()
        .unwrap()
        .to_owned();
    // auth_part already trusts the door's CA.
    let cfg2 = config(&sim, &good_user(), &dir, |_| {
        format!("{auth_part}\n{}", listing.stdout)
    });
    let again = front.check(&["check", "--json"], cfg2).await;
    assert_eq!(again.code, 0, "{}", again.stdout);
    let n = again.json()["checks"].as_array().unwrap().len();
    // Five base checks (config, screen power, account type, sign-in, power bi), the three
    // visible reports and the dashboard, then the hosts: sign-in, API, their one embed host,
    // its cluster and the CDN.
    assert_eq!(
        n,
        5 + 4 + 5,
        "every report and the dashboard: {}",
        again.stdout
    );
}

/// `[display] power_via` and `cec_device` reach `check`'s screen power line: the black page
/// said as chosen, a CEC adapter that is not there named with its path. Neither fails the check.
#[tokio::test(flavor = "multi_thread")]
async fn check_says_how_the_screen_is_turned_off() {
    let sim = sim(Scenario::builtin()).await;
    let dir = tempfile::tempdir().unwrap();
    let front = front(&sim, &dir).await;
    let screen_line = |v: &serde_json::Value| {
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "screen power")
            .cloned()
            .unwrap_or_else(|| panic!("no screen power line: {v}"))
    };
    let cfg = front.config(&sim, &good_user(), &dir, |s| {
        format!("{s}\n[display]\npower_via = \"black\"\n")
    });
    let r = front.check(&["check", "--json"], cfg).await;
    assert_eq!(r.code, 0, "{}", r.stdout);
    let line = screen_line(&r.json());
    assert_eq!(line["ok"], true);
    assert_eq!(
        line["message"],
        "[display] power_via = \"black\": off hours show a black page"
    );
    assert!(line.get("fix").is_none(), "{line}");

    let cfg = front.config(&sim, &good_user(), &dir, |s| {
        format!("{s}\n[display]\npower_via = \"cec\"\ncec_device = \"/dev/cec9\"\n")
    });
    let r = front.check(&["check", "--json"], cfg).await;
    assert_eq!(r.code, 0, "a warning, not a failure: {}", r.stdout);
    let line = screen_line(&r.json());
    assert_eq!(line["ok"], true);
    assert_eq!(
        line["message"],
        "/dev/cec9: no such device: the screen is blacked out but stays lit out of hours"
    );
    assert!(line["fix"].as_str().unwrap().contains("Anynet+"), "{line}");
}

/// Each scripted bad account or app yields its problem id, with a cause and a fix.
#[tokio::test(flavor = "multi_thread")]
async fn every_bad_scenario_yields_its_problem() {
    let cases = [
        ("mfa", "mfa_required"),
        ("federated", "federated_account"),
        ("wrong-password", "invalid_credentials"),
        ("locked", "account_locked"),
        ("password-expired", "password_expired"),
        ("disabled", "account_disabled"),
        ("conditional-access", "conditional_access"),
        ("expired-secret", "client_secret_expired"),
        ("consent-required", "consent_required"),
        ("no-licence", "no_powerbi_access"),
        ("certificate-expired", "client_certificate_expired"),
        (
            "certificate-unregistered",
            "client_certificate_not_registered",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut runs = Vec::new();
    for (name, want) in cases {
        let scenario = Scenario::named(name).unwrap_or_else(|| panic!("scenario {name}"));
        let sim = sim(scenario).await;
        let front = front(&sim, &dir).await;
        let user = sim.demo_username().unwrap();
        let cfg = front.config(&sim, &user, &dir, |s| s);
        runs.push((
            name,
            want,
            sim,
            tokio::spawn(async move { front.check(&["check", "--json"], cfg).await }),
        ));
    }
    for (name, want, sim, task) in runs {
        let r = task.await.unwrap();
        assert_eq!(r.code, 1, "{name}: {}", r.stdout);
        assert_eq!(r.problems(), vec![want.to_owned()], "{name}: {}", r.stdout);
        let json = r.json();
        let failed: Vec<&serde_json::Value> = json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["ok"] == false)
            .collect();
        assert_eq!(failed.len(), 1, "{name}");
        assert!(failed[0]["message"].as_str().unwrap().len() > 20, "{name}");
        assert!(failed[0]["fix"].as_str().unwrap().len() > 20, "{name}");
        // An expired certificate is refused before anything is sent: Microsoft said nothing.
        if want == "client_certificate_expired" {
            assert_eq!(sim.stats().token_requests, 0, "{name}: sent anyway");
        } else if want != "federated_account" && want != "no_powerbi_access" {
            assert!(
                failed[0]["aadsts"][0].as_u64().is_some(),
                "{name}: {}",
                r.stdout
            );
            assert!(failed[0]["trace_id"].as_str().is_some(), "{name}");
        }
        if name == "federated" {
            // Recognised before the password was sent.
            assert_eq!(
                sim.stats().token_requests,
                0,
                "federated sent a token request"
            );
            assert_eq!(sim.stats().userrealm_requests, 1);
        }
    }
}

/// Mistakes in the config the installer typed, found by Microsoft's answers.
#[tokio::test(flavor = "multi_thread")]
async fn wrong_ids_and_secrets_are_named() {
    let sim = sim(Scenario::builtin()).await;
    let dir = tempfile::tempdir().unwrap();
    let front = front(&sim, &dir).await;
    let user = good_user();
    type Edit = Box<dyn Fn(String) -> String>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "invalid_client_secret",
            Box::new(|s: String| s.replace(ids::APP_SECRET, "wrong-secret-value")),
        ),
        (
            "app_not_found",
            Box::new(|s: String| s.replace(ids::APP_ID, "0e0e0e0e-0000-4000-8000-000000000000")),
        ),
        (
            "tenant_not_found",
            Box::new(|s: String| {
                s.replace(
                    &format!("tenant = \"{}\"", ids::TENANT_DOMAIN),
                    "tenant = \"nosuch.onmicrosoft.com\"",
                )
            }),
        ),
        (
            "report_not_found",
            Box::new(|s: String| {
                s.replace(ids::REPORT_SALES, "0f0f0f0f-0000-4000-8000-000000000000")
            }),
        ),
        (
            "report_not_found",
            Box::new(|s: String| {
                s.replacen("[[playlist]]", "[[playlist]]\npages = [\"NoSuchPage\"]", 1)
            }),
        ),
        (
            "report_not_found",
            Box::new(|s: String| s.replacen(ids::WS_SALES, ids::WS_FINANCE, 1)),
        ),
    ];
    for (want, edit) in cases {
        let cfg = front.config(&sim, &user, &dir, edit);
        let r = front.check(&["check", "--json"], cfg).await;
        assert_eq!(r.code, 1, "{want}: {}", r.stdout);
        assert_eq!(r.problems(), vec![want.to_owned()], "{}", r.stdout);
    }
}

/// Transient trouble: check gives up within its budget and says what it saw.
#[tokio::test(flavor = "multi_thread")]
async fn outages_are_reported_within_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    for (name, want) in [
        ("outage", "service_unavailable"),
        ("throttled", "throttled"),
    ] {
        let sim = sim(Scenario::named(name).unwrap()).await;
        let front = front(&sim, &dir).await;
        let cfg = front.config(&sim, &sim.demo_username().unwrap(), &dir, |s| s);
        let t = std::time::Instant::now();
        let r = front.check(&["check", "--json"], cfg).await;
        let took = t.elapsed();
        assert_eq!(r.problems(), vec![want.to_owned()], "{name}: {}", r.stdout);
        assert!(took.as_secs() <= 40, "{name} took {took:?}");
        // It retried, but not in a tight loop.
        // It may retry (or not, when Retry-After outlasts the budget), never in a tight loop.
        let n = sim.stats().token_requests;
        assert!((1..=12).contains(&n), "{name}: {n} token requests");
    }
    // Nothing listening at all.
    let sim = sim(Scenario::builtin()).await;
    let cfg = config(&sim, &good_user(), &dir, |s| {
        s.replace(&sim.base_url(), "http://127.0.0.1:9")
    });
    let r = check(&["check", "--json"], cfg).await;
    assert!(r.problems() == vec!["network".to_owned()], "{}", r.stdout);
}

/// Sign-in, or the API, fails for a network reason: a line for its host names the stage it
/// stopped at, keeping the step's problem id.
#[tokio::test(flavor = "multi_thread")]
async fn a_host_out_of_reach_is_named_with_its_stage() {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim(Scenario::builtin()).await;
    // A closed port on loopback: the connection is refused.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = config(&sim, &good_user(), &dir, |s| {
        s.replace(&sim.base_url(), &format!("https://127.0.0.1:{port}/"))
    });
    // Sign-in retries network trouble for the whole budget: a short one keeps the test quick.
    let short = &["check", "--json", "--budget-secs", "3"];
    let r = check(short, cfg).await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.problems(), vec!["network".to_owned()], "{}", r.stdout);
    let (l, msg) = line(&r, "sign-in host");
    assert_eq!(l["ok"], false);
    assert_eq!(l["problem"], "network");
    assert_eq!(
        msg,
        "127.0.0.1:".to_owned() + &port.to_string() + ": the connection to 127.0.0.1 was refused."
    );
    assert!(
        l["fix"].as_str().unwrap().contains("firewall"),
        "{}",
        r.stdout
    );

    // The API host alone out of reach: sign-in passed, and says so, and the API's line names
    // the stage.
    let cfg = config(&sim, &good_user(), &dir, |s| {
        let api = format!("api = \"{}", sim.base_url());
        assert!(s.contains(&api), "{s}");
        s.replace(&api, &format!("api = \"https://127.0.0.1:{port}/"))
    });
    let r = check(short, cfg).await;
    // The power bi step retries until the budget is gone, and says only that Microsoft did not
    // answer: the api host's line, under the same id, says where it stopped.
    let (api_step, _) = line(&r, "power bi");
    assert_eq!(r.problems().len(), 1, "{}", r.stdout);
    assert_eq!(api_step["problem"], r.problems()[0].as_str());
    let (signin, _) = line(&r, "sign-in host");
    assert_eq!(signin["ok"], true, "{}", r.stdout);
    let (l, msg) = line(&r, "api host");
    assert_eq!(l["problem"], api_step["problem"]);
    assert!(
        msg.ends_with("the connection to 127.0.0.1 was refused."),
        "{msg}"
    );

    // Behind an inspecting proxy whose CA is not in cloud.ca_file: the TLS stage.
    let front = front(&sim, &dir).await;
    let base = sim.base_url().trim_end_matches('/').to_owned();
    let cfg = config(&sim, &good_user(), &dir, |s| {
        s.replace(&base, "https://app.powerbi.com")
    });
    let r = front.check(short, cfg).await;
    assert_eq!(r.problems(), vec!["tls".to_owned()], "{}", r.stdout);
    let (l, msg) = line(&r, "sign-in host");
    assert_eq!(l["problem"], "tls");
    assert!(
        msg.starts_with(
            "app.powerbi.com: the certificate presented for app.powerbi.com is not trusted"
        ),
        "{msg}"
    );
    assert!(
        l["fix"].as_str().unwrap().contains("cloud.ca_file"),
        "{msg}"
    );
}

/// Every scenario, run with distinctive secrets: none of them, and no token, appears in any
/// output, with logging at its most verbose.
#[tokio::test(flavor = "multi_thread")]
async fn no_secret_or_token_in_any_output() {
    let dir = tempfile::tempdir().unwrap();
    let mut secrets = Vec::new();
    let mut outputs = Vec::new();
    // A status endpoint open to the LAN with its bearer token: `check` reads it with the
    // config, and `screenshot` sends it (to a port where no player listens).
    let status_token = "STx-Distinctive-Status-Token-5e9d";
    secrets.push(status_token.to_owned());
    let token_file = dir.path().join("status-token");
    std::fs::write(&token_file, status_token).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let no_player = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let status_section = format!(
        "\n[status]\nlisten = \"0.0.0.0:{no_player}\"\ntoken_file = \"{}\"\ntextfile = \"{}\"\n",
        token_file.display(),
        dir.path().join("pbikiosk.prom").display()
    );
    let shot: &'static str = Box::leak(
        dir.path()
            .join("shot.png")
            .to_str()
            .unwrap()
            .to_owned()
            .into_boxed_str(),
    );
    for (i, name) in pbikiosk::sim::scenario::NAMES.iter().enumerate() {
        if matches!(*name, "outage" | "throttled") {
            continue; // covered above; slow by design
        }
        let mut s = Scenario::named(name).unwrap();
        for (j, app) in s.apps.iter_mut().enumerate() {
            app.secret = format!("CSx{i}x{j}-Distinctive~Secret-7f3a");
            secrets.push(app.secret.clone());
        }
        for (j, acc) in s.accounts.iter_mut().enumerate() {
            acc.password = format!("PWx{i}x{j}-Distinctive!Pass-91c2");
            secrets.push(acc.password.clone());
        }
        if let Some(d) = &mut s.demo {
            d.password = None;
            // The private key of a certificate scenario: any line of its body, or its marker.
            if let Some(pem) = &d.client_certificate {
                let key = &pem[pem.find("-----BEGIN PRIVATE KEY-----").unwrap()..];
                secrets.extend(key.lines().skip(1).take(3).map(str::to_owned));
                secrets.push("PRIVATE KEY".to_owned());
            }
        }
        let sim = sim(s).await;
        let front = front(&sim, &dir).await;
        let user = sim.demo_username().unwrap();
        let cfg = front.config(&sim, &user, &dir, |s| s + &status_section);
        for args in [
            &["check"][..],
            &["check", "--json"],
            &["reports"],
            &["reports", "--json"],
            &["-vv", "check"],
            &["-vv", "screenshot", shot],
        ] {
            let args: &'static [&'static str] = Box::leak(args.to_vec().into_boxed_slice());
            let r = front.check(args, cfg.clone()).await;
            // The config (with its [status] token) was taken, not refused.
            if args.contains(&"check") {
                assert_ne!(r.code, 2, "{name}: {}", r.stdout);
            }
            outputs.push((name.to_string(), r.stdout, r.stderr));
        }
    }
    assert!(secrets.len() > 20);
    for (name, out, err) in &outputs {
        for s in &secrets {
            assert!(!out.contains(s.as_str()), "{name}: secret in stdout");
            assert!(!err.contains(s.as_str()), "{name}: secret in stderr");
        }
        // The simulator's tokens are JWTs (header.payload.signature); its embed tokens
        // (service principal scenarios) start like Power BI's, base64 gzip.
        assert!(!has_jwt(out) && !has_jwt(err), "{name}: token in output");
        assert!(
            !out.contains("H4sI") && !err.contains("H4sI"),
            "{name}: embed token in output"
        );
    }
    // The screenshot runs did try the endpoint (and found no player there).
    assert!(
        outputs
            .iter()
            .any(|(_, _, e)| e.contains("no answer from the player's status endpoint")),
        "{:?}",
        outputs.last()
    );
    // The verbose runs did log something, so the sweep looked at real logs.
    assert!(
        outputs
            .iter()
            .any(|(_, _, e)| e.contains("DEBUG") || e.contains("TRACE"))
    );
}

/// Does `text` contain something shaped like a JWT: `eyJ<b64url>.<b64url>.`?
pub(crate) fn has_jwt(text: &str) -> bool {
    let b64 = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    text.match_indices("eyJ").any(|(i, _)| {
        let rest = &text[i..];
        let mut parts = rest.split('.');
        let (Some(a), Some(b)) = (parts.next(), parts.next()) else {
            return false;
        };
        a.len() > 10
            && a.chars().all(b64)
            && b.len() > 10
            && b.chars().take_while(|c| *c != '.').all(b64)
            && parts.next().is_some()
    })
}

#[test]
fn jwt_detector_finds_tokens_and_not_embed_configs() {
    assert!(has_jwt(
        "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.c2lnbmF0dXJl x"
    ));
    assert!(!has_jwt(
        "reportEmbed?w=2&config=eyJjbHVzdGVyVXJsIjoiaHR0cHM6Ly9XQ"
    ));
}

/// Behind a TLS-inspecting proxy (the simulator's front door, its leaf signed by a CA made for
/// the run), `check` passes when `cloud.ca_file` names that CA, and fails on TLS without it.
#[tokio::test(flavor = "multi_thread")]
async fn check_trusts_ca_file_behind_an_inspecting_proxy() {
    let sim = sim(Scenario::builtin()).await;
    let dir = tempfile::tempdir().unwrap();
    let front = front(&sim, &dir).await;
    // Everything through the front door: it serves the simulator as https://app.powerbi.com.
    let base = sim.base_url().trim_end_matches('/').to_owned();
    let through_front = |s: String| s.replace(&base, "https://app.powerbi.com");
    let with_ca = front.config(&sim, &good_user(), &dir, through_front);
    let without = config(&sim, &good_user(), &dir, through_front);
    assert!(
        std::fs::read_to_string(&with_ca)
            .unwrap()
            .contains("ca_file")
    );
    // reqwest takes the proxy from the environment, as on a device behind one.
    let ok = front.check(&["check", "--json"], with_ca).await;
    assert_eq!(ok.code, 0, "{}\n{}", ok.stdout, ok.stderr);
    assert_eq!(ok.json()["ok"], true, "{}", ok.stdout);
    let refused = front.check(&["check", "--json"], without).await;
    assert_ne!(refused.code, 0, "{}", refused.stdout);
    assert!(
        refused.problems().contains(&"tls".to_owned()),
        "{}\n{}",
        refused.stdout,
        refused.stderr
    );
}

/// The `embed host` lines of a `check --json` run.
fn reach_lines(r: &Run) -> Vec<serde_json::Value> {
    lines_named(r, "embed host")
}

/// The lines of a `check --json` run named `name`.
fn lines_named(r: &Run, name: &str) -> Vec<serde_json::Value> {
    r.json()["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == name)
        .cloned()
        .collect()
}

/// The one line named `name`, and its message.
fn line(r: &Run, name: &str) -> (serde_json::Value, String) {
    let lines = lines_named(r, name);
    assert_eq!(lines.len(), 1, "{name}: {}", r.stdout);
    let msg = lines[0]["message"].as_str().unwrap().to_owned();
    (lines[0].clone(), msg)
}

/// Every host a screen must reach gets a line: sign-in and API as the steps above reached them,
/// and the web view's hosts (the embed host, the cluster named in the embed URL's `config`, the
/// CDN) probed through the proxy, trusting `cloud.ca_file`.
#[tokio::test(flavor = "multi_thread")]
async fn check_names_every_host_a_screen_must_reach() {
    let sim = sim(Scenario::builtin()).await;
    let dir = tempfile::tempdir().unwrap();
    let front = front(&sim, &dir).await;
    let cfg = front.config(&sim, &good_user(), &dir, |s| s);
    let r = front.check(&["check", "--json"], cfg.clone()).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    // The simulator is plain HTTP on loopback, and https_proxy does not apply to it.
    let sim_host = sim
        .base_url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let (_, signin) = line(&r, "sign-in host");
    assert_eq!(
        signin,
        format!("{sim_host}: reached by the sign-in above (direct, plain HTTP)")
    );
    let (_, api) = line(&r, "api host");
    assert_eq!(
        api,
        format!("{sim_host}: reached by the power bi step above (direct, plain HTTP)")
    );
    let proxy = front.door.proxy;
    for (name, host) in [
        ("embed host", "app.powerbi.com"),
        ("cluster host", CLUSTER),
        ("content host", CDN),
    ] {
        let (l, msg) = line(&r, name);
        assert_eq!(l["ok"], true, "{name}");
        assert_eq!(
            msg,
            format!("{host}: reachable (through proxy {proxy}, TLS ok)")
        );
    }
    let text = front.check(&["check"], cfg).await;
    assert_eq!(text.code, 0, "{}", text.stdout);
    assert!(
        text.stdout
            .contains(&format!("ok    cluster host  {CLUSTER}: reachable")),
        "{}",
        text.stdout
    );
}

/// The proxy blocks the report's data cluster but lets the embed host through: `check` fails on
/// the cluster's line, naming it and the proxy's answer, while the embed host passes.
#[tokio::test(flavor = "multi_thread")]
async fn a_blocked_cluster_host_fails_check_while_the_embed_host_passes() {
    let sim = sim(Scenario::builtin()).await;
    let dir = tempfile::tempdir().unwrap();
    let front = front_failing(&sim, &dir, &[(CLUSTER, EmbedFault::Refuse)]).await;
    let cfg = front.config(&sim, &good_user(), &dir, |s| s);
    let r = front.check(&["check", "--json"], cfg.clone()).await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.problems(), vec!["embed_unreachable".to_owned()]);
    let (embed, _) = line(&r, "embed host");
    assert_eq!(embed["ok"], true, "{}", r.stdout);
    let (content, _) = line(&r, "content host");
    assert_eq!(content["ok"], true, "{}", r.stdout);
    let (cluster, msg) = line(&r, "cluster host");
    assert_eq!(cluster["ok"], false);
    assert_eq!(cluster["problem"], "embed_unreachable");
    assert!(msg.contains(CLUSTER), "{msg}");
    assert!(msg.contains("502 Bad Gateway"), "{msg}");
    let fix = cluster["fix"].as_str().unwrap();
    assert!(fix.contains(&front.door.proxy.to_string()), "{fix}");
    assert!(fix.contains("*.analysis.windows.net"), "{fix}");
    let text = front.check(&["check"], cfg).await;
    assert_eq!(text.code, 1);
    assert!(
        text.stdout.contains("FAIL  cluster host"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("ok    embed host"), "{}", text.stdout);
}

/// Every web-view host hangs once its tunnel opens: the probes run at once and end with
/// `check`'s budget, each line saying where it timed out.
#[tokio::test(flavor = "multi_thread")]
async fn hanging_hosts_are_named_within_the_budget() {
    let sim = sim(Scenario::named("embed-hang").unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    let hang = [(CLUSTER, EmbedFault::Hang), (CDN, EmbedFault::Hang)];
    let front = front_failing(&sim, &dir, &hang).await;
    let cfg = front.config(&sim, &sim.demo_username().unwrap(), &dir, |s| s);
    let budget = 4;
    let started = std::time::Instant::now();
    let r = front
        .check(&["check", "--json", "--budget-secs", "4"], cfg)
        .await;
    let took = started.elapsed();
    println!("three hanging hosts: check took {took:?} with a {budget} s budget");
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.problems(), vec!["embed_unreachable".to_owned()]);
    // Within the budget, with a margin for starting the process on a busy machine (probed one
    // after the other, with a full stage limit each, they took 3 x 8 s).
    assert!(
        took < std::time::Duration::from_secs(budget + 2),
        "took {took:?}"
    );
    for (name, host) in [
        ("embed host", "app.powerbi.com"),
        ("cluster host", CLUSTER),
        ("content host", CDN),
    ] {
        let (l, msg) = line(&r, name);
        assert_eq!(l["ok"], false, "{name}");
        assert!(msg.contains(host), "{msg}");
        // Each got the time left, not what a probe before it left over.
        assert!(
            msg.contains("timed out at the TLS handshake: no answer within"),
            "{name}: {msg}"
        );
    }
}

/// The screen can load the embed: `check` says the embed host answered, and how it was reached.
#[tokio::test(flavor = "multi_thread")]
async fn good_account_reaches_the_embed_host() {
    let sim = sim(Scenario::builtin()).await;
    let dir = tempfile::tempdir().unwrap();
    let front = front(&sim, &dir).await;
    let cfg = front.config(&sim, &good_user(), &dir, |s| s);
    let r = front.check(&["check", "--json"], cfg.clone()).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let lines = reach_lines(&r);
    // Three items, one host.
    assert_eq!(lines.len(), 1, "{}", r.stdout);
    assert_eq!(lines[0]["ok"], true);
    assert_eq!(
        lines[0]["message"],
        format!(
            "app.powerbi.com: reachable (through proxy {}, TLS ok)",
            front.door.proxy
        )
    );
    let text = front.check(&["check"], cfg).await;
    assert_eq!(text.code, 0, "{}", text.stdout);
    assert!(
        text.stdout
            .contains("embed host    app.powerbi.com: reachable (through proxy"),
        "{}",
        text.stdout
    );
}

/// A `check --json` that failed on exactly one embed-host line, for app.powerbi.com as
/// `embed_unreachable`: that line, and its message.
fn one_unreachable_embed_host(r: &Run) -> (Vec<serde_json::Value>, String) {
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(
        r.problems(),
        vec!["embed_unreachable".to_owned()],
        "{}",
        r.stdout
    );
    let lines = reach_lines(r);
    assert_eq!(lines.len(), 1, "{}", r.stdout);
    assert_eq!(lines[0]["ok"], false);
    let msg = lines[0]["message"].as_str().unwrap().to_owned();
    assert!(msg.contains("app.powerbi.com"), "{msg}");
    (lines, msg)
}

/// The proxy refuses the embed host (Squid's 502) while sign-in and the API work: `check`
/// fails, naming the host and the proxy's answer.
#[tokio::test(flavor = "multi_thread")]
async fn a_proxy_refusing_the_embed_host_fails_check() {
    let sim = sim(Scenario::named("embed-refuse").unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    let front = front(&sim, &dir).await;
    let cfg = front.config(&sim, &sim.demo_username().unwrap(), &dir, |s| s);
    let r = front.check(&["check", "--json"], cfg.clone()).await;
    let (lines, msg) = one_unreachable_embed_host(&r);
    assert!(msg.contains("502 Bad Gateway"), "{msg}");
    assert!(
        lines[0]["fix"]
            .as_str()
            .unwrap()
            .contains(&front.door.proxy.to_string()),
        "{}",
        r.stdout
    );
    let text = front.check(&["check"], cfg).await;
    assert_eq!(text.code, 1, "{}", text.stdout);
    assert!(text.stdout.contains("FAIL  embed host"), "{}", text.stdout);
    assert!(text.stdout.contains("502 Bad Gateway"), "{}", text.stdout);
    assert!(
        text.stdout.contains("problem: embed_unreachable"),
        "{}",
        text.stdout
    );
}

/// The proxy inspects TLS and `cloud.ca_file` does not name its CA: sign-in (plain http to the
/// simulator) works, but the web view would not trust the embed host's certificate.
#[tokio::test(flavor = "multi_thread")]
async fn an_untrusted_inspecting_proxy_fails_check() {
    let sim = sim(Scenario::builtin()).await;
    let dir = tempfile::tempdir().unwrap();
    let front = front(&sim, &dir).await;
    let cfg = config(&sim, &good_user(), &dir, |s| s);
    let r = front.check(&["check", "--json"], cfg.clone()).await;
    let (lines, msg) = one_unreachable_embed_host(&r);
    assert!(msg.contains("certificate"), "{msg}");
    assert!(msg.contains("not trusted"), "{msg}");
    assert!(
        lines[0]["fix"].as_str().unwrap().contains("cloud.ca_file"),
        "{}",
        r.stdout
    );
    // The line says it; the certificate verifier's own error log is left out, even at trace,
    // while pbikiosk's logs stay.
    let verifier = "failed to verify TLS certificate";
    assert!(!r.stderr.contains(verifier), "{}", r.stderr);
    assert!(r.stderr.contains("TRACE") || r.stderr.contains("DEBUG"));
    // Asked for by name, it shows: the run above would have printed it.
    let env = front
        .env()
        .into_iter()
        .chain([("RUST_LOG", "rustls_platform_verifier=error".to_owned())])
        .collect();
    let named = check_env(&["check", "--json"], cfg, env).await;
    assert!(named.stderr.contains(verifier), "{}", named.stderr);
}

/// A certificate made for a test: `(certificate PEM, certificate + key PEM)`, valid from a day
/// ago for `days` days.
fn test_certificate(days: i64) -> (String, String) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["pbikiosk-test".to_owned()]).unwrap();
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(days);
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), format!("{}{}", cert.pem(), key.serialize_pem()))
}

/// The app signs in with its registered certificate: `check` passes, names the certificate,
/// and the sign-in went through the client assertion (the app has no usable secret here).
#[tokio::test(flavor = "multi_thread")]
async fn a_registered_certificate_signs_in() {
    let mut s = Scenario::named("certificate").unwrap();
    for app in &mut s.apps {
        app.secret = String::new();
    }
    let sim = sim(s).await;
    let dir = tempfile::tempdir().unwrap();
    let front = front(&sim, &dir).await;
    let cfg = front.config(&sim, &good_user(), &dir, |s| s);
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(
        text.contains("client_certificate_file") && !text.contains("client_secret"),
        "{text}"
    );
    let r = front.check(&["check", "--json"], cfg).await;
    assert_eq!(r.code, 0, "{}", r.stdout);
    let json = r.json();
    let line = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "app certificate")
        .unwrap_or_else(|| panic!("no certificate line: {}", r.stdout))
        .clone();
    assert_eq!(line["ok"], true);
    let msg = line["message"].as_str().unwrap();
    assert!(
        msg.contains("valid until") && !msg.contains("WARNING"),
        "{msg}"
    );
    assert_eq!(sim.stats().token_by_grant.get("password"), Some(&1));
}

/// A certificate that ends within 30 days still signs in, and `check` warns with the date.
#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_near_its_end_is_a_warning() {
    let (cert, both) = test_certificate(10);
    let mut s = Scenario::named("certificate").unwrap();
    s.apps[0].certificates = vec![cert];
    s.demo.as_mut().unwrap().client_certificate = Some(both);
    let sim = sim(s).await;
    let dir = tempfile::tempdir().unwrap();
    let front = front(&sim, &dir).await;
    let cfg = front.config(&sim, &good_user(), &dir, |s| s);
    let r = front.check(&["check"], cfg).await;
    assert_eq!(r.code, 0, "{}", r.stdout);
    let line = r
        .stdout
        .lines()
        .find(|l| l.contains("app certificate"))
        .unwrap_or_else(|| panic!("{}", r.stdout));
    assert!(
        line.contains("WARNING") && (line.contains("in 9 day") || line.contains("in 10 day")),
        "{line}"
    );
}

/// Signed with a key whose certificate the app does not have: Microsoft's 700027, named, with
/// the fix that says where to upload it; the private key appears nowhere.
#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_key_is_refused_and_named() {
    let (registered, _) = test_certificate(365);
    let (_, other_key) = test_certificate(365);
    let mut s = Scenario::named("certificate").unwrap();
    s.apps[0].certificates = vec![registered];
    s.demo.as_mut().unwrap().client_certificate = Some(other_key.clone());
    let sim = sim(s).await;
    let dir = tempfile::tempdir().unwrap();
    let front = front(&sim, &dir).await;
    let cfg = front.config(&sim, &good_user(), &dir, |s| s);
    let r = front.check(&["-vv", "check", "--json"], cfg).await;
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert_eq!(r.problems(), vec!["client_certificate_not_registered"]);
    let json = r.json();
    let failed = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["ok"] == false)
        .unwrap()
        .clone();
    assert_eq!(failed["aadsts"][0], 700027);
    assert!(
        failed["fix"]
            .as_str()
            .unwrap()
            .contains("Certificates & secrets"),
        "{failed}"
    );
    let key_line = other_key
        .lines()
        .skip_while(|l| !l.contains("PRIVATE KEY"))
        .nth(1)
        .unwrap();
    assert!(!r.stdout.contains(key_line) && !r.stderr.contains(key_line));
    assert!(!has_jwt(&r.stdout) && !has_jwt(&r.stderr));
}

/// Signed in as the app (client credentials), `check` passes with one embed token made for
/// every report of the playlist, and no user sign-in at all.
#[tokio::test(flavor = "multi_thread")]
async fn service_principal_passes_with_an_embed_token_for_every_report() {
    let sim = sim(Scenario::named("service-principal").unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    let front = front(&sim, &dir).await;
    let user = sim.demo_username().unwrap();
    let cfg = front.config(&sim, &user, &dir, |s| s);
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("method = \"service_principal\""), "{text}");
    assert!(!text.contains("username"), "{text}");
    let r = front.check(&["check", "--json"], cfg).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.json()["ok"], true);
    let (_, signed) = line(&r, "sign-in");
    assert!(signed.contains("service principal"), "{signed}");
    let (_, embed) = line(&r, "embed token");
    assert!(embed.contains("one embed token for 3 report(s)"), "{embed}");
    let stats = sim.stats();
    assert_eq!(
        stats.token_by_grant.get("client_credentials").copied(),
        Some(1),
        "{:?}",
        stats.token_by_grant
    );
    assert_eq!(stats.token_by_grant.get("password"), None);
    // One multi-resource GenerateToken, not one per report.
    assert_eq!(stats.api_by_kind.get("generate_token").copied(), Some(1));
}

/// Each service-principal problem, from the simulator's copy of Power BI's real answer.
#[tokio::test(flavor = "multi_thread")]
async fn service_principal_problems_are_named() {
    let dir = tempfile::tempdir().unwrap();
    for (name, want, says) in [
        (
            "sp-not-allowed",
            "service_principal_not_allowed",
            "PowerBINotAuthorizedException",
        ),
        (
            "sp-rls",
            "embed_token_refused",
            "requires effective identity",
        ),
    ] {
        let sim = sim(Scenario::named(name).unwrap()).await;
        let front = front(&sim, &dir).await;
        let user = sim.demo_username().unwrap();
        let cfg = front.config(&sim, &user, &dir, |s| s);
        let r = front.check(&["check", "--json"], cfg).await;
        assert_eq!(r.code, 1, "{name}: {}", r.stdout);
        assert_eq!(r.problems(), vec![want.to_owned()], "{name}: {}", r.stdout);
        assert!(r.stdout.contains(says), "{name}: {}", r.stdout);
    }
    // Not a member of the workspace: named as membership, with the roles that work.
    let sim = sim(Scenario::named("sp-not-member").unwrap()).await;
    let front = front(&sim, &dir).await;
    let user = sim.demo_username().unwrap();
    let cfg = front.config(&sim, &user, &dir, |s| s);
    let r = front.check(&["check", "--json"], cfg).await;
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.problems().iter().all(|p| p == "report_not_found"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("Member, Contributor or Admin"),
        "{}",
        r.stdout
    );
}

/// Row-level security: the identity on the playlist item is what GenerateToken needs, and an
/// identity for a dataset without it is refused in Power BI's words.
#[tokio::test(flavor = "multi_thread")]
async fn service_principal_row_level_security_follows_the_playlist_identity() {
    let dir = tempfile::tempdir().unwrap();
    let sales = format!("report = \"{}\"\n", ids::REPORT_SALES);
    let with_identity = |s: String| {
        s.replacen(
            &sales,
            &format!("{sales}identity_username = \"store-12@contoso.com\"\nidentity_roles = [\"Store\"]\n"),
            1,
        )
    };
    let sim = sim(Scenario::named("sp-rls").unwrap()).await;
    let door = front(&sim, &dir).await;
    let user = sim.demo_username().unwrap();
    let cfg = door.config(&sim, &user, &dir, with_identity);
    assert!(
        std::fs::read_to_string(&cfg)
            .unwrap()
            .contains("identity_username")
    );
    let r = door.check(&["check", "--json"], cfg).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);

    let sim = sim_plain().await;
    let door = front(&sim, &dir).await;
    let cfg = door.config(&sim, &user, &dir, with_identity);
    let r = door.check(&["check", "--json"], cfg).await;
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert_eq!(
        r.problems(),
        vec!["embed_token_refused".to_owned()],
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("shouldn't have effective identity"),
        "{}",
        r.stdout
    );
}

async fn sim_plain() -> SimHandle {
    sim(Scenario::named("service-principal").unwrap()).await
}

/// `reports` lists what the app sees, and says which role the app needs when it sees nothing.
#[tokio::test(flavor = "multi_thread")]
async fn service_principal_reports_lists_what_the_app_sees() {
    let dir = tempfile::tempdir().unwrap();
    let member = sim_plain().await;
    let door = front(&member, &dir).await;
    let user = member.demo_username().unwrap();
    let cfg = door.config(&member, &user, &dir, |s| s);
    let r = door.check(&["reports"], cfg).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    for name in ["Sales Overview", "Operations", "Customer Service"] {
        assert!(r.stdout.contains(name), "{name}: {}", r.stdout);
    }
    let none = sim(Scenario::named("sp-not-member").unwrap()).await;
    let door = front(&none, &dir).await;
    let cfg = door.config(&none, &user, &dir, |s| s);
    let r = door.check(&["reports"], cfg).await;
    assert!(
        r.stdout.contains("The app sees no workspaces")
            && r.stdout.contains("Member, Contributor or Admin"),
        "{}",
        r.stdout
    );
}

/// `check` with `[fleet]`: a `fleet` line (reachable, parsed, ok) and the fleet file's playlist
/// checked in place of the device's; a refused fleet file is named, and the bearer token is in
/// no output (trace logging included).
#[tokio::test(flavor = "multi_thread")]
async fn check_reads_the_fleet_file() {
    use axum::http::{HeaderMap, StatusCode};
    use std::os::unix::fs::PermissionsExt;
    use std::sync::{Arc, Mutex};
    const TOKEN: &str = "fleet-Bearer-S3cretToken-check";
    let sim = sim(Scenario::builtin()).await;
    let dir = tempfile::tempdir().unwrap();
    let front = front(&sim, &dir).await;
    let snippet = sim.config_snippet(&good_user());
    let at = snippet.find("\n[[playlist]]").unwrap();
    let second = snippet[at + 1..].split("\n[[playlist]]").nth(1).unwrap();
    let fleet_file = Arc::new(Mutex::new(format!("[[playlist]]{second}")));
    let served = fleet_file.clone();
    let app = axum::Router::new().route(
        "/screens/{name}",
        axum::routing::get(move |headers: HeaderMap| {
            let served = served.clone();
            async move {
                let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
                if auth != Some(&format!("Bearer {TOKEN}")) {
                    return (StatusCode::UNAUTHORIZED, String::new());
                }
                (StatusCode::OK, served.lock().unwrap().clone())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let token = dir.path().join("fleet-token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cfg = front.config(&sim, &good_user(), &dir, |s| {
        format!(
            "{}\n[fleet]\nurl = \"http://{addr}/screens/{{hostname}}.toml\"\nbearer_token_file = {:?}\n",
            &s[..s.find("\n[[playlist]]").unwrap()],
            token.to_str().unwrap()
        )
    });
    let state = dir.path().join("state");
    let mut env = front.env();
    env.push(("STATE_DIRECTORY", state.to_str().unwrap().to_owned()));
    let r = check_env(&["check", "--json"], cfg.clone(), env.clone()).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let (fleet, msg) = line(&r, "fleet");
    assert_eq!(fleet["ok"], true, "{}", r.stdout);
    assert!(
        msg.contains("reachable, parsed, ok (1 playlist item)"),
        "{msg}"
    );
    assert!(msg.contains(&format!("http://{addr}/screens/")), "{msg}");
    // The fleet file's one item is what the rest of check looked at.
    assert_eq!(lines_named(&r, "playlist[1]").len(), 1, "{}", r.stdout);
    assert!(lines_named(&r, "playlist[2]").is_empty(), "{}", r.stdout);
    assert!(r.stdout.contains("Operations"), "{}", r.stdout);
    // Nothing was written by check.
    assert!(!state.exists());

    *fleet_file.lock().unwrap() = "[auth]\npassword = \"x\"\n".to_owned();
    let r = check_env(&["check", "--json"], cfg.clone(), env.clone()).await;
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(
        r.problems().contains(&"fleet_config_invalid".to_owned()),
        "{}",
        r.stdout
    );
    let (_, msg) = line(&r, "fleet");
    assert!(msg.contains("auth.password"), "{msg}");
    for out in [&r.stdout, &r.stderr] {
        assert!(
            !out.contains(TOKEN),
            "the bearer token is in check's output"
        );
    }
    let text = check_env(&["check"], cfg, env).await;
    assert!(text.stdout.contains("fleet"), "{}", text.stdout);
    assert!(!text.stderr.is_empty(), "trace logs to sweep");
    for out in [&text.stdout, &text.stderr] {
        assert!(
            !out.contains(TOKEN),
            "the bearer token is in check's output"
        );
    }
}

/// The config with its inline password moved into the file `path` (`password_file`).
fn password_in_file(config: String, path: &std::path::Path) -> String {
    use std::os::unix::fs::PermissionsExt;
    let line = config
        .lines()
        .find(|l| l.starts_with("password = "))
        .unwrap_or_else(|| panic!("no inline password in {config}"))
        .to_owned();
    let value = toml::from_str::<toml::Table>(&line).unwrap()["password"]
        .as_str()
        .unwrap()
        .to_owned();
    std::fs::write(path, format!("{value}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o640)).unwrap();
    config.replace(
        &line,
        &format!("password_file = {:?}", path.to_str().unwrap()),
    )
}

/// A password file where WebKit's web-process sandbox shows it (under /etc, as older installs
/// kept it) still signs in, and `check` warns with the move that hides it; the same password
/// in a folder the sandbox does not bind gives no warning.
#[tokio::test(flavor = "multi_thread")]
async fn check_warns_of_a_secret_the_web_sandbox_can_read() {
    let sim = sim(Scenario::builtin()).await;
    let dir = tempfile::tempdir().unwrap();
    let front = front(&sim, &dir).await;
    // Created here and removed when the test ends (root runs the tests on this machine).
    let etc = tempfile::Builder::new()
        .prefix("pbikiosk-test-")
        .tempdir_in("/etc")
        .unwrap();
    let shown = etc.path().join("password");
    let cfg = front.config(&sim, &good_user(), &dir, |s| password_in_file(s, &shown));
    let r = front.check(&["check", "--json"], cfg).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let (l, msg) = line(&r, "secret files");
    assert_eq!(l["ok"], true, "a warning, not a failure: {}", r.stdout);
    assert!(msg.starts_with("WARNING: auth.password_file"), "{msg}");
    assert!(msg.contains(shown.to_str().unwrap()), "{msg}");
    let fix = l["fix"].as_str().unwrap();
    assert!(
        fix.contains("/var/lib/pbikiosk-secrets/password") && fix.contains("mv "),
        "{fix}"
    );
    let table = front
        .check(
            &["check"],
            front.config(&sim, &good_user(), &dir, |s| password_in_file(s, &shown)),
        )
        .await;
    assert!(
        table
            .stdout
            .contains("fix: Move it where the sandbox cannot see it"),
        "{}",
        table.stdout
    );
    assert!(
        table.stdout.contains("All checks passed"),
        "{}",
        table.stdout
    );

    // The warning names the file, never what is in it.
    for out in [&r.stdout, &r.stderr, &table.stdout, &table.stderr] {
        assert!(!out.contains(ids::PASSWORD), "the password in the output");
    }

    let hidden = dir.path().join("password");
    let cfg = front.config(&sim, &good_user(), &dir, |s| password_in_file(s, &hidden));
    let r = front.check(&["check", "--json"], cfg).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(lines_named(&r, "secret files").is_empty(), "{}", r.stdout);
}
