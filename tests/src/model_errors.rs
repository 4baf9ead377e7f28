//! Bad model input gets a clear error, never a panic.

use model::{ModelError, load_model};

use crate::{copy_fixture_model, cpu, fixture};

fn load_err(path: &std::path::Path) -> String {
    match load_model(path, &cpu(), model::load::LoadOptions::default()) {
        Ok(_) => panic!("{} loaded, expected an error", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn missing_folder_and_files() {
    let missing = fixture("tiny/does-not-exist");
    let msg = load_err(&missing);
    assert!(msg.contains("does-not-exist"), "{msg}");

    let dir = copy_fixture_model("tiny/qwen2", "no-weights");
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    let msg = load_err(&dir);
    assert!(msg.contains("model.safetensors"), "{msg}");

    let dir = copy_fixture_model("tiny/qwen2", "no-config");
    std::fs::remove_file(dir.join("config.json")).unwrap();
    let msg = load_err(&dir);
    assert!(msg.contains("config.json"), "{msg}");
}

#[test]
fn truncated_safetensors() {
    let dir = copy_fixture_model("tiny/qwen2", "truncated");
    let file = dir.join("model.safetensors");
    let bytes = std::fs::read(&file).unwrap();
    for keep in [0, 5, 9, 200, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&file, &bytes[..keep]).unwrap();
        let msg = load_err(&dir);
        assert!(
            msg.contains("model.safetensors"),
            "truncated to {keep}: {msg}"
        );
    }
}

#[test]
fn wrong_tensor_shape_names_tensor_and_shapes() {
    let dir = copy_fixture_model("tiny/qwen2", "shape");
    let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
    std::fs::write(
        dir.join("config.json"),
        config.replace("\"intermediate_size\": 100", "\"intermediate_size\": 101"),
    )
    .unwrap();
    match load_model(&dir, &cpu(), model::load::LoadOptions::default()) {
        Err(ModelError::Shape {
            name,
            expected,
            actual,
            ..
        }) => {
            assert_eq!(name, "model.layers.0.mlp.gate_proj.weight");
            assert_eq!(expected, vec![101, 48]);
            assert_eq!(actual, vec![100, 48]);
        }
        Err(e) => panic!("expected a shape error, got {e}"),
        Ok(_) => panic!("expected a shape error"),
    }
    let msg = load_err(&dir);
    assert!(
        msg.contains("gate_proj") && msg.contains("[101, 48]") && msg.contains("[100, 48]"),
        "{msg}"
    );
}

#[test]
fn unknown_model_type() {
    let dir = copy_fixture_model("tiny/qwen2", "model-type");
    let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
    std::fs::write(
        dir.join("config.json"),
        config.replace("\"qwen2\"", "\"mamba\""),
    )
    .unwrap();
    let msg = load_err(&dir);
    assert!(
        msg.contains("unknown model_type `mamba`")
            && msg.contains("config.json")
            && msg.contains("bart, t5"),
        "{msg}"
    );

    std::fs::write(dir.join("config.json"), "{ not json").unwrap();
    let msg = load_err(&dir);
    assert!(msg.contains("config.json"), "{msg}");
}

#[test]
fn tokenizer_vocab_mismatch() {
    let msg = load_err(&fixture("tiny/qwen2-vocab-mismatch"));
    assert!(msg.contains("tokenizer") && msg.contains("290"), "{msg}");

    let dir = copy_fixture_model("tiny/qwen2", "bad-tokenizer");
    std::fs::write(dir.join("tokenizer.json"), "{\"version\": \"1.0\"").unwrap();
    let msg = load_err(&dir);
    assert!(msg.contains("tokenizer.json"), "{msg}");
}

#[test]
fn bad_token_ids_and_empty_batches() {
    let model = load_model(
        &fixture("tiny/qwen2"),
        &cpu(),
        model::load::LoadOptions::default(),
    )
    .unwrap()
    .model;
    let rope = model.rope(8);
    let mut cache = model.new_cache();
    let batch = model::decoder::TokenBatch {
        ids: &[vec![1, 100_000]],
        valid: &[vec![true, true]],
    };
    let err = model
        .forward(batch, &rope, &mut cache)
        .expect_err("out-of-vocab id is an error");
    assert!(err.to_string().contains("100000"), "{err}");
    let batch = model::decoder::TokenBatch {
        ids: &[],
        valid: &[],
    };
    assert!(model.forward(batch, &rope, &mut cache).is_err());
    let long = vec![vec![1u32; 9]];
    let batch = model::decoder::TokenBatch {
        ids: &long,
        valid: &[vec![true; 9]],
    };
    let err = model
        .forward(batch, &rope, &mut model.new_cache())
        .expect_err("too long");
    assert!(err.to_string().contains("exceeds"), "{err}");
}

/// A layer count the weights do not hold fails naming the key, before anything is allocated
/// (2^40 layers used to abort the process in `Vec::with_capacity`).
#[test]
fn layer_count_is_checked_against_the_weights() {
    for (layers, tag) in [
        (1_099_511_627_776u64, "huge-layers"),
        (3, "extra-layer"),
        (1, "fewer-layers"),
    ] {
        let dir = copy_fixture_model("tiny/qwen2", tag);
        let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
        std::fs::write(
            dir.join("config.json"),
            config.replace(
                "\"num_hidden_layers\": 2",
                &format!("\"num_hidden_layers\": {layers}"),
            ),
        )
        .unwrap();
        let msg = load_err(&dir);
        assert!(
            msg.contains(&format!(
                "num_hidden_layers (config.json; GGUF: block_count) is {layers}"
            )) && msg.contains("hold 2 layers")
                && msg.contains("model.safetensors"),
            "{tag}: {msg}"
        );
    }
}
