//! `[auth]`: how the service account signs in. Its two secrets are resolved by `secrets`.

use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use super::ids::{is_domain, is_guid};
use super::walk::{Ctx, Section, shown};
use super::{AuthConfig, AuthMethod, ConfigError, DEFAULT_PERMANENT_RETRY, DEFAULT_TOKEN_CACHE};
use super::{certificate, secrets};
use crate::secret::Secret;

const AUTH_KEYS: &[&str] = &[
    "method",
    "tenant",
    "client_id",
    "client_secret",
    "client_secret_file",
    "client_certificate_file",
    "username",
    "password",
    "password_file",
    "allow_federated",
    "permanent_retry_minutes",
    "token_cache",
];

/// Keys that hold a stored identity: a device-code sign-in is a person on their own phone, so
/// the screen keeps none of these.
const NOT_FOR_DEVICE_CODE: &[&str] = &[
    "client_secret",
    "client_secret_file",
    "client_certificate_file",
    "username",
    "password",
    "password_file",
    "allow_federated",
];

/// `permanent_retry_minutes` when the file does not set it.
const DEFAULT_RETRY_MINUTES: i64 = (DEFAULT_PERMANENT_RETRY.as_secs() / 60) as i64;

pub(super) fn parse_auth(cx: &Ctx, s: &Section) -> Result<AuthConfig, ConfigError> {
    s.check_table_keys(cx, "[auth]", AUTH_KEYS)?;

    let method = match s.string(cx, "method")? {
        None => AuthMethod::Password,
        Some((m, span)) => AuthMethod::SUPPORTED
            .iter()
            .find(|(name, _)| *name == m)
            .map(|(_, method)| *method)
            .ok_or_else(|| {
                let names: Vec<String> = AuthMethod::SUPPORTED
                    .iter()
                    .map(|(n, _)| format!("\"{n}\""))
                    .collect();
                cx.invalid(
                    &s.key("method"),
                    Some(&span),
                    format!(
                        "sign-in method {m:?} is not supported; supported: {}",
                        names.join(", ")
                    ),
                    "Set method = \"password\" (or remove the line: it is the default), method = \"service_principal\" to sign in as the app, or method = \"device_code\" to sign in with a code on a phone.",
                )
            })?,
    };

    let (tenant, span) = s.required(
        cx,
        "tenant",
        "Add tenant = \"<Directory (tenant) ID>\" (or a verified domain such as contoso.onmicrosoft.com) to [auth].",
    )?;
    check_tenant(cx, &s.key("tenant"), tenant, &span)?;
    if method == AuthMethod::ServicePrincipal && tenant.eq_ignore_ascii_case("organizations") {
        return Err(cx.invalid(
            &s.key("tenant"),
            Some(&span),
            "\"organizations\" cannot be used: a service principal signs in to its own tenant",
            "Set tenant to the Directory (tenant) ID GUID from Entra ID > Overview, or to the tenant's domain (e.g. contoso.onmicrosoft.com).",
        ));
    }

    let (client_id, span) = s.required(
        cx,
        "client_id",
        "Add client_id = \"<Application (client) ID>\" from the app registration's Overview page to [auth].",
    )?;
    if !is_guid(client_id) {
        return Err(cx.invalid(
            &s.key("client_id"),
            Some(&span),
            format!(
                "{} is not a GUID (like 00000000-0000-0000-0000-000000000000)",
                shown(client_id)
            ),
            "Copy the Application (client) ID from the app registration's Overview page in the Azure portal (not the Object ID, not the secret).",
        ));
    }

    let minutes = s
        .int(
            cx,
            "permanent_retry_minutes",
            1..=1440,
            "minutes",
            DEFAULT_RETRY_MINUTES,
        )?
        .unwrap_or(DEFAULT_RETRY_MINUTES);
    let permanent_retry = Duration::from_secs(minutes as u64 * 60);

    if method == AuthMethod::DeviceCode {
        return device_code(cx, s, tenant, client_id, permanent_retry);
    }
    if let Some((_, span)) = s.string(cx, "token_cache")? {
        return Err(cx.invalid(
            &s.key("token_cache"),
            Some(&span),
            "token_cache is only used by method = \"device_code\"",
            "Remove token_cache from [auth], or set method = \"device_code\".",
        ));
    }
    if method == AuthMethod::ServicePrincipal {
        return service_principal(cx, s, tenant, client_id, permanent_retry);
    }

    let (username, span) = s.required(
        cx,
        "username",
        "Add username = \"<service account>@<domain>\" to [auth].",
    )?;
    if !looks_like_upn(username) {
        return Err(cx.invalid(
            &s.key("username"),
            Some(&span),
            format!("{} does not look like user@domain", shown(username)),
            "Set username to the service account's full sign-in name, e.g. svc-pbikiosk@contoso.onmicrosoft.com.",
        ));
    }

    let allow_federated = s.bool(cx, "allow_federated")?.unwrap_or(false);

    let client = certificate::client_credential(cx, s)?;
    let password = secrets::password(cx, s)?;

    Ok(AuthConfig {
        method,
        tenant: tenant.to_owned(),
        client_id: client_id.to_owned(),
        client,
        username: username.to_owned(),
        password,
        allow_federated,
        permanent_retry,
        token_cache: None,
    })
}

