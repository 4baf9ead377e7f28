//! Stage 1 on the tiny Qwen2: the answer-only loss equals PEFT's (loss and every LoRA
//! gradient), a synthetic instruction task is learned in seconds, gradient accumulation
//! does not change the update, and a run killed after a checkpoint and resumed equals an
//! uninterrupted one.

use burn::module::Module;
use burn::tensor::Device;
use model::heads::lm::CausalLm;
use model::load_model;
use model::lora::LoraConfig;
use model::lora::peft_io::{attach_new, load_adapter};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use train::optim::{AdamW, Grads, Trainable, accumulate};
use train::sft::{
    RunOptions, SftConfig, SftExample, answer_nll, answer_nll_weighted, epoch_batches, train_sft,
};
use train::trainer::{Event, Trainer};

use crate::{cpu, disk, fixture, max_abs_diff, scratch};

const YES: u32 = 300;
const NO: u32 = 301;

/// `<|im_start|> tokens <|im_end|> <|im_start|>` → `YES|NO <|im_end|>`: the answer says
/// which range the tokens came from.
fn synthetic(n: usize, seed: u64) -> Vec<SftExample> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let class = i % 2;
            let len = rng.random_range(3..9);
            let mut prompt = vec![1];
            prompt.extend((0..len).map(|_| 20 + 100 * class as u32 + rng.random_range(0..60)));
            prompt.extend([2, 1]);
            let answer = [if class == 0 { YES } else { NO }, 2];
            SftExample::new(&prompt, &answer, 64).unwrap()
        })
        .collect()
}

fn config(epochs: usize, micro: usize) -> SftConfig {
    SftConfig {
        lr: 1e-2,
        weight_decay: 0.0,
        epochs,
        batch_size: 8,
        micro_batch_size: micro,
        warmup_steps: 2,
        max_grad_norm: Some(1.0),
        seed: 3,
        pad_id: 0,
        eval_every: 4,
        max_steps: None,
        label_weight: 1.0,
    }
}

/// The tiny model with a fresh stage-1 LoRA, the same every call.
fn model(device: &Device, dropout: f64) -> CausalLm {
    device.seed(11);
    let mut lm = load_model(
        &fixture("tiny/qwen2"),
        device,
        model::load::LoadOptions::default(),
    )
    .unwrap()
    .model
    .set_require_grad(false);
    let lora = LoraConfig::new(8, 16.0, dropout, &["all"]);
    assert_eq!(attach_new(&mut lm, &lora, 11, device), 14);
    lm
}

/// Share of examples whose YES/NO logit at the answer position is the right one.
fn accuracy(lm: &CausalLm, examples: &[SftExample]) -> f64 {
    let mut right = 0;
    for e in examples {
        let prompt = &e.ids[..e.answer_start];
        let logits = crate::full_logits(lm, prompt);
        let vocab = logits.len() / prompt.len();
        let last = &logits[(prompt.len() - 1) * vocab..];
        let says_yes = last[YES as usize] > last[NO as usize];
        right += usize::from(says_yes == (e.ids[e.answer_start] == YES));
    }
    right as f64 / examples.len() as f64
}

#[test]
fn answer_loss_and_gradients_match_peft() {
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("lora/reference.json")).unwrap())
            .unwrap();
    let ids: Vec<u32> = r["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let from = r["loss_from"].as_u64().unwrap() as usize;
    let device = cpu().autodiff();
    for name in ["llama", "qwen2"] {
        let case = &r["cases"][name];
        let mut lm = load_model(
            &fixture(&format!("tiny/{name}")),
            &device,
            model::load::LoadOptions::default(),
        )
        .unwrap()
        .model
        .set_require_grad(false);
        load_adapter(&mut lm, &disk(&fixture(&format!("lora/{name}-adapter")))).unwrap();
        let example = SftExample::new(&ids[..from], &ids[from..], 512).unwrap();
        let (nll, n) = answer_nll(&lm, &[&example], 0).unwrap();
        assert_eq!(n, ids.len() - from);
        let loss = nll / n as f64;
        let value = model::io::values(loss.clone().inner()).unwrap()[0] as f64;
        let want = case["loss"].as_f64().unwrap();
        assert!(
            (value - want).abs() < 1e-4,
            "{name}: loss {value} vs PEFT {want}"
        );
        let mut grads = Grads::new();
        accumulate(&mut grads, &mut lm, &loss.backward(), 1.0);
        let expected = case["grads"].as_object().unwrap();
        assert_eq!(
            grads.len(),
            expected.len(),
            "{name}: one gradient per factor"
        );
        for (key, g) in grads {
            let got = model::io::values(g).unwrap();
            let want: Vec<f32> = expected[&key]
                .as_array()
                .unwrap_or_else(|| panic!("{name}: PEFT has no {key}"))
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            let diff = max_abs_diff(&got, &want);
            assert!(diff < 1e-4, "{name} {key}: max |Δgrad| {diff}");
        }
    }
}

