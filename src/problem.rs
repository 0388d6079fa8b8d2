//! Every failure the installer may be told about, as a stable id with a cause and a fix.
//!
//! `check`, the status screen, the status endpoint and the logs all speak in these ids, so an
//! installer can search for `mfa_required` and find the same advice everywhere.
//! Microsoft's answers are classified by their `error_codes` (AADSTS numbers) and then by the
//! OAuth `error` value — never by `error_description`, whose wording changes over time.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Stable problem ids. The serialized (snake_case) names are a public contract: they appear in
/// `check --json`, `/status` and the docs. Add new ids; never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemId {
    InvalidCredentials,
    FederatedAccount,
    MfaRequired,
    ConditionalAccess,
    UserNotFound,
    AccountLocked,
    PasswordExpired,
    AccountDisabled,
    InvalidClientSecret,
    ClientSecretExpired,
    AppNotFound,
    TenantNotFound,
    ConsentRequired,
    InvalidScope,
    NoPowerbiAccess,
    ReportNotFound,
    /// Power BI said the access token expired: get a fresh one, nothing for a person to do.
    TokenExpired,
    Network,
    Tls,
    Throttled,
    ServiceUnavailable,
    Config,
    /// Microsoft refused with a code we do not know. Shown with the code and trace id rather
    /// than guessed into a wrong category.
    Unknown,
    /// The web view cannot reach the embed host (firewall, proxy, DNS, TLS inspection).
    EmbedUnreachable,
    /// Reports resolved but did not load in the web view, for a reason other than the network.
    EmbedFailed,
    /// Power BI gave an embed address that is not https on a Power BI host: not embedded.
    EmbedUrlRefused,
    /// Every playable entry is outside its `when` windows right now: nothing is wrong.
    NothingScheduled,
    /// The certificate the assertion was signed with is not among the app's registered ones.
    ClientCertificateNotRegistered,
    /// The app's client certificate is past its end date.
    ClientCertificateExpired,
    /// Microsoft refused the signed assertion for its time range or audience.
    ClientAssertionRejected,
    /// Device code sign-in: no one has signed in on this screen (or the sign-in was revoked or
    /// expired). The screen shows the code to enter.
    SignInRequired,
    /// Device code sign-in: the person who opened the code declined it.
    SignInDeclined,
    /// A Conditional Access policy (authentication flows, compliant device) blocks the
    /// device-code flow for this app or user.
    DeviceCodeBlocked,
    /// The service principal signed in, but Power BI does not let apps use its API (tenant
    /// setting off, or the app outside the security group it names).
    ServicePrincipalNotAllowed,
    /// Power BI refused to make an embed token (capacity, row-level security, workspace).
    EmbedTokenRefused,
    /// The HTTP proxy (`[network] proxy` or `https_proxy`) itself cannot be reached.
    ProxyUnreachable,
    /// The HTTP proxy answered `407 Proxy Authentication Required`: credentials missing or
    /// refused. A person must fix it, so it is not retried in a loop.
    ProxyAuthRequired,
    /// The `pbikiosk.toml` put on the boot partition was not imported: it is invalid. The
    /// reason (file, line, key, fix) was recorded by `pbikiosk import`.
    BootConfigInvalid,
    /// `[fleet] url` could not be fetched (network, TLS, an HTTP error status): the last good
    /// fleet file stays in use.
    FleetUnreachable,
    /// The fleet file was fetched but refused (TOML, a refused section or secret, a bad
    /// value): the last good fleet file stays in use.
    FleetConfigInvalid,
}

/// How a failure may be retried. Permanent failures must not be retried in a loop: repeated
/// wrong-password attempts are exactly how service accounts get locked out (AADSTS50053).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetryClass {
    /// Will pass by itself (network, throttling, outages): back off exponentially.
    Transient,
    /// Needs a person to change something: try again rarely (default once per 15 minutes).
    Permanent,
}

impl ProblemId {
    pub const ALL: [ProblemId; 40] = [
        Self::InvalidCredentials,
        Self::FederatedAccount,
        Self::MfaRequired,
        Self::ConditionalAccess,
        Self::UserNotFound,
        Self::AccountLocked,
        Self::PasswordExpired,
        Self::AccountDisabled,
        Self::InvalidClientSecret,
        Self::ClientSecretExpired,
        Self::AppNotFound,
        Self::TenantNotFound,
        Self::ConsentRequired,
        Self::InvalidScope,
        Self::NoPowerbiAccess,
        Self::ReportNotFound,
        Self::TokenExpired,
        Self::Network,
        Self::Tls,
        Self::Throttled,
        Self::ServiceUnavailable,
        Self::Config,
        Self::Unknown,
        Self::EmbedUnreachable,
        Self::EmbedFailed,
        Self::EmbedUrlRefused,
        Self::NothingScheduled,
        Self::ClientCertificateNotRegistered,
        Self::ClientCertificateExpired,
        Self::ClientAssertionRejected,
        Self::SignInRequired,
        Self::SignInDeclined,
        Self::DeviceCodeBlocked,
        Self::ServicePrincipalNotAllowed,
        Self::EmbedTokenRefused,
        Self::ProxyUnreachable,
        Self::ProxyAuthRequired,
        Self::BootConfigInvalid,
        Self::FleetUnreachable,
        Self::FleetConfigInvalid,
    ];

