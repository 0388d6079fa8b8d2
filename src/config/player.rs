//! `[player]`: settings of the webview that shows the reports.

use super::walk::{Ctx, Section};
use super::{ConfigError, PlayerConfig};

use std::time::Duration;

use crate::player::{MIB, RecycleSettings};

const PLAYER_KEYS: &[&str] = &[
    "user_agent",
    "memory_recycle_margin_mib",
    "memory_baseline_minutes",
];

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
    let mut memory = RecycleSettings::default();
    // 0 turns recycling off; above 16 GiB it could never happen on the screens this runs on.
    if let Some(m) = s.int(cx, "memory_recycle_margin_mib", 0..=16384, "MiB", 200)? {
        memory.margin_bytes = m as u64 * MIB;
    }
    // At least a minute (the baseline needs a few samples), at most a day.
    if let Some(m) = s.int(cx, "memory_baseline_minutes", 1..=1440, "minutes", 60)? {
        memory.baseline_window = Duration::from_mins(m as u64);
    }
    Ok(PlayerConfig { user_agent, memory })
}

#[cfg(test)]
mod tests {
    use crate::config::test_support::*;

    #[test]
    fn player_user_agent_is_one_line() {
        let text = format!("{}[player]\nuser_agent = \"a\\nb\"\n", auth());
        invalid(err(&text), "player.user_agent", Some(8));
    }

    #[test]
    fn memory_policy_settings() {
        use crate::player::{MIB, RecycleSettings};
        use std::time::Duration;
        let c = ok(&format!("{}{}", auth(), item("")));
        assert_eq!(c.player.memory, RecycleSettings::default());
        assert_eq!(c.player.memory.margin_bytes, 200 * MIB);
        let text = format!(
            "{}[player]\nmemory_recycle_margin_mib = 50\nmemory_baseline_minutes = 90\n{}",
            auth(),
            item("")
        );
        let m = ok(&text).player.memory;
        assert_eq!(m.margin_bytes, 50 * MIB);
        assert_eq!(m.baseline_window, Duration::from_mins(90));
        // 0 turns it off.
        let text = format!(
            "{}[player]\nmemory_recycle_margin_mib = 0\n{}",
            auth(),
            item("")
        );
        assert!(!ok(&text).player.memory.enabled());
        let text = format!("{}[player]\nmemory_baseline_minutes = 0\n", auth());
        let (message, fix) = invalid(err(&text), "player.memory_baseline_minutes", Some(8));
        assert!(
            message.contains("allowed are 1 to 1440 minutes"),
            "{message}"
        );
        assert!(fix.contains("memory_baseline_minutes"), "{fix}");
        let text = format!("{}[player]\nmemory_recycle_margin_mib = \"200\"\n", auth());
        invalid(err(&text), "player.memory_recycle_margin_mib", Some(8));
        let text = format!("{}[player]\nmemory_recycle_margin_mib = -1\n", auth());
        invalid(err(&text), "player.memory_recycle_margin_mib", Some(8));
    }
}