#[test]
fn epoch_batches_are_seeded_permutations_bucketed_by_length() {
    let lens: Vec<usize> = (0..1000).map(|i| (i * 7919) % 300 + 1).collect();
    let batches = epoch_batches(&lens, 16, 5, 0);
    assert_eq!(batches.len(), 1000usize.div_ceil(16));
    let mut all: Vec<usize> = batches.concat();
    all.sort_unstable();
    assert_eq!(all, (0..1000).collect::<Vec<_>>(), "every example once");
    assert!(batches[..batches.len() - 1].iter().all(|b| b.len() == 16));
    assert_eq!(batches, epoch_batches(&lens, 16, 5, 0), "seeded");
    assert_ne!(
        batches,
        epoch_batches(&lens, 16, 5, 1),
        "each epoch its own order"
    );
    // Padding waste within batches is far below that of random batches.
    let waste = |bs: &[Vec<usize>]| -> usize {
        bs.iter()
            .map(|b| {
                let max = b.iter().map(|&i| lens[i]).max().unwrap();
                b.iter().map(|&i| max - lens[i]).sum::<usize>()
            })
            .sum()
    };
    let random: Vec<Vec<usize>> = (0..1000)
        .collect::<Vec<_>>()
        .chunks(16)
        .map(<[usize]>::to_vec)
        .collect();
    assert!(
        waste(&batches) * 5 < waste(&random),
        "{} vs {}",
        waste(&batches),
        waste(&random)
    );
}

#[test]
fn stage1_learns_a_synthetic_instruction_task() {
    let _rng = crate::rng_lock(); // updates reseed the shared device stream
    let device = cpu().autodiff();
    let lm = model(&device, 0.0);
    let (train, val) = (synthetic(96, 1), synthetic(40, 2));
    let before = accuracy(&lm.valid(), &val);
    let mut losses = Vec::new();
    let mut val_losses = Vec::new();
    let out = train_sft(
        lm,
        &train,
        &val,
        &config(6, 4),
        &RunOptions::default(),
        |e| match e {
            Event::Step { loss, .. } => losses.push(*loss),
            Event::Eval { val_loss, .. } => val_losses.push(*val_loss),
            Event::Checkpoint { .. } => panic!("no output folder, no checkpoint"),
        },
    )
    .unwrap();
    assert!(out.finished);
    assert_eq!(out.steps, 72);
    let after = accuracy(&out.model.valid(), &val);
    let head: f64 = losses[..6].iter().sum::<f64>() / 6.0;
    let tail: f64 = losses[losses.len() - 6..].iter().sum::<f64>() / 6.0;
    assert!(tail < head * 0.5, "training loss {head} → {tail}");
    assert!(val_losses.last() < val_losses.first(), "{val_losses:?}");
    assert!(after >= 0.9, "accuracy {before} → {after} (chance is 0.5)");
}

/// Two updates of a fresh model on `train` split into micro-batches of `micro`: the
/// (loss, gradient norm) of each and the trainable tensors after.
type TwoUpdates = (Vec<(f64, f64)>, Vec<model::io::Named>);

fn two_updates(
    device: &Device,
    train: &[SftExample],
    micro: usize,
    wd: f64,
    clip: Option<f64>,
) -> TwoUpdates {
    let mut trainer = Trainer {
        model: model(device, 0.0),
        optim: AdamW::new(wd),
        max_grad_norm: clip,
        device: device.clone(),
        seed: 0,
    };
    let rows: Vec<&SftExample> = train.iter().collect();
    let chunks: Vec<Vec<&SftExample>> = rows.chunks(micro).map(<[_]>::to_vec).collect();
    let total: usize = train.iter().map(SftExample::answer_tokens).sum();
    let mut updates = Vec::new();
    // The first update moves B off zero, so the second has a gradient for every factor.
    for step in 1..=2 {
        let u = trainer
            .update(step, chunks.len(), 1e-2, |m, i| {
                Ok(answer_nll(m, &chunks[i], 0)?.0 / total as f64)
            })
            .unwrap();
        updates.push((u.loss, u.grad_norm));
    }
    (updates, trainer.model.trainable_tensors().unwrap())
}

