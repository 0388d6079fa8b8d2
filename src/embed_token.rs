//! Embed tokens for sign-in as a service principal: what to ask Power BI's GenerateToken for,
//! and what its refusals mean. Pure: no I/O, so the request shape and every refusal body can be
//! tested as Microsoft sends them.
//!
//! A service principal's Entra token cannot be given to the page: Power BI only lets an app
//! embed with an *embed token*. One multi-resource token (`POST /v1.0/myorg/GenerateToken`)
//! covers every report of the playlist and their datasets, so the player keeps handing one
//! token to every report embed, and renews it the way it renews an Entra token today.
//! Dashboards cannot be named in that call: each gets a token of its own from its own
//! GenerateToken, carried next to the shared one as [`ItemTokens`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::problem::{Problem, ProblemId};
use crate::secret::Secret;

/// The most reports (and datasets) one GenerateToken call may name.
pub(crate) const MAX_ITEMS: usize = 50;

/// Who row-level security filters for, as GenerateToken's `identities[]` entry wants it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct EffectiveIdentity {
    pub(crate) username: String,
    pub(crate) roles: Vec<String>,
    pub(crate) datasets: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct IdRef {
    id: String,
}

/// The body of `POST /v1.0/myorg/GenerateToken` (GenerateTokenRequestV2), view only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TokenRequest {
    datasets: Vec<IdRef>,
    reports: Vec<IdRef>,
    target_workspaces: Vec<IdRef>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    identities: Vec<EffectiveIdentity>,
}

/// One report of the playlist, as the token must cover it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) report: String,
    pub(crate) dataset: String,
    /// Row-level security: the user name and roles to filter the dataset for.
    pub(crate) identity: Option<(String, Vec<String>)>,
}

impl TokenRequest {
    /// Every report and dataset once, in playlist order. No target workspaces: a kiosk only
    /// views, and Power BI asks for more permissions (Content.Create) when any are named.
    pub(crate) fn for_targets(targets: &[Target]) -> Result<Self, Problem> {
        let mut reports: Vec<IdRef> = Vec::new();
        let mut datasets: Vec<IdRef> = Vec::new();
        let mut identities: Vec<EffectiveIdentity> = Vec::new();
        for t in targets {
            let seen = |v: &[IdRef], id: &str| v.iter().any(|x| x.id.eq_ignore_ascii_case(id));
            if !seen(&reports, &t.report) {
                reports.push(IdRef {
                    id: t.report.clone(),
                });
            }
            if !seen(&datasets, &t.dataset) {
                datasets.push(IdRef {
                    id: t.dataset.clone(),
                });
            }
            if let Some((user, roles)) = &t.identity {
                // One identity per dataset: two playlist items that filter the same dataset
                // for different people would make Power BI refuse the whole token.
                match identities.iter_mut().find(|i| {
                    i.datasets
                        .iter()
                        .any(|d| d.eq_ignore_ascii_case(&t.dataset))
                }) {
                    Some(i) if i.username == *user && i.roles == *roles => {}
                    Some(_) => {
                        return Err(Problem::new(ProblemId::Config)
                            .with_cause(format!(
                                "Two playlist items show dataset {} with different identity_username or identity_roles; one embed token can carry only one identity per dataset.",
                                t.dataset
                            ))
                            .with_fix("Give every playlist item of the same dataset the same identity_username and identity_roles."));
                    }
                    None => identities.push(EffectiveIdentity {
                        username: user.clone(),
                        roles: roles.clone(),
                        datasets: vec![t.dataset.clone()],
                    }),
                }
            }
        }
        if reports.len() > MAX_ITEMS || datasets.len() > MAX_ITEMS {
            return Err(Problem::new(ProblemId::Config)
                .with_cause(format!(
                    "The playlist names {} reports on {} datasets; one embed token covers at most {MAX_ITEMS} of each.",
                    reports.len(),
                    datasets.len()
                ))
                .with_fix(format!("Keep the playlist to at most {MAX_ITEMS} different reports.")));
        }
        Ok(Self {
            datasets,
            reports,
            target_workspaces: Vec::new(),
            identities,
        })
    }
}

