//! `[[playlist]]`: what is shown, in order, and for how long. Entries are numbered from 1 in
//! keys and messages (`playlist[2].report`), the way a person counts the blocks in the file.

use std::ops::Range;

use toml::de::DeValue;

use super::ids::is_guid;
use super::walk::{Ctx, Section, describe_type, shown};
use super::{ConfigError, PlaylistItem};
use crate::content::ContentKind;

const DEFAULT_SECONDS: i64 = 30;

const PLAYLIST_KEYS: &[&str] = &[
    "workspace",
    "report",
    "dashboard",
    "pages",
    "bookmarks",
    "seconds",
    "refresh_seconds",
    "identity_username",
    "identity_roles",
    "when",
];

pub(super) fn parse_playlist(cx: &Ctx, root: &Section) -> Result<Vec<PlaylistItem>, ConfigError> {
    let Some(v) = root.get("playlist") else {
        return Ok(Vec::new());
    };
    let DeValue::Array(items) = v.get_ref() else {
        return Err(cx.invalid(
            "playlist",
            Some(&v.span()),
            format!(
                "must be a list of [[playlist]] entries, not {}",
                describe_type(v.get_ref())
            ),
            "Write each entry as a [[playlist]] block (double brackets) with workspace, report and seconds below it.",
        ));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let n = i + 1;
        let DeValue::Table(table) = item.get_ref() else {
            return Err(cx.invalid(
                &format!("playlist[{n}]"),
                Some(&item.span()),
                format!(
                    "must be a [[playlist]] entry, not {}",
                    describe_type(item.get_ref())
                ),
                "Write each entry as a [[playlist]] block with workspace, report and seconds below it.",
            ));
        };
        let s = Section {
            name: format!("playlist[{n}]"),
            title: format!("[[playlist]] number {n}"),
            table,
            span: item.span(),
        };
        out.push(parse_item(cx, &s)?);
    }
    Ok(out)
}

const MY_WORKSPACE_NAMES: &[&str] = &[
    "me",
    "my",
    "myorg",
    "myworkspace",
    "personal",
    "personalworkspace",
];

fn parse_item(cx: &Ctx, s: &Section) -> Result<PlaylistItem, ConfigError> {
    s.check_table_keys(cx, "[[playlist]]", PLAYLIST_KEYS)?;
    let (workspace, span) = s.required(
        cx,
        "workspace",
        "Add workspace = \"<workspace GUID>\": the part after /groups/ in the report's address (https://app.powerbi.com/groups/<workspace GUID>/reports/...).",
    )?;
    let squashed: String = workspace
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '_' | '\''))
        .collect::<String>()
        .to_lowercase();
    if MY_WORKSPACE_NAMES.contains(&squashed.as_str()) {
        return Err(cx.invalid(
            &s.key("workspace"),
            Some(&span),
            "content in \"My workspace\" cannot be reached through the Power BI REST API by a signage player",
            "Move the report to a shared workspace: create a workspace in Power BI, add the service account as Viewer, publish the report there, and use that workspace's GUID (the part after /groups/ in its address).",
        ));
    }
    if !is_guid(workspace) {
        return Err(cx.invalid(
            &s.key("workspace"),
            Some(&span),
            format!("{} is not a workspace GUID", shown(workspace)),
            "Copy the GUID after /groups/ in the report's address (https://app.powerbi.com/groups/<workspace GUID>/reports/...), or run `pbikiosk reports`.",
        ));
    }

    let report = s.string(cx, "report")?;
    let dashboard = s.string(cx, "dashboard")?;
    let (kind, id) = match (report, dashboard) {
        (Some(_), Some((_, span))) => {
            return Err(cx.invalid(
                &s.key("dashboard"),
                Some(&span),
                "both report and dashboard are set; an entry shows exactly one of them",
                "Keep either report or dashboard in this entry, and add another [[playlist]] entry for the other.",
            ));
        }
        (None, None) => {
            return Err(cx.invalid(
                &s.key("report"),
                Some(&s.span),
                format!("{} has neither report nor dashboard", s.title),
                "Add report = \"<report GUID>\" (or dashboard = \"<dashboard GUID>\") to this entry; `pbikiosk reports` lists them.",
            ));
        }
        (Some((id, span)), None) => {
            check_content_id(cx, &s.key("report"), id, &span, "reports")?;
            (ContentKind::Report, id.to_owned())
        }
        (None, Some((id, span))) => {
            check_content_id(cx, &s.key("dashboard"), id, &span, "dashboards")?;
            (ContentKind::Dashboard, id.to_owned())
        }
    };

    let names_fix = "Use the page or bookmark name, not its title: a page name is the last part of the page's address (e.g. ReportSection2 in .../reports/<id>/ReportSection2).";
    let pages = s.names(cx, "pages", names_fix)?;
    let bookmarks = s.names(cx, "bookmarks", names_fix)?;
    if kind == ContentKind::Dashboard {
        for k in ["pages", "bookmarks"] {
            if let Some(v) = s.get(k) {
                return Err(cx.invalid(
                    &s.key(k),
                    Some(&v.span()),
                    format!("dashboards have no {k}; {k} only apply to reports"),
                    format!(
                        "Remove {k} from this entry, or show a report instead of the dashboard."
                    ),
                ));
            }
        }
    }

    let identity = super::identity::parse_identity(cx, s, kind)?;

    let seconds = s
        .int(cx, "seconds", 5..=86400, "seconds", DEFAULT_SECONDS)?
        .unwrap_or(DEFAULT_SECONDS);
    let refresh_seconds = s.int(cx, "refresh_seconds", 15..=86400, "seconds", 900)?;
    let when = s.windows(cx, "when")?.unwrap_or_default();

    Ok(PlaylistItem {
        workspace: workspace.to_owned(),
        kind,
        id,
        pages: pages.unwrap_or_default(),
        bookmarks: bookmarks.unwrap_or_default(),
        // Both were range-checked above, so they fit.
        seconds: seconds as u32,
        refresh_seconds: refresh_seconds.map(|r| r as u32),
        identity,
        when,
    })
}

