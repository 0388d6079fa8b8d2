//! Home realm discovery: is the account managed by Entra ID (password sign-in works) or
//! federated to another identity provider (ROPC fails with a misleading AADSTS50126)?

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RealmKind {
    Managed,
    Federated,
    /// The domain is not known to Microsoft, or the answer had a type we do not know.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Realm {
    pub kind: RealmKind,
    pub domain: Option<String>,
    /// For federated realms: the identity provider's sign-in host, to name it to the installer.
    pub federation_host: Option<String>,
}

/// api-version=1.0 answers in snake_case, 2.x in PascalCase; accept both.
#[derive(Deserialize)]
struct RealmBody {
    #[serde(alias = "NameSpaceType")]
    account_type: Option<String>,
    #[serde(alias = "DomainName")]
    domain_name: Option<String>,
    #[serde(alias = "AuthURL")]
    federation_active_auth_url: Option<String>,
}

/// The problem for a federated account: named before any password is sent, because ROPC would
/// only answer a misleading "wrong password" (AADSTS50126) and retries would lock it out.
pub fn federated_problem(realm: &Realm) -> crate::Problem {
    let domain = realm.domain.as_deref().unwrap_or("the account's domain");
    let idp = realm
        .federation_host
        .as_deref()
        .map(|h| format!(" ({h})"))
        .unwrap_or_default();
    crate::Problem::new(crate::ProblemId::FederatedAccount).with_cause(format!(
        "{domain} is federated to another identity provider{idp}; the password was not sent because password sign-in (ROPC) cannot work for it."
    ))
}

/// Parse a userrealm answer. `None` when it is not a userrealm document at all.
pub fn parse(body: &str) -> Option<Realm> {
    let b: RealmBody = serde_json::from_str(body).ok()?;
    let kind = match b.account_type.as_deref()? {
        t if t.eq_ignore_ascii_case("managed") => RealmKind::Managed,
        t if t.eq_ignore_ascii_case("federated") => RealmKind::Federated,
        _ => RealmKind::Unknown,
    };
    let federation_host = b
        .federation_active_auth_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .and_then(|u| u.host_str().map(str::to_owned));
    Some(Realm {
        kind,
        domain: b.domain_name,
        federation_host,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!("{}/tests/fixtures/aad/{name}", env!("CARGO_MANIFEST_DIR"));
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        v["body"].to_string()
    }

    #[test]
    fn real_v1_bodies() {
        let managed = parse(&fixture("U1_v1_managed.json")).unwrap();
        assert_eq!(managed.kind, RealmKind::Managed);
        assert_eq!(managed.domain.as_deref(), Some("whfbhkt.contoso.com"));
        let fed = parse(&fixture("U2_v1_federated.json")).unwrap();
        assert_eq!(fed.kind, RealmKind::Federated);
        assert_eq!(fed.federation_host.as_deref(), Some("fam.contoso.com"));
    }

    #[test]
    fn v2_pascal_case_and_unknown() {
        let r = parse(r#"{"NameSpaceType":"Federated","DomainName":"fabrikam.com","AuthURL":"https://sts.fabrikam.com/adfs/ls/"}"#).unwrap();
        assert_eq!(r.kind, RealmKind::Federated);
        assert_eq!(r.domain.as_deref(), Some("fabrikam.com"));
        assert_eq!(
            parse(r#"{"ver":"1.0","account_type":"Unknown"}"#)
                .unwrap()
                .kind,
            RealmKind::Unknown
        );
        assert_eq!(parse("<html>").map(|r| r.kind), None);
        assert_eq!(parse("{}"), None);
    }
}
