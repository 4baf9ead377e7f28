//! Label rules, metrics, scored predictions, text metrics and split sizes against the
//! references in tests/fixtures (scikit-learn, NLTK, rouge-score; see gen_metric_fixtures.py).

mod common;

use common::{close, f64s, fixture, read_json, usizes};
use mentalqlm_data::metrics::{
    Average, accuracy, averaged_scores, classification_metrics, confusion_matrix, f1_score,
    precision_recall_fscore_support,
};
use mentalqlm_data::predictions::read_predictions;
use mentalqlm_data::split::stratified_split;
use mentalqlm_data::text_metrics::{Tokenizer, corpus_bleu, rouge_l, sentence_bleu, tokenize};
use mentalqlm_data::{Dataset, parse_gold_label, parse_label, score_predictions};

#[test]
fn label_rules_table() {
    let path = fixture("label_rules.tsv");
    let text = std::fs::read_to_string(&path).expect("label_rules.tsv");
    let mut seen = std::collections::BTreeSet::new();
    let mut rows = 0;
    for (i, line) in text.lines().enumerate().skip(1) {
        let cols: Vec<&str> = line.splitn(4, '\t').collect();
        assert_eq!(cols.len(), 4, "line {}", i + 1);
        let dataset = Dataset::from_name(cols[0]).expect("dataset name");
        let want: usize = cols[1].parse().expect("label");
        let want_gold = if cols[2] == "drop" {
            None
        } else {
            Some(cols[2].parse::<usize>().expect("gold"))
        };
        assert_eq!(
            parse_label(dataset, cols[3]),
            want,
            "line {}: {dataset}: {:?}",
            i + 1,
            cols[3]
        );
        assert_eq!(
            parse_gold_label(dataset, cols[3]),
            want_gold,
            "line {} (gold): {:?}",
            i + 1,
            cols[3]
        );
        seen.insert(dataset);
        rows += 1;
    }
    assert!(rows > 50);
    assert_eq!(seen.len(), Dataset::ALL.len(), "every dataset has cases");
}

#[test]
fn classification_metrics_match_sklearn() {
    let fx = read_json("metrics/classification.json");
    for case in fx["cases"].as_array().expect("cases") {
        let name = case["name"].as_str().expect("name");
        let (t, p) = (usizes(&case["y_true"]), usizes(&case["y_pred"]));
        let labels = case["labels"].as_array().map(|_| usizes(&case["labels"]));
        let labels = labels.as_deref();
        let sk = &case["sklearn"];
        close(
            accuracy(&t, &p).unwrap(),
            sk["accuracy"].as_f64().unwrap(),
            &format!("{name} accuracy"),
        );
        for (avg, key) in [
            (Average::Weighted, "weighted"),
            (Average::Macro, "macro"),
            (Average::Micro, "micro"),
        ] {
            let (pr, rc, f1) = averaged_scores(&t, &p, avg, labels).unwrap();
            close(
                f1,
                sk[format!("{key}_f1")].as_f64().unwrap(),
                &format!("{name} {key} f1"),
            );
            close(
                pr,
                sk[format!("{key}_precision")].as_f64().unwrap(),
                &format!("{name} {key} precision"),
            );
            close(
                rc,
                sk[format!("{key}_recall")].as_f64().unwrap(),
                &format!("{name} {key} recall"),
            );
            assert_eq!(f1_score(&t, &p, avg, labels).unwrap(), f1);
        }
        let per = precision_recall_fscore_support(&t, &p, labels).unwrap();
        let skp = &sk["per_class"];
        assert_eq!(
            per.iter().map(|c| c.label).collect::<Vec<_>>(),
            usizes(&skp["labels"]),
            "{name}"
        );
        for (field, get) in [
            (
                "precision",
                (|c: &mentalqlm_data::metrics::ClassScores| c.precision) as fn(&_) -> f64,
            ),
            ("recall", |c| c.recall),
            ("f1", |c| c.f1),
        ] {
            for (c, want) in per.iter().zip(f64s(&skp[field])) {
                close(get(c), want, &format!("{name} class {} {field}", c.label));
            }
        }
        assert_eq!(
            per.iter().map(|c| c.support).collect::<Vec<_>>(),
            usizes(&skp["support"])
        );
        let cm: Vec<Vec<usize>> = sk["confusion_matrix"]
            .as_array()
            .unwrap()
            .iter()
            .map(usizes)
            .collect();
        assert_eq!(
            confusion_matrix(&t, &p, labels).unwrap(),
            cm,
            "{name} confusion"
        );
        let all = classification_metrics(&t, &p, labels).unwrap();
        assert_eq!(all.confusion, cm);
        close(all.weighted_f1, sk["weighted_f1"].as_f64().unwrap(), name);
    }
}

