//! Reads the screen connectors from a `/sys/class/drm`-shaped folder (tests give a fake one).

use std::fs;
use std::path::{Path, PathBuf};

use super::HotplugError;
use super::decide::{ConnectorState, Connectors};

/// Every `card<N>-<connector>` entry with a `status` file: `connected`, `disconnected` or
/// `unknown` (treated as not connected: writeback and some virtual connectors say it); its
/// `enabled` file says whether the kernel has an encoder on it.
pub(crate) fn read_connectors(root: &Path) -> Result<Connectors, HotplugError> {
    let mut out = Connectors::new();
    let entries = match fs::read_dir(root) {
        Ok(entries) => entries,
        // No graphics driver (or a container): no connectors, so no screen to restart for.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(source) => {
            return Err(HotplugError::Sysfs {
                path: root.to_path_buf(),
                source,
            });
        }
    };
    for entry in entries {
        let entry = entry.map_err(|source| HotplugError::Sysfs {
            path: root.to_path_buf(),
            source,
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !is_connector_name(&name) {
            continue;
        }
        let dir = entry.path();
        let status_file = dir.join("status");
        let Some(status) = read_word(&status_file)? else {
            // A connector being removed as we look: it is not there.
            continue;
        };
        let connected = match status.as_str() {
            "connected" => true,
            "disconnected" | "unknown" => false,
            _ => {
                return Err(HotplugError::UnexpectedValue {
                    path: status_file,
                    value: status,
                    expected: "connected, disconnected or unknown",
                });
            }
        };
        let enabled_file = dir.join("enabled");
        let enabled = match read_word(&enabled_file)?.as_deref() {
            Some("enabled") => true,
            Some("disabled") | None => false,
            Some(other) => {
                return Err(HotplugError::UnexpectedValue {
                    path: enabled_file,
                    value: other.to_string(),
                    expected: "enabled or disabled",
                });
            }
        };
        out.insert(name, ConnectorState { connected, enabled });
    }
    Ok(out)
}

/// `card0-HDMI-A-1`, not `card0` (the card itself) nor `renderD128` or `version`.
fn is_connector_name(name: &str) -> bool {
    name.strip_prefix("card")
        .and_then(|rest| rest.split_once('-'))
        .is_some_and(|(n, connector)| {
            !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && !connector.is_empty()
        })
}

/// The file's first word, or None when it is not there. Sysfs attributes are short; more than
/// a line is not one.
fn read_word(path: &Path) -> Result<Option<String>, HotplugError> {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes[..bytes.len().min(64)]).into_owned();
            Ok(Some(text.trim().to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(HotplugError::Sysfs {
            path: PathBuf::from(path),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connector(root: &Path, name: &str, status: &str, enabled: Option<&str>) {
        let dir = root.join(name);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("status"), format!("{status}\n")).unwrap();
        if let Some(e) = enabled {
            fs::write(dir.join("enabled"), format!("{e}\n")).unwrap();
        }
    }

    #[test]
    fn reads_connectors_and_skips_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        connector(root, "card0-HDMI-A-1", "connected", Some("enabled"));
        connector(root, "card0-HDMI-A-2", "disconnected", Some("disabled"));
        connector(root, "card1-Writeback-1", "unknown", None);
        connector(root, "card1-DP-1", "connected", Some("disabled"));
        fs::create_dir_all(root.join("card0")).unwrap();
        fs::create_dir_all(root.join("renderD128")).unwrap();
        fs::write(root.join("version"), "drm 1.1.0 20060810\n").unwrap();
        // A connector folder without a status file (going away): not listed.
        fs::create_dir_all(root.join("card0-DSI-1")).unwrap();

        let got = read_connectors(root).unwrap();
        let summary: Vec<(&str, bool, bool)> = got
            .iter()
            .map(|(n, c)| (n.as_str(), c.connected, c.enabled))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("card0-HDMI-A-1", true, true),
                ("card0-HDMI-A-2", false, false),
                ("card1-DP-1", true, false),
                ("card1-Writeback-1", false, false),
            ]
        );
    }

    #[test]
    fn an_odd_status_names_the_file_and_the_value() {
        let tmp = tempfile::tempdir().unwrap();
        connector(tmp.path(), "card0-HDMI-A-1", "plugged", Some("enabled"));
        let e = read_connectors(tmp.path()).unwrap_err().to_string();
        assert!(e.contains("card0-HDMI-A-1/status"), "{e}");
        assert!(e.contains("\"plugged\""), "{e}");
        assert!(e.contains("connected, disconnected or unknown"), "{e}");
    }

    #[test]
    fn no_drm_folder_is_no_connectors_and_a_file_in_its_place_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("drm");
        assert!(read_connectors(&missing).unwrap().is_empty());
        fs::write(&missing, "not a folder").unwrap();
        let e = read_connectors(&missing).unwrap_err().to_string();
        assert!(e.contains(&missing.display().to_string()), "{e}");
    }

    #[test]
    fn connector_names() {
        assert!(is_connector_name("card0-HDMI-A-1"));
        assert!(is_connector_name("card12-DP-3"));
        assert!(!is_connector_name("card0"));
        assert!(!is_connector_name("cardX-HDMI-A-1"));
        assert!(!is_connector_name("card-HDMI"));
        assert!(!is_connector_name("card0-"));
        assert!(!is_connector_name("renderD128"));
    }
}
