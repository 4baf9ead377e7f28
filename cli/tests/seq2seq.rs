//! Encoder-decoder models (BART, T5) through the CLI, on the tiny fixtures of
//! tests/scripts/gen_seq2seq_fixtures.py: `logits --decoder-ids` against transformers'
//! logits, `generate` following generation_config.json (or --beams / --max-new-tokens) to
//! transformers' token counts, `classify` and `eval --mode generate` labelling the model's
//! own answers, and the options that do not apply refused by name.

mod common;

use common::*;

const MODELS: [&str; 3] = ["bart", "t5", "t5-v1_1"];

fn reference() -> serde_json::Value {
    read_json(fixture("tiny/seq2seq.json"))
}

fn id_list(v: &serde_json::Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap())
        .collect()
}

fn joined(ids: &[u64]) -> String {
    ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

/// The decoder's logits at the last of `--decoder-ids` are transformers' at that position;
/// without `--decoder-ids` they are those of the decoder start token alone.
#[test]
fn logits_takes_encoder_and_decoder_ids() {
    let r = reference();
    for name in MODELS {
        let model = fixture(&format!("tiny/{name}"));
        let m = &r[name];
        // The second input is the shorter one: its real tokens, without padding.
        let mask = id_list(&m["attention_mask"][1]);
        let ids: Vec<u64> = id_list(&m["input_ids"][1])
            .into_iter()
            .zip(mask)
            .filter(|p| p.1 == 1)
            .map(|p| p.0)
            .collect();
        let dec = id_list(&m["decoder_ids"][1]);
        let want = floats(&m["logits"][1]);
        let vocab = want.len() / dec.len();
        let (got, stderr) = logits_of(&[
            "logits",
            "--device",
            "cpu",
            "--model",
            model.to_str().unwrap(),
            "--ids",
            &joined(&ids),
            "--decoder-ids",
            &joined(&dec),
        ]);
        assert!(stderr.contains("encoder-decoder"), "{stderr}");
        let diff = max_abs_diff(&got, &want[(dec.len() - 1) * vocab..]);
        assert_eq!(got.len(), vocab, "{name}");
        assert!(diff < 1e-4, "{name}: max diff {diff}");

        let start = dec[0].to_string();
        let logits = |extra: &[&str]| {
            let mut args = vec![
                "logits",
                "--device",
                "cpu",
                "--model",
                model.to_str().unwrap(),
                "--ids",
            ];
            let ids = joined(&ids);
            args.push(&ids);
            args.extend(extra);
            ok(&args).0
        };
        assert_eq!(logits(&[]), logits(&["--decoder-ids", &start]), "{name}");
    }
}

/// `generate` answers with the folder's generation_config.json (BART's: 3 beams, forced
/// BOS/EOS, no_repeat_ngram_size 2, max_length 16; T5 v1.1's: transformers' defaults, greedy
/// for 20 new tokens), or as `--max-new-tokens` caps it: as many tokens as transformers'
/// `generate` gave for the same text.
#[test]
fn generate_follows_generation_config_or_flags() {
    let r = reference();
    let text = "Work is stressful lately.";
    let tokens = |name: &str, extra: &[&str]| {
        let model = fixture(&format!("tiny/{name}"));
        let mut args = vec![
            "generate",
            "--device",
            "cpu",
            "--model",
            model.to_str().unwrap(),
            "--json",
            text,
        ];
        args.extend(extra);
        let (stdout, _) = ok(&args);
        let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        assert_eq!(v["prompt"], text);
        v["tokens"].as_u64().unwrap() as usize
    };
    let len = |name: &str, key: &str| r[name][key][1].as_array().unwrap().len();
    assert_eq!(tokens("bart", &[]), len("bart", "default"));
    assert_eq!(tokens("t5-v1_1", &[]), len("t5-v1_1", "default"));
    assert_eq!(
        tokens("t5-v1_1", &["--max-new-tokens", "12"]),
        len("t5-v1_1", "greedy")
    );
    assert_ne!(
        len("t5-v1_1", "default"),
        len("t5-v1_1", "greedy"),
        "the two settings must differ for this test to mean anything"
    );
}

/// `classify` scores each label's completion answer (`choice`) and, with --explain, shows
/// the model's own answer and whether it states the same label.
#[test]
fn classify_scores_completion_answers_and_explains() {
    let model = fixture("tiny/t5");
    let (stdout, stderr) = ok(&[
        "classify",
        "--device",
        "cpu",
        "--model",
        model.to_str().unwrap(),
        "--task",
        "SAD",
        "--json",
        "--explain",
        "Rent is due and I have no money.",
    ]);
    assert!(stderr.contains("completion answer"), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let probs = v["probabilities"].as_object().unwrap();
    assert_eq!(probs.len(), 9);
    let total: f64 = probs.values().map(|p| p.as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-6, "{total}");
    let best = probs
        .iter()
        .max_by(|a, b| a.1.as_f64().unwrap().total_cmp(&b.1.as_f64().unwrap()))
        .unwrap()
        .0;
    assert_eq!(v["label"].as_str().unwrap(), best);
    assert_eq!(v["method"], "choice");
    assert!(!v["answer"].as_str().unwrap().is_empty());
    assert!(v["answer_agrees"].is_boolean());
    assert!(v["note"].as_str().unwrap().contains("not a diagnosis"));
}

/// BART's learned positions end (64 in the tiny model): a long post is cut to fit the
/// encoder, and answers stop at the decoder's last position, whatever the budget.
#[test]
fn bart_stays_within_its_positions() {
    let model = fixture("tiny/bart");
    let long = "I cannot sleep and everything feels heavy. ".repeat(40);
    let (stdout, _) = ok(&[
        "classify",
        "--device",
        "cpu",
        "--model",
        model.to_str().unwrap(),
        "--task",
        "DR",
        "--json",
        "--explain",
        "--max-new-tokens",
        "500",
        &long,
    ]);
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["truncated"], true);
    let (stdout, _) = ok(&[
        "generate",
        "--device",
        "cpu",
        "--model",
        model.to_str().unwrap(),
        "--json",
        "--beams",
        "1",
        "--max-new-tokens",
        "500",
        "hello",
    ]);
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(v["tokens"].as_u64().unwrap() <= 63, "{v}");
}

/// Runs `eval` on the tiny BART over two examples of each of `sets`, with `extra` options;
/// returns each set's prediction rows.
fn eval_bart(
    tag: &str,
    sets: &[&str],
    extra: &[&str],
) -> (std::path::PathBuf, Vec<Vec<serde_json::Value>>) {
    let out = scratch(tag);
    let model = fixture("tiny/bart");
    let data = fixture("data/imhi");
    let joined = sets.join(",");
    let mut args = vec![
        "eval",
        "--device",
        "cpu",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--datasets",
        &joined,
        "--limit",
        "2",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    ok(&args);
    let rows = sets
        .iter()
        .map(|set| {
            let text =
                std::fs::read_to_string(out.join(format!("predictions_{set}.jsonl"))).unwrap();
            let rows: Vec<serde_json::Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            assert_eq!(rows.len(), 2, "{set}");
            rows
        })
        .collect();
    (out, rows)
}

/// `eval --mode generate` writes predictions from IMHI-completion prompts and scores them;
/// `--mode choice` scores the completion answers.
#[test]
fn eval_generates_completion_prompts() {
    let (out, sets) = eval_bart("eval-seq2seq", &["DR", "SAD"], &["--max-new-tokens", "6"]);
    for (set, rows) in ["DR", "SAD"].iter().zip(sets) {
        for row in rows {
            let prompt = row["prompt"].as_str().unwrap();
            assert!(prompt.starts_with("Post: "), "{prompt}");
            let cue = if *set == "SAD" {
                "Question: This post shows the stress cause of "
            } else {
                "Question: The answer to the question \"Does the poster suffers from depression?\" is "
            };
            assert!(prompt.ends_with(cue), "{prompt}");
        }
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains("IMHI-completion prompts; answers by 3 beam(s)"),
        "{report}"
    );
    let (_, sets) = eval_bart("eval-seq2seq-choice", &["DR"], &["--mode", "choice"]);
    for row in &sets[0] {
        let predict = row["predict"].as_str().unwrap();
        assert!(predict.ends_with("from depression."), "{predict}");
    }
}

#[test]
fn options_that_do_not_apply_are_refused() {
    let bart = fixture("tiny/bart");
    let bart = bart.to_str().unwrap();
    let qwen = fixture("tiny/qwen2");
    let qwen = qwen.to_str().unwrap();
    fails(
        &[
            "logits",
            "--model",
            qwen,
            "--ids",
            "1,2",
            "--decoder-ids",
            "3",
        ],
        &["--decoder-ids", "encoder-decoder"],
    );
    fails(
        &["generate", "--model", qwen, "--beams", "2", "hi"],
        &["--beams", "encoder-decoder"],
    );
    fails(
        &["generate", "--model", bart, "--temperature", "0.7", "hi"],
        &["--temperature", "sampling"],
    );
    fails(
        &["generate", "--model", bart, "--beams", "0", "hi"],
        &["--beams must be from 1 to 64"],
    );
    fails(
        &[
            "logits",
            "--model",
            bart,
            "--ids",
            "1,2",
            "--decoder-ids",
            "2,x",
        ],
        &["--decoder-ids", "`x`"],
    );
    fails(
        &["logits", "--model", bart, "--ids", "1,99999"],
        &["99999", "vocabulary"],
    );
    let adapter = fixture("lora/qwen2-adapter");
    fails(
        &[
            "generate",
            "--model",
            bart,
            "--adapter",
            adapter.to_str().unwrap(),
            "hi",
        ],
        &["--adapter", "decoder-only"],
    );
    let data = fixture("data/imhi");
    fails(
        &[
            "eval",
            "--model",
            bart,
            "--data",
            data.to_str().unwrap(),
            "--datasets",
            "DR",
            "--mode",
            "head",
        ],
        &["encoder-decoder", "--mode generate", "--mode choice"],
    );
    fails(
        &[
            "classify",
            "--model",
            bart,
            "--task",
            "DR",
            "--explain-free",
            "a text",
        ],
        &["--explain-free", "encoder-decoder"],
    );
    // A command for decoder-only models names what reads this one.
    let out = scratch("seq2seq-select");
    #[rustfmt::skip]
    fails(
        &[
            "select", "--device", "cpu", "--model", bart, "--data", data.to_str().unwrap(),
            "--keep", "0.5", "--out", out.to_str().unwrap(),
        ],
        &["encoder-decoder model (BART or T5)", "decoder-only"],
    );
}
