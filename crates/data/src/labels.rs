//! The datasets, their label names, and the rules that turn an answer into a label.
//!
//! One parser serves gold answers and model predictions alike, so a gold sentence and a
//! prediction that says the same thing always land on the same class.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};

/// A mental-health dataset of IMHI (MentaLLaMA) or the MentalQLM paper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Dataset {
    /// Depression on Reddit (binary).
    #[serde(rename = "DR")]
    Dr,
    /// Stress on Reddit (binary).
    #[serde(rename = "dreaddit")]
    Dreaddit,
    /// Interpersonal risk factors: thwarted belongingness / perceived burdensomeness (binary).
    #[serde(rename = "Irf")]
    Irf,
    /// Wellness dimensions (binary per dimension).
    #[serde(rename = "MultiWD")]
    MultiWd,
    /// Stress causes (9 classes).
    #[serde(rename = "SAD")]
    Sad,
    /// Depression severity: minimum, mild, moderate, severe.
    #[serde(rename = "DEP-SEVERITY")]
    DepSeverity,
    /// Causes of depression (6 classes).
    #[serde(rename = "CAMS")]
    Cams,
    /// Loneliness (binary).
    #[serde(rename = "loneliness")]
    Loneliness,
    /// Suicide / depression / PTSD / no disorder (4 classes).
    #[serde(rename = "t-sid")]
    TSid,
    /// Mental disorders on Reddit (5 classes).
    #[serde(rename = "swmh")]
    Swmh,
    /// CLPsych depression (binary).
    #[serde(rename = "CLP")]
    Clp,
}

use Dataset::*;

/// Yes/no sets: `yes` is tested before `no` (PAPER.md, "Scoring"), so "No, ... Reasoning: yes"
/// is 0 because the reasoning is cut off first.
const BINARY_RULES: &[(&str, usize)] = &[("yes", 1), ("no", 0)];
/// PAPER.md's SAD order. `emotion` and `decision` (not MentaLLaMA's `emotional`/`everyday`)
/// match both the gold phrases "emotion turmoil" / "everyday decision making" and predictions.
const SAD_RULES: &[(&str, usize)] = &[
    ("school", 0),
    ("financial", 1),
    ("family", 2),
    ("social", 3),
    ("work", 4),
    ("health", 5),
    ("emotion", 6),
    ("decision", 7),
    ("other", 8),
];
/// PAPER.md's t-sid order: `depression` before `suicide`.
const TSID_RULES: &[(&str, usize)] = &[
    ("depression", 2),
    ("suicide", 1),
    ("ptsd", 3),
    ("no mental", 0),
];
/// PAPER.md's swmh order: `no mental` first.
const SWMH_RULES: &[(&str, usize)] = &[
    ("no mental", 0),
    ("suicide", 1),
    ("depression", 2),
    ("anxiety", 3),
    ("bipolar", 4),
];
/// CAMS, after MentaLLaMA's `src/label_inference.py` (`calculate_f1`), merged so one list
/// parses both sides: its gold tests are "no causes", "bias or abuse", "jobs and career",
/// "medication", "relationship", "alienation" and its prediction tests are "none", "bias",
/// "job", "medication", "relation", "alienation". The shorter stems below match both; "no
/// reason" is CAMS's own name for class 0. The IMHI gold sentences are "This post shows no
/// causes of depression." and "This post shows causes of depression related to <cause>."
const CAMS_RULES: &[(&str, usize)] = &[
    ("no cause", 0),
    ("no reason", 0),
    ("none", 0),
    ("bias", 1),
    ("job", 2),
    ("medication", 3),
    ("relation", 4),
    ("alienation", 5),
];
/// DEP-SEVERITY answers of a generative model; `minim` covers "minimum" and "minimal".
const SEVERITY_RULES: &[(&str, usize)] =
    &[("minim", 0), ("mild", 1), ("moderate", 2), ("severe", 3)];

/// Names a user may type, after [`normalise_name`]. Canonical names come first.
const ALIASES: &[(&str, Dataset)] = &[
    ("dr", Dr),
    ("depression-reddit", Dr),
    ("reddit-depression", Dr),
    ("dreaddit", Dreaddit),
    ("irf", Irf),
    ("multiwd", MultiWd),
    ("multi-wd", MultiWd),
    ("sad", Sad),
    ("dep-severity", DepSeverity),
    ("depseverity", DepSeverity),
    ("depression-severity", DepSeverity),
    ("dep-sev", DepSeverity),
    ("cams", Cams),
    ("loneliness", Loneliness),
    ("t-sid", TSid),
    ("tsid", TSid),
    ("swmh", Swmh),
    ("clp", Clp),
];

