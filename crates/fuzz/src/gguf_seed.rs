//! A whole tiny model as one GGUF file, made when the fuzzer starts: the tokenizer metadata
//! of `tests/fixtures/gguf/tiny_qwen2_tok.gguf`, the tiny Qwen2's `config.json` as `qwen2.*`
//! keys, and its safetensors weights in f32 under GGUF names. With it, mutated GGUF cases
//! reach the model build and its checks of metadata against the tensors.

use std::path::Path;

use formats::TensorSource;
use formats::gguf::{GgufArray, GgufFile, GgufValue};
use formats::safetensors::SafetensorsSource;

const ALIGN: usize = 32;

fn string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn array(out: &mut Vec<u8>, a: &GgufArray) {
    out.extend_from_slice(&a.elem_type().id().to_le_bytes());
    out.extend_from_slice(&(a.len() as u64).to_le_bytes());
    match a {
        GgufArray::U8(v) => out.extend_from_slice(v),
        GgufArray::I8(v) => out.extend(v.iter().map(|x| *x as u8)),
        GgufArray::U16(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        GgufArray::I16(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        GgufArray::U32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        GgufArray::I32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        GgufArray::F32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        GgufArray::Bool(v) => out.extend(v.iter().map(|x| u8::from(*x))),
        GgufArray::String(v) => v.iter().for_each(|s| string(out, s)),
        GgufArray::Array(v) => v.iter().for_each(|x| array(out, x)),
        GgufArray::U64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        GgufArray::I64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        GgufArray::F64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
    }
}

fn value(out: &mut Vec<u8>, v: &GgufValue) {
    out.extend_from_slice(&v.value_type().id().to_le_bytes());
    match v {
        GgufValue::U8(x) => out.push(*x),
        GgufValue::I8(x) => out.push(*x as u8),
        GgufValue::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::Bool(x) => out.push(u8::from(*x)),
        GgufValue::String(s) => string(out, s),
        GgufValue::Array(a) => array(out, a),
        GgufValue::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
    }
}

/// The GGUF bytes of the tiny Qwen2 under `fixtures`.
pub fn tiny_model_gguf(fixtures: &Path) -> anyhow::Result<Vec<u8>> {
    let tok = GgufFile::open(&fixtures.join("gguf/tiny_qwen2_tok.gguf"))?;
    let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        fixtures.join("tiny/qwen2/config.json"),
    )?)?;
    let u = |k: &str| -> anyhow::Result<GgufValue> {
        let v = config[k]
            .as_u64()
            .ok_or_else(|| anyhow::anyhow!("tiny config.json has no `{k}`"))?;
        Ok(GgufValue::U32(u32::try_from(v)?))
    };
    let mut meta: Vec<(String, GgufValue)> = tok
        .metadata()
        .entries()
        .filter(|(k, _)| !k.starts_with("qwen2.") && *k != "general.architecture")
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    meta.extend([
        (
            "general.architecture".into(),
            GgufValue::String("qwen2".into()),
        ),
        ("qwen2.block_count".into(), u("num_hidden_layers")?),
        ("qwen2.context_length".into(), u("max_position_embeddings")?),
        ("qwen2.embedding_length".into(), u("hidden_size")?),
        ("qwen2.feed_forward_length".into(), u("intermediate_size")?),
        (
            "qwen2.attention.head_count".into(),
            u("num_attention_heads")?,
        ),
        (
            "qwen2.attention.head_count_kv".into(),
            u("num_key_value_heads")?,
        ),
        (
            "qwen2.attention.layer_norm_rms_epsilon".into(),
            GgufValue::F32(1e-6),
        ),
        ("qwen2.rope.freq_base".into(), GgufValue::F32(10_000.0)),
    ]);
    let n_tokens = tok
        .metadata()
        .get_str_array("tokenizer.ggml.tokens")?
        .map_or(0, <[String]>::len);
    let weights = SafetensorsSource::open(&fixtures.join("tiny/qwen2"))?;
    let mut tensors = Vec::new();
    for hf in weights.tensor_names() {
        let name = model::load::gguf_name(&hf)
            .ok_or_else(|| anyhow::anyhow!("no GGUF name for `{hf}`"))?;
        let (mut values, mut shape) = weights.read_f32(&hf)?;
        // The tokenizer fixture lists one token more than the tiny model's 330 rows: the
        // table gets a zero row for it (the head is tied to it), so the two agree.
        if name == "token_embd.weight" && shape[0] < n_tokens {
            values.resize(n_tokens * shape[1], 0.0);
            shape[0] = n_tokens;
        }
        tensors.push((name, shape, values));
    }

    let mut out = Vec::new();
    out.extend_from_slice(b"GGUF");
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    out.extend_from_slice(&(meta.len() as u64).to_le_bytes());
    for (k, v) in &meta {
        string(&mut out, k);
        value(&mut out, v);
    }
    let mut offset = 0usize;
    for (name, shape, values) in &tensors {
        string(&mut out, name);
        out.extend_from_slice(&(shape.len() as u32).to_le_bytes());
        // GGUF lists dimensions innermost first.
        for d in shape.iter().rev() {
            out.extend_from_slice(&(*d as u64).to_le_bytes());
        }
        out.extend_from_slice(&0u32.to_le_bytes()); // F32
        out.extend_from_slice(&(offset as u64).to_le_bytes());
        offset += (values.len() * 4).next_multiple_of(ALIGN);
    }
    out.resize(out.len().next_multiple_of(ALIGN), 0);
    for (_, _, values) in &tensors {
        let start = out.len();
        out.extend(values.iter().flat_map(|x| x.to_le_bytes()));
        out.resize(start + (out.len() - start).next_multiple_of(ALIGN), 0);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use formats::Folder;
    use model::{LoadOptions, load_folder};

    use crate::targets::Roots;

    #[test]
    fn the_written_gguf_loads_as_the_tiny_model() {
        let roots = Roots::default();
        let bytes = super::tiny_model_gguf(&roots.fixtures).unwrap();
        let mut folder = Folder::memory("seed");
        folder.insert("tiny-model.gguf", bytes).unwrap();
        let device = burn::tensor::Device::flex();
        let gguf = load_folder(&folder, &device, LoadOptions::default()).unwrap();
        let hf = model::load_model(
            &roots.fixtures.join("tiny/qwen2"),
            &device,
            LoadOptions::default(),
        )
        .unwrap();
        assert_eq!(gguf.model.config.num_hidden_layers, 2);
        assert_eq!(gguf.model.config.hidden_size, hf.model.config.hidden_size);
        assert_eq!(
            gguf.model.model.vocab_size(),
            hf.model.model.vocab_size() + 1
        );
        let tok = gguf.tokenizer.expect("the GGUF carries its tokenizer");
        assert!(!tok.encode("hello there").unwrap().is_empty());
    }
}
