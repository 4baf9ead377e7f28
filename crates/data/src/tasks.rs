//! What the model is asked for each task, and the answer sentence of each label: the IMHI
//! gold answers' own wording (the most frequent head of each label in the test files), so
//! the likelihood of each sentence ranks the labels (`--mode choice`).

use crate::imhi::build_query;
use crate::labels::Dataset;

/// The default question for a raw text, as IMHI phrases it. Irf and MultiWD ask one of
/// several questions; these are the defaults and `--question` picks another.
pub fn default_question(dataset: Dataset) -> &'static str {
    match dataset {
        Dataset::Dr => "Does the poster suffer from depression?",
        Dataset::Dreaddit => "Does the poster suffer from stress?",
        Dataset::Irf => "Does the post show risk of perceived burdensomeness?",
        Dataset::MultiWd => "Does the emotional wellness dimension exist in the post?",
        Dataset::Sad => "What is the stress cause of this post?",
        // Not an IMHI set: our own wording, listing the four levels.
        Dataset::DepSeverity => {
            "What is the depression severity level of the poster: minimum, mild, moderate or severe?"
        }
        Dataset::Cams => "What cause of depression does this post show?",
        Dataset::Loneliness => "Does the poster suffer from loneliness?",
        Dataset::TSid => "What mental disorder does the poster suffer from?",
        Dataset::Swmh => "What mental disorder does the poster suffer from?",
        Dataset::Clp => "Does the poster suffer from depression?",
    }
}

/// The questions IMHI asks about a post where it asks several (Irf: two risk factors,
/// MultiWD: six wellness dimensions), in a fixed order; empty for the other tasks. A
/// classifier for such a task keeps one linear layer per question.
pub fn questions(dataset: Dataset) -> Vec<String> {
    match dataset {
        Dataset::Irf => ["thwarted belongingness", "perceived burdensomeness"]
            .iter()
            .map(|r| format!("Does the post show risk of {r}?"))
            .collect(),
        Dataset::MultiWd => [
            "spiritual",
            "physical",
            "intellectual",
            "social",
            "vocational",
            "emotional",
        ]
        .iter()
        .map(|d| format!("Does the {d} wellness dimension exist in the post?"))
        .collect(),
        _ => Vec::new(),
    }
}

/// The answer sentence of every label, indexed by label.
/// Each label's answer as MentaLLaMA's IMHI-completion data begins it (what MentalBART and
/// MentalT5 learned to write before ". Reasoning:"), in label order: `no.` / `yes.` for the
/// yes/no sets, SAD's stress causes in the completion files' words, and the label name for
/// sets with no completion data.
pub fn completion_answers(dataset: Dataset) -> Vec<String> {
    let names: Vec<&str> = match dataset {
        Dataset::Sad => vec![
            "school",
            "financial problem",
            "family issues",
            "social relationships",
            "work",
            "health issues",
            "emotional turmoil",
            "everyday decision making",
            "other causes",
        ],
        d if d.label_names() == ["no", "yes"] => vec!["no", "yes"],
        d => d.label_names().to_vec(),
    };
    names.iter().map(|n| format!("{n}.")).collect()
}

pub fn answer_sentences(dataset: Dataset) -> Vec<String> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect();
    match dataset {
        Dataset::Dr | Dataset::Clp => s(&[
            "No, the poster does not suffer from depression.",
            "Yes, the poster suffers from depression.",
        ]),
        Dataset::Dreaddit => s(&[
            "No, the poster does not suffer from stress.",
            "Yes, the poster suffers from stress.",
        ]),
        Dataset::Loneliness => s(&[
            "No, the poster does not suffer from loneliness.",
            "Yes, the poster suffers from loneliness.",
        ]),
        Dataset::Irf => s(&[
            "No, the post does not show this risk.",
            "Yes, the post shows this risk.",
        ]),
        Dataset::MultiWd => s(&[
            "No, this wellness dimension does not exist in the post.",
            "Yes, this wellness dimension exists in the post.",
        ]),
        Dataset::Sad => {
            let causes = [
                "school",
                "financial problem",
                "family issues",
                "social relationships",
                "work",
                "health issues",
                "emotion turmoil",
                "everyday decision making",
            ];
            let mut v: Vec<String> = causes
                .iter()
                .map(|c| format!("This post shows the stress cause related to {c}."))
                .collect();
            v.push("This post shows other stress causes.".into());
            v
        }
        Dataset::DepSeverity => ["minimum", "mild", "moderate", "severe"]
            .iter()
            .map(|l| format!("The depression severity of the poster is {l}."))
            .collect(),
        Dataset::Cams => {
            let mut v = vec!["This post shows no causes of depression.".to_string()];
            for c in [
                "bias or abuse",
                "jobs and career",
                "medication",
                "relationship",
                "alienation",
            ] {
                v.push(format!(
                    "This post shows causes of depression related to {c}."
                ));
            }
            v
        }
        Dataset::TSid => s(&[
            "The poster does not suffer from any mental disorder (no mental disorder).",
            "The poster suffers from suicide risk.",
            "The poster suffers from depression.",
            "The poster suffers from ptsd.",
        ]),
        Dataset::Swmh => s(&[
            "The poster does not suffer from any mental disorder (no mental disorder).",
            "The poster suffers from suicide risk.",
            "The poster suffers from depression.",
            "The poster suffers from anxiety.",
            "The poster suffers from bipolar disorder.",
        ]),
    }
}

/// The IMHI query for a raw text: `Consider this post: "<text>" Question: <question>`.
pub fn query_for_text(dataset: Dataset, text: &str, question: Option<&str>) -> String {
    build_query(text, question.unwrap_or_else(|| default_question(dataset)))
}

#[cfg(test)]
mod completion_tests {
    use super::*;

    /// Each completion answer states its own label by MentaLLaMA's rules.
    #[test]
    fn completion_answers_state_their_labels() {
        for d in [
            Dataset::Dr,
            Dataset::Dreaddit,
            Dataset::Irf,
            Dataset::MultiWd,
            Dataset::Sad,
        ] {
            let answers = completion_answers(d);
            assert_eq!(answers.len(), d.label_names().len(), "{}", d.name());
            for (i, a) in answers.iter().enumerate() {
                assert_eq!(
                    crate::labels::match_label(d, a),
                    Some(i),
                    "{}: {a}",
                    d.name()
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::parse_label;

    #[test]
    fn default_questions_are_among_the_known_ones() {
        for dataset in [Dataset::Irf, Dataset::MultiWd] {
            assert!(
                questions(dataset)
                    .iter()
                    .any(|q| q == default_question(dataset))
            );
        }
        assert!(questions(Dataset::Dr).is_empty());
    }

    /// Every sentence parses back to its own label with the scoring rules, so choice-mode
    /// predictions and generated ones are scored alike.
    #[test]
    fn sentences_parse_to_their_labels() {
        for dataset in Dataset::ALL {
            let sentences = answer_sentences(dataset);
            assert_eq!(sentences.len(), dataset.num_classes(), "{dataset:?}");
            for (label, sentence) in sentences.iter().enumerate() {
                assert_eq!(
                    parse_label(dataset, sentence),
                    label,
                    "{dataset:?}: {sentence}"
                );
            }
        }
    }
}
