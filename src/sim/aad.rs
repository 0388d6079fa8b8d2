//! Every error answer of the simulated token endpoint, in one table.
//!
//! Each [`AadError`] carries the AADSTS code, HTTP status, OAuth `error` value and Microsoft's
//! published wording. Where a real captured body exists (`tests/fixtures/aad/*.json`) the text
//! and the optional keys (`error_uri`, `suberror`, `claims`) follow that capture, so the client
//! is tested against what Microsoft really sends — including its quirks, e.g. AADSTS50053 came
//! back as `unauthorized_client`, and some codes were captured without `error_uri`.

use axum::http::StatusCode;
use serde::Serialize;

use super::ids;

/// Power BI Service's first-party application id, named in MFA errors as the resource.
pub(crate) const POWERBI_APP_ID: &str = "00000009-0000-0000-c000-000000000000";

/// One error the token or device-code endpoint can answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AadError {
    /// 90002: tenant id or domain unknown.
    TenantNotFound { tenant: String },
    /// 50059: `common` cannot identify a tenant for ROPC or client credentials.
    NoTenantInfo,
    /// 700016: client_id unknown in this tenant.
    AppNotFound { client_id: String, tenant: String },
    /// 7000215: wrong client secret.
    InvalidClientSecret,
    /// 7000218: neither client_secret nor client_assertion was sent.
    MissingClientSecret,
    /// 7000222: the client secret expired.
    ClientSecretExpired,
    /// 700027: the assertion names a certificate the app does not have.
    CertificateNotRegistered {
        thumbprint: String,
        client_id: String,
    },
    /// 700027: the assertion's signature does not match the registered certificate's key.
    InvalidAssertionSignature { thumbprint: String },
    /// 700027: the registered certificate is past its end date.
    CertificateExpired { thumbprint: String },
    /// 700024: `nbf`/`exp` do not cover the current time.
    AssertionTimeRange { now: i64, nbf: i64, exp: i64 },
    /// 700023: `aud` is not this token endpoint.
    AssertionAudience,
    /// 50034: no such user in the tenant.
    UserNotFound { tenant_id: String },
    /// 50053: smart lockout.
    AccountLocked,
    /// 50057: account disabled.
    AccountDisabled,
    /// 50055: password expired.
    PasswordExpired,
    /// 50126: wrong username or password (also what a federated account gets).
    InvalidCredentials,
    /// 50076: MFA required.
    MfaRequired,
    /// 53003: blocked by Conditional Access.
    ConditionalAccess { policy_id: String },
    /// 65001: the app is not consented.
    ConsentRequired { client_id: String, app_name: String },
    /// 70011: the scope is not valid for this app.
    InvalidScope { scope: String },
    /// 900144: a required form parameter is missing.
    MissingParameter { name: &'static str },
    /// 70003: unknown grant type.
    UnsupportedGrantType { grant_type: String },
    /// 9002313: a refresh token that was never issued (garbage).
    MalformedRequest,
    /// 70000: a grant issued to another client, or an unknown device code.
    InvalidGrant,
    /// 50173: refresh token revoked (password change, admin revoke).
    RefreshTokenRevoked { issued: String, valid_from: String },
    /// 70016: device code not approved yet.
    AuthorizationPending,
    /// Device flow: polled faster than `interval`. Microsoft publishes no AADSTS code for it.
    SlowDown,
    /// Device flow: the user declined. Microsoft publishes no AADSTS code for it.
    AuthorizationDeclined,
    /// 70020: device code expired.
    DeviceCodeExpired,
    /// 90033: transient outage (answered with HTTP 503).
    TemporarilyUnavailable,
    /// 50196: request loop detected; answered with HTTP 429. The closest published code for
    /// throttling a client that hammers the token endpoint (the status decides on the client).
    Throttled,
}

/// The documented error body of the token endpoint, in Microsoft's key order.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AadErrorBody {
    pub(crate) error: &'static str,
    pub(crate) error_description: String,
    pub(crate) error_codes: Vec<u32>,
    pub(crate) timestamp: String,
    pub(crate) trace_id: String,
    pub(crate) correlation_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) suberror: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) claims: Option<String>,
}

/// Static facts about one error: `(code, status, error, error_uri present, suberror)`.
struct Spec {
    code: Option<u32>,
    status: u16,
    error: &'static str,
    error_uri: bool,
    suberror: Option<&'static str>,
}

