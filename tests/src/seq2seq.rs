//! BART and T5 against transformers (`tests/scripts/gen_seq2seq_fixtures.py`): encoder
//! outputs and decoder logits within 1e-4 on the CPU (1e-3 on wgpu), greedy and beam-search
//! generation token for token, the cache against recomputation, the tokenizers, and the
//! errors of bad configs.

use burn::tensor::Device;
use formats::Folder;
use model::LoadOptions;
use model::seq2seq::generation::{self, EarlyStopping, GenerationSettings};
use model::seq2seq::{LoadedSeq2Seq, Seq2SeqLm, load_seq2seq};
use serde_json::Value;

use crate::{cpu, fixture, max_abs_diff, wgpu};

const MODELS: [&str; 3] = ["bart", "t5", "t5-v1_1"];

fn reference() -> &'static Value {
    static REF: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    REF.get_or_init(|| {
        serde_json::from_slice(&std::fs::read(fixture("tiny/seq2seq.json")).unwrap()).unwrap()
    })
}

fn load(name: &str, device: &Device) -> LoadedSeq2Seq {
    let folder = Folder::disk(&fixture(&format!("tiny/{name}")));
    load_seq2seq(&folder, device, LoadOptions::default()).unwrap()
}

fn ids(v: &Value) -> Vec<Vec<u32>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_u64().unwrap() as u32)
                .collect()
        })
        .collect()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// The encoder inputs without their padding.
fn inputs(r: &Value) -> Vec<Vec<u32>> {
    let mask = ids(&r["attention_mask"]);
    ids(&r["input_ids"])
        .into_iter()
        .zip(mask)
        .map(|(row, m)| {
            row.into_iter()
                .zip(m)
                .filter(|p| p.1 == 1)
                .map(|p| p.0)
                .collect()
        })
        .collect()
}

fn check_forward(model: &Seq2SeqLm, r: &Value, tol: f32, what: &str) {
    let inputs = inputs(r);
    let encoded = model.encode(&inputs).unwrap();
    let d = encoded.hidden.dims()[2];
    for (i, want) in r["encoder"].as_array().unwrap().iter().enumerate() {
        let len = inputs[i].len();
        let got = encoded.hidden.clone().narrow(0, i, 1).narrow(1, 0, len);
        let got = model::io::values(got.reshape([len * d])).unwrap();
        let diff = max_abs_diff(&got, &floats(want));
        assert!(
            diff < tol,
            "{what}: encoder output of input {i} differs by {diff}"
        );
    }
    let dec = ids(&r["decoder_ids"]);
    let mut state = model.start(encoded);
    let logits = model.decode(&mut state, &dec).unwrap();
    let [b, s, v] = logits.dims();
    let got = model::io::values(logits.reshape([b * s * v])).unwrap();
    for (i, want) in r["logits"].as_array().unwrap().iter().enumerate() {
        let row = &got[i * s * v..(i + 1) * s * v];
        let diff = max_abs_diff(row, &floats(want));
        assert!(
            diff < tol,
            "{what}: decoder logits of input {i} differ by {diff}"
        );
    }
}

#[test]
fn encoder_and_decoder_equal_transformers_on_cpu() {
    for name in MODELS {
        let loaded = load(name, &cpu());
        check_forward(&loaded.model, &reference()[name], 1e-4, name);
    }
}

#[test]
fn encoder_and_decoder_equal_transformers_on_wgpu() {
    let Some(device) = wgpu() else { return };
    for name in MODELS {
        let loaded = load(name, &device);
        check_forward(&loaded.model, &reference()[name], 1e-3, name);
    }
}

