//! The default model (SmolLM2-135M-Instruct, GGUF Q4_1): logits equal transformers' own
//! GGUF-dequantized model (tests/scripts/gen_smollm2_logits.py), and greedy chat answers are
//! English.

use model::generate::{GenerateConfig, Sampling, generate};
use model::{LoadedModel, load_model};
use serde_json::Value;

use crate::{cpu, fixture, full_logits, logsumexp, max_abs_diff, workspace_root};

pub fn default_model() -> LoadedModel {
    let path = workspace_root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/setup-model.sh",
        path.display()
    );
    load_model(&path, &cpu(), model::load::LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn default_model_logits_match_transformers() {
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("smollm2_logits.json")).unwrap())
            .unwrap();
    let loaded = default_model();
    let model = loaded.model;
    assert_eq!(model.config.num_hidden_layers, 30);
    assert_eq!(model.model.vocab_size(), 49152);
    let ids: Vec<u32> = r["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let flat = full_logits(&model, &ids);
    let vocab = 49152;
    for p in r["positions"].as_array().unwrap() {
        let pos = p["position"].as_u64().unwrap() as usize;
        let row = &flat[pos * vocab..(pos + 1) * vocab];
        let head: Vec<f32> = p["logits_head"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let diff = max_abs_diff(&row[..head.len()], &head);
        assert!(
            diff <= 1e-3,
            "position {pos}: max |Δlogit| over the first {} ids = {diff}",
            head.len()
        );
        let argmax = model::generate::argmax(row) as u64;
        assert_eq!(
            argmax,
            p["argmax"].as_u64().unwrap(),
            "position {pos} argmax"
        );
        let lse = logsumexp(row);
        let want = p["logsumexp"].as_f64().unwrap();
        assert!(
            (lse - want).abs() <= 1e-3,
            "position {pos}: logsumexp {lse} vs {want}"
        );
    }
    // The token ids of the prompt equal what transformers' tokenizer produced.
    let tok = loaded.tokenizer.unwrap();
    assert_eq!(tok.encode(r["prompt"].as_str().unwrap()).unwrap(), ids);
}

#[test]
fn default_model_answers_in_english() {
    let loaded = default_model();
    let tok = loaded.tokenizer.unwrap();
    let prompt = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nGive me one tip to sleep better.<|im_end|>\n<|im_start|>assistant\n";
    let ids = tok.encode(prompt).unwrap();
    let config = GenerateConfig {
        max_new_tokens: 24,
        sampling: Sampling::Greedy,
        seed: 0,
        stop_ids: tok.stop_ids.clone(),
        pad_id: tok.pad_id,
    };
    let out = generate(&loaded.model, &[ids], &config, |_, _| {}).unwrap();
    let text = tok.decode(&out[0]).unwrap().to_lowercase();
    let words: Vec<&str> = text.split_whitespace().collect();
    let common = [
        "the", "a", "to", "and", "your", "you", "sleep", "of", "is", "in", "before",
    ];
    let hits = words
        .iter()
        .filter(|w| common.contains(&w.trim_matches(|c: char| !c.is_alphabetic())))
        .count();
    assert!(
        words.len() >= 8 && hits >= 3,
        "not coherent English: {text:?}"
    );
    assert!(
        text.contains("sleep") || text.contains("bed"),
        "off topic: {text:?}"
    );
}

/// With `keep_quantized` the default model's Q4_1 projections and its Q8_0 embedding table
/// (the tied LM head) stay as codes on the device (llama's permuted Q/K rows included) and
/// the logits equal the f32 load's, on the CPU (a prompt dequantizes, a decoding step reads
/// the codes) and on wgpu (our quantized kernel).
#[test]
fn default_model_kept_quantized_gives_the_same_logits() {
    let path = workspace_root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let ids: Vec<u32> = vec![1, 504, 3458, 314, 253, 1789, 28, 3060, 42, 11, 279, 2];
    let mut devices = vec![cpu()];
    devices.extend(crate::wgpu());
    for device in devices {
        let f32_model = load_model(&path, &device, model::load::LoadOptions::default())
            .unwrap()
            .model;
        let options = model::LoadOptions {
            keep_quantized: true,
            ..Default::default()
        };
        let mut kept = model::load_model(&path, &device, options).unwrap().model;
        let linears = kept.model.linears_mut();
        let quantized = linears
            .iter()
            .filter(|(_, _, l)| l.weight.quantized().is_some())
            .count();
        assert!(
            quantized * 2 > linears.len(),
            "{device:?}: only {quantized} of {} projections kept quantized",
            linears.len()
        );
        assert!(
            kept.model.embed_tokens.weight.quantized().is_some()
                && kept.lm_head.weight.quantized().is_some(),
            "{device:?}: the embedding table was not kept quantized"
        );
        let want = full_logits(&f32_model, &ids);
        let got = full_logits(&kept, &ids);
        let diff = max_abs_diff(&got, &want);
        assert!(diff < 2e-3, "{device:?}: logits differ by {diff}");
        // One token after a cached prefix: a decoding step, one row per projection.
        let vocab = want.len() / ids.len();
        let (prefix, last) = ids.split_at(ids.len() - 1);
        let last = crate::chunked_logits(&kept, &[prefix, last]).pop().unwrap();
        let diff = max_abs_diff(&last, &want[want.len() - vocab..]);
        assert!(
            diff < 2e-3,
            "{device:?}: the decoded step's logits differ by {diff}"
        );
    }
}

/// The tiny Llama-2-chat folder (f16 shards): its transformers reference, the reference's
/// ids, and the model loaded as f32 and with codes of `format` made at load.
fn llama2_chat_loaded_two_ways(
    format: kernels::QuantFormat,
) -> (Value, Vec<u32>, model::CausalLm, model::CausalLm) {
    let path = fixture("tiny/llama2-chat");
    let reference: Value =
        serde_json::from_slice(&std::fs::read(fixture("tiny/llama2_chat.json")).unwrap()).unwrap();
    let ids: Vec<u32> = reference["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect();
    let device = cpu();
    let f32_model = load_model(&path, &device, model::LoadOptions::default())
        .unwrap()
        .model;
    let options = model::LoadOptions {
        codes_at_load: Some(format),
        ..Default::default()
    };
    let coded = load_model(&path, &device, options).unwrap().model;
    (reference, ids, f32_model, coded)
}

/// `codes_at_load: Q8_0` on a HF folder of f16 shards (the tiny Llama-2-chat): every projection and
/// both tables become Q8_0 codes, and the logits stay within Q8_0's error of the f32 load
/// and of transformers' (a prompt, then a decoding step that reads the codes).
#[test]
fn a_hf_folder_quantized_to_q8_at_load_gives_close_logits() {
    let (reference, ids, f32_model, mut q8) =
        llama2_chat_loaded_two_ways(kernels::QuantFormat::Q8_0);
    let linears = q8.model.linears_mut();
    assert!(
        linears
            .iter()
            .all(|(_, _, l)| l.weight.quantized().is_some()),
        "not every projection was quantized"
    );
    assert!(
        q8.model.embed_tokens.weight.quantized().is_some()
            && q8.lm_head.weight.quantized().is_some(),
        "the tables were not quantized"
    );
    let want = full_logits(&f32_model, &ids);
    let got = full_logits(&q8, &ids);
    let vocab = want.len() / ids.len();
    // Q8_0 rounds each weight by up to half of its block's step (max/127/2): about 0.6%
    // of a weight's size for these random weights, 1% of the logits' size at the end.
    let rms = |v: &[f32]| (v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32).sqrt();
    let diff: Vec<f32> = got.iter().zip(&want).map(|(a, b)| a - b).collect();
    let relative = rms(&diff) / rms(&want);
    assert!(relative < 0.02, "q8 against f32: relative rms {relative}");
    assert!(relative > 0.0, "nothing was quantized");
    let transformers: Vec<f32> = reference["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    let last = &got[got.len() - vocab..];
    let argmax = |v: &[f32]| (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap();
    assert_eq!(
        argmax(last),
        argmax(&transformers),
        "the next token changed"
    );
    let (prefix, tail) = ids.split_at(ids.len() - 1);
    let step = crate::chunked_logits(&q8, &[prefix, tail]).pop().unwrap();
    assert!(
        max_abs_diff(&step, last) < 1e-3,
        "the decoding step differs from the prompt's last row"
    );
}

/// `codes_at_load: F16` on the same f16 shards: every projection and both tables are held
/// as half floats, which are the files' values exactly, so the logits equal the f32 load's
/// up to the order of the sums, for a prompt and for a decoding step (the few-rows kernel).
/// A value outside f16's range (an f32 folder's) is refused, naming the tensor.
#[test]
fn a_hf_folder_held_in_f16_gives_the_f32_logits() {
    let (_, ids, f32_model, mut half) = llama2_chat_loaded_two_ways(kernels::QuantFormat::F16);
    let linears = half.model.linears_mut();
    assert!(
        linears.iter().all(|(_, _, l)| l
            .weight
            .quantized()
            .is_some_and(|q| q.format == kernels::QuantFormat::F16)),
        "not every projection is held in f16"
    );
    assert!(
        half.model.embed_tokens.weight.quantized().is_some()
            && half.lm_head.weight.quantized().is_some(),
        "the tables are not held in f16"
    );
    let want = full_logits(&f32_model, &ids);
    let got = full_logits(&half, &ids);
    let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
    let diff = max_abs_diff(&got, &want);
    assert!(
        diff < 1e-4 * scale,
        "f16 against f32: max |Δ| {diff} (|logit| ≤ {scale})"
    );
    let vocab = want.len() / ids.len();
    let (prefix, tail) = ids.split_at(ids.len() - 1);
    let step = crate::chunked_logits(&half, &[prefix, tail]).pop().unwrap();
    let diff = max_abs_diff(&step, &want[want.len() - vocab..]);
    assert!(diff < 1e-4 * scale, "decoding step in f16: max |Δ| {diff}");
}

/// An f32 weight beyond f16's range cannot be held in f16: the load fails, naming the tensor
/// and the way out. (The tiny Llama-2 folder with the shard holding the tensor rewritten in
/// f32, one value set to 1e6.)
#[test]
fn an_f32_weight_outside_f16_range_is_refused_by_name() {
    let dir = crate::copy_fixture_model("tiny/llama2-chat", "f16-range");
    let name = "model.layers.0.mlp.down_proj.weight";
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("model.safetensors.index.json")).unwrap())
            .unwrap();
    let shard = dir.join(index["weight_map"][name].as_str().unwrap());
    let bytes = std::fs::read(&shard).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, Value> =
        serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let data = &bytes[8 + header_len..];
    let (mut out_header, mut out_data) = (serde_json::Map::new(), Vec::new());
    for (tensor, info) in &header {
        if tensor == "__metadata__" {
            out_header.insert(tensor.clone(), info.clone());
            continue;
        }
        assert_eq!(info["dtype"], "F16", "{tensor}");
        let [a, b] = [0, 1].map(|i| info["data_offsets"][i].as_u64().unwrap() as usize);
        let mut values: Vec<f32> = data[a..b]
            .chunks_exact(2)
            .map(|h| half::f16::from_le_bytes([h[0], h[1]]).to_f32())
            .collect();
        if tensor == name {
            values[5] = 1.0e6;
        }
        let start = out_data.len();
        out_data.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        let mut info = info.clone();
        info["dtype"] = "F32".into();
        info["data_offsets"] = serde_json::json!([start, out_data.len()]);
        out_header.insert(tensor.clone(), info);
    }
    let mut text = serde_json::to_vec(&out_header).unwrap();
    text.resize(text.len().next_multiple_of(8), b' ');
    let mut file = (text.len() as u64).to_le_bytes().to_vec();
    file.extend(text);
    file.extend(out_data);
    std::fs::write(&shard, file).unwrap();
    // The rewritten folder still loads as f32, and in f16 it is refused.
    assert!(load_model(&dir, &cpu(), model::LoadOptions::default()).is_ok());
    let options = model::LoadOptions {
        codes_at_load: Some(kernels::QuantFormat::F16),
        ..Default::default()
    };
    let err = load_model(&dir, &cpu(), options)
        .err()
        .expect("a value of 1e6 fits no f16");
    let text = format!("{err:#}");
    assert!(
        text.contains(name) && text.contains("f16") && text.contains("--weights q8"),
        "{text}"
    );
}

/// A build tells its progress callback each step in order, ending at its total: the
/// embedding table, every layer, the head (a browser's page draws this while it builds).
#[test]
fn a_build_reports_every_step_in_order() {
    for (name, path) in [
        ("HF folder", fixture("tiny/qwen2")),
        (
            "GGUF file",
            workspace_root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf"),
        ),
    ] {
        let seen = std::cell::RefCell::new(Vec::new());
        let record = |done: usize, total: usize| seen.borrow_mut().push((done, total));
        let options = model::LoadOptions {
            progress: Some(model::BuildProgress(&record)),
            ..Default::default()
        };
        let layers = load_model(&path, &cpu(), options)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .model
            .config
            .num_hidden_layers;
        let total = layers + 2;
        let want: Vec<(usize, usize)> = (1..=total).map(|d| (d, total)).collect();
        assert_eq!(seen.into_inner(), want, "{name}");
    }
}
