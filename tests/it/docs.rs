//! The README's problem table covers every problem id the product can show.

use pbikiosk::ProblemId;

#[test]
fn readme_explains_every_problem_id() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let missing: Vec<&str> = ProblemId::ALL
        .iter()
        .map(|id| id.as_str())
        .filter(|id| !readme.contains(&format!("| `{id}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "README.md has no table row for {missing:?}"
    );
}
