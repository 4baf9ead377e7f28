//! The default model, SmolLM2-135M-Instruct Q4_1 (`scripts/setup-model.sh` fetches it).
//! Without it these tests fail with that instruction rather than pass silently.

mod common;

use mentalqlm_formats::TensorSource;
use mentalqlm_formats::dequant::GgmlType;
use mentalqlm_formats::gguf::{GgufFile, GgufModelConfig};

fn open() -> GgufFile {
    GgufFile::open(&common::default_model()).expect("the default model opens")
}

#[test]
fn config_of_smollm2() {
    let file = open();
    assert_eq!(file.version(), 3);
    assert_eq!(file.tensors().len(), 272);
    let cfg = file.model_config().expect("config");
    let expected = GgufModelConfig {
        architecture: "llama".into(),
        hidden_size: 576,
        num_hidden_layers: 30,
        num_attention_heads: 9,
        num_key_value_heads: 3,
        intermediate_size: 1536,
        head_dim: 64,
        rms_norm_eps: 1e-5,
        rope_theta: 100_000.0,
        max_position_embeddings: 8192,
        vocab_size: 49152,
        bos_token_id: Some(1),
        eos_token_id: Some(2),
        pad_token_id: Some(2),
        tie_word_embeddings: true,
        qk_permuted: true,
    };
    assert_eq!(cfg, expected);
}

#[test]
fn tensors_match_the_python_reference() {
    let file = open();
    let reference = common::read_json("gguf/smollm2_tensors.json");
    let reference = reference.as_object().expect("object");
    assert!(reference.len() >= 5);
    for (name, r) in reference {
        let info = file.info(name).unwrap_or_else(|| panic!("{name} present"));
        assert_eq!(info.dtype, r["type"].as_str().expect("type"), "{name}");
        let (values, shape) = file
            .read_f32(name)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let want_shape: Vec<usize> = r["shape"]
            .as_array()
            .expect("shape")
            .iter()
            .map(|d| d.as_u64().expect("dim") as usize)
            .collect();
        assert_eq!(shape, want_shape, "{name}");
        let floats = |key: &str| -> Vec<f32> {
            r[key]
                .as_array()
                .expect(key)
                .iter()
                .map(|x| x.as_f64().expect("float") as f32)
                .collect()
        };
        assert_eq!(
            &values[..64],
            floats("first").as_slice(),
            "{name}: first values"
        );
        let cols = values.len() / shape[0];
        let row = r["row"].as_u64().expect("row") as usize;
        assert_eq!(
            &values[row * cols..(row + 1) * cols],
            floats("row_values").as_slice(),
            "{name}: row {row}"
        );
        let sum: f64 = values.iter().map(|&x| x as f64).sum();
        let abs_sum: f64 = values.iter().map(|&x| (x as f64).abs()).sum();
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
        assert!(
            close(sum, r["sum"].as_f64().expect("sum")),
            "{name}: sum {sum}"
        );
        assert!(
            close(abs_sum, r["abs_sum"].as_f64().expect("abs_sum")),
            "{name}: abs sum {abs_sum}"
        );

        if let Some(n_head) = r.get("n_head").and_then(|n| n.as_u64()) {
            let (hf, hf_shape) = file
                .read_f32_unpermuted(name, n_head as usize)
                .expect("unpermute");
            assert_eq!(hf_shape, shape);
            let sums: Vec<f64> = hf
                .chunks_exact(cols)
                .map(|row| row.iter().map(|&x| x as f64).sum())
                .collect();
            let want: Vec<f64> = r["unpermuted_row_sums"]
                .as_array()
                .expect("sums")
                .iter()
                .map(|x| x.as_f64().expect("f"))
                .collect();
            assert_eq!(sums.len(), want.len());
            for (i, (a, b)) in sums.iter().zip(&want).enumerate() {
                assert!(
                    close(*a, *b),
                    "{name}: unpermuted row {i} sums to {a}, reference {b}"
                );
            }
        }
    }
}

#[test]
fn raw_q4_1_and_q8_0_blocks() {
    let file = open();
    let emb = file.read_raw("token_embd.weight").expect("embedding");
    assert_eq!(emb.ggml_type, GgmlType::Q8_0);
    assert_eq!(emb.shape(), vec![49152, 576]);
    assert_eq!(emb.bytes.len(), 49152 * 576 / 32 * 34);
    let q = file.read_raw("blk.0.attn_q.weight").expect("attn_q");
    assert_eq!(q.ggml_type, GgmlType::Q4_1);
    assert_eq!(q.bytes.len(), 576 * 576 / 32 * 20);
    assert!(file.tensor("output.weight").is_none(), "tied embeddings");
}