/// `method = "device_code"`: a public client (no secret) and no account on the device; where
/// the refresh token is kept.
fn device_code(
    cx: &Ctx,
    s: &Section,
    tenant: &str,
    client_id: &str,
    permanent_retry: Duration,
) -> Result<AuthConfig, ConfigError> {
    refuse_keys(
        cx,
        s,
        NOT_FOR_DEVICE_CODE,
        "device_code",
        "a person signs in on their own phone, and the screen stores no password or secret",
        "(the app registration must allow public client flows), or set method = \"password\".",
    )?;
    let token_cache = match s.string(cx, "token_cache")? {
        Some((path, span)) if path.trim().is_empty() => {
            return Err(cx.invalid(
                &s.key("token_cache"),
                Some(&span),
                "token_cache is empty",
                format!(
                    "Set token_cache to a file in a folder only pbikiosk can write, or remove the line for {DEFAULT_TOKEN_CACHE}."
                ),
            ));
        }
        Some((path, _)) => cx.resolve(path),
        None => PathBuf::from(DEFAULT_TOKEN_CACHE),
    };
    Ok(AuthConfig {
        method: AuthMethod::DeviceCode,
        tenant: tenant.to_owned(),
        client_id: client_id.to_owned(),
        client: crate::auth::ClientCredential::Public,
        username: String::new(),
        password: Secret::new(""),
        allow_federated: false,
        permanent_retry,
        token_cache: Some(token_cache),
    })
}

/// Keys that belong to password sign-in only.
const USER_KEYS: &[&str] = &["username", "password", "password_file", "allow_federated"];

/// `method = "service_principal"`: the app signs in as itself with its client secret.
///
/// A user name or password given anyway is refused rather than ignored: a password kept on
/// the device for nothing is a secret at rest for nothing, and an installer reading
/// `username = ...` would believe the screen shows what that account sees (its licence, its
/// row-level security), which it does not.
fn service_principal(
    cx: &Ctx,
    s: &Section,
    tenant: &str,
    client_id: &str,
    permanent_retry: Duration,
) -> Result<AuthConfig, ConfigError> {
    refuse_keys(
        cx,
        s,
        USER_KEYS,
        "service_principal",
        "the app signs in as itself, with no user account",
        "(and delete any password file), or set method = \"password\" to sign in as a service account.",
    )?;
    // A secret or a certificate: the app proves itself the same way as with a password.
    let client = certificate::client_credential(cx, s)?;
    Ok(AuthConfig {
        method: AuthMethod::ServicePrincipal,
        tenant: tenant.to_owned(),
        client_id: client_id.to_owned(),
        client,
        username: String::new(),
        password: Secret::new(String::new()),
        allow_federated: false,
        permanent_retry,
        token_cache: None,
    })
}

/// Refuse the first of `keys` that `[auth]` sets: `method` has no use for it (`why`), and a
/// value kept for nothing would mislead whoever reads the file. `fix` follows "Remove <key>
/// from [auth]".
fn refuse_keys(
    cx: &Ctx,
    s: &Section,
    keys: &[&str],
    method: &str,
    why: &str,
    fix: &str,
) -> Result<(), ConfigError> {
    match keys.iter().find_map(|k| s.get(k).map(|v| (*k, v))) {
        Some((key, v)) => Err(cx.invalid(
            &s.key(key),
            Some(&v.span()),
            format!("{key} is not used with method = \"{method}\": {why}"),
            format!("Remove {key} from [auth] {fix}"),
        )),
        None => Ok(()),
    }
}

