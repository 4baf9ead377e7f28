//! Data selection against the references of tests/scripts/gen_select_fixtures.py: NumPy's
//! k-center greedy and percentiles, and transformers' answer perplexity and hidden states.

use model::load_model;
use model::score::{answer_nll, mean_pooled};
use serde_json::Value;
use train::select::{k_center_greedy, remove_outliers};

use crate::{cpu, fixture, max_abs_diff};

fn reference() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("select/reference.json")).unwrap())
        .unwrap()
}

fn u32s(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn k_center_matches_numpy() {
    let r = reference();
    let rows: Vec<Vec<f32>> = r["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect()
        })
        .collect();
    for case in r["k_center"].as_array().unwrap() {
        let k = case["k"].as_u64().unwrap() as usize;
        let first = case["first"].as_u64().unwrap() as usize;
        let want: Vec<usize> = case["selected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        // Chunks smaller than the set and not dividing it.
        let got = k_center_greedy(&rows, k, first, 64, &cpu()).unwrap();
        assert_eq!(got.selected, want, "k={k} first={first}");
        let radius = case["coverage_radius"].as_f64().unwrap();
        assert!(
            (got.coverage_radius - radius).abs() < 1e-3 * radius.max(1.0),
            "{} vs {radius}",
            got.coverage_radius
        );
    }
    assert!(k_center_greedy(&rows, 0, 0, 8, &cpu()).is_err());
    assert!(k_center_greedy(&rows, rows.len() + 1, 0, 8, &cpu()).is_err());
    assert!(k_center_greedy(&[], 1, 0, 8, &cpu()).is_err());
}

/// Duplicate rows (Irf and MultiWD ask several questions of one post, so their embeddings
/// repeat): every row is selected at most once, the distinct points come first, and once the
/// radius is 0 the lowest untaken rows follow. Before this, the greedy step picked row 0 again
/// and again, and `select` wrote one example hundreds of times.
#[test]
fn k_center_greedy_never_repeats_a_row() {
    let points = [vec![0.0f32, 0.0], vec![3.0, 4.0], vec![-6.0, 8.0]];
    // Rows 0..12: point i % 3.
    let rows: Vec<Vec<f32>> = (0..12).map(|i| points[i % 3].clone()).collect();
    let got = k_center_greedy(&rows, 10, 4, 5, &cpu()).unwrap();
    let mut distinct = got.selected.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 10, "{:?}", got.selected);
    // From row 4 (point 1): the farthest is point 2 (row 2), then point 0 (row 0); all rows
    // are then at distance 0 and the lowest untaken ones follow.
    assert_eq!(got.selected, vec![4, 2, 0, 1, 3, 5, 6, 7, 8, 9]);
    assert_eq!(got.coverage_radius, 0.0);
    // All of them.
    let all = k_center_greedy(&rows, 12, 0, 5, &cpu()).unwrap();
    let mut sorted = all.selected.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..12).collect::<Vec<_>>());
}

#[test]
fn iqr_outliers_match_numpy() {
    let r = reference();
    let scores: Vec<f64> = r["scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            v.as_f64()
                .unwrap_or_else(|| v.as_str().unwrap().parse().unwrap())
        })
        .collect();
    let (kept, report) = remove_outliers(&scores);
    let want: Vec<usize> = r["iqr"]["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(kept, want);
    assert_eq!(report.non_finite, 2);
    assert_eq!(report.before, scores.len());
    assert_eq!(
        report.after + report.outliers + report.non_finite,
        report.before
    );
    assert!(report.outliers >= 2, "the planted outliers are removed");
    for key in ["q1", "median", "q3", "lower", "upper"] {
        let want = r["iqr"][key].as_f64().unwrap();
        let got = match key {
            "q1" => report.q1,
            "median" => report.median,
            "q3" => report.q3,
            "lower" => report.lower,
            _ => report.upper,
        };
        assert!((got - want).abs() < 1e-12, "{key}: {got} vs {want}");
    }
}

