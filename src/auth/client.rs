//! HTTP calls to the Microsoft identity platform (v2 endpoints).

use std::future::Future;
use std::time::Duration;

use serde::Deserialize;

use super::realm::{self, Realm};
use super::{SignInSettings, TokenGrant};
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
}

/// The two secrets sign-in sends, as read from the configuration.
#[derive(Debug, Clone)]
pub struct Secrets {
    pub client_secret: Secret,
    pub password: Secret,
}

/// The real endpoint, over HTTPS.
#[derive(Clone)]
pub struct AadClient {
    http: reqwest::Client,
    settings: SignInSettings,
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
        Self { http, settings }
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

    pub fn token_url(&self) -> url::Url {
        self.endpoint(&[&self.settings.tenant, "oauth2", "v2.0", "token"])
    }

    async fn token_request(&self, form: &[(&str, &str)]) -> Result<TokenGrant, Problem> {
        let answer = net::send_and_read(
            self.http.post(self.token_url()).form(form),
            "the Microsoft sign-in service",
        )
        .await?;
        if answer.status != 200 {
            return Err(Problem::from_token_error(
                answer.status,
                &answer.body,
                answer.retry_after,
            ));
        }
        parse_grant(&answer.body)
    }
}

fn parse_grant(body: &str) -> Result<TokenGrant, Problem> {
    let odd = || {
        Problem::new(ProblemId::Unknown).with_cause(
            "The sign-in service answered 200 without a usable token (a proxy may be in the way).",
        )
    };
    let b: TokenBody = serde_json::from_str(body).map_err(|_| odd())?;
    let access = b.access_token.filter(|t| !t.is_empty()).ok_or_else(odd)?;
    let secs = match b.expires_in {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    // Microsoft always sends it; if not, assume the shortest lifetime it issues (~1 h) minus
    // margin rather than "forever".
    .unwrap_or(3000);
    Ok(TokenGrant {
        access_token: Secret::new(access),
        refresh_token: b.refresh_token.filter(|t| !t.is_empty()).map(Secret::new),
        expires_in: Duration::from_secs(secs),
    })
}

impl TokenEndpoint for AadClient {
    fn replace_secrets(&mut self, secrets: Secrets) {
        self.settings.client_secret = secrets.client_secret;
        self.settings.password = secrets.password;
    }

    async fn realm(&self) -> Result<Option<Realm>, Problem> {
        let mut url = self.endpoint(&["common", "userrealm", &self.settings.username]);
        url.query_pairs_mut().append_pair("api-version", "1.0");
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| net::transport_problem(&e, "the Microsoft sign-in service"))?;
        if !resp.status().is_success() {
            // 404 on clouds without the endpoint; anything else is not worth blocking on.
            tracing::debug!(status = resp.status().as_u16(), "userrealm not available");
            return Ok(None);
        }
        let body = resp
            .text()
            .await
            .map_err(|e| net::transport_problem(&e, "the Microsoft sign-in service"))?;
        Ok(realm::parse(&body))
    }

    async fn password(&self) -> Result<TokenGrant, Problem> {
        let s = &self.settings;
        // offline_access asks for a refresh token, so later renewals need no password.
        let scope = format!("{} offline_access", s.scope);
        self.token_request(&[
            ("grant_type", "password"),
            ("client_id", &s.client_id),
            ("client_secret", s.client_secret.expose()),
            ("username", &s.username),
            ("password", s.password.expose()),
            ("scope", &scope),
        ])
        .await
    }

    async fn refresh(&self, refresh_token: &Secret) -> Result<TokenGrant, Problem> {
        let s = &self.settings;
        let scope = format!("{} offline_access", s.scope);
        self.token_request(&[
            ("grant_type", "refresh_token"),
            ("client_id", &s.client_id),
            ("client_secret", s.client_secret.expose()),
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
            client_secret: Secret::new("s"),
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

    #[test]
    fn grant_parsing() {
        let g = parse_grant(
            r#"{"token_type":"Bearer","expires_in":3599,"access_token":"a","refresh_token":"r"}"#,
        )
        .unwrap();
        assert_eq!(g.expires_in, Duration::from_secs(3599));
        assert_eq!(g.access_token.expose(), "a");
        assert_eq!(g.refresh_token.unwrap().expose(), "r");
        let g = parse_grant(r#"{"expires_in":"60","access_token":"a"}"#).unwrap();
        assert_eq!(g.expires_in, Duration::from_secs(60));
        assert!(g.refresh_token.is_none());
        assert_eq!(parse_grant("<html>").unwrap_err().id, ProblemId::Unknown);
        assert_eq!(
            parse_grant(r#"{"access_token":""}"#).unwrap_err().id,
            ProblemId::Unknown
        );
    }
}