fn check_tenant(cx: &Ctx, key: &str, tenant: &str, span: &Range<usize>) -> Result<(), ConfigError> {
    let lower = tenant.to_ascii_lowercase();
    if lower == "common" || lower == "consumers" {
        return Err(cx.invalid(
            key,
            Some(span),
            format!("\"{lower}\" cannot be used: password sign-in (ROPC) needs the account's own tenant"),
            "Set tenant to the Directory (tenant) ID GUID from Entra ID > Overview, or to the tenant's domain (e.g. contoso.onmicrosoft.com).",
        ));
    }
    if lower == "organizations" || is_guid(tenant) || is_domain(&lower) {
        return Ok(());
    }
    Err(cx.invalid(
        key,
        Some(span),
        format!("{} is neither a tenant GUID nor a domain name", shown(tenant)),
        "Set tenant to the Directory (tenant) ID GUID from Entra ID > Overview, or to a verified domain such as contoso.onmicrosoft.com.",
    ))
}

fn looks_like_upn(s: &str) -> bool {
    match s.split_once('@') {
        Some((user, domain)) => {
            !user.is_empty()
                && !user.chars().any(|c| c.is_whitespace() || c.is_control())
                && is_domain(&domain.to_ascii_lowercase())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use crate::config::test_support::*;

    #[test]
    fn method_other_than_password_lists_supported() {
        let text = format!("{}method = \"certificate\"\n", auth());
        let (msg, fix) = invalid(err(&text), "auth.method", Some(7));
        assert!(
            msg.contains("\"certificate\"") && msg.contains("\"password\""),
            "{msg}"
        );
        assert!(fix.contains("method = \"password\""), "{fix}");
    }

    #[test]
    fn tenant_rules() {
        for bad in ["common", "Consumers"] {
            let text = auth().replace(
                "tenant = \"contoso.onmicrosoft.com\"",
                &format!("tenant = \"{bad}\""),
            );
            let (msg, fix) = invalid(err(&text), "auth.tenant", Some(2));
            assert!(msg.contains("ROPC"), "{msg}");
            assert!(fix.contains("Directory (tenant) ID"), "{fix}");
        }
        let text = auth().replace(
            "tenant = \"contoso.onmicrosoft.com\"",
            "tenant = \"not a tenant\"",
        );
        invalid(err(&text), "auth.tenant", Some(2));
        for good in ["organizations", WS, "fabrikam.com"] {
            let text = auth().replace(
                "tenant = \"contoso.onmicrosoft.com\"",
                &format!("tenant = \"{good}\""),
            );
            assert_eq!(ok(&text).auth.tenant, good);
        }
    }

    #[test]
    fn required_auth_keys() {
        let text = auth().replace(&format!("client_id = \"{APP}\"\n"), "");
        let (msg, fix) = invalid(err(&text), "auth.client_id", Some(1));
        assert!(msg.contains("missing"), "{msg}");
        assert!(fix.contains("Application (client) ID"), "{fix}");
        let text = auth().replace("tenant = \"contoso.onmicrosoft.com\"\n", "");
        invalid(err(&text), "auth.tenant", Some(1));
        let text = auth().replace("username = \"svc@contoso.onmicrosoft.com\"\n", "");
        invalid(err(&text), "auth.username", Some(1));
    }

    #[test]
    fn client_id_must_be_guid() {
        let text = auth().replace(APP, "my-app");
        let (msg, fix) = invalid(err(&text), "auth.client_id", Some(3));
        assert!(msg.contains("not a GUID"), "{msg}");
        assert!(fix.contains("Overview"), "{fix}");
    }

    #[test]
    fn username_must_look_like_upn() {
        for bad in ["svc", "svc@localhost", "@contoso.com", "svc pb@contoso.com"] {
            let text = auth().replace("svc@contoso.onmicrosoft.com", bad);
            invalid(err(&text), "auth.username", Some(4));
        }
    }

    fn device_code_auth(extra: &str) -> String {
        format!(
            "[auth]\nmethod = \"device_code\"\ntenant = \"contoso.onmicrosoft.com\"\nclient_id = \"{APP}\"\n{extra}"
        )
    }

    #[test]
    fn device_code_needs_no_secret_and_keeps_its_cache_in_the_state_directory() {
        use crate::config::{AuthMethod, DEFAULT_TOKEN_CACHE};
        let c = ok(&device_code_auth(""));
        assert_eq!(c.auth.method, AuthMethod::DeviceCode);
        assert_eq!(c.auth.client_id, APP);
        assert_eq!(
            c.auth.token_cache.as_deref(),
            Some(std::path::Path::new(DEFAULT_TOKEN_CACHE))
        );
        // A relative path is the config folder's, like every other file in the config.
        let c = ok(&device_code_auth("token_cache = \"cache/token.json\"\n"));
        let dir = path().parent().unwrap();
        assert_eq!(c.auth.token_cache.unwrap(), dir.join("cache/token.json"));
        let (msg, fix) = invalid(
            err(&device_code_auth("token_cache = \" \"\n")),
            "auth.token_cache",
            Some(5),
        );
        assert!(msg.contains("empty"), "{msg}");
        assert!(fix.contains(DEFAULT_TOKEN_CACHE), "{fix}");
    }

    #[test]
    fn device_code_refuses_stored_identities_naming_the_key() {
        for (line, key) in [
            (format!("client_secret = \"{CS}\"\n"), "client_secret"),
            (
                "client_secret_file = \"/x\"\n".to_owned(),
                "client_secret_file",
            ),
            (
                "username = \"svc@contoso.onmicrosoft.com\"\n".to_owned(),
                "username",
            ),
            (format!("password = \"{PW}\"\n"), "password"),
            ("allow_federated = true\n".to_owned(), "allow_federated"),
        ] {
            let e = err(&device_code_auth(&line));
            let shown = e.to_string();
            assert!(!shown.contains(CS) && !shown.contains(PW), "{shown}");
            let (msg, fix) = invalid(e, &format!("auth.{key}"), Some(5));
            assert!(msg.contains("device_code"), "{msg}");
            assert!(fix.contains(&format!("Remove {key}")), "{fix}");
        }
        // token_cache belongs to device_code only.
        let text = format!("{}token_cache = \"/x\"\n", auth());
        let (_, fix) = invalid(err(&text), "auth.token_cache", Some(7));
        assert!(fix.contains("device_code"), "{fix}");
    }

    #[test]
    fn permanent_retry_range() {
        for bad in [0, 1441, -5] {
            let text = format!("{}permanent_retry_minutes = {bad}\n", auth());
            let (msg, fix) = invalid(err(&text), "auth.permanent_retry_minutes", Some(7));
            assert!(msg.contains("1 to 1440"), "{msg}");
            assert!(fix.contains("from 1 to 1440"), "{fix}");
        }
        let huge = format!("{}permanent_retry_minutes = 0xFFFFFFFFFFFFFFFF\n", auth());
        invalid(err(&huge), "auth.permanent_retry_minutes", Some(7));
        for good in [1, 1440] {
            let text = format!("{}permanent_retry_minutes = {good}\n", auth());
            assert_eq!(ok(&text).auth.permanent_retry.as_secs(), good * 60);
        }
    }

    fn sp() -> String {
        format!(
            "[auth]\nmethod = \"service_principal\"\ntenant = \"contoso.onmicrosoft.com\"\nclient_id = \"{APP}\"\nclient_secret = \"{CS}\"\n"
        )
    }

    #[test]
    fn service_principal_needs_no_user() {
        let c = ok(&sp());
        assert_eq!(c.auth.method, crate::config::AuthMethod::ServicePrincipal);
        assert_eq!(c.auth.client.secret().map(|s| s.expose()), Some(CS));
        assert!(c.auth.username.is_empty());
        assert!(c.auth.password.expose().is_empty());
        // The secret is still required.
        let text = sp().replace(&format!("client_secret = \"{CS}\"\n"), "");
        let e = err(&text);
        assert!(e.to_string().contains("client_secret"), "{e}");
    }

    #[test]
    fn service_principal_refuses_user_keys_by_name() {
        for (line, key, at) in [
            (
                "username = \"svc@contoso.onmicrosoft.com\"\n",
                "auth.username",
                6,
            ),
            (
                &format!("password = \"{PW}\"\n") as &str,
                "auth.password",
                6,
            ),
            (
                "password_file = \"/etc/pbikiosk/pw\"\n",
                "auth.password_file",
                6,
            ),
            ("allow_federated = true\n", "auth.allow_federated", 6),
        ] {
            let (msg, fix) = invalid(err(&format!("{}{line}", sp())), key, Some(at));
            assert!(msg.contains("service_principal"), "{msg}");
            assert!(fix.contains("Remove"), "{fix}");
            assert!(
                !msg.contains(PW) && !fix.contains(PW),
                "no secret in {msg} / {fix}"
            );
        }
        let text = sp().replace("contoso.onmicrosoft.com", "organizations");
        let (msg, _) = invalid(err(&text), "auth.tenant", Some(3));
        assert!(msg.contains("own tenant"), "{msg}");
    }
}
