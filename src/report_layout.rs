//! How a report is laid out on the screen: one type from the config file (`[display]
//! report_layout`) to the page. Only the page knows the shape of the viewport and whether a
//! report page has a mobile layout, so "auto" travels as is and the page decides
//! (`web/player.js` `layoutSettings`); its serialized form is the page protocol's
//! `"report_layout"`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportLayout {
    /// The report's mobile (portrait) layout on a screen taller than wide when the report has
    /// one, fit to width on such a screen when it has not, the normal layout otherwise.
    #[default]
    Auto,
    /// The normal layout, the whole page fitted to the screen.
    Landscape,
    /// The mobile layout whenever the report has one (fit to width when it has none), whatever
    /// the shape of the screen.
    Portrait,
    /// The normal layout, as wide as the screen (on a portrait screen the space under it stays
    /// empty).
    FitWidth,
}

impl ReportLayout {
    /// Every value, in the order the config's error message lists them.
    pub const ALL: [ReportLayout; 4] = [
        ReportLayout::Auto,
        ReportLayout::Landscape,
        ReportLayout::Portrait,
        ReportLayout::FitWidth,
    ];

    /// The name the config file and the page use.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportLayout::Auto => "auto",
            ReportLayout::Landscape => "landscape",
            ReportLayout::Portrait => "portrait",
            ReportLayout::FitWidth => "fit_width",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_and_the_page_use_the_same_names() {
        for l in ReportLayout::ALL {
            let json = serde_json::to_string(&l).unwrap();
            assert_eq!(json, format!("\"{}\"", l.as_str()));
            assert_eq!(serde_json::from_str::<ReportLayout>(&json).unwrap(), l);
            assert_eq!(ReportLayout::parse(l.as_str()), Some(l));
        }
        assert_eq!(ReportLayout::parse("fit-width"), None);
        assert_eq!(ReportLayout::default(), ReportLayout::Auto);
    }
}