    /// The stable id text, e.g. `mfa_required`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidCredentials => "invalid_credentials",
            Self::FederatedAccount => "federated_account",
            Self::MfaRequired => "mfa_required",
            Self::ConditionalAccess => "conditional_access",
            Self::UserNotFound => "user_not_found",
            Self::AccountLocked => "account_locked",
            Self::PasswordExpired => "password_expired",
            Self::AccountDisabled => "account_disabled",
            Self::InvalidClientSecret => "invalid_client_secret",
            Self::ClientSecretExpired => "client_secret_expired",
            Self::AppNotFound => "app_not_found",
            Self::TenantNotFound => "tenant_not_found",
            Self::ConsentRequired => "consent_required",
            Self::InvalidScope => "invalid_scope",
            Self::NoPowerbiAccess => "no_powerbi_access",
            Self::ReportNotFound => "report_not_found",
            Self::TokenExpired => "token_expired",
            Self::Network => "network",
            Self::Tls => "tls",
            Self::Throttled => "throttled",
            Self::ServiceUnavailable => "service_unavailable",
            Self::Config => "config",
            Self::Unknown => "unknown",
            Self::EmbedUnreachable => "embed_unreachable",
            Self::EmbedFailed => "embed_failed",
            Self::EmbedUrlRefused => "embed_url_refused",
            Self::NothingScheduled => "nothing_scheduled",
            Self::ClientCertificateNotRegistered => "client_certificate_not_registered",
            Self::ClientCertificateExpired => "client_certificate_expired",
            Self::ClientAssertionRejected => "client_assertion_rejected",
            Self::SignInRequired => "sign_in_required",
            Self::SignInDeclined => "sign_in_declined",
            Self::DeviceCodeBlocked => "device_code_blocked",
            Self::ServicePrincipalNotAllowed => "service_principal_not_allowed",
            Self::EmbedTokenRefused => "embed_token_refused",
            Self::ProxyUnreachable => "proxy_unreachable",
            Self::ProxyAuthRequired => "proxy_auth_required",
            Self::BootConfigInvalid => "boot_config_invalid",
            Self::FleetUnreachable => "fleet_unreachable",
            Self::FleetConfigInvalid => "fleet_config_invalid",
        }
    }

    pub(crate) fn retry_class(self) -> RetryClass {
        match self {
            Self::Network
            | Self::Tls
            | Self::Throttled
            | Self::ServiceUnavailable
            | Self::TokenExpired
            | Self::EmbedUnreachable
            | Self::EmbedFailed
            | Self::ProxyUnreachable
            | Self::NothingScheduled
            | Self::FleetUnreachable => RetryClass::Transient,
            _ => RetryClass::Permanent,
        }
    }

    /// A short title for the status screen.
    pub(crate) fn title(self) -> &'static str {
        match self {
            Self::InvalidCredentials => "Wrong username or password",
            Self::FederatedAccount => "Federated account cannot sign in unattended",
            Self::MfaRequired => "The account requires multi-factor authentication",
            Self::ConditionalAccess => "Blocked by a Conditional Access policy",
            Self::UserNotFound => "Account not found in this tenant",
            Self::AccountLocked => "Account locked",
            Self::PasswordExpired => "Password expired",
            Self::AccountDisabled => "Account disabled",
            Self::InvalidClientSecret => "Wrong app secret",
            Self::ClientSecretExpired => "App secret expired",
            Self::AppNotFound => "App registration not found",
            Self::TenantNotFound => "Tenant not found",
            Self::ConsentRequired => "Admin consent missing",
            Self::InvalidScope => "Power BI permission not available to the app",
            Self::NoPowerbiAccess => "No access to Power BI content",
            Self::ReportNotFound => "Report not found",
            Self::TokenExpired => "Access token expired",
            Self::Network => "No network connection",
            Self::Tls => "Secure connection failed",
            Self::Throttled => "Microsoft asked us to slow down",
            Self::ServiceUnavailable => "Microsoft service unavailable",
            Self::Config => "Configuration error",
            Self::Unknown => "Sign-in refused",
            Self::EmbedUnreachable => "This screen cannot reach app.powerbi.com",
            Self::EmbedFailed => "The report did not load",
            Self::EmbedUrlRefused => "Power BI gave an address this screen will not open",
            Self::NothingScheduled => "Nothing is scheduled now",
            Self::ClientCertificateNotRegistered => "App certificate not registered",
            Self::ClientCertificateExpired => "App certificate expired",
            Self::ClientAssertionRejected => "Signed app sign-in refused",
            Self::SignInRequired => "Sign in to show reports",
            Self::SignInDeclined => "The sign-in was declined",
            Self::DeviceCodeBlocked => "Sign-in with a code is blocked in this organisation",
            Self::ServicePrincipalNotAllowed => {
                "Power BI does not allow this app (service principal)"
            }
            Self::EmbedTokenRefused => "Power BI refused to make an embed token",
            Self::ProxyUnreachable => "The network proxy cannot be reached",
            Self::ProxyAuthRequired => "The network proxy asks for a password",
            Self::BootConfigInvalid => "The settings file on the boot partition was not used",
            Self::FleetUnreachable => "The fleet configuration cannot be fetched",
            Self::FleetConfigInvalid => "The fleet configuration was refused",
        }
    }

    /// The general cause, in one line. [`Problem::cause`] may be more specific.
    pub(crate) fn cause(self) -> &'static str {
        match self {
            Self::InvalidCredentials => {
                "Microsoft rejected the service account's username or password."
            }
            Self::FederatedAccount => {
                "The account signs in through its organisation's own identity provider (ADFS, Okta, Ping...), which password sign-in (ROPC) cannot use."
            }
            Self::MfaRequired => {
                "The service account must pass multi-factor authentication, which an unattended screen cannot do."
            }
            Self::ConditionalAccess => {
                "A Conditional Access policy in the tenant blocks this sign-in (device, location or app rule)."
            }
            Self::UserNotFound => "The username does not exist in the configured tenant.",
            Self::AccountLocked => {
                "Microsoft locked the account after too many failed sign-ins, or blocked it as risky."
            }
            Self::PasswordExpired => "The service account's password has expired.",
            Self::AccountDisabled => "The service account is disabled in Microsoft Entra ID.",
            Self::InvalidClientSecret => {
                "The app (client) secret is wrong: often the secret's ID was pasted instead of its value."
            }
            Self::ClientSecretExpired => "The app registration's client secret has expired.",
            Self::AppNotFound => {
                "No app registration with this client id exists in the tenant (wrong id, or wrong tenant)."
            }
            Self::TenantNotFound => {
                "The tenant id or domain is unknown to Microsoft (typo, or a national cloud tenant used against the public cloud)."
            }
            Self::ConsentRequired => {
                "The app registration has not been granted the Power BI permissions for this account."
            }
            Self::InvalidScope => "The app registration cannot request the Power BI API scope.",
            Self::NoPowerbiAccess => {
                "The account signed in, but Power BI refused it: no suitable licence, or no access to the workspace."
            }
            Self::ReportNotFound => {
                "A configured report, dashboard or page does not exist or is not visible to the account."
            }
            Self::TokenExpired => "The access token expired before it was replaced.",
            Self::Network => "Microsoft could not be reached (no network, DNS or proxy failure).",
            Self::Tls => {
                "The secure connection to Microsoft failed: a proxy or firewall may be inspecting TLS, or the clock is wrong."
            }
            Self::Throttled => "Microsoft is rate-limiting requests from this device or tenant.",
            Self::ServiceUnavailable => "Microsoft answered with a server error or timed out.",
            Self::Config => "The configuration file is missing, unreadable or invalid.",
            Self::Unknown => {
                "Microsoft refused the sign-in with an error code pbikiosk does not know."
            }
            Self::EmbedUnreachable => {
                "The web view cannot load the Power BI embed host (a firewall, proxy, DNS or TLS inspection is in the way)."
            }
            Self::EmbedFailed => {
                "Power BI found the reports, but they did not load in the web view; they are retried automatically."
            }
            Self::EmbedUrlRefused => {
                "The embed address Power BI gave for a report is not https on a Power BI host, so it is not shown: the web view only opens Power BI."
            }
            Self::NothingScheduled => {
                "Every playlist entry has a `when` that leaves out this time of day (device's local time)."
            }
            Self::ClientCertificateNotRegistered => {
                "Microsoft does not know the certificate in auth.client_certificate_file for this app, or the signature did not match it."
            }
            Self::ClientCertificateExpired => {
                "The certificate in auth.client_certificate_file is past its end date."
            }
            Self::ClientAssertionRejected => {
                "Microsoft refused the signed sign-in request: its time range (this device's clock) or its audience (cloud.authority, tenant) is wrong."
            }
            Self::SignInRequired => {
                "No one has signed in on this screen yet, or its sign-in was revoked or has expired."
            }
            Self::SignInDeclined => {
                "Someone opened the sign-in code and chose not to sign in (declined it)."
            }
            Self::DeviceCodeBlocked => {
                "A Conditional Access policy blocks signing in with a code shown on another device (device code flow), or requires a managed device."
            }
            Self::ServicePrincipalNotAllowed => {
                "The app signed in, but Power BI refused it: \"Allow service principals to use Power BI APIs\" is off, or the app is not in its security group."
            }
            Self::EmbedTokenRefused => {
                "Power BI refused an embed token: no capacity (or trial tokens used up), a dataset needs or refuses an identity (row-level security), or no access to a workspace."
            }
            Self::ProxyUnreachable => {
                "The HTTP proxy this screen must go through refused the connection or did not answer."
            }
            Self::ProxyAuthRequired => {
                "The HTTP proxy answered 407 Proxy Authentication Required: its credentials are missing or wrong."
            }
            Self::BootConfigInvalid => {
                "The pbikiosk.toml on the boot partition (/boot/firmware or /boot) is invalid, so it was not imported and was left there."
            }
            Self::FleetUnreachable => {
                "The web server named by [fleet] url did not answer, refused the request, or answered with an error status."
            }
            Self::FleetConfigInvalid => {
                "The fleet file was fetched, but it is not valid: a TOML error, a bad value, or a section or secret a fleet file may not set."
            }
        }
    }

    /// A concrete fix an installer can act on.
    pub(crate) fn fix(self) -> &'static str {
        match self {
            Self::InvalidCredentials => {
                "Check auth.username and the password; sign in once at app.powerbi.com as this account to confirm them. Federated accounts fail the same way: use a cloud-only account."
            }
            Self::FederatedAccount => {
                "Use a cloud-only account (user@<tenant>.onmicrosoft.com), or, if the tenant allows cloud password validation, set auth.allow_federated = true."
            }
            Self::MfaRequired => {
                "Exclude the service account from MFA (per-user MFA or the Conditional Access policy), e.g. for sign-ins from the site's network."
            }
            Self::ConditionalAccess => {
                "Ask the tenant admin to exclude the service account or this app from the policy named in the sign-in logs (Entra ID > Sign-in logs, search the trace id)."
            }
            Self::UserNotFound => {
                "Check auth.username and auth.tenant: the account must belong to (or be a guest in) this tenant."
            }
            Self::AccountLocked => {
                "Fix the password on the device first, then unlock the account in Entra ID (or wait for the lockout to end). pbikiosk retries rarely, so it will not lock it again."
            }
            Self::PasswordExpired => {
                "Sign in once interactively to set a new password, update the password on the device, and set the account's password to never expire."
            }
            Self::AccountDisabled => "Ask the tenant admin to enable the account in Entra ID.",
            Self::InvalidClientSecret => {
                "In the Azure portal > App registrations > Certificates & secrets, copy the secret's Value (not its Secret ID) into auth.client_secret (file)."
            }
            Self::ClientSecretExpired => {
                "Create a new client secret under App registrations > Certificates & secrets and put its Value into auth.client_secret (file)."
            }
            Self::AppNotFound => {
                "Check auth.client_id (the Application (client) ID on the app's Overview page) and that auth.tenant is the app's tenant."
            }
            Self::TenantNotFound => {
                "Set auth.tenant to the Directory (tenant) ID GUID or a verified domain, and check [cloud] for national clouds."
            }
            Self::ConsentRequired => {
                "In App registrations > API permissions, add the Power BI Service delegated permissions (Report.Read.All, Dashboard.Read.All, Workspace.Read.All) and grant admin consent."
            }
            Self::InvalidScope => {
                "Add the Power BI Service API permission to the app registration and check [cloud] resource for national clouds."
            }
            Self::NoPowerbiAccess => {
                "Give the account a licence that fits the workspace (Pro on shared capacity, PPU for PPU workspaces, none extra on Premium/Fabric) and add it to the workspace as Viewer."
            }
            Self::ReportNotFound => {
                "Check the workspace and report ids in [[playlist]] (run `pbikiosk reports` to list what the account can see). Content in 'My workspace' cannot be used."
            }
            Self::TokenExpired => "Nothing: pbikiosk fetches a new token by itself.",
            Self::Network => {
                "Check the cable/Wi-Fi, DNS and any proxy. pbikiosk keeps retrying and resumes by itself."
            }
            Self::Tls => {
                "Check the device clock. If a proxy inspects TLS, put its CA certificate in a file and set cloud.ca_file."
            }
            Self::Throttled => "Nothing usually: pbikiosk waits as Microsoft asks and retries.",
            Self::ServiceUnavailable => {
                "Nothing usually: pbikiosk retries. Check https://status.cloud.microsoft if it persists."
            }
            Self::Config => {
                "Fix the key named above in the configuration file and restart pbikiosk."
            }
            Self::Unknown => {
                "Look the code up at https://login.microsoftonline.com/error?code=<code> and search the trace id in Entra ID > Sign-in logs."
            }
            Self::EmbedUnreachable => {
                "Ask IT to allow this screen (and its proxy) to reach *.powerbi.com, *.analysis.windows.net, *.pbidedicated.windows.net and login.microsoftonline.com on port 443."
            }
            Self::EmbedFailed => {
                "Open the report at app.powerbi.com as the service account: if it loads there, look for the page's errors in the logs (journalctl -u pbikiosk)."
            }
            Self::NothingScheduled => {
                "Nothing to fix if that is intended: the reports come back on their own. Otherwise widen the entries' `when` windows or add an entry without `when`."
            }
            Self::EmbedUrlRefused => {
                "Check that cloud.api is your cloud's Power BI API (e.g. https://api.powerbi.com) and that no proxy rewrites its answers. Asked again every permanent_retry_minutes."
            }
            Self::ClientCertificateNotRegistered => {
                "Upload the certificate (.cer) to the app registration: Certificates & secrets > Certificates > Upload. Its thumbprint must match `pbikiosk check`."
            }
            Self::ClientCertificateExpired => {
                "Make a new certificate (openssl, see the README), upload its .cer to the app registration and put it with its key in auth.client_certificate_file."
            }
            Self::ClientAssertionRejected => {
                "Set this device's clock right (`timedatectl`, NTP), and check auth.tenant and cloud.authority name the app's own tenant and cloud."
            }
            Self::SignInRequired => {
                "On a phone, open the address shown (or scan the QR code), enter the code and sign in with an account that may see the reports. The screen starts by itself."
            }
            Self::SignInDeclined => {
                "Wait for the new code on this screen and sign in with it (choose Continue, not Cancel) with an account that may see the reports."
            }
            Self::DeviceCodeBlocked => {
                "Ask the tenant admin to allow the device code flow for this app (Conditional Access > Authentication flows; the sign-in logs name the policy), or use another sign-in method."
            }
            Self::ServicePrincipalNotAllowed => {
                "In the admin portal's Developer settings, turn on \"Allow service principals to use Power BI APIs\" for a security group and add the app to it."
            }
            Self::EmbedTokenRefused => {
                "See Microsoft's message. Use a P, F or A/EM capacity; fix row-level security as it says; make the app Member, Contributor or Admin of each workspace."
            }
            Self::ProxyUnreachable => {
                "Check [network] proxy (or https_proxy): the proxy's address and port, that it runs, and that this screen may reach it."
            }
            Self::ProxyAuthRequired => {
                "Put the proxy's user:password in a file (mode 0640) named by [network] proxy_credentials_file, or correct the one it names."
            }
            Self::BootConfigInvalid => {
                "Put the card in a computer, correct the line and key named above in pbikiosk.toml on its boot partition, and restart the screen (or remove the file to keep the current settings)."
            }
            Self::FleetUnreachable => {
                "Check that the fleet server is up and that this screen can reach it (`curl` the address `pbikiosk check` shows); the screen keeps its last good playlist meanwhile."
            }
            Self::FleetConfigInvalid => {
                "Correct the fleet file at the key the message names (it may set only [[playlist]], [display] and [player]); the screen keeps its last good playlist meanwhile."
            }
        }
    }
}

