//! `[[playlist]]`'s `identity_username` and `identity_roles`: the effective identity a service
//! principal's embed token carries for a dataset with row-level security.

use toml::de::DeValue;

use super::walk::{Ctx, Section, describe_type, shown};
use super::{ConfigError, RowIdentity};
use crate::content::ContentKind;

/// Power BI's limits are not published; these keep a typo from becoming a huge request.
const MAX_USERNAME: usize = 256;
const MAX_ROLES: usize = 50;
const MAX_ROLE: usize = 100;

pub(super) const KEYS: [&str; 2] = ["identity_username", "identity_roles"];

pub(super) fn parse_identity(
    cx: &Ctx,
    s: &Section,
    kind: ContentKind,
) -> Result<Option<RowIdentity>, ConfigError> {
    let username = s.string(cx, "identity_username")?;
    let roles = roles(cx, s)?;
    if kind == ContentKind::Dashboard {
        for k in KEYS {
            if let Some(v) = s.get(k) {
                return Err(cx.invalid(
                    &s.key(k),
                    Some(&v.span()),
                    format!("dashboards have no {k}; row-level security applies to reports"),
                    format!("Remove {k} from this entry."),
                ));
            }
        }
    }
    let Some((username, span)) = username else {
        if let Some(v) = s.get("identity_roles") {
            return Err(cx.invalid(
                &s.key("identity_roles"),
                Some(&v.span()),
                "identity_roles is set without identity_username",
                "Add identity_username = \"<the name the dataset's roles filter on>\" to this entry, or remove identity_roles.",
            ));
        }
        return Ok(None);
    };
    if username.trim().is_empty()
        || username.chars().count() > MAX_USERNAME
        || username.chars().any(char::is_control)
    {
        return Err(cx.invalid(
            &s.key("identity_username"),
            Some(&span),
            format!(
                "{} is not a usable identity (empty, over {MAX_USERNAME} characters, or with control characters)",
                shown(username)
            ),
            "Set identity_username to the name the dataset's roles filter on (what USERNAME() returns in the report), e.g. \"store-12@contoso.com\".",
        ));
    }
    Ok(Some(RowIdentity {
        username: username.to_owned(),
        roles: roles.unwrap_or_default(),
    }))
}

/// Role names may hold spaces ("Store Manager"), unlike page and bookmark names.
fn roles(cx: &Ctx, s: &Section) -> Result<Option<Vec<String>>, ConfigError> {
    let Some(v) = s.get("identity_roles") else {
        return Ok(None);
    };
    let key = s.key("identity_roles");
    let fix = "Write it like identity_roles = [\"Store\", \"Region Manager\"]: the names of the dataset's roles (Power BI Desktop > Modeling > Manage roles).";
    let DeValue::Array(items) = v.get_ref() else {
        return Err(cx.invalid(
            &key,
            Some(&v.span()),
            format!("must be a list, not {}", describe_type(v.get_ref())),
            fix,
        ));
    };
    if items.len() > MAX_ROLES {
        return Err(cx.invalid(
            &key,
            Some(&v.span()),
            format!("{} roles; at most {MAX_ROLES}", items.len()),
            fix,
        ));
    }
    let mut out = Vec::with_capacity(items.len());
    for item in items.iter() {
        match item.get_ref() {
            DeValue::String(r)
                if !r.trim().is_empty()
                    && r.chars().count() <= MAX_ROLE
                    && !r.chars().any(char::is_control) =>
            {
                out.push(r.to_string());
            }
            _ => {
                return Err(cx.invalid(
                    &key,
                    Some(&item.span()),
                    "every role is a name in double quotes (not empty, at most 100 characters)",
                    fix,
                ));
            }
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use crate::config::RowIdentity;
    use crate::config::test_support::*;

    fn sp() -> String {
        format!(
            "[auth]\nmethod = \"service_principal\"\ntenant = \"contoso.onmicrosoft.com\"\nclient_id = \"{APP}\"\nclient_secret = \"{CS}\"\n"
        )
    }

    #[test]
    fn identity_is_read_for_reports() {
        let c = ok(&format!(
            "{}{}",
            sp(),
            item(
                "identity_username = \"store-12@contoso.com\"\nidentity_roles = [\"Store\", \"Region Manager\"]\n"
            )
        ));
        assert_eq!(
            c.playlist[0].identity,
            Some(RowIdentity {
                username: "store-12@contoso.com".into(),
                roles: vec!["Store".into(), "Region Manager".into()],
            })
        );
        assert_eq!(
            ok(&format!("{}{}", sp(), item(""))).playlist[0].identity,
            None
        );
    }

    #[test]
    fn bad_identities_are_named() {
        // sp() is 5 lines, the item's workspace and report 3 more.
        for (extra, key, line) in [
            (
                "identity_roles = [\"Store\"]\n",
                "playlist[1].identity_roles",
                9,
            ),
            (
                "identity_username = \"\"\n",
                "playlist[1].identity_username",
                9,
            ),
            (
                "identity_username = \"a\"\nidentity_roles = [\"\"]\n",
                "playlist[1].identity_roles",
                10,
            ),
            (
                "identity_username = \"a\"\nidentity_roles = \"Store\"\n",
                "playlist[1].identity_roles",
                10,
            ),
        ] {
            let (msg, fix) = invalid(err(&format!("{}{}", sp(), item(extra))), key, Some(line));
            assert!(!msg.is_empty() && !fix.is_empty(), "{extra}");
        }
        let dash = format!(
            "{}[[playlist]]\nworkspace = \"{WS}\"\ndashboard = \"{REPORT}\"\nidentity_username = \"a\"\n",
            sp()
        );
        let (msg, _) = invalid(err(&dash), "playlist[1].identity_username", Some(9));
        assert!(msg.contains("dashboards"), "{msg}");
    }

    #[test]
    fn identity_needs_a_service_principal() {
        let e = err(&format!(
            "{}{}",
            auth(),
            item("identity_username = \"a\"\n")
        ));
        let (msg, fix) = invalid(e, "playlist[1].identity_username", None);
        assert!(msg.contains("service_principal"), "{msg}");
        assert!(fix.contains("Remove"), "{fix}");
    }
}
