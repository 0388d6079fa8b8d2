//! `[player]`: settings of the webview that shows the reports.

use super::walk::{Ctx, Section};
use super::{ConfigError, PlayerConfig};

const PLAYER_KEYS: &[&str] = &["user_agent"];

pub(super) fn parse_player(cx: &Ctx, s: &Section) -> Result<PlayerConfig, ConfigError> {
    s.check_table_keys(cx, "[player]", PLAYER_KEYS)?;
    let user_agent = match s.string(cx, "user_agent")? {
        Some((v, span)) => {
            if v.trim().is_empty() || v.chars().any(char::is_control) {
                return Err(cx.invalid(
                    &s.key("user_agent"),
                    Some(&span),
                    "must be non-empty text on one line",
                    "Set user_agent to one line of text, or remove it to use the browser's own.",
                ));
            }
            Some(v.to_owned())
        }
        None => None,
    };
    Ok(PlayerConfig { user_agent })
}

#[cfg(test)]
mod tests {
    use crate::config::test_support::*;

    #[test]
    fn player_user_agent_is_one_line() {
        let text = format!("{}[player]\nuser_agent = \"a\\nb\"\n", auth());
        invalid(err(&text), "player.user_agent", Some(8));
    }
}