const fn spec(
    code: Option<u32>,
    status: u16,
    error: &'static str,
    error_uri: bool,
    suberror: Option<&'static str>,
) -> Spec {
    Spec {
        code,
        status,
        error,
        error_uri,
        suberror,
    }
}

impl AadError {
    fn spec(&self) -> Spec {
        use AadError::*;
        match self {
            TenantNotFound { .. } => spec(Some(90002), 400, "invalid_tenant", true, None),
            NoTenantInfo => spec(Some(50059), 400, "invalid_request", true, None),
            AppNotFound { .. } => spec(Some(700016), 400, "unauthorized_client", true, None),
            InvalidClientSecret => spec(Some(7000215), 401, "invalid_client", true, None),
            MissingClientSecret => spec(Some(7000218), 401, "invalid_client", true, None),
            // Captured without error_uri (fixture A14).
            ClientSecretExpired => spec(Some(7000222), 401, "invalid_client", false, None),
            CertificateNotRegistered { .. }
            | InvalidAssertionSignature { .. }
            | CertificateExpired { .. } => spec(Some(700027), 401, "invalid_client", true, None),
            AssertionTimeRange { .. } => spec(Some(700024), 400, "invalid_client", true, None),
            AssertionAudience => spec(Some(700023), 400, "invalid_client", true, None),
            // Captured without error_uri (fixture A3).
            UserNotFound { .. } => spec(Some(50034), 400, "invalid_grant", false, None),
            // Captured as unauthorized_client without error_uri (fixture A5).
            AccountLocked => spec(Some(50053), 400, "unauthorized_client", false, None),
            AccountDisabled => spec(Some(50057), 400, "invalid_grant", true, None),
            PasswordExpired => spec(Some(50055), 400, "invalid_grant", true, None),
            InvalidCredentials => spec(Some(50126), 400, "invalid_grant", true, None),
            MfaRequired => spec(
                Some(50076),
                400,
                "invalid_grant",
                true,
                Some("basic_action"),
            ),
            ConditionalAccess { .. } => spec(
                Some(53003),
                400,
                "invalid_grant",
                true,
                Some("message_only"),
            ),
            // Captured without error_uri (fixture A18).
            ConsentRequired { .. } => spec(Some(65001), 400, "invalid_grant", false, None),
            InvalidScope { .. } => spec(Some(70011), 400, "invalid_scope", true, None),
            MissingParameter { .. } => spec(Some(900144), 400, "invalid_request", true, None),
            UnsupportedGrantType { .. } => {
                spec(Some(70003), 400, "unsupported_grant_type", true, None)
            }
            MalformedRequest => spec(Some(9002313), 400, "invalid_grant", true, None),
            InvalidGrant => spec(Some(70000), 400, "invalid_grant", true, None),
            RefreshTokenRevoked { .. } => spec(Some(50173), 400, "invalid_grant", true, None),
            AuthorizationPending => spec(Some(70016), 400, "authorization_pending", true, None),
            SlowDown => spec(None, 400, "slow_down", false, None),
            AuthorizationDeclined => spec(None, 400, "authorization_declined", false, None),
            DeviceCodeExpired => spec(Some(70020), 400, "expired_token", true, None),
            TemporarilyUnavailable => spec(Some(90033), 503, "temporarily_unavailable", true, None),
            Throttled => spec(Some(50196), 429, "temporarily_unavailable", true, None),
        }
    }

    /// The AADSTS code, if Microsoft has one for this answer.
    pub(crate) fn code(&self) -> Option<u32> {
        self.spec().code
    }

