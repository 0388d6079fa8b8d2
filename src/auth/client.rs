//! HTTP calls to the Microsoft identity platform (v2 endpoints).

use std::future::Future;
use std::time::Duration;

use serde::Deserialize;

use super::lifetime::{self, Bounds};
use super::realm::{self, Realm};
use super::{ClientCredential, SignInSettings, TokenGrant};
use crate::net;
use crate::problem::{Problem, ProblemId};
use crate::secret::Secret;

/// What the session needs from the identity platform. A trait so the session's decisions can
/// be tested against a scripted endpoint with a fake clock.
pub trait TokenEndpoint {
    /// Home realm discovery. `Ok(None)`: the cloud does not offer it (404) or gave no answer
    /// we understand — sign-in goes on without it.
    fn realm(&self) -> impl Future<Output = Result<Option<Realm>, Problem>> + Send;
    /// ROPC: the password grant.
    fn password(&self) -> impl Future<Output = Result<TokenGrant, Problem>> + Send;
    /// The refresh-token grant.
    fn refresh(
        &self,
        refresh_token: &Secret,
    ) -> impl Future<Output = Result<TokenGrant, Problem>> + Send;
    /// Use these secrets from the next request on (a secret file was changed).
    fn replace_secrets(&mut self, secrets: Secrets);
    /// Sign in as the app itself (client credentials). Endpoints that only sign users in say
    /// so, rather than every one of them having to spell it out.
    fn client_credentials(&self) -> impl Future<Output = Result<TokenGrant, Problem>> + Send {
        async {
            Err(Problem::new(ProblemId::Config)
                .with_cause("This sign-in endpoint cannot sign in as an app (service principal)."))
        }
    }
}

/// The app's credential and the password sign-in sends, as read from the configuration.
#[derive(Debug, Clone)]
pub struct Secrets {
    pub client: ClientCredential,
    pub password: Secret,
}

/// The real endpoint, over HTTPS.
#[derive(Clone)]
pub struct AadClient {
    http: reqwest::Client,
    settings: SignInSettings,
    /// What `expires_in` is clamped to.
    lifetimes: Bounds,
}

/// The success body. `expires_in` is an integer on v2 but a string on some v1 paths.
#[derive(Deserialize)]
struct TokenBody {
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<serde_json::Value>,
}

impl AadClient {
    pub fn new(http: reqwest::Client, settings: SignInSettings) -> Self {
        Self {
            http,
            settings,
            lifetimes: Bounds::SERVICE,
        }
    }

    /// Accept token lifetimes down to `min` (at least a second) instead of five minutes: for
    /// the simulator, whose short tokens show refreshes in a demo or a test.
    pub(crate) fn with_min_lifetime(mut self, min: Duration) -> Self {
        self.lifetimes = Bounds::with_min(min);
        self
    }

    fn endpoint(&self, segments: &[&str]) -> url::Url {
        let mut url = self.settings.authority.clone();
        {
            // path_segments_mut percent-encodes, so a username with odd characters stays one
            // segment. Authorities are always base URLs, so this cannot fail.
            let mut path = url.path_segments_mut().expect("authority is a base URL");
            path.pop_if_empty();
            path.extend(segments);
        }
        url
    }

    /// What token lifetimes are clamped to; embed tokens made from these tokens get the same.
    pub(crate) fn lifetimes(&self) -> Bounds {
        self.lifetimes
    }

    pub fn token_url(&self) -> url::Url {
        self.endpoint(&[&self.settings.tenant, "oauth2", "v2.0", "token"])
    }

    /// POST a grant to the token endpoint, with the app's credential added: the client secret,
    /// or a fresh client assertion whose audience is this very URL.
    async fn token_request(&self, grant: &[(&str, &str)]) -> Result<TokenGrant, Problem> {
        let url = self.token_url();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let jti = format!("{:032x}", rand::random::<u128>());
        let credential =
            self.settings
                .client
                .form_fields(&self.settings.client_id, url.as_str(), now, &jti)?;
        let mut form: Vec<(&str, &str)> = grant.to_vec();
        form.extend(credential.iter().map(|(k, v)| (*k, v.expose())));
        let answer = net::send_and_read(
            self.http.post(url).form(&form),
            SIGN_IN,
            net::SIGN_IN_BODY_LIMIT,
        )
        .await?;
        if answer.status != 200 {
            let problem =
                Problem::from_token_error(answer.status, &answer.body, answer.retry_after);
            return Err(self.settings.client.explain(problem));
        }
        parse_grant(&answer.body, self.lifetimes)
    }
}

/// How the identity platform is named in problems.
const SIGN_IN: &str = "the Microsoft sign-in service";

