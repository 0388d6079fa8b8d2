//! The memory of the process tree: the player and every process below it (WebKit's web and
//! network processes), as PSS from `/proc/<pid>/smaps_rollup`.
//!
//! PSS rather than RSS: the web processes share most of their libraries with the player, and
//! RSS would count those pages once per process. `smaps_rollup` is one small read per process,
//! cheap enough to take every half minute.
//!
//! The web process is also counted on its own: it is the part a recycle replaces, and what
//! grows anywhere else (the player, WebKit's network process) only a restart of the session
//! frees.

use std::collections::HashMap;
use std::path::Path;

/// The PSS of a process tree, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TreeMemory {
    /// The whole tree.
    pub(crate) pss: u64,
    /// All but WebKit's web processes: what a web-process recycle leaves as it is.
    pub(crate) outside_web: u64,
}

/// WebKit names its web processes so (`comm` is cut at 15 bytes).
const WEB_PROCESS_COMM: &str = "WebKitWebProces";

/// The memory of `root` and its descendants; `None` when `/proc` cannot be read (not Linux,
/// or a restricted `/proc`).
pub(crate) fn tree_memory(root: u32) -> Option<TreeMemory> {
    tree_memory_in(Path::new("/proc"), root)
}

fn tree_memory_in(proc: &Path, root: u32) -> Option<TreeMemory> {
    let parents = parents(proc)?;
    let tree = descendants(root, &parents);
    let (mut pss, mut outside_web) = (0u64, 0u64);
    for pid in tree {
        // A process that ended between the listing and the read simply counts nothing.
        let Some(kib) = std::fs::read_to_string(proc.join(format!("{pid}/smaps_rollup")))
            .ok()
            .and_then(|text| pss_kib(&text))
        else {
            continue;
        };
        pss += kib;
        let comm = std::fs::read_to_string(proc.join(format!("{pid}/comm"))).unwrap_or_default();
        if comm.trim_end() != WEB_PROCESS_COMM {
            outside_web += kib;
        }
    }
    (pss > 0).then_some(TreeMemory {
        pss: pss * 1024,
        outside_web: outside_web * 1024,
    })
}

/// Every process's parent, from `/proc/<pid>/stat`.
fn parents(proc: &Path) -> Option<HashMap<u32, u32>> {
    let mut map = HashMap::new();
    for entry in std::fs::read_dir(proc).ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Ok(stat) = std::fs::read_to_string(entry.path().join("stat"))
            && let Some(ppid) = ppid_of(&stat)
        {
            map.insert(pid, ppid);
        }
    }
    Some(map)
}

/// The parent pid in a `stat` line: the 2nd field after the command, which is in parentheses
/// and may itself hold spaces and parentheses.
fn ppid_of(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// `root` and everything below it.
fn descendants(root: u32, parents: &HashMap<u32, u32>) -> Vec<u32> {
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|&(&child, &parent)| parent == p && child != p)
                .map(|(&child, _)| child),
        );
        i += 1;
    }
    tree
}

/// The `Pss:` line of `smaps_rollup`, in KiB.
fn pss_kib(smaps_rollup: &str) -> Option<u64> {
    smaps_rollup
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_pid_survives_odd_command_names() {
        assert_eq!(ppid_of("42 (WebKitWebProcess) S 7 42 42 0"), Some(7));
        assert_eq!(ppid_of("43 (a) b (c)) R 9 1 1"), Some(9));
        assert_eq!(ppid_of("garbage"), None);
    }

    #[test]
    fn sums_the_tree_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let proc = dir.path();
        // 10 → 11 → 12, and 13 is someone else's; 11 is a web process.
        for (pid, ppid, pss) in [(10, 1, 1000), (11, 10, 200), (12, 11, 30), (13, 1, 99999)] {
            let d = proc.join(pid.to_string());
            std::fs::create_dir(&d).unwrap();
            std::fs::write(d.join("stat"), format!("{pid} (x y) S {ppid} 0 0")).unwrap();
            let comm = if pid == 11 {
                "WebKitWebProces\n"
            } else {
                "pbikiosk\n"
            };
            std::fs::write(d.join("comm"), comm).unwrap();
            std::fs::write(
                d.join("smaps_rollup"),
                format!("00400000-ff [rollup]\nRss:  5000 kB\nPss:  {pss} kB\nPss_Anon: 1 kB\n"),
            )
            .unwrap();
        }
        std::fs::create_dir(proc.join("self")).unwrap();
        let at = |root| tree_memory_in(proc, root).map(|m| (m.pss / 1024, m.outside_web / 1024));
        assert_eq!(at(10), Some((1230, 1030)));
        assert_eq!(at(12), Some((30, 30)));
        assert_eq!(at(11), Some((230, 30)));
        assert_eq!(at(77), None, "no such process");
    }

    #[test]
    fn this_process_has_a_size() {
        if cfg!(target_os = "linux") {
            let m = tree_memory(std::process::id()).expect("readable /proc");
            assert!(m.pss > 1024 * 1024, "{m:?}");
            assert_eq!(m.outside_web, m.pss, "no web process below a test");
        }
    }
}