    pub(crate) fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.spec().status).unwrap_or(StatusCode::BAD_REQUEST)
    }

    /// Microsoft's wording, without the `AADSTSnnn: ` prefix and the trace lines.
    pub(crate) fn message(&self) -> String {
        use AadError::*;
        match self {
            TenantNotFound { tenant } => format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
            ),
            NoTenantInfo => "No tenant-identifying information found in either the request or implied by any provided credentials.".into(),
            AppNotFound { client_id, tenant } => format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
            ),
            InvalidClientSecret => "Invalid client secret is provided.".into(),
            MissingClientSecret => "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.".into(),
            ClientSecretExpired => "The provided client secret keys are expired.".into(),
            // Wording as Microsoft's answers quote it in public issue threads.
            CertificateNotRegistered { thumbprint, client_id } => format!(
                "The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{thumbprint}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{client_id}'. Review the documentation at https://docs.microsoft.com/en-us/graph/deployments to determine the corresponding service endpoint and https://docs.microsoft.com/en-us/graph/api/application-get?view=graph-rest-1.0&tabs=http to build a query request URL, such as 'https://graph.microsoft.com/beta/applications/{client_id}']"
            ),
            InvalidAssertionSignature { thumbprint } => format!(
                "Client assertion contains an invalid signature. [Reason - The provided signature value did not match the expected signature value., Thumbprint of key used by client: '{thumbprint}']"
            ),
            // Not seen in a captured answer: the wording follows the 700027 family.
            CertificateExpired { thumbprint } => format!(
                "Client assertion contains an invalid signature. [Reason - The key used is expired., Thumbprint of key used by client: '{thumbprint}']"
            ),
            AssertionTimeRange { now, nbf, exp } => format!(
                "Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials",
                iso(*now),
                iso(*nbf),
                iso(*exp)
            ),
            AssertionAudience => "Client assertion audience claim does not match Realm issuer. Review the documentation at https://docs.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials .".into(),
            // Microsoft hides the user name in this message ("PII" placeholder in fixture A3).
            UserNotFound { tenant_id } => format!(
                "The user account {{EUII Hidden}} doesn't exist in the {tenant_id} directory. To sign into this application, the account must be added to the directory."
            ),
            AccountLocked => "You've tried to sign in too many times with an incorrect user ID or password.".into(),
            AccountDisabled => "The user account is disabled.".into(),
            PasswordExpired => "The password is expired.".into(),
            InvalidCredentials => "Error validating credentials due to invalid username or password.".into(),
            MfaRequired => format!(
                "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '{POWERBI_APP_ID}'."
            ),
            ConditionalAccess { .. } => "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.".into(),
            ConsentRequired { client_id, app_name } => format!(
                "The user or administrator has not consented to use the application with ID '{client_id}' named '{app_name}'. Send an interactive authorization request for this user and resource."
            ),
            InvalidScope { scope } => format!(
                "The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."
            ),
            MissingParameter { name } => {
                format!("The request body must contain the following parameter: '{name}'.")
            }
            UnsupportedGrantType { grant_type } => {
                format!("The app requested an unsupported grant type '{grant_type}'.")
            }
            MalformedRequest => "Invalid request. Request is malformed or invalid.".into(),
            InvalidGrant => "Provided grant is invalid or malformed.".into(),
            RefreshTokenRevoked { issued, valid_from } => format!(
                "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password. The grant was issued on '{issued}' and the TokensValidFrom date (before which tokens are not valid) for this user is '{valid_from}'."
            ),
            AuthorizationPending => "OAuth 2.0 device flow error. Authorization is pending. Continue polling.".into(),
            SlowDown => "Polling too frequently: increase the interval by 5 seconds.".into(),
            AuthorizationDeclined => "The end user denied the authorization request.".into(),
            DeviceCodeExpired => "The provided value for the input parameter 'device_code' is not valid. This device code has expired.".into(),
            TemporarilyUnavailable => "A transient error has occurred. Please try again.".into(),
            Throttled => "The server terminated an operation because it encountered a client request loop. Please contact your app vendor.".into(),
        }
    }

    /// The full body, with fresh trace and correlation ids and the current time.
    pub(crate) fn body(&self) -> AadErrorBody {
        self.body_at(ids::unix_now(), ids::guid(), ids::guid())
    }

    /// The body for a given time and ids (deterministic, for tests).
    pub(crate) fn body_at(
        &self,
        now: u64,
        trace_id: String,
        correlation_id: String,
    ) -> AadErrorBody {
        let s = self.spec();
        let timestamp = ids::aad_timestamp(now);
        let message = self.message();
        let head = match s.code {
            Some(code) => format!("AADSTS{code}: {message}"),
            None => message,
        };
        // Microsoft appends these three lines to every description, separated by CRLF.
        let error_description = format!(
            "{head}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {timestamp}"
        );
        let claims = match self {
            AadError::ConditionalAccess { policy_id } => Some(format!(
                r#"{{"access_token":{{"capolids":{{"essential":true,"values":["{policy_id}"]}}}}}}"#
            )),
            _ => None,
        };
        AadErrorBody {
            error: s.error,
            error_description,
            error_codes: s.code.into_iter().collect(),
            timestamp,
            trace_id,
            correlation_id,
            error_uri: match (s.error_uri, s.code) {
                (true, Some(code)) => Some(format!(
                    "https://login.microsoftonline.com/error?code={code}"
                )),
                _ => None,
            },
            suberror: s.suberror,
            claims,
        }
    }
}

