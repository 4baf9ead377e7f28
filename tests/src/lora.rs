//! LoRA against PEFT (tests/scripts/gen_lora_fixtures.py): PEFT adapters load here with the
//! same logits, merge to the same logits, save and reload unchanged under PEFT's names, and
//! give PEFT's gradients for every lora_A / lora_B.

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, TensorData};
use model::decoder::TokenBatch;
use model::load_model;
use model::lora::peft_io::{load_adapter, merge, peft_key, save_adapter};
use serde_json::Value;

use crate::{copy_fixture_model, cpu, disk, fixture, full_logits, max_abs_diff};

fn reference() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("lora/reference.json")).unwrap()).unwrap()
}

fn ids(r: &Value) -> Vec<u32> {
    r["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn peft_adapters_load_merge_and_round_trip() {
    let r = reference();
    let row = ids(&r);
    for name in ["llama", "qwen2"] {
        let case = &r["cases"][name];
        let want = crate::json_matrix(&case["logits"]);
        let mut model = load_model(
            &fixture(&format!("tiny/{name}")),
            &cpu(),
            model::load::LoadOptions::default(),
        )
        .unwrap()
        .model;
        let base = full_logits(&model, &row);
        let config =
            load_adapter(&mut model, &disk(&fixture(&format!("lora/{name}-adapter")))).unwrap();
        let with = full_logits(&model, &row);
        assert!(
            max_abs_diff(&with, &want) < 1e-4,
            "{name}: adapter logits differ from PEFT by {}",
            max_abs_diff(&with, &want)
        );
        assert!(
            max_abs_diff(&base, &want) > 1e-2,
            "{name}: the adapter must change the logits"
        );

        // Saved here, read back here: same logits, PEFT's key names.
        let dir = copy_fixture_model(&format!("lora/{name}-adapter"), "lora-save");
        std::fs::remove_file(dir.join("adapter_model.safetensors")).unwrap();
        let pairs = save_adapter(&mut model, &config, &dir).unwrap();
        assert!(pairs > 0);
        let saved =
            formats::safetensors::SafetensorsSource::open(&dir.join("adapter_model.safetensors"))
                .unwrap();
        let original = formats::safetensors::SafetensorsSource::open(&fixture(&format!(
            "lora/{name}-adapter/adapter_model.safetensors"
        )))
        .unwrap();
        let mut a = formats::TensorSource::tensor_names(&saved);
        let mut b = formats::TensorSource::tensor_names(&original);
        a.sort();
        b.sort();
        assert_eq!(a, b, "{name}: saved tensor names equal PEFT's");
        assert!(a.contains(&peft_key(0, "self_attn.q_proj", "lora_A")));
        let mut reloaded = load_model(
            &fixture(&format!("tiny/{name}")),
            &cpu(),
            model::load::LoadOptions::default(),
        )
        .unwrap()
        .model;
        load_adapter(&mut reloaded, &disk(&dir)).unwrap();
        assert!(
            max_abs_diff(&full_logits(&reloaded, &row), &with) < 1e-6,
            "{name}: round trip"
        );

        merge(&mut model);
        let merged = full_logits(&model, &row);
        assert!(
            max_abs_diff(&merged, &want) < 1e-4,
            "{name}: merged logits differ by {}",
            max_abs_diff(&merged, &want)
        );
    }
}

#[test]
fn lora_gradients_match_peft() {
    let r = reference();
    let row = ids(&r);
    let from = r["loss_from"].as_u64().unwrap() as usize;
    let device = cpu().autodiff();
    for name in ["llama", "qwen2"] {
        let case = &r["cases"][name];
        let model = load_model(
            &fixture(&format!("tiny/{name}")),
            &device,
            model::load::LoadOptions::default(),
        )
        .unwrap()
        .model;
        // The base is frozen; only the adapter's factors are trained.
        let mut model = model.set_require_grad(false);
        load_adapter(&mut model, &disk(&fixture(&format!("lora/{name}-adapter")))).unwrap();
        let n = row.len();
        let rope = model.rope(n);
        let mut cache = model.new_cache();
        let valid = vec![vec![true; n]];
        let logits = model
            .forward(
                TokenBatch {
                    ids: std::slice::from_ref(&row),
                    valid: &valid,
                },
                &rope,
                &mut cache,
            )
            .unwrap();
        let count = n - from;
        let logp = log_softmax(logits.narrow(1, from - 1, count), 2);
        let targets: Vec<i64> = row[from..].iter().map(|&t| t as i64).collect();
        let targets = Tensor::<3, Int>::from_data(TensorData::new(targets, [1, count, 1]), &device);
        let loss = logp.gather(2, targets).sum().neg() / count as f64;
        let value: f32 = loss.clone().into_data().try_to_vec::<f32>().unwrap()[0];
        let want_loss = case["loss"].as_f64().unwrap() as f32;
        assert!(
            (value - want_loss).abs() < 1e-4,
            "{name}: loss {value} vs PEFT {want_loss}"
        );
        let grads = loss.backward();
        let mut checked = 0;
        for (layer, path, linear) in model.model.linears_mut() {
            let Some(lora) = &linear.lora else { continue };
            for (factor, param) in [("lora_A", &lora.lora_A), ("lora_B", &lora.lora_B)] {
                let key = peft_key(layer, path, factor);
                let got: Vec<f32> = param
                    .val()
                    .grad(&grads)
                    .expect("LoRA factors have gradients")
                    .into_data()
                    .try_to_vec()
                    .unwrap();
                let want: Vec<f32> = case["grads"][&key]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap() as f32)
                    .collect();
                let diff = max_abs_diff(&got, &want);
                assert!(diff < 1e-4, "{name} {key}: max |Δgrad| {diff}");
                checked += 1;
            }
            // The frozen base weight gets no gradient.
            assert!(
                linear.weight.dense().unwrap().grad(&grads).is_none(),
                "{name}: base weight of {path} has a gradient"
            );
        }
        assert_eq!(
            checked,
            case["grads"].as_object().unwrap().len(),
            "{name}: every PEFT gradient was compared"
        );
    }
}