impl fmt::Display for ProblemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One classified failure, with what Microsoft told us about it.
///
/// Never holds a secret: it is shown on screen and logged as is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub id: ProblemId,
    /// Specific cause (defaults to [`ProblemId::cause`]).
    pub(crate) cause: String,
    /// Specific fix (defaults to [`ProblemId::fix`]).
    pub(crate) fix: String,
    /// What Microsoft said about it, when it said anything. Boxed: most problems have none,
    /// and a small `Problem` keeps `Result<_, Problem>` cheap everywhere.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub(crate) microsoft: Option<Box<MicrosoftRef>>,
    /// What the server asked us to wait (`Retry-After`).
    #[serde(skip)]
    pub(crate) retry_after: Option<Duration>,
    /// What the sign-in screen shows while a device code waits for a person; boxed for the
    /// same reason as `microsoft`.
    #[serde(skip)]
    pub(crate) sign_in: Option<Box<crate::auth::device_code::SignInPrompt>>,
}

/// The references Microsoft gives with an error, for searching its sign-in logs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct MicrosoftRef {
    /// AADSTS codes from `error_codes`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) aadsts: Vec<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) trace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) correlation_id: Option<String>,
}

impl Problem {
    pub(crate) fn new(id: ProblemId) -> Self {
        Self {
            id,
            cause: id.cause().to_owned(),
            fix: id.fix().to_owned(),
            microsoft: None,
            retry_after: None,
            sign_in: None,
        }
    }

