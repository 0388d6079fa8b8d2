//! Whether a playlist entry is a report or a dashboard: one type from the config file to the
//! page. The config names it (`report = ` or `dashboard = `), the Power BI client resolves it,
//! the player turns it into slides and the page embeds it, so its serialized form is the page
//! protocol's `"kind"` (`web/protocol.js` accepts exactly `report` and `dashboard`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentKind {
    Report,
    Dashboard,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_as_the_page_protocol_names_it() {
        for (kind, json) in [
            (ContentKind::Report, r#""report""#),
            (ContentKind::Dashboard, r#""dashboard""#),
        ] {
            assert_eq!(serde_json::to_string(&kind).unwrap(), json);
            assert_eq!(serde_json::from_str::<ContentKind>(json).unwrap(), kind);
        }
    }
}