/// The embed tokens of single items (dashboards), by item id, next to the shared token of
/// the reports. Empty when every embed uses the shared token (a user's Entra token, or a
/// service principal's playlist of reports only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemTokens(Vec<(String, Secret)>);

impl ItemTokens {
    pub(crate) fn insert(&mut self, id: &str, token: Secret) {
        let id = id.to_ascii_lowercase();
        match self.0.iter_mut().find(|(k, _)| *k == id) {
            Some(slot) => slot.1 = token,
            None => self.0.push((id, token)),
        }
    }

    /// The token made for item `id` (ids compare without case, as Power BI's GUIDs do).
    pub(crate) fn get(&self, id: &str) -> Option<&Secret> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(id))
            .map(|(_, t)| t)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

/// Power BI error bodies come in two shapes: `{"error":{"code","message"}}` and, from the
/// gateway in front of the API, `{"Message": "..."}`.
#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    error: Option<ErrorInner>,
    #[serde(default, rename = "Message")]
    message: Option<String>,
}

#[derive(Deserialize, Default)]
struct ErrorInner {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: Option<String>,
}

/// At most this much of Microsoft's message is shown: it names the dataset, and a proxy's page
/// could be anything.
const MESSAGE_LIMIT: usize = 300;

fn shown(message: &str) -> String {
    let clean: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let clean = clean.trim();
    match clean.char_indices().nth(MESSAGE_LIMIT) {
        Some((i, _)) => format!("{}…", &clean[..i]),
        None => clean.to_owned(),
    }
}

/// What Power BI said, as `code: message` (either may be missing).
fn said(code: &str, message: Option<&str>) -> String {
    match (
        code.is_empty(),
        message.map(shown).filter(|m| !m.is_empty()),
    ) {
        (false, Some(m)) => format!("{code}: {m}"),
        (false, None) => code.to_owned(),
        (true, Some(m)) => m,
        (true, None) => "no error code".to_owned(),
    }
}

/// Classify a Power BI answer to a service principal's request. `generate` is true for
/// GenerateToken calls, where a refusal is about the token rather than the app.
pub(crate) fn classify(
    status: u16,
    body: &str,
    error_info: Option<&str>,
    retry_after: Option<Duration>,
    generate: bool,
) -> Problem {
    let general = Problem::from_powerbi_error(status, body, retry_after);
    if matches!(
        general.id,
        ProblemId::Throttled | ProblemId::ServiceUnavailable | ProblemId::TokenExpired
    ) {
        return general;
    }
    let b: ErrorBody = serde_json::from_str(body).unwrap_or_default();
    let (code, message) = match (&b.error, &b.message) {
        (Some(e), _) => (e.code.as_str(), e.message.as_deref()),
        (None, Some(m)) => ("", Some(m.as_str())),
        (None, None) => ("", None),
    };
    // Power BI may give its reason only in the X-PowerBI-Error-Info header.
    let code = match (code, error_info) {
        ("", Some(info)) => info,
        (c, _) => c,
    };
    let text = said(code, message);
    let lower = text.to_ascii_lowercase();
    let app_refused = code == "PowerBINotAuthorizedException"
        || error_info == Some("ServicePrincipalIsNotAllowedByTenantAdminSwitch")
        || code == "ServicePrincipalIsNotAllowedByTenantAdminSwitch"
        || lower.contains("api is not accessible for application");
    if matches!(status, 401 | 403) && app_refused {
        return Problem::new(ProblemId::ServicePrincipalNotAllowed)
            .with_cause(format!(
                "{} (Power BI answered HTTP {status}: {text})",
                ProblemId::ServicePrincipalNotAllowed.cause()
            ))
            .with_retry_after(retry_after);
    }
    if status == 404 {
        return Problem::new(ProblemId::ReportNotFound)
            .with_cause(format!(
                "Power BI answered HTTP 404 ({text}): the report, dashboard or workspace does not exist, or the app is not a member of its workspace."
            ))
            .with_fix("Add the app (its service principal) to the workspace as Member, Contributor or Admin in Power BI > Workspace > Manage access (Viewer is not enough for embed tokens), or fix the ids in [[playlist]] (run `pbikiosk reports`).")
            .with_retry_after(retry_after);
    }
    if generate && (400..500).contains(&status) {
        let fix = if lower.contains("shouldn't have effective identity")
            || lower.contains("should not have effective identity")
        {
            "The dataset has no row-level security: remove identity_username and identity_roles from its playlist items."
        } else if lower.contains("effective identity") {
            "The dataset uses row-level security: set identity_username (and identity_roles, e.g. [\"Store\"]) on its playlist items."
        } else {
            ProblemId::EmbedTokenRefused.fix()
        };
        return Problem::new(ProblemId::EmbedTokenRefused)
            .with_cause(format!(
                "Power BI refused the embed token with HTTP {status}: {text}"
            ))
            .with_fix(fix)
            .with_retry_after(retry_after);
    }
    if matches!(status, 401 | 403) {
        return Problem::new(ProblemId::ServicePrincipalNotAllowed)
            .with_cause(format!(
                "Power BI refused the app with HTTP {status} ({text}): it is not allowed to use Power BI APIs, or it is not a member of the workspace."
            ))
            .with_retry_after(retry_after);
    }
    general
}