/// Decoding one token at a time with the cache gives the logits of the whole sequence at
/// once, at every position.
#[test]
fn incremental_decoding_equals_recomputation() {
    for name in MODELS {
        let loaded = load(name, &cpu());
        let model = &loaded.model;
        let r = &reference()[name];
        let inputs = inputs(r);
        let dec = ids(&r["decoder_ids"]);
        let encoded = model.encode(&inputs).unwrap();
        let mut whole = model.start(encoded.clone());
        let all = model::io::values(model.decode(&mut whole, &dec).unwrap()).unwrap();
        let mut state = model.start(encoded);
        let (b, s) = (dec.len(), dec[0].len());
        let v = model.vocab_size();
        for pos in 0..s {
            let step: Vec<Vec<u32>> = dec.iter().map(|row| vec![row[pos]]).collect();
            let got = model::io::values(model.decode(&mut state, &step).unwrap()).unwrap();
            for i in 0..b {
                let want = &all[(i * s + pos) * v..(i * s + pos + 1) * v];
                let diff = max_abs_diff(&got[i * v..(i + 1) * v], want);
                assert!(
                    diff < 1e-4,
                    "{name}: position {pos} of row {i} differs by {diff}"
                );
            }
        }
    }
}

fn settings_for(loaded: &LoadedSeq2Seq, beam: &Value) -> GenerationSettings {
    let mut s = GenerationSettings::defaults(loaded.model.special_ids());
    s.num_beams = beam["num_beams"].as_u64().unwrap() as usize;
    s.length_penalty = beam["length_penalty"].as_f64().unwrap() as f32;
    s.no_repeat_ngram_size = beam["no_repeat_ngram_size"].as_u64().unwrap() as usize;
    s.early_stopping = match &beam["early_stopping"] {
        Value::Bool(true) => EarlyStopping::Yes,
        Value::Bool(false) => EarlyStopping::Heuristic,
        _ => EarlyStopping::Never,
    };
    s.max_length = beam["max_new_tokens"].as_u64().unwrap() as usize + 1;
    s
}

#[test]
fn greedy_and_beam_search_equal_transformers_generate() {
    for name in MODELS {
        let loaded = load(name, &cpu());
        let r = &reference()[name];
        let inputs = inputs(r);
        let mut greedy = GenerationSettings::defaults(loaded.model.special_ids());
        greedy.max_length = 13;
        let mut streamed = vec![Vec::new(); inputs.len()];
        let got = generation::generate(&loaded.model, &inputs, &greedy, |i, t| streamed[i].push(t))
            .unwrap();
        assert_eq!(got, ids(&r["greedy"]), "{name}: greedy");
        assert_eq!(streamed, got, "{name}: streamed tokens");
        for beam in r["beams"].as_array().unwrap() {
            let settings = settings_for(&loaded, &beam["setting"]);
            let got = generation::generate(&loaded.model, &inputs, &settings, |_, _| {}).unwrap();
            assert_eq!(
                got,
                ids(&beam["ids"]),
                "{name}: beam search {}",
                beam["setting"]
            );
        }
        // The folder's own generation_config.json (bart-large's: beams, forced BOS/EOS,
        // no_repeat_ngram_size), as `generate()` with no arguments uses it.
        let got =
            generation::generate(&loaded.model, &inputs, &loaded.generation, |_, _| {}).unwrap();
        assert_eq!(got, ids(&r["default"]), "{name}: generation_config.json");
    }
}

#[test]
fn bart_generation_config_is_read() {
    let loaded = load("bart", &cpu());
    let g = &loaded.generation;
    assert_eq!(
        (g.num_beams, g.no_repeat_ngram_size, g.max_length),
        (3, 2, 16)
    );
    assert_eq!(g.early_stopping, EarlyStopping::Yes);
    assert_eq!(
        (g.forced_bos_token_id, g.forced_eos_token_id),
        (Some(0), Some(2))
    );
    assert_eq!((g.decoder_start, g.eos.as_slice()), (2, &[2][..]));
}