    /// AADSTS codes Microsoft gave, if any.
    pub fn aadsts(&self) -> &[u32] {
        self.microsoft.as_deref().map_or(&[], |m| &m.aadsts)
    }

    pub fn trace_id(&self) -> Option<&str> {
        self.microsoft.as_deref()?.trace_id.as_deref()
    }

    pub(crate) fn correlation_id(&self) -> Option<&str> {
        self.microsoft.as_deref()?.correlation_id.as_deref()
    }

    /// Microsoft's references as labelled rows, the way the status screen lists them:
    /// "Microsoft code" (every AADSTS code), "Trace ID", "Correlation ID" — each only when given.
    pub(crate) fn references(&self) -> Vec<(&'static str, String)> {
        let mut rows = Vec::new();
        if !self.aadsts().is_empty() {
            rows.push(("Microsoft code", aadsts_list(self.aadsts())));
        }
        if let Some(t) = self.trace_id() {
            rows.push(("Trace ID", t.to_owned()));
        }
        if let Some(c) = self.correlation_id() {
            rows.push(("Correlation ID", c.to_owned()));
        }
        rows
    }

    /// Microsoft's references in one parenthesis to follow a message, e.g.
    /// `" (AADSTS50076, trace id t-9)"`: every code, then the trace id. Empty when Microsoft
    /// gave no code — a trace id alone is not worth a person's attention in a one-line summary.
    pub(crate) fn reference_note(&self) -> String {
        note(self.aadsts(), self.trace_id())
    }