pub(crate) fn parse_grant(body: &str, lifetimes: Bounds) -> Result<TokenGrant, Problem> {
    let odd = || {
        Problem::new(ProblemId::Unknown).with_cause(
            "The sign-in service answered 200 without a usable token (a proxy may be in the way).",
        )
    };
    let b: TokenBody = serde_json::from_str(body).map_err(|_| odd())?;
    let access = b.access_token.filter(|t| !t.is_empty()).ok_or_else(odd)?;
    let secs = lifetime::seconds("expires_in", b.expires_in.as_ref()).map_err(|e| {
        Problem::new(ProblemId::Unknown).with_cause(format!(
            "The sign-in service answered 200 with a token whose {e} (a proxy may be in the way)."
        ))
    })?;
    let expires_in = lifetimes.clamp(secs);
    if expires_in.as_secs() != secs {
        tracing::warn!(
            expires_in = secs,
            used = expires_in.as_secs(),
            "token lifetime out of bounds; clamped"
        );
    }
    Ok(TokenGrant {
        access_token: Secret::new(access),
        refresh_token: b.refresh_token.filter(|t| !t.is_empty()).map(Secret::new),
        expires_in,
        item_tokens: Default::default(),
    })
}

impl TokenEndpoint for AadClient {
    fn replace_secrets(&mut self, secrets: Secrets) {
        self.settings.client = secrets.client;
        self.settings.password = secrets.password;
    }

    async fn realm(&self) -> Result<Option<Realm>, Problem> {
        let mut url = self.endpoint(&["common", "userrealm", &self.settings.username]);
        url.query_pairs_mut().append_pair("api-version", "1.0");
        let answer =
            net::send_and_read(self.http.get(url), SIGN_IN, net::SIGN_IN_BODY_LIMIT).await?;
        if !(200..300).contains(&answer.status) {
            // 404 on clouds without the endpoint; anything else is not worth blocking on.
            tracing::debug!(status = answer.status, "userrealm not available");
            return Ok(None);
        }
        let body = answer.body;
        Ok(realm::parse(&body))
    }

    async fn password(&self) -> Result<TokenGrant, Problem> {
        let s = &self.settings;
        // offline_access asks for a refresh token, so later renewals need no password.
        let scope = format!("{} offline_access", s.scope);
        self.token_request(&[
            ("grant_type", "password"),
            ("client_id", &s.client_id),
            ("username", &s.username),
            ("password", s.password.expose()),
            ("scope", &scope),
        ])
        .await
    }

    async fn client_credentials(&self) -> Result<TokenGrant, Problem> {
        let s = &self.settings;
        // No offline_access: the app signs in again with its credential (token_request adds
        // the secret or the signed assertion), there is no refresh token.
        self.token_request(&[
            ("grant_type", "client_credentials"),
            ("client_id", &s.client_id),
            ("scope", &s.scope),
        ])
        .await
    }

