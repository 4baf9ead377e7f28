//! The training machinery against its references: the stage-2 head's loss and gradients
//! against PyTorch + PEFT and against finite differences, AdamW + joint clipping against
//! `torch.optim.AdamW`, an adapter saved here loading in PEFT (the fixture script checks
//! it), and clear errors for bad checkpoints.

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, TensorData};
use model::decoder::TokenBatch;
use model::heads::classifier::{SequenceClassifier, load_head};
use model::load_model;
use model::lora::LoraConfig;
use model::lora::peft_io::{attach_new, load_adapter, save_adapter};
use serde_json::Value;
use train::classifier::cross_entropy;
use train::optim::{AdamW, Grads, ParamMut, Trainable, accumulate, clip_global_norm};
use train::sft::{RunOptions, SftConfig, SftExample, train_sft};

use crate::{cpu, disk, fixture, max_abs_diff, scratch};

fn json(rel: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(rel)).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// The fixture's classifier: tiny Qwen2 + PEFT adapter (q, v) + the PyTorch head.
fn head_model(device: &Device) -> SequenceClassifier {
    let mut lm = load_model(
        &fixture("tiny/qwen2"),
        device,
        model::load::LoadOptions::default(),
    )
    .unwrap()
    .model
    .set_require_grad(false);
    load_adapter(&mut lm, &disk(&fixture("lora/head-adapter"))).unwrap();
    let (head, _) =
        load_head(&disk(&fixture("lora/head")), lm.model.hidden_size(), device).unwrap();
    SequenceClassifier {
        lm,
        head,
        pool_include_padding: false,
    }
}