    pub(crate) fn with_cause(mut self, cause: impl Into<String>) -> Self {
        self.cause = cause.into();
        self
    }

    pub(crate) fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = fix.into();
        self
    }

    pub(crate) fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    pub(crate) fn retry_class(&self) -> RetryClass {
        self.id.retry_class()
    }

    /// Classify an error answer of the Microsoft identity platform token endpoint.
    ///
    /// `body` is the raw response text; it may be JSON of the documented shape or anything else
    /// (a proxy's HTML page, an empty body).
    pub fn from_token_error(status: u16, body: &str, retry_after: Option<Duration>) -> Self {
        let parsed: Option<AadErrorBody> = serde_json::from_str(body).ok();
        let mut problem = match (&parsed, status) {
            // Throttling and outages are about the service, whatever the body says.
            (_, 429) => Problem::new(ProblemId::Throttled),
            (_, 500..=599) => Problem::new(ProblemId::ServiceUnavailable),
            (Some(b), _) => classify_aad(b),
            (None, _) => Problem::new(ProblemId::Unknown).with_cause(format!(
                "The sign-in endpoint answered HTTP {status} with a body that is not a Microsoft identity error (a proxy or captive portal may be in the way)."
            )),
        };
        if let Some(b) = parsed {
            problem.microsoft = Some(Box::new(MicrosoftRef {
                aadsts: b.error_codes,
                trace_id: b.trace_id,
                correlation_id: b.correlation_id,
            }));
        }
        if problem.id == ProblemId::Unknown
            && let Some(&code) = problem.aadsts().first()
        {
            problem.cause = format!(
                "Microsoft refused the sign-in with AADSTS{code}, which pbikiosk does not know."
            );
            problem.fix = format!(
                "Look the code up at https://login.microsoftonline.com/error?code={code} and search the trace id in Entra ID > Sign-in logs."
            );
        }
        problem.retry_after = retry_after;
        problem
    }

    /// Classify an error answer of the Power BI REST API.
    pub fn from_powerbi_error(status: u16, body: &str, retry_after: Option<Duration>) -> Self {
        let code = serde_json::from_str::<PowerBiErrorBody>(body)
            .ok()
            .map(|b| b.error.code);
        let id = match (status, code.as_deref()) {
            (429, _) => ProblemId::Throttled,
            (500..=599, _) => ProblemId::ServiceUnavailable,
            (401 | 403, Some("TokenExpired")) => ProblemId::TokenExpired,
            (401 | 403, _) => ProblemId::NoPowerbiAccess,
            (404, _) => ProblemId::ReportNotFound,
            _ => ProblemId::Unknown,
        };
        let mut problem = Problem::new(id).with_retry_after(retry_after);
        if id == ProblemId::Unknown {
            problem.cause = format!(
                "Power BI answered HTTP {status} ({}).",
                code.as_deref().unwrap_or("no error code")
            );
            problem.fix =
                "Check the ids in [[playlist]]; run `pbikiosk check` for details.".to_owned();
        }
        problem
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Logs keep to the first (deciding) code; `check` and the status screen list them all.
        let codes = self.aadsts();
        let first = &codes[..codes.len().min(1)];
        write!(
            f,
            "{}: {}{}",
            self.id,
            self.cause,
            note(first, self.trace_id())
        )
    }
}