fn check_content_id(
    cx: &Ctx,
    key: &str,
    id: &str,
    span: &Range<usize>,
    kind: &str,
) -> Result<(), ConfigError> {
    if is_guid(id) {
        return Ok(());
    }
    Err(cx.invalid(
        key,
        Some(span),
        format!(
            "{} is not a GUID (like 00000000-0000-0000-0000-000000000000)",
            shown(id)
        ),
        format!(
            "Copy the GUID after /{kind}/ in its address (https://app.powerbi.com/groups/<workspace>/{kind}/<GUID>), or run `pbikiosk reports`."
        ),
    ))
}

#[cfg(test)]
mod tests {
    use crate::config::test_support::*;

    #[test]
    fn playlist_ids_must_be_guids() {
        // Second entry is the bad one: the key says [2] and the line is its own.
        let text = format!(
            "{}{}{}",
            auth(),
            item(""),
            item("").replace(REPORT, "Sales")
        );
        let (msg, fix) = invalid(err(&text), "playlist[2].report", Some(12));
        assert!(msg.contains("not a GUID"), "{msg}");
        assert!(fix.contains("/reports/"), "{fix}");

        let text = format!("{}{}", auth(), item("").replace(WS, "Sales team"));
        let (_, fix) = invalid(err(&text), "playlist[1].workspace", Some(8));
        assert!(fix.contains("/groups/"), "{fix}");

        let text = format!(
            "{}[[playlist]]\nworkspace = \"{WS}\"\ndashboard = \"dash\"\n",
            auth()
        );
        let (_, fix) = invalid(err(&text), "playlist[1].dashboard", Some(9));
        assert!(fix.contains("/dashboards/"), "{fix}");
    }

    #[test]
    fn my_workspace_is_refused_specifically() {
        for name in ["me", "My workspace", "myorg", "MY_WORKSPACE"] {
            let text = format!("{}{}", auth(), item("").replace(WS, name));
            let (msg, fix) = invalid(err(&text), "playlist[1].workspace", Some(8));
            assert!(msg.contains("My workspace"), "{msg}");
            assert!(fix.contains("shared workspace"), "{fix}");
        }
    }

