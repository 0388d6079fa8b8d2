//! What WebKit's web-process sandbox shows of the host's files, and so where a secret is safe.
//!
//! The web process runs report content (custom visuals are third-party JavaScript) as the
//! player's own user, so file permissions do not keep it from the secret files: only the
//! sandbox's view does. WebKitGTK's bubblewrap launcher (2.50, `BubblewrapLauncher.cpp`) builds
//! that view from a fixed list of read-only binds — all of `/etc`, the library and data
//! folders under `/usr`, a few folders under `/sys`, `/var/cache/fontconfig` — and from folders
//! in the user's home and XDG folders (fonts, GTK themes, sound configuration, the whole cache
//! folder). Nothing else of
//! `/var` is there, nor `/run` beyond a few sockets, nor the home folder itself. Secrets therefore
//! live in [`SECRETS_DIR`], which no bind reaches; a secret configured under `/etc` still works,
//! and `pbikiosk check` warns about it.
//!
//! Pure: the environment comes in as a lookup, the path as given (the caller resolves links).

use std::path::{Path, PathBuf};

/// Where `install.sh` and the package keep the secret files: readable by the player (root owns
/// it, group pbikiosk reads it), invisible from the web process.
pub(crate) const SECRETS_DIR: &str = "/var/lib/pbikiosk-secrets";

/// Folders the launcher binds for every web process whatever the environment.
const SYSTEM_BINDS: &[&str] = &[
    "/etc",
    "/usr/share",
    "/usr/local/share",
    "/lib",
    "/usr/lib",
    "/usr/local/lib",
    "/lib64",
    "/usr/lib64",
    "/usr/local/lib64",
    "/usr/libexec/gstreamer-1.0/gst-plugin-scanner",
    "/usr/libexec/gst-install-plugins-helper",
    "/sys/block",
    "/sys/bus",
    "/sys/class",
    "/sys/dev",
    "/sys/devices",
    "/var/cache/fontconfig",
];

/// The folders (and files) the web sandbox binds from the host, for the environment the player
/// runs with (`env`: `HOME`, the XDG folders, `XAUTHORITY`, `LD_LIBRARY_PATH`, GStreamer's
/// plugin paths), with GLib's defaults for XDG folders that are not set.
pub(crate) fn bound_paths(env: impl Fn(&str) -> Option<String>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = SYSTEM_BINDS.iter().map(PathBuf::from).collect();
    let set = |k: &str| env(k).filter(|v| !v.is_empty());
    let home = set("HOME").map(PathBuf::from);
    let xdg = |key: &str, fallback: &str| {
        set(key)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(fallback)))
    };
    let config = xdg("XDG_CONFIG_HOME", ".config");
    let data = xdg("XDG_DATA_HOME", ".local/share");
    let cache = xdg("XDG_CACHE_HOME", ".cache");
    let runtime = set("XDG_RUNTIME_DIR").map(PathBuf::from);
    let under = |base: &Option<PathBuf>, names: &[&str]| -> Vec<PathBuf> {
        base.iter()
            .flat_map(|b| names.iter().map(move |n| b.join(n)))
            .collect()
    };
    // Fonts, GTK data, sound and GStreamer's user folders.
    out.extend(under(
        &config,
        &["fontconfig", ".fonts.conf.d", "gtk-3.0", "pulse"],
    ));
    out.extend(under(
        &home,
        &[
            ".fontconfig",
            ".fonts.conf",
            ".fonts",
            ".themes",
            ".icons",
            ".pulse",
            ".asoundrc",
        ],
    ));
    out.extend(under(&data, &["fonts", "themes", "gstreamer-1.0"]));
    // The whole cache folder: WebKit 2.50 binds it (its sandbox bookkeeping lives there), seen
    // in a running web process's /proc/PID/mountinfo.
    out.extend(cache.iter().cloned());
    out.extend(under(&runtime, &["pulse"]));
    match set("XAUTHORITY") {
        Some(x) => out.push(PathBuf::from(x)),
        None => out.extend(under(&home, &[".Xauthority"])),
    }
    for var in [
        "LD_LIBRARY_PATH",
        "GST_PLUGIN_PATH_1_0",
        "GST_PLUGIN_PATH",
        "GST_PLUGIN_SYSTEM_PATH_1_0",
        "GST_PLUGIN_SYSTEM_PATH",
    ] {
        if let Some(v) = set(var) {
            out.extend(
                v.split(':')
                    .filter(|p| p.starts_with('/'))
                    .map(PathBuf::from),
            );
        }
    }
    out
}