#[test]
fn scored_predictions_match_intended_labels_and_sklearn() {
    let fx = read_json("metrics/predictions_expected.json");
    for (set, want) in fx.as_object().expect("object") {
        if set == "versions" {
            continue;
        }
        let dataset = Dataset::from_name(set).expect("dataset");
        let rows = read_predictions(&fixture(&format!(
            "metrics/{}",
            want["file"].as_str().unwrap()
        )))
        .unwrap();
        let s = score_predictions(dataset, &rows).unwrap();
        assert_eq!(s.y_true, usizes(&want["y_true"]), "{set} gold labels");
        assert_eq!(s.y_pred, usizes(&want["y_pred"]), "{set} predicted labels");
        assert_eq!(s.kept, usizes(&want["kept"]), "{set} kept");
        assert_eq!(s.dropped, usizes(&want["dropped"]), "{set} dropped");
        let sk = &want["sklearn"];
        close(
            s.metrics.accuracy,
            sk["accuracy"].as_f64().unwrap(),
            &format!("{set} accuracy"),
        );
        for key in ["weighted", "macro", "micro"] {
            let ours = match key {
                "weighted" => s.metrics.weighted_f1,
                "macro" => s.metrics.macro_f1,
                _ => s.metrics.micro_f1,
            };
            close(
                ours,
                sk[format!("{key}_f1")].as_f64().unwrap(),
                &format!("{set} {key} F1"),
            );
        }
        let cm: Vec<Vec<usize>> = sk["confusion_matrix"]
            .as_array()
            .unwrap()
            .iter()
            .map(usizes)
            .collect();
        assert_eq!(s.metrics.confusion, cm, "{set} confusion");
    }
}

#[test]
fn rouge_and_bleu_match_references() {
    let fx = read_json("metrics/text.json");
    let pairs = fx["pairs"].as_array().unwrap();
    for case in pairs {
        let (h, r) = (
            case["hypothesis"].as_str().unwrap(),
            case["reference"].as_str().unwrap(),
        );
        for (tok, key) in [
            (Tokenizer::Whitespace, "rouge_l_whitespace"),
            (Tokenizer::RougeScore, "rouge_l_rouge_score"),
        ] {
            let ours = rouge_l(h, r, tok);
            close(
                ours.f1,
                case[key]["f1"].as_f64().unwrap(),
                &format!("{key} f1 of {h:?}"),
            );
            close(
                ours.precision,
                case[key]["precision"].as_f64().unwrap(),
                &format!("{key} p of {h:?}"),
            );
            close(
                ours.recall,
                case[key]["recall"].as_f64().unwrap(),
                &format!("{key} r of {h:?}"),
            );
        }
        let (ht, rt) = (
            tokenize(h, Tokenizer::Whitespace),
            tokenize(r, Tokenizer::Whitespace),
        );
        let bleu = sentence_bleu(&ht, &[&rt[..]]).unwrap();
        close(
            bleu,
            case["bleu4_whitespace"].as_f64().unwrap(),
            &format!("BLEU of {h:?}"),
        );
    }
    // The script's corpus leaves out the pair with an empty hypothesis.
    let kept: Vec<(Vec<String>, Vec<String>)> = pairs
        .iter()
        .filter(|c| !c["hypothesis"].as_str().unwrap().is_empty())
        .map(|c| {
            (
                tokenize(c["hypothesis"].as_str().unwrap(), Tokenizer::Whitespace),
                tokenize(c["reference"].as_str().unwrap(), Tokenizer::Whitespace),
            )
        })
        .collect();
    let hyps: Vec<&[String]> = kept.iter().map(|(h, _)| &h[..]).collect();
    let refs: Vec<Vec<&[String]>> = kept.iter().map(|(_, r)| vec![&r[..]]).collect();
    close(
        corpus_bleu(&hyps, &refs).unwrap(),
        fx["corpus_bleu4_whitespace"].as_f64().unwrap(),
        "corpus BLEU",
    );
    let m = &fx["multi_reference"];
    let strs = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect()
    };
    let h = strs(&m["hypothesis"]);
    let refs: Vec<Vec<String>> = m["references"]
        .as_array()
        .unwrap()
        .iter()
        .map(strs)
        .collect();
    let ref_slices: Vec<&[String]> = refs.iter().map(|r| &r[..]).collect();
    close(
        sentence_bleu(&h, &ref_slices).unwrap(),
        m["bleu4"].as_f64().unwrap(),
        "multi-reference BLEU",
    );
}

#[test]
fn split_sizes_match_sklearn() {
    let fx = read_json("metrics/split_counts.json");
    for case in fx["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let counts = usizes(&case["class_counts"]);
        let labels: Vec<usize> = counts
            .iter()
            .enumerate()
            .flat_map(|(c, &n)| std::iter::repeat_n(c, n))
            .collect();
        for seed in [0, 2, 42] {
            let split = stratified_split(&labels, seed).unwrap();
            let sizes = vec![split.train.len(), split.val.len(), split.test.len()];
            assert_eq!(sizes, usizes(&case["sizes"]), "{name} sizes");
            let per = |idx: &[usize]| {
                let mut c = vec![0; counts.len()];
                idx.iter().for_each(|&i| c[labels[i]] += 1);
                c
            };
            if case["train_counts_deterministic"].as_bool().unwrap() {
                assert_eq!(
                    per(&split.train),
                    usizes(&case["train"]),
                    "{name} train per class"
                );
            }
            if case["val_test_counts_deterministic"].as_bool().unwrap() {
                assert_eq!(
                    per(&split.val),
                    usizes(&case["val"]),
                    "{name} val per class"
                );
                assert_eq!(
                    per(&split.test),
                    usizes(&case["test"]),
                    "{name} test per class"
                );
            }
        }
    }
}