    #[test]
    fn exactly_one_of_report_and_dashboard() {
        let text = format!("{}{}", auth(), item(&format!("dashboard = \"{DASH}\"\n")));
        let (msg, _) = invalid(err(&text), "playlist[1].dashboard", Some(10));
        assert!(msg.contains("both"), "{msg}");

        let text = format!("{}[[playlist]]\nworkspace = \"{WS}\"\n", auth());
        let (msg, fix) = invalid(err(&text), "playlist[1].report", Some(7));
        assert!(msg.contains("neither"), "{msg}");
        assert!(fix.contains("dashboard ="), "{fix}");

        let text = format!("{}[[playlist]]\nreport = \"{REPORT}\"\n", auth());
        invalid(err(&text), "playlist[1].workspace", Some(7));
    }

    #[test]
    fn dashboards_have_no_pages_or_bookmarks() {
        for k in ["pages", "bookmarks"] {
            let text = format!(
                "{}[[playlist]]\nworkspace = \"{WS}\"\ndashboard = \"{DASH}\"\n{k} = [\"X\"]\n",
                auth()
            );
            let (msg, fix) = invalid(err(&text), &format!("playlist[1].{k}"), Some(10));
            assert!(msg.contains("dashboards"), "{msg}");
            assert!(fix.contains(&format!("Remove {k}")), "{fix}");
        }
    }

    #[test]
    fn page_names_without_spaces() {
        let text = format!(
            "{}{}",
            auth(),
            item("pages = [\"ReportSection\", \"Sales overview\"]\n")
        );
        let (msg, fix) = invalid(err(&text), "playlist[1].pages", Some(10));
        assert!(
            msg.contains("14 characters starting \"Sale\"") && !msg.contains("Sales overview"),
            "{msg}"
        );
        assert!(fix.contains("not its title"), "{fix}");
    }

    #[test]
    fn seconds_ranges() {
        for (extra, key) in [
            ("seconds = 4", "seconds"),
            ("seconds = 86401", "seconds"),
            ("refresh_seconds = 14", "refresh_seconds"),
            ("refresh_seconds = 86401", "refresh_seconds"),
        ] {
            let text = format!("{}{}", auth(), item(&format!("{extra}\n")));
            let (msg, _) = invalid(err(&text), &format!("playlist[1].{key}"), Some(10));
            assert!(msg.contains("out of range"), "{msg}");
        }
        let text = format!("{}{}", auth(), item("seconds = 5\nrefresh_seconds = 15\n"));
        let c = ok(&text);
        assert_eq!(
            (c.playlist[0].seconds, c.playlist[0].refresh_seconds),
            (5, Some(15))
        );
        let text = format!(
            "{}{}",
            auth(),
            item("seconds = 86400\nrefresh_seconds = 86400\n")
        );
        assert_eq!(ok(&text).playlist[0].seconds, 86400);
    }

    #[test]
    fn when_is_one_window_or_a_list() {
        let text = format!("{}{}", auth(), item("when = \"mon-fri 07:00-19:00\"\n"));
        assert!(!ok(&text).playlist[0].when.is_always());
        let text = format!(
            "{}{}",
            auth(),
            item("when = [\"mon-fri 11:30-14:00\", \"sat 10:00-12:00\"]\n")
        );
        assert!(!ok(&text).playlist[0].when.is_always());
        assert!(
            ok(&format!("{}{}", auth(), item(""))).playlist[0]
                .when
                .is_always()
        );
    }

    #[test]
    fn a_bad_window_names_the_entry_the_window_and_the_fix() {
        let text = format!(
            "{}{}",
            auth(),
            item("when = [\"mon-fri 11:30-14:00\", \"thur 10:00-12:00\"]\n")
        );
        let (msg, fix) = invalid(err(&text), "playlist[1].when", Some(10));
        assert!(
            msg.contains("window 2") && msg.contains("\"thur\" is not a day"),
            "{msg}"
        );
        assert!(fix.contains("<days> <HH:MM>-<HH:MM>"), "{fix}");
        for bad in ["when = []", "when = 7", "when = [7]", "when = \"weekdays\""] {
            let text = format!("{}{}", auth(), item(&format!("{bad}\n")));
            invalid(err(&text), "playlist[1].when", Some(10));
        }
    }
}
