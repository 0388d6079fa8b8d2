//! The metrics as a file for node_exporter's textfile collector (`[status] textfile`): a fleet
//! that already scrapes node_exporter gets the player's metrics without a new port on the LAN.
//!
//! Written every [`EVERY`] to a temporary file in the same folder, then renamed over the
//! target: node_exporter (or anyone polling) reads either the old file or the new one, never a
//! partial one. A failed write is never fatal: it is logged once per distinct error and shown
//! in `/status` until a write succeeds.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

/// How often the file is written: node_exporter's usual scrape interval.
pub(crate) const EVERY: Duration = Duration::from_secs(15);

/// What `/status` says about the textfile.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct TextfileStatus {
    pub(crate) path: PathBuf,
    pub(crate) writes_total: u64,
    /// When the file was last written (RFC 3339, UTC).
    pub(crate) last_write: Option<String>,
    /// Why the last attempt failed; `None` once a write succeeded.
    pub(crate) error: Option<String>,
}

/// The writer's state, shared with the status endpoint.
#[derive(Debug, Clone)]
pub(crate) struct Textfile(Arc<Mutex<TextfileStatus>>);

impl Textfile {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self(Arc::new(Mutex::new(TextfileStatus {
            path,
            writes_total: 0,
            last_write: None,
            error: None,
        })))
    }

    pub(crate) fn status(&self) -> TextfileStatus {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn path(&self) -> PathBuf {
        self.status().path
    }

    /// Record one attempt; true when its error is new (to be logged).
    fn record(&self, result: Result<(), String>) -> bool {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(()) => {
                s.writes_total += 1;
                s.last_write =
                    Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
                s.error = None;
                false
            }
            Err(e) => {
                let new = s.error.as_deref() != Some(e.as_str());
                s.error = Some(e);
                new
            }
        }
    }

    /// Write `render()` every `every` until the runtime stops.
    pub(crate) async fn run(self, every: Duration, render: impl Fn() -> String + Send + 'static) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let path = self.path();
            let text = render();
            let result = tokio::task::spawn_blocking(move || write_atomically(&path, &text))
                .await
                .unwrap_or_else(|e| Err(format!("the writer stopped: {e}")));
            let failed = result.as_ref().err().cloned();
            let was_failing = self.status().error.is_some();
            // A full disk is said once, not four times a minute.
            if self.record(result) {
                tracing::warn!(
                    file = %self.path().display(),
                    error = failed.as_deref().unwrap_or_default(),
                    "cannot write the metrics textfile; trying again at each interval"
                );
            } else if failed.is_none() && was_failing {
                tracing::info!(file = %self.path().display(), "metrics textfile written again");
            }
        }
    }
}

/// Write `text` to `path` through a temporary file in the same folder and a rename, readable
/// by node_exporter (mode 0644: metrics hold no secret).
pub(crate) fn write_atomically(path: &Path, text: &str) -> Result<(), String> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let describe = |what: &str, e: std::io::Error| {
        format!(
            "{what} in {}: {}",
            dir.display(),
            crate::config::describe_io(&e)
        )
    };
    // The temporary name does not end in .prom, so node_exporter never reads it.
    let mut tmp = tempfile::Builder::new()
        .prefix(".pbikiosk-metrics-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| describe("cannot create a file", e))?;
    tmp.write_all(text.as_bytes())
        .and_then(|()| tmp.as_file().sync_data())
        .map_err(|e| describe("cannot write", e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))
            .map_err(|e| describe("cannot set the mode of a file", e))?;
    }
    tmp.persist(path)
        .map_err(|e| describe(&format!("cannot replace {}", path.display()), e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn written_whole_with_mode_0644_and_no_temporary_left() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pbikiosk.prom");
        write_atomically(&path, "a 1\n").unwrap();
        write_atomically(&path, "a 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a 2\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("pbikiosk.prom")]);
    }

    #[test]
    fn a_missing_folder_is_an_error_naming_it() {
        let e = write_atomically(Path::new("/nonexistent-pbikiosk/x.prom"), "a 1\n").unwrap_err();
        assert!(e.contains("/nonexistent-pbikiosk"), "{e}");
    }

    /// While the writer rewrites the file quickly, a reader polling it never sees a partial
    /// one: every read is one whole version (its first and last lines agree).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_polling_reader_never_sees_a_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pbikiosk.prom");
        let n = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&n);
        // Large enough that a write takes several system calls.
        let render = move || {
            let v = counter.fetch_add(1, Ordering::SeqCst);
            let mut s = format!("first {v}\n");
            for i in 0..5000 {
                s.push_str(&format!("filler_{i} {v}\n"));
            }
            s.push_str(&format!("last {v}\n"));
            s
        };
        let tf = Textfile::new(path.clone());
        let task = tokio::spawn(tf.clone().run(Duration::from_millis(5), render));
        let mut reads = 0;
        let mut versions = std::collections::BTreeSet::new();
        let t = std::time::Instant::now();
        while t.elapsed() < Duration::from_secs(2) {
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let first = text.lines().next().unwrap().strip_prefix("first ").unwrap();
            let last = text.lines().last().unwrap().strip_prefix("last ").unwrap();
            assert_eq!(first, last, "a partial or mixed file was read");
            assert_eq!(text.lines().count(), 5002);
            versions.insert(first.to_owned());
            reads += 1;
        }
        task.abort();
        assert!(reads > 50, "{reads}");
        assert!(
            versions.len() > 5,
            "the file was not rewritten: {versions:?}"
        );
        let st = tf.status();
        assert!(st.writes_total > 5, "{st:?}");
        assert_eq!(st.error, None);
        assert!(st.last_write.is_some());
    }

    #[tokio::test]
    async fn a_failure_is_shown_and_cleared_by_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("later");
        let tf = Textfile::new(sub.join("pbikiosk.prom"));
        let task = tokio::spawn(tf.clone().run(Duration::from_millis(20), || "a 1\n".into()));
        let wait = |pred: fn(&TextfileStatus) -> bool| {
            let tf = tf.clone();
            async move {
                for _ in 0..200 {
                    if pred(&tf.status()) {
                        return tf.status();
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                panic!("timed out: {:?}", tf.status());
            }
        };
        let st = wait(|s| s.error.is_some()).await;
        assert!(st.error.unwrap().contains("later"));
        assert_eq!(st.writes_total, 0);
        std::fs::create_dir(&sub).unwrap();
        let st = wait(|s| s.writes_total > 0).await;
        assert_eq!(st.error, None);
        task.abort();
    }

    #[test]
    fn one_log_per_distinct_error() {
        let tf = Textfile::new("/x/y.prom".into());
        assert!(tf.record(Err("disk full".into())));
        assert!(!tf.record(Err("disk full".into())));
        assert!(tf.record(Err("read-only".into())));
        assert!(!tf.record(Ok(())));
        assert!(tf.record(Err("read-only".into())));
    }
}