#[test]
fn bad_adapters_get_clear_errors() {
    let model_dir = fixture("tiny/llama");
    let load = |dir: &std::path::Path| {
        let mut model = load_model(&model_dir, &cpu(), model::load::LoadOptions::default())
            .unwrap()
            .model;
        load_adapter(&mut model, &disk(dir))
            .err()
            .map(|e| e.to_string())
            .expect("an error")
    };
    // An adapter made for another model: shapes disagree, the message names the tensor.
    let msg = load(&fixture("lora/qwen2-adapter"));
    assert!(
        msg.contains("lora_A.weight") && msg.contains("expected shape"),
        "{msg}"
    );
    // Unsupported options.
    let dir = copy_fixture_model("lora/llama-adapter", "dora");
    let cfg = std::fs::read_to_string(dir.join("adapter_config.json")).unwrap();
    std::fs::write(
        dir.join("adapter_config.json"),
        cfg.replace("\"use_dora\": false", "\"use_dora\": true"),
    )
    .unwrap();
    let msg = load(&dir);
    assert!(
        msg.contains("DoRA") && msg.contains("adapter_config.json"),
        "{msg}"
    );
    // A truncated weights file and a missing one.
    let dir = copy_fixture_model("lora/llama-adapter", "truncated");
    let bytes = std::fs::read(dir.join("adapter_model.safetensors")).unwrap();
    std::fs::write(
        dir.join("adapter_model.safetensors"),
        &bytes[..bytes.len() / 2],
    )
    .unwrap();
    assert!(load(&dir).contains("adapter_model.safetensors"));
    std::fs::remove_file(dir.join("adapter_model.safetensors")).unwrap();
    assert!(load(&dir).contains("adapter_model.safetensors"));
}