impl Dataset {
    pub const ALL: [Dataset; 11] = [
        Dr,
        Dreaddit,
        Irf,
        MultiWd,
        Sad,
        DepSeverity,
        Cams,
        Loneliness,
        TSid,
        Swmh,
        Clp,
    ];

    /// The five IMHI sets the paper scores and averages (PAPER.md, "Published figures").
    pub const PAPER_FIVE: [Dataset; 5] = [Dr, Dreaddit, Irf, MultiWd, Sad];

    /// The name IMHI uses for the set (also its CSV file stem).
    pub fn name(self) -> &'static str {
        match self {
            Dr => "DR",
            Dreaddit => "dreaddit",
            Irf => "Irf",
            MultiWd => "MultiWD",
            Sad => "SAD",
            DepSeverity => "DEP-SEVERITY",
            Cams => "CAMS",
            Loneliness => "loneliness",
            TSid => "t-sid",
            Swmh => "swmh",
            Clp => "CLP",
        }
    }

    /// Recognises a dataset from a name, an alias or a file path, case-insensitively:
    /// `DR`, `depression_reddit`, `test/SAD.csv`, `dreaddit-train`, `dep-severity-english`.
    pub fn from_name(name: &str) -> Result<Self> {
        let norm = normalise_name(name);
        let lookup = |s: &str| {
            ALIASES
                .iter()
                .find(|(alias, _)| *alias == s)
                .map(|(_, d)| *d)
        };
        if let Some(d) = lookup(&norm) {
            return Ok(d);
        }
        // File stems such as `dreaddit-train` or `DR_test`.
        for suffix in ["-train", "-valid", "-val", "-test", "-dev"] {
            if let Some(d) = norm.strip_suffix(suffix).and_then(lookup) {
                return Ok(d);
            }
        }
        // DEP-SEVERITY comes in languages: `dep-severity-portuguese`.
        for prefix in ["dep-severity-", "depseverity-", "depression-severity-"] {
            if norm.starts_with(prefix) {
                return Ok(DepSeverity);
            }
        }
        Err(DataError::UnknownDataset {
            name: name.to_string(),
            known: Self::known_names(),
        })
    }

    /// Every canonical name, comma-separated, for error messages and `--help`.
    pub fn known_names() -> String {
        Self::ALL
            .iter()
            .map(|d| d.name())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Class names by label index.
    pub fn label_names(self) -> &'static [&'static str] {
        match self {
            Dr | Dreaddit | Irf | MultiWd | Loneliness | Clp => &["no", "yes"],
            Sad => &[
                "school",
                "financial",
                "family",
                "social",
                "work",
                "health",
                "emotion",
                "decision",
                "other",
            ],
            DepSeverity => &["minimum", "mild", "moderate", "severe"],
            Cams => &[
                "none",
                "bias or abuse",
                "jobs and career",
                "medication",
                "relationship",
                "alienation",
            ],
            TSid => &["no mental disorder", "suicide", "depression", "ptsd"],
            Swmh => &[
                "no mental disorder",
                "suicide",
                "depression",
                "anxiety",
                "bipolar",
            ],
        }
    }

    pub fn num_classes(self) -> usize {
        self.label_names().len()
    }

    /// The substring tests, in order, applied to the lowercased head of an answer.
    pub fn rules(self) -> &'static [(&'static str, usize)] {
        match self {
            Dr | Dreaddit | Irf | MultiWd | Loneliness | Clp => BINARY_RULES,
            Sad => SAD_RULES,
            DepSeverity => SEVERITY_RULES,
            Cams => CAMS_RULES,
            TSid => TSID_RULES,
            Swmh => SWMH_RULES,
        }
    }

    /// The label an answer gets when no rule matches (PAPER.md's "no match" column:
    /// 0 for the yes/no sets, t-sid and swmh; 8 "other" for SAD). CAMS and DEP-SEVERITY
    /// are not in the table; their class 0 ("none", "minimum") is the analogue.
    pub fn fallback_label(self) -> usize {
        match self {
            Sad => 8,
            _ => 0,
        }
    }

    /// Whether a gold answer that matches no rule drops its example from scoring
    /// (PAPER.md: t-sid and swmh). Elsewhere an unmatched gold gets the fallback label.
    pub fn drops_unmatched_gold(self) -> bool {
        matches!(self, TSid | Swmh)
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Dataset {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self> {
        Self::from_name(s)
    }
}

/// Lowercase, keep the file name without its directory and extension, and write `_` and
/// spaces as `-`.
fn normalise_name(name: &str) -> String {
    let base = name.trim().rsplit(['/', '\\']).next().unwrap_or("");
    let lower = base.to_lowercase();
    let stem = [".csv", ".jsonl", ".json", ".tsv"]
        .iter()
        .find_map(|ext| lower.strip_suffix(ext))
        .unwrap_or(&lower);
    stem.replace(['_', ' '], "-")
}

/// The mark between an answer's label and its explanation.
pub const REASONING_MARK: &str = "reasoning:";

/// Byte offset of an answer's first "Reasoning:" mark, in any ASCII case, on the text as
/// it is (the mark starts with an ASCII letter, so the offset is a character boundary).
pub fn reasoning_mark(answer: &str) -> Option<usize> {
    answer
        .as_bytes()
        .windows(REASONING_MARK.len())
        .position(|w| w.eq_ignore_ascii_case(REASONING_MARK.as_bytes()))
}

/// The part of an answer the rules look at: lowercased, cut before the first
/// "reasoning:" (any case), as PAPER.md's scoring section says.
pub fn answer_head(answer: &str) -> String {
    let lower = answer.to_lowercase();
    match lower.find("reasoning:") {
        Some(at) => lower[..at].to_string(),
        None => lower,
    }
}

/// The label of the first rule whose substring occurs in the answer's head, or `None`
/// when no rule matches.
pub fn match_label(dataset: Dataset, answer: &str) -> Option<usize> {
    let head = answer_head(answer);
    dataset
        .rules()
        .iter()
        .find(|(needle, _)| head.contains(needle))
        .map(|(_, label)| *label)
}

/// The MentaLLaMA / MentalQLM label of an answer: the first matching rule, else the
/// dataset's fallback label. Used for gold answers and predictions alike.
pub fn parse_label(dataset: Dataset, answer: &str) -> usize {
    match_label(dataset, answer).unwrap_or_else(|| dataset.fallback_label())
}

/// The label of a gold answer, or `None` when the example leaves scoring (an unmatched
/// gold answer of t-sid or swmh).
pub fn parse_gold_label(dataset: Dataset, answer: &str) -> Option<usize> {
    match match_label(dataset, answer) {
        Some(label) => Some(label),
        None if dataset.drops_unmatched_gold() => None,
        None => Some(dataset.fallback_label()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_aliases() {
        for d in Dataset::ALL {
            assert_eq!(Dataset::from_name(d.name()).ok(), Some(d));
            assert_eq!(Dataset::from_name(&d.name().to_uppercase()).ok(), Some(d));
        }
        let cases = [
            ("depression_reddit", Dr),
            ("../data/imhi/test/SAD.csv", Sad),
            ("dreaddit-train", Dreaddit),
            ("DR_test.json", Dr),
            ("dep-severity-portuguese", DepSeverity),
            ("T_SID", TSid),
        ];
        for (name, want) in cases {
            assert_eq!(Dataset::from_name(name).ok(), Some(want), "{name}");
        }
    }

    #[test]
    fn unknown_name_lists_known_ones() {
        let err = Dataset::from_name("reddit").unwrap_err().to_string();
        assert!(
            err.contains("reddit") && err.contains("MultiWD") && err.contains("t-sid"),
            "{err}"
        );
    }

    #[test]
    fn label_names_cover_rules() {
        for d in Dataset::ALL {
            for (_, label) in d.rules() {
                assert!(*label < d.num_classes(), "{d}");
            }
            assert!(d.fallback_label() < d.num_classes());
        }
    }

    #[test]
    fn reasoning_is_cut_case_insensitively() {
        assert_eq!(
            parse_label(Dr, "No, the poster does not. REASONING: yes, yes"),
            0
        );
        assert_eq!(parse_label(Dr, "Maybe. reasoning: yes"), 0);
        assert_eq!(match_label(Dr, "Maybe. reasoning: yes"), None);
        assert_eq!(
            parse_gold_label(Swmh, "This post shows nothing. Reasoning: anxiety"),
            None
        );
        assert_eq!(parse_gold_label(Sad, "unclear"), Some(8));
    }

    #[test]
    fn the_reasoning_mark_is_found_on_the_text_as_it_is() {
        assert_eq!(reasoning_mark("Yes. Reasoning: a"), Some(5));
        assert_eq!(reasoning_mark("Yes. REASONING: a reasoning: b"), Some(5));
        // Offsets count the bytes of multi-byte text before the mark.
        assert_eq!(reasoning_mark("é. reasoning: ok"), Some(4));
        assert_eq!(reasoning_mark("no mark: reasonin"), None);
    }
}
