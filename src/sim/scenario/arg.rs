//! What `--scenario` names on the command line: a built-in name or a scenario file.

use super::{NAMES, Scenario, ScenarioError};

/// Why a `--scenario` argument gives no scenario. The argument leads each message, as typed.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioArgError {
    #[error(
        "--scenario {arg}: not a built-in scenario name nor a readable file; choose one of: {} (or give a scenario file)",
        NAMES.join(", ")
    )]
    Unknown { arg: String },
    #[error("--scenario {arg}: {error}")]
    Unreadable { arg: String, error: std::io::Error },
    #[error("--scenario {arg}: {error}")]
    Invalid { arg: String, error: ScenarioError },
}

impl Scenario {
    /// What a `--scenario` argument names: nothing is the built-in scenario, a name one of its
    /// variants ([`NAMES`]), anything else a scenario file (TOML).
    pub fn from_arg(arg: Option<&str>) -> Result<Scenario, ScenarioArgError> {
        let Some(arg) = arg else {
            return Ok(Scenario::builtin());
        };
        if let Some(s) = Scenario::named(arg) {
            return Ok(s);
        }
        let text = std::fs::read_to_string(arg).map_err(|error| {
            if error.kind() == std::io::ErrorKind::NotFound {
                ScenarioArgError::Unknown { arg: arg.into() }
            } else {
                ScenarioArgError::Unreadable {
                    arg: arg.into(),
                    error,
                }
            }
        })?;
        Scenario::from_toml(&text).map_err(|error| ScenarioArgError::Invalid {
            arg: arg.into(),
            error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_argument_is_a_name_or_a_file() {
        assert_eq!(Scenario::from_arg(None).unwrap(), Scenario::builtin());
        assert_eq!(
            Scenario::from_arg(Some("outage")).unwrap(),
            Scenario::named("outage").unwrap()
        );
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("s.toml");
        std::fs::write(&good, "token_lifetime_seconds = 60\n").unwrap();
        let s = Scenario::from_arg(good.to_str()).unwrap();
        assert_eq!(s.token_lifetime_seconds, 60);

        let e = Scenario::from_arg(Some("nope")).unwrap_err();
        assert!(matches!(e, ScenarioArgError::Unknown { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            format!(
                "--scenario nope: not a built-in scenario name nor a readable file; choose one of: {} (or give a scenario file)",
                NAMES.join(", ")
            )
        );
        let e = Scenario::from_arg(dir.path().to_str()).unwrap_err();
        assert!(matches!(e, ScenarioArgError::Unreadable { .. }), "{e:?}");
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "tokn_lifetime_seconds = 5\n").unwrap();
        let e = Scenario::from_arg(bad.to_str()).unwrap_err();
        assert!(matches!(e, ScenarioArgError::Invalid { .. }), "{e:?}");
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!(
                "--scenario {}: scenario is not valid TOML",
                bad.display()
            )),
            "{shown}"
        );
    }
}