fn assert_same_updates(a: &TwoUpdates, b: &TwoUpdates, tol: f64, what: &str) {
    for ((l, g), (l0, g0)) in a.0.iter().zip(&b.0) {
        assert!(
            (l - l0).abs() < tol && (g - g0).abs() < tol * g0.max(1.0),
            "{what}: loss {l} vs {l0}, gradient norm {g} vs {g0}"
        );
    }
    for (x, y) in a.1.iter().zip(&b.1) {
        assert!(
            max_abs_diff(&x.2, &y.2) < tol as f32 * 10.0,
            "{what}: {} differs",
            x.0
        );
    }
}

#[test]
fn gradient_accumulation_gives_the_same_update() {
    let _rng = crate::rng_lock(); // updates reseed the shared device stream
    let device = cpu().autodiff();
    let train = synthetic(8, 4);
    let whole = two_updates(&device, &train, 8, 0.0, None);
    for micro in [2, 3] {
        let split = two_updates(&device, &train, micro, 0.0, None);
        assert_same_updates(&split, &whole, 1e-5, &format!("micro-batches of {micro}"));
    }
}

#[test]
fn killed_and_resumed_run_equals_an_uninterrupted_one() {
    let _rng = crate::rng_lock();
    let device = cpu().autodiff();
    let (train, val) = (synthetic(40, 5), synthetic(8, 6));
    // Dropout on, so the resumed run must also draw the same masks.
    let cfg = config(2, 3);
    let run = |out: &std::path::Path, resume: bool, stop: Option<usize>| {
        let mut losses = Vec::new();
        let options = RunOptions {
            out: Some(out.to_path_buf()),
            save_every: 3,
            keep: 2,
            resume,
            stop_after: stop,
        };
        let mut outcome = train_sft(model(&device, 0.1), &train, &val, &cfg, &options, |e| {
            if let Event::Step { step, loss, .. } = e {
                losses.push((*step, *loss));
            }
        })
        .unwrap();
        let tensors = outcome.model.trainable_tensors().unwrap();
        (losses, tensors, outcome.finished, outcome.seconds)
    };
    let straight = scratch("sft-straight");
    let (full, full_tensors, done, _) = run(&straight, false, None);
    assert!(done);
    assert_eq!(full.len(), 10);
    let steps: Vec<usize> = train::checkpoint::list(&straight)
        .unwrap()
        .iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(
        steps,
        vec![9, 10],
        "every 3 updates and the last, newest 2 kept"
    );

    let killed = scratch("sft-killed");
    let (first, _, done, _) = run(&killed, false, Some(7));
    assert!(!done);
    assert_eq!(first.len(), 7);
    // The run's time so far is in each checkpoint; the resumed run adds its own to it
    // (set to 1000 s here, so that the sum shows).
    let state = killed.join("checkpoints/step-00000006/state.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert!(json["run"]["seconds"].as_f64().unwrap() > 0.0, "{json}");
    json["run"]["seconds"] = 1000.0.into();
    std::fs::write(&state, json.to_string()).unwrap();
    // Update 7 happened after the last checkpoint (6): the resumed run redoes it.
    let clock = std::time::Instant::now();
    let (second, resumed_tensors, done, seconds) = run(&killed, true, None);
    let seconds = seconds.unwrap() - 1000.0;
    assert!(
        (0.0..=clock.elapsed().as_secs_f64()).contains(&seconds),
        "{seconds}"
    );
    assert!(done);
    assert_eq!(second.first().map(|s| s.0), Some(7));
    let joined: Vec<(usize, f64)> = first[..6].iter().chain(&second).cloned().collect();
    assert_eq!(joined.len(), full.len());
    for ((s, a), (t, b)) in joined.iter().zip(&full) {
        assert_eq!(s, t);
        assert!(
            (a - b).abs() < 1e-6,
            "step {s}: loss {a} vs uninterrupted {b}"
        );
    }
    for (a, b) in resumed_tensors.iter().zip(&full_tensors) {
        assert_eq!(a.0, b.0);
        assert!(
            max_abs_diff(&a.2, &b.2) < 1e-6,
            "{}: parameters differ",
            a.0
        );
    }
}

/// Training runs on wgpu too: two updates there equal the CPU backend's.
#[test]
fn updates_on_wgpu_equal_the_cpu_backend() {
    let Some(gpu) = crate::wgpu() else { return };
    let _rng = crate::rng_lock();
    let train = synthetic(6, 9);
    let on_cpu = two_updates(&cpu().autodiff(), &train, 3, 0.01, Some(1.0));
    let on_gpu = two_updates(&gpu.autodiff(), &train, 3, 0.01, Some(1.0));
    assert_same_updates(&on_gpu, &on_cpu, 1e-4, "wgpu against cpu");
}

/// LoRA on the top layer only: training over the cached output of the frozen layer below
/// (kept in f32) gives the same step and validation losses and the same adapter as training
/// through every layer, for the same seed, dropout included. A cache that does not match
/// the examples is refused.
#[test]
fn training_over_the_cached_prefix_equals_training_through_every_layer() {
    use train::prefix::{PrefixSpec, build};
    use train::sft::{SftInputs, train_sft_with};
    let _rng = crate::rng_lock();
    let device = cpu().autodiff();
    let start = 1;
    let fresh = || {
        device.seed(11);
        let mut lm = load_model(
            &fixture("tiny/qwen2"),
            &device,
            model::load::LoadOptions::default(),
        )
        .unwrap()
        .model
        .set_require_grad(false);
        let lora = LoraConfig::new(8, 16.0, 0.2, &["all"]).with_layers(&[1]);
        assert_eq!(attach_new(&mut lm, &lora, 11, &device), 7, "layer 1 only");
        lm
    };
    let (train, val) = (synthetic(40, 5), synthetic(12, 6));
    let plain = load_model(
        &fixture("tiny/qwen2"),
        &cpu(),
        model::load::LoadOptions::default(),
    )
    .unwrap()
    .model;
    let dir = scratch("sft-prefix");
    let spec = PrefixSpec {
        model_sha256: "tiny-qwen2".into(),
        depth: start,
        hidden_size: plain.model.hidden_size(),
        pad_id: 0,
        batch_size: 3,
        cache: dir.clone(),
        f32: true,
    };
    let ids = |set: &[SftExample]| set.iter().map(|e| e.ids.clone()).collect::<Vec<_>>();
    let train_cache = build(&plain, &ids(&train), &spec, |_| {}).unwrap();
    let val_cache = build(&plain, &ids(&val), &spec, |_| {}).unwrap();
    // A subset in another order (a pruned set) reads every row back and computes none.
    let subset: Vec<Vec<u32>> = ids(&train).into_iter().take(7).rev().collect();
    let mut last = None;
    let again = build(&plain, &subset, &spec, |p| last = Some(p)).unwrap();
    let last = last.unwrap();
    assert_eq!((last.rows_cached, last.tokens_computed), (7, 0));
    assert_eq!(again.row(0), train_cache.row(6));
    let cfg = config(2, 3);
    let go = |inputs: SftInputs<'_>| {
        let mut events = Vec::new();
        let mut out = train_sft_with(
            fresh(),
            &train,
            &val,
            &cfg,
            inputs,
            &RunOptions::default(),
            |e| match e {
                Event::Step { loss, .. } => events.push(*loss),
                Event::Eval { val_loss, .. } => events.push(*val_loss),
                Event::Checkpoint { .. } => {}
            },
        )
        .unwrap();
        (events, out.model.trainable_tensors().unwrap())
    };
    let (through, p_through) = go(SftInputs::Tokens);
    let (cached, p_cached) = go(SftInputs::Prefix {
        start,
        train: &train_cache,
        val: &val_cache,
    });
    assert!(through.len() > 10, "{} events", through.len());
    assert_eq!(through.len(), cached.len());
    for (i, (a, b)) in through.iter().zip(&cached).enumerate() {
        assert!((a - b).abs() < 1e-4, "event {i}: {a} vs {b}");
    }
    assert!(through.first() != through.last(), "the loss moved");
    assert_eq!(p_through.len(), 14, "A and B of 7 projections");
    for (a, b) in p_through.iter().zip(&p_cached) {
        assert_eq!(a.0, b.0);
        assert!(max_abs_diff(&a.2, &b.2) < 1e-4, "{}", a.0);
    }
    // The validation cache given for training: another row count, refused by name.
    let err = train_sft_with(
        fresh(),
        &train,
        &val,
        &cfg,
        SftInputs::Prefix {
            start,
            train: &val_cache,
            val: &val_cache,
        },
        &RunOptions::default(),
        |_| {},
    )
    .err()
    .expect("a cache of another set");
    assert!(
        err.to_string()
            .contains("training prefix cache holds 12 rows for 40"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// `max_steps` ends the run (and its schedule) early: the same budget for sets of any size.
#[test]
fn max_steps_caps_the_run_and_its_schedule() {
    let _rng = crate::rng_lock();
    let device = cpu().autodiff();
    let train = synthetic(96, 1);
    let cfg = SftConfig {
        max_steps: Some(3),
        warmup_steps: 0,
        ..config(2, 8)
    };
    assert_eq!(train::sft::total_steps(train.len(), &cfg), 3);
    assert_eq!(train::sft::total_steps(train.len(), &config(2, 8)), 24);
    let mut lrs = Vec::new();
    let out = train_sft(
        model(&device, 0.0),
        &train,
        &[],
        &cfg,
        &RunOptions::default(),
        |e| {
            if let Event::Step { lr, .. } = e {
                lrs.push(*lr);
            }
        },
    )
    .unwrap();
    assert!(out.finished);
    assert_eq!(out.steps, 3);
    assert_eq!(lrs.len(), 3);
    // The cosine decays over the 3 updates (over 24 it would barely have moved by the 3rd).
    assert!(lrs[0] > lrs[1] && lrs[1] > lrs[2], "{lrs:?}");
    assert!(lrs[2] < 0.5 * lrs[0], "{lrs:?}");
}

/// `label_weight` counts each label token's NLL that many times and leaves the others (and
/// the token count) alone: a label of the whole answer scales the sum, a label of the first
/// token adds (w - 1) times that token's NLL, and no label changes nothing.
#[test]
fn label_weight_scales_only_the_label_tokens() {
    let device = cpu();
    let lm = model(&device, 0.0);
    let prompt = [1, 25, 31, 47, 2, 1];
    let answer = [YES, 17, 19, 2];
    let sum = |e: &SftExample, w: f64| {
        let (nll, n) = answer_nll_weighted(&lm, &[e], 0, w).unwrap();
        (model::io::values(nll).unwrap()[0] as f64, n)
    };
    let plain = SftExample::new(&prompt, &answer, 64).unwrap();
    let (base, n) = sum(&plain, 1.0);
    assert_eq!(n, answer.len());
    assert_eq!(sum(&plain, 7.0), (base, n), "no label tokens: no change");
    let all = plain.clone().with_label_tokens(99);
    assert_eq!(all.label_end, all.ids.len(), "clamped to the example");
    let (scaled, m) = sum(&all, 3.0);
    assert_eq!(m, n);
    assert!(
        (scaled - 3.0 * base).abs() < 1e-4 * base,
        "{scaled} vs 3 x {base}"
    );
    // The first answer token's NLL alone: the same prefix predicts it.
    let first = SftExample::new(&prompt, &answer[..1], 64).unwrap();
    let (head, _) = sum(&first, 1.0);
    assert!(head > 0.0);
    let (weighted, _) = sum(&plain.clone().with_label_tokens(1), 5.0);
    let want = base + 4.0 * head;
    assert!(
        (weighted - want).abs() < 1e-4 * want,
        "{weighted} vs {want}"
    );
    // An example's label scale multiplies the weight: 5 × 0.4 = 2, one more count of it.
    let (scaled, _) = sum(
        &plain.clone().with_label_tokens(1).with_label_scale(0.4),
        5.0,
    );
    let want = base + head;
    assert!((scaled - want).abs() < 1e-4 * want, "{scaled} vs {want}");
    // The plain loss ignores both.
    let (nll, _) =
        answer_nll(&lm, &[&plain.with_label_tokens(1).with_label_scale(3.0)], 0).unwrap();
    let plain_sum = model::io::values(nll).unwrap()[0] as f64;
    assert!(
        (plain_sum - base).abs() < 1e-5 * base,
        "{plain_sum} vs {base}"
    );
}