#[test]
fn bart_tokenizer_equals_transformers() {
    let loaded = load("bart", &cpu());
    let tok = loaded.tokenizer.expect("vocab.json and merges.txt");
    let cases = reference()["bart"]["tokenizer"].as_array().unwrap();
    assert_eq!(cases.len(), 20);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let plain = tok.encode(text).unwrap();
        let want: Vec<u32> = ids(&Value::Array(vec![case["ids"].clone()])).remove(0);
        assert_eq!(plain, want, "{text:?}");
        let special: Vec<u32> = ids(&Value::Array(vec![case["ids_special"].clone()])).remove(0);
        assert_eq!(
            loaded.model.encoder_input(&plain),
            special,
            "{text:?} with <s> </s>"
        );
    }
}

#[test]
fn t5_encoder_input_appends_eos() {
    let loaded = load("t5", &cpu());
    let tok = loaded.tokenizer.expect("spiece.model");
    let r = &reference()["t5"];
    // The fixture's inputs came from T5Tokenizer(text) with its special tokens.
    let texts = [
        "I haven't slept in days and everything feels pointless. Question: Does the poster \
         suffer from depression?",
        "Work is stressful lately.",
    ];
    for (text, want) in texts.iter().zip(inputs(r)) {
        let got = loaded.model.encoder_input(&tok.encode(text).unwrap());
        assert_eq!(got, want, "{text:?}");
    }
}

/// A copy of a fixture folder with one file rewritten.
fn altered(name: &str, file: &str, edit: impl FnOnce(&mut Value)) -> std::path::PathBuf {
    let src = fixture(&format!("tiny/{name}"));
    let dir = std::env::temp_dir().join(format!(
        "mentalqlm-s2s-{name}-{file}-{}",
        std::process::id()
    ));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    let path = dir.join(file);
    let mut value: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut value);
    std::fs::write(&path, value.to_string()).unwrap();
    dir
}