impl Problem {
    /// Classify Power BI's answer to a service principal (`generate_token`: to GenerateToken).
    pub fn from_service_principal_error(status: u16, body: &str, generate_token: bool) -> Self {
        classify(status, body, None, None, generate_token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DS: &str = "cfafbeb1-8037-4d0c-896e-a46fb27ff229";

    fn target(report: &str, dataset: &str, identity: Option<(&str, &[&str])>) -> Target {
        Target {
            report: report.into(),
            dataset: dataset.into(),
            identity: identity.map(|(u, r)| (u.into(), r.iter().map(|s| s.to_string()).collect())),
        }
    }

    #[test]
    fn the_request_names_each_report_and_dataset_once() {
        let req = TokenRequest::for_targets(&[
            target("r1", "d1", None),
            target("r2", "d1", Some(("store-12", &["Store"]))),
            target("R1", "d1", Some(("store-12", &["Store"]))),
        ])
        .unwrap();
        let v = serde_json::to_value(&req).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "datasets": [{"id": "d1"}],
                "reports": [{"id": "r1"}, {"id": "r2"}],
                "targetWorkspaces": [],
                "identities": [{"username": "store-12", "roles": ["Store"], "datasets": ["d1"]}],
            })
        );
        let plain = TokenRequest::for_targets(&[target("r1", "d1", None)]).unwrap();
        assert!(
            serde_json::to_value(&plain)
                .unwrap()
                .get("identities")
                .is_none()
        );
    }

    #[test]
    fn item_tokens_are_found_by_id_without_case_and_replaced() {
        let mut t = ItemTokens::default();
        assert!(t.is_empty());
        t.insert("ABC-1", Secret::new("first"));
        t.insert("abc-1", Secret::new("second"));
        t.insert("def-2", Secret::new("third"));
        assert_eq!(t.len(), 2);
        assert_eq!(t.get("Abc-1").map(Secret::expose), Some("second"));
        assert_eq!(t.get("def-2").map(Secret::expose), Some("third"));
        assert_eq!(t.get("other"), None);
        assert!(!format!("{t:?}").contains("second"), "a token in Debug");
    }

    #[test]
    fn conflicting_identities_and_too_many_reports_are_config_problems() {
        let p = TokenRequest::for_targets(&[
            target("r1", "d1", Some(("a", &[]))),
            target("r2", "d1", Some(("b", &[]))),
        ])
        .unwrap_err();
        assert_eq!(p.id, ProblemId::Config);
        assert!(p.cause.contains("d1"), "{}", p.cause);
        let many: Vec<Target> = (0..51)
            .map(|i| target(&format!("r{i}"), "d", None))
            .collect();
        let p = TokenRequest::for_targets(&many).unwrap_err();
        assert!(p.cause.contains("51 reports"), "{}", p.cause);
    }

    /// The bodies Power BI sends, as published in Microsoft's docs and its community threads.
    #[test]
    fn real_refusals_are_named() {
        let cases = [
            // Tenant switch off / app not in the allowed security group.
            (
                401,
                r#"{"error":{"code":"PowerBINotAuthorizedException","pbi.error":{"code":"PowerBINotAuthorizedException","parameters":{},"details":[],"exceptionCulprit":1}}}"#,
                false,
                ProblemId::ServicePrincipalNotAllowed,
            ),
            (
                403,
                r#"{"Message":"API is not accessible for application"}"#,
                false,
                ProblemId::ServicePrincipalNotAllowed,
            ),
            (
                401,
                r#"{"error":{"code":"ServicePrincipalIsNotAllowedByTenantAdminSwitch"}}"#,
                true,
                ProblemId::ServicePrincipalNotAllowed,
            ),
            // Row-level security, both ways round.
            (
                400,
                &format!(
                    r#"{{"error":{{"code":"InvalidRequest","message":"Creating embed token for accessing dataset {DS} requires effective identity to be provided"}}}}"#
                ),
                true,
                ProblemId::EmbedTokenRefused,
            ),
            (
                400,
                &format!(
                    r#"{{"error":{{"code":"InvalidRequest","message":"Creating embed token for accessing dataset {DS} shouldn't have effective identity"}}}}"#
                ),
                true,
                ProblemId::EmbedTokenRefused,
            ),
            // Not a workspace member.
            (
                404,
                r#"{"error":{"code":"PowerBIEntityNotFound","pbi.error":{"code":"PowerBIEntityNotFound","parameters":{},"details":[],"exceptionCulprit":1}}}"#,
                true,
                ProblemId::ReportNotFound,
            ),
            (
                403,
                r#"{"error":{"code":"TokenExpired","message":"Access token has expired, resubmit with a new access token"}}"#,
                true,
                ProblemId::TokenExpired,
            ),
            (429, "{}", true, ProblemId::Throttled),
            (503, "<html>", true, ProblemId::ServiceUnavailable),
        ];
        for (status, body, generate, want) in cases {
            let p = classify(status, body, None, None, generate);
            assert_eq!(p.id, want, "{status} {body}: {p:?}");
        }
        let rls = classify(
            400,
            &format!(
                r#"{{"error":{{"code":"InvalidRequest","message":"Creating embed token for accessing dataset {DS} requires effective identity to be provided"}}}}"#
            ),
            None,
            None,
            true,
        );
        assert!(rls.cause.contains(DS), "{}", rls.cause);
        assert!(rls.cause.contains("InvalidRequest"), "{}", rls.cause);
        assert!(rls.fix.contains("identity_username"), "{}", rls.fix);
        let not_rls = classify(
            400,
            r#"{"error":{"code":"InvalidRequest","message":"Creating embed token for accessing dataset x shouldn't have effective identity"}}"#,
            None,
            None,
            true,
        );
        assert!(
            not_rls.fix.contains("remove identity_username"),
            "{}",
            not_rls.fix
        );
        let member = classify(404, "{}", None, None, true);
        assert!(
            member.fix.contains("Member, Contributor or Admin"),
            "{}",
            member.fix
        );
        let switch = classify(
            403,
            r#"{"Message":"API is not accessible for application"}"#,
            None,
            None,
            false,
        );
        assert!(
            switch.cause.contains("Allow service principals"),
            "{}",
            switch.cause
        );
    }

    /// Power BI may answer 401 with an empty body and its reason in a header only.
    #[test]
    fn the_error_info_header_names_the_tenant_switch() {
        let p = classify(
            401,
            "",
            Some("ServicePrincipalIsNotAllowedByTenantAdminSwitch"),
            None,
            true,
        );
        assert_eq!(p.id, ProblemId::ServicePrincipalNotAllowed);
        assert!(
            p.cause
                .contains("ServicePrincipalIsNotAllowedByTenantAdminSwitch"),
            "{}",
            p.cause
        );
    }

    #[test]
    fn a_long_or_odd_message_is_bounded() {
        let long = "x".repeat(5000);
        let p = classify(
            400,
            &format!(r#"{{"error":{{"code":"InvalidRequest","message":"{long}\u0007"}}}}"#),
            None,
            None,
            true,
        );
        assert!(p.cause.len() < 500, "{}", p.cause.len());
        assert!(!p.cause.contains('\u{7}'));
    }
}
