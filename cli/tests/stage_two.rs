//! Stage-2 classifiers: `train classifier --mode prefix` (LoRA on the top layers over the
//! cached prefix, and a dense head), then `classify --head` with what it wrote.

mod common;

use common::*;

/// `--mode prefix`: LoRA on the top layer of the tiny model over its cached prefix, saved as a
/// PEFT adapter that names its layer, which `classify --head` then loads.
#[test]
fn train_prefix_writes_an_adapter_for_the_top_layers() {
    let model = fixture("tiny/qwen2");
    let m = model.to_str().unwrap();
    let out = scratch("prefix-run");
    let cache = scratch("prefix-run-cache");
    let data = fixture("data/imhi");
    let (stdout, _) = ok(&[
        "train",
        "classifier",
        "--mode",
        "prefix",
        "--top-k",
        "1",
        "--device",
        "cpu",
        "--model",
        m,
        "--task",
        "DR",
        "--data",
        data.to_str().unwrap(),
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--lr",
        "1e-3",
        "--cache-dir",
        cache.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(summary["steps"].as_u64().unwrap() > 0);
    let adapter = read_json(out.join("adapter_config.json"));
    assert_eq!(adapter["layers_to_transform"], serde_json::json!([1]));
    let tensors = std::fs::read(out.join("adapter_model.safetensors")).unwrap();
    let text = String::from_utf8_lossy(&tensors);
    assert!(text.contains("layers.1.self_attn.q_proj.lora_A"));
    assert!(!text.contains("layers.0."), "LoRA on the top layer only");
    assert!(
        cache.read_dir().unwrap().next().is_some(),
        "the prefix was cached"
    );
    let (stdout, _) = ok(&[
        "classify",
        "--device",
        "cpu",
        "--model",
        m,
        "--task",
        "DR",
        "--json",
        "--head",
        out.to_str().unwrap(),
        "I feel empty",
    ]);
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["probabilities"].as_object().unwrap().len(), 2);
    for d in [out, cache] {
        let _ = std::fs::remove_dir_all(d);
    }
}