fn load_err(dir: &std::path::Path) -> String {
    match load_seq2seq(&Folder::disk(dir), &cpu(), LoadOptions::default()) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_configs_get_clear_errors() {
    let dir = altered("bart", "config.json", |v| {
        v.as_object_mut().unwrap().remove("d_model");
    });
    let err = load_err(&dir);
    assert!(
        err.contains("config.json") && err.contains("d_model"),
        "{err}"
    );

    let dir = altered("t5", "config.json", |v| {
        v.as_object_mut().unwrap().remove("d_kv");
    });
    let err = load_err(&dir);
    assert!(err.contains("config.json") && err.contains("d_kv"), "{err}");

    let dir = altered("t5-v1_1", "config.json", |v| {
        v["feed_forward_proj"] = "gated-mish".into();
    });
    let err = load_err(&dir);
    assert!(err.contains("mish"), "{err}");

    let dir = altered("bart", "generation_config.json", |v| {
        v["num_beam_groups"] = 2.into();
        v["diversity_penalty"] = 0.5.into();
    });
    let err = load_err(&dir);
    assert!(
        err.contains("generation_config.json") && err.contains("num_beam_groups"),
        "{err}"
    );

    let dir = altered("bart", "generation_config.json", |v| {
        v["early_stopping"] = "sometimes".into();
    });
    let err = load_err(&dir);
    assert!(
        err.contains("early_stopping") && err.contains("sometimes"),
        "{err}"
    );

    let dir = altered("bart", "generation_config.json", |v| {
        v["num_beams"] = 1_000_000_000u64.into();
    });
    let err = load_err(&dir);
    assert!(err.contains("num_beams") && err.contains("64"), "{err}");

    let dir = altered("t5", "config.json", |v| {
        v["d_model"] = 0.into();
    });
    let err = load_err(&dir);
    assert!(err.contains("d_model must be positive"), "{err}");

    let dir = altered("bart", "generation_config.json", |v| {
        v["decoder_start_token_id"] = 2_147_483_647u64.into();
    });
    let err = load_err(&dir);
    assert!(
        err.contains("generation_config.json") && err.contains("decoder_start_token_id 2147483647"),
        "{err}"
    );

    let dir = altered("bart", "config.json", |v| {
        v["bos_token_id"] = 600.into();
    });
    let err = load_err(&dir);
    assert!(
        err.contains("config.json") && err.contains("bos_token_id 600"),
        "{err}"
    );

    let dir = altered("t5", "config.json", |v| {
        v["num_decoder_layers"] = 4_294_967_296u64.into();
    });
    let err = load_err(&dir);
    assert!(
        err.contains("num_decoder_layers") && err.contains("the weights hold 2 layers"),
        "{err}"
    );

    let dir = altered("bart", "generation_config.json", |v| {
        v["do_sample"] = true.into();
    });
    let err = load_err(&dir);
    assert!(
        err.contains("do_sample") && err.contains("sampling"),
        "{err}"
    );
}

#[test]
fn bad_token_ids_are_refused() {
    let loaded = load("t5", &cpu());
    let err = loaded
        .model
        .encode(&[vec![5, 99_999]])
        .unwrap_err()
        .to_string();
    assert!(err.contains("99999") && err.contains("vocabulary"), "{err}");
    let err = loaded.model.encode(&[vec![]]).unwrap_err().to_string();
    assert!(err.contains("empty"), "{err}");
}

/// `choice` scoring: each candidate answer's summed log-probability after the answer
/// prefix equals transformers' (the candidates tokenized alike).
#[test]
fn completion_answer_logprobs_equal_transformers() {
    for name in MODELS {
        let loaded = load(name, &cpu());
        let r = &reference()[name]["choice"];
        let tok = loaded.tokenizer.as_ref().unwrap();
        let candidates = ids(&r["candidates"]);
        assert_eq!(candidates[0], tok.encode("no.").unwrap(), "{name}");
        assert_eq!(candidates[1], tok.encode("yes.").unwrap(), "{name}");
        let prefix: Vec<u32> = ids(&Value::Array(vec![r["prefix"].clone()])).remove(0);
        assert_eq!(prefix, loaded.generation.answer_prefix(), "{name}");
        let input: Vec<u32> = ids(&Value::Array(vec![r["input_ids"].clone()])).remove(0);
        let got = burn::tensor::try_read_sync(model::seq2seq::score::continuation_logprobs_async(
            &loaded.model,
            &input,
            &prefix,
            &candidates,
        ))
        .unwrap()
        .unwrap();
        for (g, w) in got.iter().zip(floats(&r["logprobs"])) {
            assert!((*g as f32 - w).abs() < 1e-4, "{name}: {g} against {w}");
        }
    }
}

/// A BART or T5 build tells its progress callback each step in order, ending at its total:
/// the tables, every encoder and decoder layer, the rest (the page draws this while it
/// builds).
#[test]
fn a_seq2seq_build_reports_every_step_in_order() {
    for name in MODELS {
        let seen = std::cell::RefCell::new(Vec::new());
        let record = |done: usize, total: usize| seen.borrow_mut().push((done, total));
        let options = LoadOptions {
            progress: Some(model::BuildProgress(&record)),
            ..Default::default()
        };
        let folder = Folder::disk(&fixture(&format!("tiny/{name}")));
        let loaded = load_seq2seq(&folder, &cpu(), options).unwrap();
        let config: Value = serde_json::from_str(
            &std::fs::read_to_string(fixture(&format!("tiny/{name}/config.json"))).unwrap(),
        )
        .unwrap();
        // A layer count of config.json, or `fallback`'s (T5's decoder has the encoder's
        // count unless it says otherwise).
        let count = |key: &str, fallback: &str| {
            config[key]
                .as_u64()
                .or_else(|| config[fallback].as_u64())
                .expect("a layer count") as usize
        };
        let layers = match &loaded.model {
            Seq2SeqLm::Bart(_) => {
                count("encoder_layers", "encoder_layers")
                    + count("decoder_layers", "decoder_layers")
            }
            Seq2SeqLm::T5(_) => {
                count("num_layers", "num_layers") + count("num_decoder_layers", "num_layers")
            }
        };
        let total = layers + 2;
        let want: Vec<(usize, usize)> = (1..=total).map(|d| (d, total)).collect();
        assert_eq!(seen.into_inner(), want, "{name}");
    }
}