    async fn refresh(&self, refresh_token: &Secret) -> Result<TokenGrant, Problem> {
        let s = &self.settings;
        let scope = format!("{} offline_access", s.scope);
        self.token_request(&[
            ("grant_type", "refresh_token"),
            ("client_id", &s.client_id),
            ("refresh_token", refresh_token.expose()),
            ("scope", &scope),
        ])
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(authority: &str) -> SignInSettings {
        SignInSettings {
            authority: url::Url::parse(authority).unwrap(),
            tenant: "contoso.onmicrosoft.com".into(),
            client_id: "00000000-0000-0000-0000-000000000001".into(),
            client: ClientCredential::Secret(Secret::new("s")),
            username: "svc@contoso.onmicrosoft.com".into(),
            password: Secret::new("p"),
            scope: "https://analysis.windows.net/powerbi/api/.default".into(),
        }
    }

    #[test]
    fn token_url_with_and_without_trailing_slash_and_a_path() {
        let http = reqwest::Client::new();
        for a in [
            "https://login.microsoftonline.com",
            "https://login.microsoftonline.com/",
        ] {
            let c = AadClient::new(http.clone(), settings(a));
            assert_eq!(
                c.token_url().as_str(),
                "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
            );
        }
        let c = AadClient::new(http, settings("http://127.0.0.1:9/aad/"));
        assert_eq!(
            c.token_url().as_str(),
            "http://127.0.0.1:9/aad/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
    }

    /// Against the simulator: the password and refresh grants both authenticate the app with
    /// a client assertion, and a certificate swapped in (a renewed file) is used from the next
    /// request on; one the app does not have is named.
    #[tokio::test(flavor = "multi_thread")]
    async fn every_grant_sends_the_certificate_and_a_new_one_is_used_at_once() {
        use crate::auth::certificate::{ClientCertificate, generate};
        use crate::sim::scenario::builtin_ids as ids;
        use crate::sim::{Scenario, Simulator};

        let mut scenario = Scenario::named("certificate").unwrap();
        // No usable secret: only the assertion can sign the app in.
        for app in &mut scenario.apps {
            app.secret = String::new();
        }
        let pem = scenario
            .demo
            .as_ref()
            .unwrap()
            .client_certificate
            .clone()
            .unwrap();
        let sim = Simulator::start(scenario, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let cert = |pem: &str| {
            ClientCredential::Certificate(Box::new(ClientCertificate::from_pem(pem).unwrap()))
        };
        let settings = SignInSettings {
            authority: url::Url::parse(&sim.base_url()).unwrap(),
            tenant: ids::TENANT_DOMAIN.into(),
            client_id: ids::APP_ID.into(),
            client: cert(&pem),
            username: format!("kiosk@{}", ids::TENANT_DOMAIN),
            password: Secret::new(ids::PASSWORD),
            scope: "https://analysis.windows.net/powerbi/api/.default".into(),
        };
        let mut c = AadClient::new(
            crate::net::build_client(None, &crate::config::NetworkSetting::FromEnvironment)
                .unwrap(),
            settings,
        )
        .with_min_lifetime(Duration::from_secs(1));
        let g = c
            .password()
            .await
            .expect("password grant with the certificate");
        let rt = g.refresh_token.expect("a refresh token");
        let g = c
            .refresh(&rt)
            .await
            .expect("refresh grant with the certificate");
        let rt = g.refresh_token.unwrap();

        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let (_, other) = generate(now - 60, now + 86_400).unwrap();
        c.replace_secrets(Secrets {
            client: cert(&other),
            password: Secret::new(ids::PASSWORD),
        });
        let p = c.refresh(&rt).await.unwrap_err();
        assert_eq!(p.id, ProblemId::ClientCertificateNotRegistered);
        assert_eq!(p.aadsts(), &[700027]);
        assert!(p.cause.contains("thumbprint"), "{}", p.cause);
        let by = sim.stats().token_by_grant;
        assert_eq!(by.get("password"), Some(&1), "{by:?}");
        assert_eq!(by.get("refresh_token"), Some(&2), "{by:?}");
    }

    #[test]
    fn grant_parsing() {
        let b = Bounds::SERVICE;
        let g = parse_grant(
            r#"{"token_type":"Bearer","expires_in":3599,"access_token":"a","refresh_token":"r"}"#,
            b,
        )
        .unwrap();
        assert_eq!(g.expires_in, Duration::from_secs(3599));
        assert_eq!(g.access_token.expose(), "a");
        assert_eq!(g.refresh_token.unwrap().expose(), "r");
        // A string, as some v1 paths send; read as is under the simulator's low floor.
        let short = Bounds::with_min(Duration::from_secs(1));
        let g = parse_grant(r#"{"expires_in":"60","access_token":"a"}"#, short).unwrap();
        assert_eq!(g.expires_in, Duration::from_secs(60));
        assert!(g.refresh_token.is_none());
        assert_eq!(parse_grant("<html>", b).unwrap_err().id, ProblemId::Unknown);
        assert_eq!(
            parse_grant(r#"{"access_token":""}"#, b).unwrap_err().id,
            ProblemId::Unknown
        );
    }

    #[test]
    fn expires_in_is_clamped_and_garbage_is_a_clear_problem() {
        let b = Bounds::SERVICE;
        let grant =
            |e: &str| parse_grant(&format!(r#"{{"access_token":"a","expires_in":{e}}}"#), b);
        assert_eq!(grant("0").unwrap().expires_in, lifetime::MIN_LIFETIME);
        assert_eq!(grant(r#""60""#).unwrap().expires_in, lifetime::MIN_LIFETIME);
        assert_eq!(
            grant("9223372036854775808").unwrap().expires_in,
            lifetime::MAX_LIFETIME
        );
        assert_eq!(grant("1e30").unwrap().expires_in, lifetime::MAX_LIFETIME);
        for (bad, says) in [
            (
                r#""abc""#,
                "expires_in is \"abc\", which is not a number of seconds",
            ),
            ("null", "expires_in is missing"),
        ] {
            let p = grant(bad).unwrap_err();
            assert_eq!(p.id, ProblemId::Unknown);
            assert!(p.cause.contains(says), "{}", p.cause);
            assert!(
                !p.cause.contains("\"a\""),
                "no token in the cause: {}",
                p.cause
            );
        }
        let p = parse_grant(r#"{"access_token":"a"}"#, b).unwrap_err();
        assert!(p.cause.contains("expires_in is missing"), "{}", p.cause);
    }
}
