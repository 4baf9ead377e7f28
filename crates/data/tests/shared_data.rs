//! Reads every file of the real data in `<workspace>/../shared/data` and checks the counts
//! of the data README and PAPER.md. The only skip in this crate's tests: when that folder
//! is absent (a checkout without the shared data), the tests say so and return.

mod common;

use std::path::PathBuf;

use mentalqlm_data::imhi::{self, Split, load_split};
use mentalqlm_data::prompt::{ChatTemplate, fit_query};
use mentalqlm_data::{Dataset, dep_severity};

fn shared_data() -> Option<PathBuf> {
    let dir = common::workspace_root().join("../shared/data");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "NOTICE: {} is absent; skipping the checks against the real IMHI and DEP-SEVERITY files",
            dir.display()
        );
        None
    }
}

/// (set, test rows, train rows or None, val rows, gold "yes" count in test or None)
type Counts = (Dataset, usize, Option<usize>, usize, Option<usize>);
const IMHI_COUNTS: [Counts; 5] = [
    (Dataset::Dr, 405, Some(1003), 430, Some(307)),
    (Dataset::Dreaddit, 414, Some(2837), 300, Some(211)),
    (Dataset::Irf, 2113, None, 985, Some(1366)),
    (Dataset::MultiWd, 2441, None, 1500, Some(887)),
    (Dataset::Sad, 684, Some(5547), 616, None),
];

#[test]
fn imhi_counts_and_gold_labels() {
    let Some(root) = shared_data() else { return };
    let dir = root.join("imhi");
    for (d, test, train, val, yes) in IMHI_COUNTS {
        let t = load_split(&dir, d, Split::Test).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.len(), test, "{d} test");
        match train {
            Some(n) => assert_eq!(
                load_split(&dir, d, Split::Train).unwrap().len(),
                n,
                "{d} train"
            ),
            None => assert!(
                load_split(&dir, d, Split::Train).is_err(),
                "{d} has no train file"
            ),
        }
        assert_eq!(
            load_split(&dir, d, Split::Val).unwrap().len(),
            val,
            "{d} val"
        );
        // Every gold answer matches a rule (no fallback), and the binary counts are PAPER.md's.
        for e in &t {
            assert!(
                mentalqlm_data::match_label(d, &e.answer).is_some(),
                "{d} {}: {:?}",
                e.at,
                e.answer
            );
            assert!(!e.post.trim().is_empty());
        }
        if let Some(yes) = yes {
            assert_eq!(
                t.iter().filter(|e| e.label == Some(1)).count(),
                yes,
                "{d} yes count"
            );
        }
        if d == Dataset::Sad {
            // Each of the nine SAD gold phrases parses to its own class (PAPER.md).
            let mut per = [0usize; 9];
            t.iter().for_each(|e| per[e.label.unwrap()] += 1);
            assert_eq!(
                per,
                [76, 81, 73, 61, 110, 85, 66, 56, 76],
                "SAD test classes"
            );
        }
    }
}

#[test]
fn dep_severity_counts_and_paper_split() {
    let Some(root) = shared_data() else { return };
    let dir = root.join("dep-severity");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 7, "english and six translations");
    let english = dep_severity::load(&dir.join("english.csv")).unwrap();
    let english_labels: Vec<usize> = english.iter().map(|r| r.label).collect();
    for path in &files {
        let rows = dep_severity::load(path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rows.len(), 3553, "{}", path.display());
        let mut per = [0usize; 4];
        rows.iter().for_each(|r| per[r.label] += 1);
        assert_eq!(per, [2587, 290, 394, 282], "{}", path.display());
        // Same rows, order and labels in every language (data README).
        assert!(
            rows.iter()
                .map(|r| r.label)
                .eq(english_labels.iter().copied())
        );
    }
    let split = dep_severity::split(&english, dep_severity::PAPER_SEED).unwrap();
    assert_eq!(
        (split.train.len(), split.val.len(), split.test.len()),
        (2842, 355, 356)
    );
}

#[test]
fn real_queries_rebuild_and_fit_a_budget() {
    let Some(root) = shared_data() else { return };
    let dir = root.join("imhi");
    // A crude counter stands in for the tokenizer: one token per 4 bytes.
    let count = |s: &str| s.len().div_ceil(4);
    let template = ChatTemplate::default();
    for d in Dataset::PAPER_FIVE {
        for e in load_split(&dir, d, Split::Test).unwrap() {
            assert_eq!(imhi::build_query(&e.post, &e.question), e.query, "{}", e.at);
            let f = fit_query(&template, &e.query, 256, &count);
            assert!(f.fits && f.tokens <= 256, "{}", e.at);
            assert!(
                f.query.ends_with(&format!("\" Question: {}", e.question)),
                "{}",
                e.at
            );
        }
    }
}