fn head_loss(model: &SequenceClassifier, r: &Value) -> Tensor<1> {
    let rows: Vec<Vec<u32>> = r["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| floats(row).iter().map(|&v| v as u32).collect())
        .collect();
    let labels: Vec<usize> = r["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let (ids, valid) = model.batch(&rows, 0, 16);
    let logits = model
        .forward(TokenBatch {
            ids: &ids,
            valid: &valid,
        })
        .unwrap();
    cross_entropy(logits, &labels)
}

#[test]
fn head_and_lora_gradients_match_pytorch() {
    let r = json("lora/head.json");
    let device = cpu().autodiff();
    let mut model = head_model(&device);
    let loss = head_loss(&model, &r);
    let value = model::io::values(loss.clone().inner()).unwrap()[0] as f64;
    let want = r["loss"].as_f64().unwrap();
    assert!(
        (value - want).abs() < 1e-5,
        "loss {value} vs PyTorch {want}"
    );
    let mut grads = Grads::new();
    accumulate(&mut grads, &mut model, &loss.backward(), 1.0);
    let expected = r["grads"].as_object().unwrap();
    assert_eq!(
        grads.len(),
        expected.len(),
        "LoRA factors and the 4 head tensors"
    );
    assert_eq!(
        expected.keys().filter(|k| k.starts_with("head.")).count(),
        4
    );
    for (name, g) in grads {
        let diff = max_abs_diff(&model::io::values(g).unwrap(), &floats(&expected[&name]));
        assert!(diff < 1e-4, "{name}: max |Δgrad| {diff}");
    }
}

#[test]
fn head_gradients_pass_a_finite_difference_check() {
    let r = json("lora/head.json");
    let mut tracked = head_model(&cpu().autodiff());
    let loss = head_loss(&tracked, &r);
    let mut grads = Grads::new();
    accumulate(&mut grads, &mut tracked, &loss.backward(), 1.0);
    let mut plain = head_model(&cpu());
    let base = plain.trainable_tensors().unwrap();
    let loss_at = |model: &mut SequenceClassifier, name: &str, i: usize, delta: f32| -> f64 {
        let mut moved = base.clone();
        let t = moved.iter_mut().find(|t| t.0 == name).unwrap();
        t.2[i] += delta;
        model.load_trainable(&moved, "test").unwrap();
        model::io::values(head_loss(model, &r)).unwrap()[0] as f64
    };
    let mut checked = 0;
    for (name, g) in &grads {
        let g = model::io::values(g.clone()).unwrap();
        // The coordinate with the largest gradient: its difference quotient rises well
        // above f32 rounding.
        let (i, &want) = g
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .unwrap();
        if want.abs() < 1e-3 {
            continue;
        }
        let eps = 1e-2;
        let numeric = (loss_at(&mut plain, name, i, eps) - loss_at(&mut plain, name, i, -eps))
            / (2.0 * eps as f64);
        let rel = (numeric - want as f64).abs() / (want.abs() as f64);
        assert!(
            rel < 3e-2,
            "{name}[{i}]: autodiff {want} vs finite difference {numeric}"
        );
        checked += 1;
    }
    assert!(checked >= 6, "only {checked} tensors had a usable gradient");
}

/// Two free tensors, to drive the optimizer alone.
#[derive(Module, Debug)]
struct Pair {
    a: Param<Tensor<2>>,
    b: Param<Tensor<1>>,
}

impl Trainable for Pair {
    fn trainable(&mut self) -> Vec<(String, ParamMut<'_>)> {
        vec![
            ("a".into(), ParamMut::Matrix(&mut self.a)),
            ("b".into(), ParamMut::Vector(&mut self.b)),
        ]
    }
}

#[test]
fn adamw_with_joint_clipping_matches_torch() {
    let r = json("lora/adamw.json");
    let device = cpu();
    let init: Vec<Vec<f32>> = r["initial"]
        .as_array()
        .unwrap()
        .iter()
        .map(floats)
        .collect();
    let mut pair = Pair {
        a: Param::from_tensor(Tensor::from_data(
            TensorData::new(init[0].clone(), [3, 4]),
            &device,
        )),
        b: Param::from_tensor(Tensor::from_data(
            TensorData::new(init[1].clone(), [5]),
            &device,
        )),
    };
    let mut optim = AdamW::new(r["weight_decay"].as_f64().unwrap());
    let lr = r["lr"].as_f64().unwrap();
    for step in r["steps"].as_array().unwrap() {
        let g: Vec<Vec<f32>> = step["grads"]
            .as_array()
            .unwrap()
            .iter()
            .map(floats)
            .collect();
        let mut grads = Grads::new();
        for (name, values) in ["a", "b"].iter().zip(g) {
            let n = values.len();
            grads.insert(
                name.to_string(),
                Tensor::from_data(TensorData::new(values, [n]), &device),
            );
        }
        let norm = clip_global_norm(&mut grads, r["max_grad_norm"].as_f64()).unwrap();
        let want = step["norm"].as_f64().unwrap();
        assert!((norm - want).abs() < 1e-5 * want, "norm {norm} vs {want}");
        optim.step(&mut pair, &grads, lr);
    }
    let final_: Vec<Vec<f32>> = r["final"].as_array().unwrap().iter().map(floats).collect();
    let got = pair.trainable_tensors().unwrap();
    for (t, want) in got.iter().zip(&final_) {
        let diff = max_abs_diff(&t.2, want);
        assert!(diff < 1e-6, "{}: max |Δ| {diff} after 3 updates", t.0);
    }
    // The moments round-trip through a checkpoint's tensors.
    let mut again = AdamW::new(0.1);
    again
        .load_state(
            &optim.state_tensors().unwrap(),
            optim.steps,
            &mut pair,
            "test",
        )
        .unwrap();
    assert_eq!(
        again.state_tensors().unwrap(),
        optim.state_tensors().unwrap()
    );
}

/// The adapter `saved-here/` is what this runtime writes for a fixed LoRA on the tiny Llama;
/// `gen_lora_fixtures.py` loads it in PEFT and records that the logits agree. Run with
/// MENTALQLM_BLESS=1 to rewrite it after a format change, then rerun the script.
#[test]
fn adapter_saved_here_is_current_and_loads_in_peft() {
    let device = cpu();
    let mut lm = load_model(
        &fixture("tiny/llama"),
        &device,
        model::load::LoadOptions::default(),
    )
    .unwrap()
    .model;
    let config = LoraConfig::new(2, 6.0, 0.0, &["q_proj", "v_proj", "down_proj"]);
    attach_new(&mut lm, &config, 0, &device);
    let mut tensors = lm.trainable_tensors().unwrap();
    for (k, t) in tensors.iter_mut().enumerate() {
        for (i, v) in t.2.iter_mut().enumerate() {
            *v = (0.37 * i as f32 + k as f32).sin() * 0.2;
        }
    }
    lm.load_trainable(&tensors, "test").unwrap();
    let dir = scratch("saved-here");
    save_adapter(&mut lm, &config, &dir).unwrap();
    let ids: Vec<u32> = (0..12).map(|i| (i * 37 + 5) % 200).collect();
    let logits = crate::full_logits(&lm, &ids);
    let committed = fixture("lora/saved-here");
    if std::env::var("MENTALQLM_BLESS").is_ok() {
        std::fs::create_dir_all(&committed).unwrap();
        for f in ["adapter_model.safetensors", "adapter_config.json"] {
            std::fs::copy(dir.join(f), committed.join(f)).unwrap();
        }
        let record = serde_json::json!({ "ids": ids, "logits": logits.chunks(logits.len() / ids.len()).collect::<Vec<_>>() });
        std::fs::write(committed.join("logits.json"), record.to_string()).unwrap();
    }
    for f in ["adapter_model.safetensors", "adapter_config.json"] {
        assert_eq!(
            std::fs::read(dir.join(f)).unwrap(),
            std::fs::read(committed.join(f)).unwrap(),
            "{f} differs from tests/fixtures/lora/saved-here: the format changed; rerun with MENTALQLM_BLESS=1 and gen_lora_fixtures.py"
        );
    }
    let record = json("lora/saved-here/logits.json");
    let want: Vec<f32> = record["logits"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(floats)
        .collect();
    // Logits up to 6.6: 1e-4 leaves room for the order of f32 sums in the CPU ops (1.0e-5
    // after the inference ops of 2026-11-30), as the PEFT check below allows.
    let diff = max_abs_diff(&logits, &want);
    assert!(
        diff < 1e-4,
        "logits differ from the committed ones by {diff}"
    );
    let check = json("lora/saved-here/peft_check.json");
    assert!(
        check["max_abs_diff"].as_f64().unwrap() < 1e-4,
        "PEFT's logits for the saved adapter: {check}"
    );
}

#[test]
fn bad_checkpoints_get_clear_errors() {
    let _rng = crate::rng_lock(); // updates reseed the shared device stream
    let device = cpu().autodiff();
    let fresh = || {
        device.seed(1);
        let mut lm = load_model(
            &fixture("tiny/qwen2"),
            &device,
            model::load::LoadOptions::default(),
        )
        .unwrap()
        .model
        .set_require_grad(false);
        attach_new(
            &mut lm,
            &LoraConfig::new(2, 4.0, 0.0, &["q_proj"]),
            1,
            &device,
        );
        lm
    };
    let examples: Vec<SftExample> = (0..6)
        .map(|i| SftExample::new(&[1, 10 + i, 2, 1], &[40 + i, 2], 32).unwrap())
        .collect();
    let config = SftConfig {
        lr: 1e-3,
        weight_decay: 0.0,
        epochs: 1,
        batch_size: 2,
        micro_batch_size: 2,
        warmup_steps: 0,
        max_grad_norm: Some(1.0),
        seed: 0,
        pad_id: 0,
        eval_every: 0,
        max_steps: None,
        label_weight: 1.0,
    };
    let out = scratch("bad-checkpoints");
    let run = |config: &SftConfig, resume: bool| {
        let options = RunOptions {
            out: Some(out.clone()),
            save_every: 1,
            keep: 1,
            resume,
            stop_after: None,
        };
        train_sft(fresh(), &examples, &[], config, &options, |_| {})
            .err()
            .map(|e| e.to_string())
    };
    let msg = run(&config, true).expect("nothing to resume");
    assert!(msg.contains("no checkpoint"), "{msg}");
    assert_eq!(run(&config, false), None);
    let other = SftConfig {
        lr: 2e-3,
        ..config.clone()
    };
    let msg = run(&other, true).expect("other settings");
    assert!(msg.contains("lr") && msg.contains("state.json"), "{msg}");
    // Other data is refused too.
    let options = RunOptions {
        out: Some(out.clone()),
        save_every: 1,
        keep: 1,
        resume: true,
        stop_after: None,
    };
    let msg = train_sft(fresh(), &examples[..4], &[], &config, &options, |_| {})
        .err()
        .unwrap()
        .to_string();
    assert!(msg.contains("train"), "{msg}");
    // A truncated tensor file names itself.
    let (_, dir) = train::checkpoint::list(&out).unwrap().pop().unwrap();
    let file = dir.join("trainable.safetensors");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let msg = run(&config, true).expect("corrupt");
    assert!(msg.contains("trainable.safetensors"), "{msg}");
}
