//! The memory of the process tree: the player and every process below it (WebKit's web and
//! network processes), as PSS from `/proc/<pid>/smaps_rollup`.
//!
//! PSS rather than RSS: the web processes share most of their libraries with the player, and
//! RSS would count those pages once per process. `smaps_rollup` is one small read per process,
//! cheap enough to take every half minute.

use std::collections::HashMap;
use std::path::Path;

/// The PSS of `root` and its descendants, in bytes; `None` when `/proc` cannot be read (not
/// Linux, or a restricted `/proc`).
pub(crate) fn tree_pss_bytes(root: u32) -> Option<u64> {
    tree_pss_in(Path::new("/proc"), root)
}

fn tree_pss_in(proc: &Path, root: u32) -> Option<u64> {
    let parents = parents(proc)?;
    let tree = descendants(root, &parents);
    // A process that ended between the listing and the read simply counts nothing.
    let total = tree
        .iter()
        .filter_map(|pid| std::fs::read_to_string(proc.join(format!("{pid}/smaps_rollup"))).ok())
        .filter_map(|text| pss_kib(&text))
        .sum::<u64>();
    (total > 0).then_some(total * 1024)
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
        // 10 → 11 → 12, and 13 is someone else's.
        for (pid, ppid, pss) in [(10, 1, 1000), (11, 10, 200), (12, 11, 30), (13, 1, 99999)] {
            let d = proc.join(pid.to_string());
            std::fs::create_dir(&d).unwrap();
            std::fs::write(d.join("stat"), format!("{pid} (x y) S {ppid} 0 0")).unwrap();
            std::fs::write(
                d.join("smaps_rollup"),
                format!("00400000-ff [rollup]\nRss:  5000 kB\nPss:  {pss} kB\nPss_Anon: 1 kB\n"),
            )
            .unwrap();
        }
        std::fs::create_dir(proc.join("self")).unwrap();
        assert_eq!(tree_pss_in(proc, 10), Some(1230 * 1024));
        assert_eq!(tree_pss_in(proc, 12), Some(30 * 1024));
        assert_eq!(tree_pss_in(proc, 77), None, "no such process");
    }

    #[test]
    fn this_process_has_a_size() {
        if cfg!(target_os = "linux") {
            let b = tree_pss_bytes(std::process::id()).expect("readable /proc");
            assert!(b > 1024 * 1024, "{b}");
        }
    }
}