#[test]
fn answer_perplexity_and_embeddings_match_transformers() {
    let r = reference();
    let model = load_model(
        &fixture("tiny/qwen2"),
        &cpu(),
        model::load::LoadOptions::default(),
    )
    .unwrap()
    .model;
    let cases = r["perplexity"].as_array().unwrap();
    let mut seqs = Vec::new();
    let mut scored = Vec::new();
    let mut alone = Vec::new();
    let mut alone_scored = Vec::new();
    for c in cases {
        let (p, a) = (u32s(&c["prompt_ids"]), u32s(&c["answer_ids"]));
        scored.push(a.len());
        alone_scored.push(a.len() - 1);
        alone.push(a.clone());
        seqs.push([p, a].concat());
    }
    // One batch of different lengths (left padding) for each quantity.
    let nll = answer_nll(&model, &seqs, &scored, 0).unwrap();
    let nll_alone = answer_nll(&model, &alone, &alone_scored, 0).unwrap();
    let emb = mean_pooled(&model, &seqs, 0).unwrap();
    for (i, c) in cases.iter().enumerate() {
        let want = c["nll"].as_f64().unwrap();
        assert!(
            ((nll[i] - want) / want).abs() < 1e-4,
            "case {i}: nll {} vs {want}",
            nll[i]
        );
        let ppl = nll[i].exp();
        let want_ppl = c["ppl"].as_f64().unwrap();
        assert!(
            ((ppl - want_ppl) / want_ppl).abs() < 1e-4,
            "case {i}: ppl {ppl} vs {want_ppl}"
        );
        let want_alone = c["nll_alone"].as_f64().unwrap();
        assert!(
            ((nll_alone[i] - want_alone) / want_alone).abs() < 1e-4,
            "case {i}: alone {} vs {want_alone}",
            nll_alone[i]
        );
        let ifd = (nll[i] - nll_alone[i]).exp();
        let want_ifd = c["ifd"].as_f64().unwrap();
        assert!(
            ((ifd - want_ifd) / want_ifd).abs() < 1e-4,
            "case {i}: ifd {ifd} vs {want_ifd}"
        );
        let want_emb: Vec<f32> = c["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert!(
            max_abs_diff(&emb[i], &want_emb) < 1e-4,
            "case {i}: embedding"
        );
    }
    // Nothing to score is NaN (removed later as non-finite), not an error.
    let none = answer_nll(&model, &[vec![1, 2, 3]], &[0], 0).unwrap();
    assert!(none[0].is_nan());
}

/// The scoring pass that also keeps the states below the top layer gives the same scores as
/// the plain one, and the states equal those of a separate forward to that depth.
#[test]
fn scores_with_states_equal_scores_and_states_apart() {
    use model::heads::probe::states_at_depths;
    use model::score::answer_nll_and_states;
    let lm = load_model(
        &fixture("tiny/qwen2"),
        &cpu(),
        model::load::LoadOptions::default(),
    )
    .unwrap()
    .model;
    let seqs: Vec<Vec<u32>> = vec![vec![5, 9, 13, 40, 41], vec![7, 8], vec![3, 30, 31, 32]];
    let scored = [2, 1, 0];
    let plain = answer_nll(&lm, &seqs, &scored, 0).unwrap();
    let (nll, states, valid) = answer_nll_and_states(&lm, &seqs, &scored, 0, 1).unwrap();
    for (a, b) in plain.iter().zip(&nll) {
        assert!(
            (a - b).abs() < 1e-6 || (a.is_nan() && b.is_nan()),
            "{a} vs {b}"
        );
    }
    assert!(nll[2].is_nan(), "nothing scored gives NaN");
    let (apart, valid_apart) = states_at_depths(&lm, &seqs, &[1], 0).unwrap();
    assert_eq!(valid, valid_apart);
    let (x, y) = (
        model::io::values(states).unwrap(),
        model::io::values(apart.into_iter().next().unwrap()).unwrap(),
    );
    assert_eq!(x.len(), 3 * 5 * lm.model.hidden_size());
    assert!(max_abs_diff(&x, &y) < 1e-5);
    assert!(
        answer_nll_and_states(&lm, &seqs, &scored, 0, 2).is_err(),
        "no layer above"
    );
}