/// `AADSTS50076, AADSTS50079`: codes as Microsoft's error pages and sign-in logs write them.
fn aadsts_list(codes: &[u32]) -> String {
    let codes: Vec<String> = codes.iter().map(|c| format!("AADSTS{c}")).collect();
    codes.join(", ")
}

/// `" (AADSTS…, trace id …)"`, or nothing without a code.
fn note(codes: &[u32], trace_id: Option<&str>) -> String {
    if codes.is_empty() {
        return String::new();
    }
    match trace_id {
        Some(t) => format!(" ({}, trace id {t})", aadsts_list(codes)),
        None => format!(" ({})", aadsts_list(codes)),
    }
}

impl std::error::Error for Problem {}

/// The documented error body of the token endpoint. Only the fields we decide on or show.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct AadErrorBody {
    #[serde(default)]
    pub(crate) error: String,
    #[serde(default)]
    pub(crate) error_codes: Vec<u32>,
    #[serde(default)]
    pub(crate) trace_id: Option<String>,
    #[serde(default)]
    pub(crate) correlation_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PowerBiErrorBody {
    error: PowerBiErrorInner,
}

#[derive(Debug, Deserialize)]
struct PowerBiErrorInner {
    #[serde(default)]
    code: String,
}

/// AADSTS code → problem id. Codes from Microsoft's published error code list.
pub(crate) fn problem_for_aadsts(code: u32) -> Option<ProblemId> {
    use ProblemId::*;
    Some(match code {
        50126 => InvalidCredentials,
        50034 | 50020 | 90072 => UserNotFound,
        50053 => AccountLocked,
        50055 | 50144 => PasswordExpired,
        50057 => AccountDisabled,
        50076 | 50079 | 50074 | 50158 => MfaRequired,
        53000..=53004 | 530002 | 50097 => ConditionalAccess,
        7000215 | 7000218 => InvalidClientSecret,
        7000222 => ClientSecretExpired,
        700027 => ClientCertificateNotRegistered,
        700024 | 700023 => ClientAssertionRejected,
        700016 => AppNotFound,
        90002 | 900023 | 90023 => TenantNotFound,
        65001 | 65004 | 50105 => ConsentRequired,
        70011 | 28000 | 28003 => InvalidScope,
        500011 => NoPowerbiAccess,
        50059 | 90014 | 900144 => Config,
        50196 => Throttled,
        _ => return None,
    })
}

