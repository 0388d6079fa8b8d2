//! What to show, in which order, for how long. Pure: no clock, no I/O.
//!
//! Each configured item becomes one or more *slides*: a report's pages (all, or the listed
//! ones), a report's bookmarks, or a dashboard. The player walks the slides in a loop.

use std::time::Duration;

use crate::content::ContentKind;
use crate::powerbi::Resolved;

/// A playlist entry once Power BI told us what it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub resolved: Resolved,
    /// Time on screen per slide (page or bookmark).
    pub seconds: u32,
    pub bookmarks: Vec<String>,
    pub refresh_seconds: Option<u32>,
}

/// One step of the rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slide {
    /// Index into the item list.
    pub item: usize,
    /// Report page name (`ReportSection...`), when the item is a report.
    pub page: Option<String>,
    pub page_display: Option<String>,
    pub bookmark: Option<String>,
    pub duration: Duration,
}

/// The slides of the items that are not skipped, in order.
pub fn slides(items: &[Item], skipped: &[bool]) -> Vec<Slide> {
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if skipped.get(i).copied().unwrap_or(false) {
            continue;
        }
        let duration = Duration::from_secs(item.seconds.max(1).into());
        let first_page = item.resolved.pages.first();
        match item.resolved.kind {
            ContentKind::Dashboard => out.push(Slide {
                item: i,
                page: None,
                page_display: None,
                bookmark: None,
                duration,
            }),
            // Bookmarks, when listed, are the steps; they carry their own page.
            ContentKind::Report if !item.bookmarks.is_empty() => {
                for b in &item.bookmarks {
                    out.push(Slide {
                        item: i,
                        page: first_page.map(|p| p.name.clone()),
                        page_display: first_page.map(|p| p.display_name.clone()),
                        bookmark: Some(b.clone()),
                        duration,
                    });
                }
            }
            ContentKind::Report => {
                for p in &item.resolved.pages {
                    out.push(Slide {
                        item: i,
                        page: Some(p.name.clone()),
                        page_display: Some(p.display_name.clone()),
                        bookmark: None,
                        duration,
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::powerbi::Page;

    fn report(name: &str, pages: &[&str]) -> Item {
        Item {
            resolved: Resolved {
                kind: ContentKind::Report,
                workspace: "w".into(),
                id: name.into(),
                name: name.into(),
                embed_url: format!("https://app.powerbi.com/reportEmbed?reportId={name}"),
                pages: pages
                    .iter()
                    .enumerate()
                    .map(|(i, p)| Page {
                        name: format!("ReportSection{i}"),
                        display_name: (*p).into(),
                        order: i as i64,
                    })
                    .collect(),
            },
            seconds: 10,
            bookmarks: vec![],
            refresh_seconds: None,
        }
    }

    #[test]
    fn pages_bookmarks_and_dashboards_become_slides_in_order() {
        let mut with_bookmarks = report("B", &["Only"]);
        with_bookmarks.bookmarks = vec!["bm1".into(), "bm2".into()];
        let mut dash = report("D", &[]);
        dash.resolved.kind = ContentKind::Dashboard;
        dash.seconds = 20;
        let items = vec![report("A", &["One", "Two"]), with_bookmarks, dash];
        let s = slides(&items, &[]);
        let summary: Vec<(usize, Option<&str>, Option<&str>)> = s
            .iter()
            .map(|s| (s.item, s.page_display.as_deref(), s.bookmark.as_deref()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (0, Some("One"), None),
                (0, Some("Two"), None),
                (1, Some("Only"), Some("bm1")),
                (1, Some("Only"), Some("bm2")),
                (2, None, None),
            ]
        );
        assert_eq!(s[4].duration, Duration::from_secs(20));
    }

    #[test]
    fn skipped_items_drop_out() {
        let items = vec![report("A", &["1"]), report("B", &["1", "2"])];
        let s = slides(&items, &[true, false]);
        assert_eq!(s.len(), 2);
        assert!(s.iter().all(|s| s.item == 1));
        assert!(slides(&items, &[true, true]).is_empty());
    }
}
