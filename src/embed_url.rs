//! Which embed addresses the page is given: https on a Power BI host, nothing else.
//!
//! The embed URL comes from the Power BI API, and the page loads it in a frame that receives
//! the access token. A wrong `cloud.api`, or anything that rewrites the API's answers, must
//! not make the screen open (and hand a token to) another site.

use crate::problem::{Problem, ProblemId};

/// Why an embed URL is refused. Names the host, never the whole URL: its query is Power BI's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum EmbedUrlError {
    #[error("is not a web address")]
    NotAUrl,
    #[error("is on {host} over {scheme}://, not https")]
    NotHttps { scheme: String, host: String },
    #[error("is on {host}, which is not a Power BI host")]
    HostNotAllowed { host: String },
}

impl EmbedUrlError {
    /// The problem for the item named `what` (e.g. "report 'Sales' in workspace …").
    pub(crate) fn to_problem(&self, what: &str) -> Problem {
        Problem::new(ProblemId::EmbedUrlRefused).with_cause(format!(
            "The embed address Power BI gave for {what} {self}; it is not shown."
        ))
    }
}

/// Is `host` one of `allowed` or a subdomain of one? Case-insensitive, whole labels only.
pub(crate) fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let h = host.to_ascii_lowercase();
    allowed.iter().any(|a| {
        h == *a
            || h.strip_suffix(a.as_str())
                .is_some_and(|rest| rest.ends_with('.'))
    })
}

/// Check an embed URL against the Power BI hosts (see [`crate::shell::powerbi_hosts`]).
pub(crate) fn check(url: &str, allowed: &[String]) -> Result<(), EmbedUrlError> {
    let u = url::Url::parse(url).map_err(|_| EmbedUrlError::NotAUrl)?;
    let host = u.host_str().ok_or(EmbedUrlError::NotAUrl)?.to_owned();
    if u.scheme() != "https" {
        return Err(EmbedUrlError::NotHttps {
            scheme: u.scheme().to_owned(),
            host,
        });
    }
    // A user:password@ part has no place in an embed address, and could hide the real host
    // from a person reading it.
    if !u.username().is_empty() || u.password().is_some() || !host_allowed(&host, allowed) {
        return Err(EmbedUrlError::HostNotAllowed { host });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::powerbi_hosts;

    #[test]
    fn power_bi_hosts_of_every_cloud_over_https_pass() {
        let hosts = powerbi_hosts();
        for ok in [
            "https://app.powerbi.com/reportEmbed?reportId=1&groupId=2&w=2&config=eyJ9",
            "https://APP.PowerBI.com/dashboardEmbed?dashboardId=1",
            "https://app.powerbigov.us/reportEmbed?reportId=1",
            "https://app.high.powerbigov.us/reportEmbed?reportId=1",
            "https://app.powerbi.cn/reportEmbed?reportId=1",
        ] {
            assert_eq!(check(ok, &hosts), Ok(()), "{ok}");
        }
    }

    #[test]
    fn anything_else_is_refused_naming_the_host() {
        let hosts = powerbi_hosts();
        let host = |h: &str| EmbedUrlError::HostNotAllowed { host: h.into() };
        for (bad, want) in [
            ("https://evil.example/reportEmbed", host("evil.example")),
            (
                "https://evilpowerbi.com/reportEmbed",
                host("evilpowerbi.com"),
            ),
            (
                "https://app.powerbi.com.evil.example/reportEmbed",
                host("app.powerbi.com.evil.example"),
            ),
            ("https://127.0.0.1:9/reportEmbed", host("127.0.0.1")),
            (
                "https://user:pw@app.powerbi.com/reportEmbed",
                host("app.powerbi.com"),
            ),
            (
                "http://app.powerbi.com/reportEmbed",
                EmbedUrlError::NotHttps {
                    scheme: "http".into(),
                    host: "app.powerbi.com".into(),
                },
            ),
            ("javascript:alert(1)", EmbedUrlError::NotAUrl),
            ("/reportEmbed?reportId=1", EmbedUrlError::NotAUrl),
            ("", EmbedUrlError::NotAUrl),
        ] {
            assert_eq!(check(bad, &hosts), Err(want), "{bad}");
        }
    }

    #[test]
    fn the_problem_names_the_item_and_host_but_not_the_query() {
        let url = "https://evil.example/reportEmbed?reportId=1&config=SECRETISH";
        let p = check(url, &powerbi_hosts())
            .unwrap_err()
            .to_problem("report 'Sales' in workspace 'Ops'");
        assert_eq!(p.id, ProblemId::EmbedUrlRefused);
        assert_eq!(
            p.cause,
            "The embed address Power BI gave for report 'Sales' in workspace 'Ops' is on evil.example, which is not a Power BI host; it is not shown."
        );
        assert!(!p.cause.contains("SECRETISH"));
    }
}