/// The bound folder through which the web process can read `path`, if any. `path` should be
/// absolute and free of links (`std::fs::canonicalize`): the sandbox binds real paths.
pub(crate) fn exposed_by<'a>(path: &Path, bound: &'a [PathBuf]) -> Option<&'a Path> {
    bound
        .iter()
        .find(|b| path.starts_with(b))
        .map(PathBuf::as_path)
}

/// The `check` warning for a secret file the web process can read, with the commands that move
/// it out of its view; `None` when the sandbox cannot reach it.
pub(crate) fn secret_warning(
    key: &str,
    path: &Path,
    bound: &[PathBuf],
) -> Option<(String, String)> {
    let by = exposed_by(path, bound)?;
    let name = path
        .file_name()
        .map_or_else(|| "secret".to_owned(), |n| n.to_string_lossy().into_owned());
    let message = format!(
        "WARNING: auth.{key} ({}) is inside {}, which WebKit's web-process sandbox shows to report content",
        path.display(),
        by.display()
    );
    let fix = format!(
        "Move it where the sandbox cannot see it (as root): install -d -m 0750 -o root -g pbikiosk {SECRETS_DIR} && mv {} {SECRETS_DIR}/{name}, then set auth.{key} = \"{SECRETS_DIR}/{name}\" (`pbikiosk config set auth.{key} {SECRETS_DIR}/{name}`).",
        path.display()
    );
    Some((message, fix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    /// The unit's environment (systemd/pbikiosk.service).
    fn unit_env() -> impl Fn(&str) -> Option<String> {
        env_of(&[
            ("HOME", "/var/lib/pbikiosk"),
            ("XDG_CONFIG_HOME", "/var/lib/pbikiosk/config"),
            ("XDG_DATA_HOME", "/var/lib/pbikiosk/data"),
            ("XDG_CACHE_HOME", "/var/cache/pbikiosk"),
            ("XDG_RUNTIME_DIR", "/run/pbikiosk"),
        ])
    }

    #[test]
    fn etc_is_seen_and_the_secrets_folder_is_not() {
        let bound = bound_paths(unit_env());
        for seen in [
            "/etc/pbikiosk/password",
            "/etc/pbikiosk/client-secret",
            "/usr/share/pbikiosk/x",
            "/var/lib/pbikiosk/data/fonts/a.ttf",
            "/var/cache/pbikiosk/fontconfig/x",
            "/var/cache/pbikiosk/anything",
        ] {
            assert!(exposed_by(Path::new(seen), &bound).is_some(), "{seen}");
        }
        for hidden in [
            "/var/lib/pbikiosk-secrets/password",
            "/var/lib/pbikiosk-secrets/client-secret",
            "/var/lib/pbikiosk/token-cache.json",
            "/run/credentials/pbikiosk.service/password",
            "/root/password",
            // A prefix of a bound folder's name is not inside it.
            "/etcetera/password",
            "/usr/lib64x/secret",
        ] {
            assert_eq!(exposed_by(Path::new(hidden), &bound), None, "{hidden}");
        }
    }

    #[test]
    fn xdg_folders_default_to_the_home_folder() {
        let bound = bound_paths(env_of(&[("HOME", "/home/k")]));
        let has = |p: &str| bound.contains(&PathBuf::from(p));
        assert!(has("/home/k/.config/gtk-3.0"));
        assert!(has("/home/k/.local/share/fonts"));
        assert!(has("/home/k/.cache"));
        assert!(has("/home/k/.Xauthority"));
        assert!(!has("/home/k"));
        let bound = bound_paths(env_of(&[
            ("XAUTHORITY", "/tmp/xa"),
            ("LD_LIBRARY_PATH", "/opt/l:rel"),
        ]));
        assert!(bound.contains(&PathBuf::from("/tmp/xa")));
        assert!(bound.contains(&PathBuf::from("/opt/l")));
        assert!(!bound.iter().any(|b| b == Path::new("rel")));
    }

    #[test]
    fn the_warning_names_key_path_folder_and_the_move() {
        let bound = bound_paths(unit_env());
        let (msg, fix) =
            secret_warning("password_file", Path::new("/etc/pbikiosk/password"), &bound).unwrap();
        assert!(msg.contains("auth.password_file"), "{msg}");
        assert!(msg.contains("/etc/pbikiosk/password"), "{msg}");
        assert!(
            msg.starts_with("WARNING: ") && msg.contains("inside /etc,"),
            "{msg}"
        );
        assert!(
            fix.contains("mv /etc/pbikiosk/password /var/lib/pbikiosk-secrets/password"),
            "{fix}"
        );
        assert!(
            fix.contains("auth.password_file = \"/var/lib/pbikiosk-secrets/password\""),
            "{fix}"
        );
        assert_eq!(
            secret_warning(
                "password_file",
                Path::new("/var/lib/pbikiosk-secrets/password"),
                &bound
            ),
            None
        );
    }
}