fn classify_aad(body: &AadErrorBody) -> Problem {
    // The first code we know decides; Microsoft sometimes lists several (e.g. 50076 with 50079).
    if let Some(id) = body.error_codes.iter().find_map(|c| problem_for_aadsts(*c)) {
        return Problem::new(id);
    }
    if !body.error_codes.is_empty() {
        return Problem::new(ProblemId::Unknown);
    }
    // No codes: fall back on the OAuth error value (RFC 6749 §5.2).
    let id = match body.error.as_str() {
        "invalid_client" => ProblemId::InvalidClientSecret,
        "unauthorized_client" => ProblemId::AppNotFound,
        "invalid_scope" => ProblemId::InvalidScope,
        "invalid_tenant" => ProblemId::TenantNotFound,
        "temporarily_unavailable" => ProblemId::ServiceUnavailable,
        _ => ProblemId::Unknown,
    };
    let mut p = Problem::new(id);
    if id == ProblemId::Unknown {
        p.cause = format!(
            "Microsoft refused the sign-in with error '{}' and no AADSTS code.",
            body.error
        );
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_serde_and_as_str() {
        for id in ProblemId::ALL {
            let json = serde_json::to_string(&id).unwrap();
            assert_eq!(json, format!("\"{}\"", id.as_str()));
            let back: ProblemId = serde_json::from_str(&json).unwrap();
            assert_eq!(back, id);
            assert!(!id.title().is_empty() && !id.cause().is_empty() && !id.fix().is_empty());
            // The status screen shows five lines of fix at most.
            assert!(
                id.fix().len() <= 180,
                "{id}: fix is {} chars",
                id.fix().len()
            );
            assert!(
                id.cause().len() <= 180,
                "{id}: cause is {} chars",
                id.cause().len()
            );
        }
    }

    #[test]
    fn decides_on_codes_not_on_description() {
        // The description says "password" but the code says MFA.
        let body = r#"{"error":"invalid_grant","error_description":"AADSTS50126: invalid username or password","error_codes":[50076],"trace_id":"t-1","correlation_id":"c-1"}"#;
        let p = Problem::from_token_error(400, body, None);
        assert_eq!(p.id, ProblemId::MfaRequired);
        assert_eq!(p.aadsts(), &[50076]);
        assert_eq!(p.trace_id(), Some("t-1"));
        assert_eq!(p.correlation_id(), Some("c-1"));
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["aadsts"], serde_json::json!([50076]));
        assert_eq!(json["trace_id"], "t-1");
        assert_eq!(json["id"], "mfa_required");
    }

    #[test]
    fn references_as_rows_and_as_a_note() {
        let body = r#"{"error":"invalid_grant","error_codes":[50076,50079],"trace_id":"t-1","correlation_id":"c-1"}"#;
        let p = Problem::from_token_error(400, body, None);
        assert_eq!(
            p.references(),
            vec![
                ("Microsoft code", "AADSTS50076, AADSTS50079".to_owned()),
                ("Trace ID", "t-1".to_owned()),
                ("Correlation ID", "c-1".to_owned()),
            ]
        );
        assert_eq!(
            p.reference_note(),
            " (AADSTS50076, AADSTS50079, trace id t-1)"
        );
        // Logs name only the deciding code.
        assert_eq!(
            p.to_string(),
            format!("mfa_required: {} (AADSTS50076, trace id t-1)", p.cause)
        );

        let p = Problem::from_token_error(400, r#"{"error":"x","error_codes":[50126]}"#, None);
        assert_eq!(
            p.references(),
            vec![("Microsoft code", "AADSTS50126".to_owned())]
        );
        assert_eq!(p.reference_note(), " (AADSTS50126)");

        // A trace id without a code is listed on screen but not noted after a message.
        let p = Problem::from_token_error(400, r#"{"error":"weird","trace_id":"t-2"}"#, None);
        assert_eq!(p.references(), vec![("Trace ID", "t-2".to_owned())]);
        assert_eq!(p.reference_note(), "");
        assert_eq!(p.to_string(), format!("unknown: {}", p.cause));
        assert!(Problem::new(ProblemId::Network).references().is_empty());
    }

    #[test]
    fn unknown_code_stays_visible() {
        let body = r#"{"error":"invalid_grant","error_codes":[9999999],"trace_id":"abc"}"#;
        let p = Problem::from_token_error(400, body, None);
        assert_eq!(p.id, ProblemId::Unknown);
        assert!(p.cause.contains("AADSTS9999999"), "{}", p.cause);
        assert!(p.fix.contains("code=9999999"), "{}", p.fix);
        assert!(p.to_string().contains("trace id abc"));
    }

    #[test]
    fn falls_back_on_oauth_error_without_codes() {
        let p = Problem::from_token_error(401, r#"{"error":"invalid_client"}"#, None);
        assert_eq!(p.id, ProblemId::InvalidClientSecret);
        let p = Problem::from_token_error(400, r#"{"error":"weird"}"#, None);
        assert_eq!(p.id, ProblemId::Unknown);
        assert!(p.cause.contains("weird"));
    }

    #[test]
    fn status_decides_for_throttling_and_outages() {
        let p = Problem::from_token_error(429, "", Some(Duration::from_secs(7)));
        assert_eq!(p.id, ProblemId::Throttled);
        assert_eq!(p.retry_after, Some(Duration::from_secs(7)));
        assert_eq!(p.retry_class(), RetryClass::Transient);
        let p = Problem::from_token_error(503, "<html>down</html>", None);
        assert_eq!(p.id, ProblemId::ServiceUnavailable);
        let p = Problem::from_token_error(400, "<html>proxy</html>", None);
        assert_eq!(p.id, ProblemId::Unknown);
        assert!(p.cause.contains("HTTP 400"));
    }

    #[test]
    fn powerbi_errors() {
        let expired = r#"{"error":{"code":"TokenExpired","message":"Access token has expired"}}"#;
        assert_eq!(
            Problem::from_powerbi_error(403, expired, None).id,
            ProblemId::TokenExpired
        );
        let denied = r#"{"error":{"code":"PowerBINotAuthorizedException"}}"#;
        assert_eq!(
            Problem::from_powerbi_error(401, denied, None).id,
            ProblemId::NoPowerbiAccess
        );
        assert_eq!(
            Problem::from_powerbi_error(404, "", None).id,
            ProblemId::ReportNotFound
        );
        assert_eq!(
            Problem::from_powerbi_error(429, "", None).id,
            ProblemId::Throttled
        );
        assert_eq!(
            Problem::from_powerbi_error(502, "", None).id,
            ProblemId::ServiceUnavailable
        );
        let odd = Problem::from_powerbi_error(400, r#"{"error":{"code":"InvalidRequest"}}"#, None);
        assert_eq!(odd.id, ProblemId::Unknown);
        assert!(odd.cause.contains("InvalidRequest"));
    }

    #[test]
    fn permanent_and_transient() {
        assert_eq!(
            ProblemId::InvalidCredentials.retry_class(),
            RetryClass::Permanent
        );
        assert_eq!(
            ProblemId::AccountLocked.retry_class(),
            RetryClass::Permanent
        );
        assert_eq!(ProblemId::Network.retry_class(), RetryClass::Transient);
    }
}