/// A Unix time as Microsoft writes it in 700024, e.g. `2024-10-02T22:05:03.0000000Z`.
fn iso(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S.0000000Z").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::{Problem, ProblemId};

    /// Every error we send maps, through the client's own classifier, to the problem a person
    /// would expect — so the simulator drives `problem.rs` the way Microsoft does.
    #[test]
    fn bodies_classify_to_the_expected_problem() {
        let cases = [
            (
                AadError::TenantNotFound { tenant: "x".into() },
                ProblemId::TenantNotFound,
            ),
            (AadError::NoTenantInfo, ProblemId::Config),
            (
                AadError::AppNotFound {
                    client_id: "c".into(),
                    tenant: "t".into(),
                },
                ProblemId::AppNotFound,
            ),
            (
                AadError::InvalidClientSecret,
                ProblemId::InvalidClientSecret,
            ),
            (
                AadError::ClientSecretExpired,
                ProblemId::ClientSecretExpired,
            ),
            (
                AadError::MissingClientSecret,
                ProblemId::InvalidClientSecret,
            ),
            (
                AadError::UserNotFound {
                    tenant_id: "t".into(),
                },
                ProblemId::UserNotFound,
            ),
            (AadError::AccountLocked, ProblemId::AccountLocked),
            (
                AadError::CertificateNotRegistered {
                    thumbprint: "AB".into(),
                    client_id: "c".into(),
                },
                ProblemId::ClientCertificateNotRegistered,
            ),
            (
                AadError::InvalidAssertionSignature {
                    thumbprint: "AB".into(),
                },
                ProblemId::ClientCertificateNotRegistered,
            ),
            (
                AadError::AssertionTimeRange {
                    now: 2,
                    nbf: 0,
                    exp: 1,
                },
                ProblemId::ClientAssertionRejected,
            ),
            (
                AadError::AssertionAudience,
                ProblemId::ClientAssertionRejected,
            ),
            (AadError::AccountDisabled, ProblemId::AccountDisabled),
            (AadError::PasswordExpired, ProblemId::PasswordExpired),
            (AadError::InvalidCredentials, ProblemId::InvalidCredentials),
            (AadError::MfaRequired, ProblemId::MfaRequired),
            (
                AadError::ConditionalAccess {
                    policy_id: ids::guid(),
                },
                ProblemId::ConditionalAccess,
            ),
            (
                AadError::ConsentRequired {
                    client_id: "c".into(),
                    app_name: "a".into(),
                },
                ProblemId::ConsentRequired,
            ),
            (
                AadError::InvalidScope { scope: "s".into() },
                ProblemId::InvalidScope,
            ),
            (
                AadError::MissingParameter { name: "password" },
                ProblemId::Config,
            ),
            (
                AadError::TemporarilyUnavailable,
                ProblemId::ServiceUnavailable,
            ),
            (AadError::Throttled, ProblemId::Throttled),
        ];
        for (err, want) in cases {
            let body = serde_json::to_string(&err.body()).unwrap();
            let p = Problem::from_token_error(err.status().as_u16(), &body, None);
            assert_eq!(p.id, want, "{err:?} → {body}");
            assert_eq!(
                p.aadsts().to_vec(),
                err.code().into_iter().collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn description_carries_code_and_trace_lines() {
        let b = AadError::InvalidCredentials.body_at(1_740_695_915, "t-1".into(), "c-1".into());
        assert_eq!(
            b.error_description,
            "AADSTS50126: Error validating credentials due to invalid username or password.\r\nTrace ID: t-1\r\nCorrelation ID: c-1\r\nTimestamp: 2025-02-27 22:38:35Z"
        );
        assert_eq!(b.timestamp, "2025-02-27 22:38:35Z");
        assert_eq!(
            b.error_uri.as_deref(),
            Some("https://login.microsoftonline.com/error?code=50126")
        );
    }
}
