//! Stage 2 on a tiny synthetic task: the LoRA (q/v) and the dense head learn to tell three
//! token vocabularies apart, on the CPU backend, in seconds.

use burn::module::Module;
use model::heads::classifier::{
    ClassifierHead, HeadConfig, SequenceClassifier, load_head, save_head,
};
use model::load_model;
use model::lora::LoraConfig;
use model::lora::peft_io::attach_new;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use train::classifier::{
    ClassifierTrainConfig, Example, Inputs, RunOptions, evaluate, oversample, train_classifier,
};
use train::prefix::{PrefixSpec, build};
use train::trainer::Event;

use crate::{cpu, disk, fixture, scratch};

/// Class c draws its tokens from its own range of ids.
fn synthetic(n: usize, seed: u64) -> Vec<Example> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let class = i % 3;
            let len = rng.random_range(4..10);
            let ids = (0..len)
                .map(|_| 20 + 90 * class as u32 + rng.random_range(0..60))
                .collect();
            (ids, class)
        })
        .collect()
}

fn weighted_f1(t: &[usize], p: &[usize]) -> f64 {
    data::classification_metrics(t, p, None)
        .map(|m| m.weighted_f1)
        .unwrap_or(0.0)
}

#[test]
fn oversampling_balances_classes() {
    let labels = [0, 0, 0, 0, 1, 2, 2];
    let idx = oversample(&labels, 3, 7);
    let mut counts = [0; 3];
    for &i in &idx {
        counts[labels[i]] += 1;
    }
    assert_eq!(counts, [4, 4, 4]);
    assert_eq!(idx, oversample(&labels, 3, 7), "seeded");
}

#[test]
fn stage2_learns_a_synthetic_task() {
    let _rng = crate::rng_lock();
    let device = cpu().autodiff();
    let lm = load_model(
        &fixture("tiny/qwen2"),
        &device,
        model::load::LoadOptions::default(),
    )
    .unwrap()
    .model
    .set_require_grad(false);
    let mut lm = lm;
    let lora = LoraConfig::new(4, 8.0, 0.2, &["q_proj", "v_proj"]);
    assert_eq!(
        attach_new(&mut lm, &lora, 42, &device),
        4,
        "q and v of two layers"
    );
    let hidden = lm.model.hidden_size();
    let model = SequenceClassifier {
        lm,
        head: ClassifierHead::init(hidden, 3, 42, &device),
        pool_include_padding: false,
    };
    let (train, val) = (synthetic(96, 1), synthetic(30, 2));
    let config = ClassifierTrainConfig {
        lr: 5e-3,
        weight_decay: 1e-5,
        epochs: 12,
        batch_size: 16,
        seed: 0,
        eval_every: 6,
        plateau_factor: 0.5,
        plateau_patience: 6,
        oversample: true,
        max_length: 12,
        pad_id: 0,
        classes: 3,
    };
    let before = evaluate(&model.valid(), &val, &config).unwrap().0;
    let mut losses = Vec::new();
    let mut evals = 0;
    let run = RunOptions::default();
    let trained = train_classifier(
        model,
        &train,
        &val,
        &config,
        Inputs::Tokens,
        &run,
        &weighted_f1,
        |e| match e {
            Event::Step { loss, .. } => losses.push(*loss),
            Event::Eval { .. } => evals += 1,
            Event::Checkpoint { .. } => panic!("no output folder, no checkpoint"),
        },
    )
    .unwrap();
    assert!(trained.finished);
    let (after, preds, probs) = evaluate(&trained.best, &val, &config).unwrap();
    let labels: Vec<usize> = val.iter().map(|e| e.1).collect();
    let f1 = weighted_f1(&labels, &preds);
    assert!(after < before, "validation loss {before} → {after}");
    assert!(
        losses.last().unwrap() < losses.first().unwrap(),
        "{losses:?}"
    );
    assert!(
        f1 > 0.8 && trained.best_weighted_f1 > 0.8,
        "weighted F1 {f1} (chance is about 0.33)"
    );
    assert!(evals >= 4);
    assert!(
        probs
            .iter()
            .all(|p| (p.iter().sum::<f64>() - 1.0).abs() < 1e-5)
    );

    // The head saves and reloads to the same predictions.
    let dir = scratch("head");
    let cfg = HeadConfig {
        dataset: "synthetic".into(),
        labels: vec!["a".into(), "b".into(), "c".into()],
        hidden_size: hidden,
        pool_include_padding: false,
        max_length: 12,
    };
    save_head(&trained.best.head, &cfg, &dir).unwrap();
    let (head, read) = load_head(&disk(&dir), hidden, &cpu()).unwrap();
    assert_eq!(read, cfg);
    let reloaded = SequenceClassifier {
        lm: trained.best.lm,
        head,
        pool_include_padding: false,
    };
    let (_, again, _) = evaluate(&reloaded, &val, &config).unwrap();
    assert_eq!(again, preds);
    assert!(
        load_head(&disk(&dir), hidden + 1, &cpu()).is_err(),
        "a head for another width is refused"
    );
}

#[test]
fn stage2_killed_and_resumed_equals_an_uninterrupted_run() {
    let _rng = crate::rng_lock();
    let device = cpu().autodiff();
    let fresh = || {
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
            &LoraConfig::new(4, 8.0, 0.2, &["q_proj", "v_proj"]),
            5,
            &device,
        );
        let hidden = lm.model.hidden_size();
        SequenceClassifier {
            lm,
            head: ClassifierHead::init(hidden, 3, 5, &device),
            pool_include_padding: true,
        }
    };
    let (train, val) = (synthetic(40, 3), synthetic(12, 4));
    let config = ClassifierTrainConfig {
        lr: 5e-3,
        weight_decay: 1e-5,
        epochs: 2,
        batch_size: 8,
        seed: 1,
        eval_every: 2,
        plateau_factor: 0.5,
        plateau_patience: 0,
        oversample: true,
        max_length: 12,
        pad_id: 0,
        classes: 3,
    };
    let go = |out: &std::path::Path, resume: bool, stop: Option<usize>| {
        let run = RunOptions {
            out: Some(out.to_path_buf()),
            save_every: 3,
            keep: 1,
            resume,
            stop_after: stop,
        };
        let mut events = Vec::new();
        let mut trained = train_classifier(
            fresh(),
            &train,
            &val,
            &config,
            Inputs::Tokens,
            &run,
            &weighted_f1,
            |e| match e {
                Event::Step { step, loss, lr, .. } => events.push((*step, *loss, *lr)),
                Event::Eval { step, val_loss, .. } => events.push((*step, *val_loss, -1.0)),
                Event::Checkpoint { .. } => {}
            },
        )
        .unwrap();
        let best = train::optim::Trainable::trainable_tensors(&mut trained.best).unwrap();
        (events, best, trained.best_weighted_f1, trained.finished)
    };
    let straight = scratch("stage2-straight");
    let (all, best, f1, done) = go(&straight, false, None);
    assert!(done);
    let killed = scratch("stage2-killed");
    let (first, _, _, done) = go(&killed, false, Some(7));
    assert!(!done);
    let (second, resumed_best, resumed_f1, done) = go(&killed, true, None);
    assert!(done);
    // The checkpoint was at 6: events after it are redone.
    let joined: Vec<(usize, f64, f64)> = first
        .iter()
        .filter(|e| e.0 <= 6)
        .chain(&second)
        .cloned()
        .collect();
    assert_eq!(joined.len(), all.len());
    for (a, b) in joined.iter().zip(&all) {
        assert_eq!((a.0, a.2), (b.0, b.2), "step and learning rate");
        assert!((a.1 - b.1).abs() < 1e-6, "step {}: {} vs {}", a.0, a.1, b.1);
    }
    assert_eq!(resumed_f1, f1);
    for (a, b) in resumed_best.iter().zip(&best) {
        assert!(crate::max_abs_diff(&a.2, &b.2) < 1e-6, "best {}", a.0);
    }
}

/// LoRA on the top layer only: training from the cached output of the frozen layer below
/// (f32) gives the same losses, validation and parameters as training through every layer,
/// for the same seed (dropout 0.2 included).
#[test]
fn training_over_the_cached_prefix_equals_training_through_every_layer() {
    let _rng = crate::rng_lock();
    let device = cpu().autodiff();
    let start = 1;
    let fresh = || {
        let mut lm = load_model(
            &fixture("tiny/qwen2"),
            &device,
            model::load::LoadOptions::default(),
        )
        .unwrap()
        .model
        .set_require_grad(false);
        let lora = LoraConfig::new(4, 8.0, 0.2, &["q_proj", "v_proj"]).with_layers(&[1]);
        assert_eq!(
            attach_new(&mut lm, &lora, 7, &device),
            2,
            "q and v of layer 1"
        );
        let hidden = lm.model.hidden_size();
        SequenceClassifier {
            lm,
            head: ClassifierHead::init(hidden, 3, 7, &device),
            pool_include_padding: false,
        }
    };
    let (train, val) = (synthetic(40, 3), synthetic(12, 4));
    let config = ClassifierTrainConfig {
        lr: 5e-3,
        weight_decay: 1e-5,
        epochs: 3,
        batch_size: 8,
        seed: 5,
        eval_every: 3,
        plateau_factor: 0.5,
        plateau_patience: 6,
        oversample: true,
        max_length: 12,
        pad_id: 0,
        classes: 3,
    };
    let plain = load_model(
        &fixture("tiny/qwen2"),
        &cpu(),
        model::load::LoadOptions::default(),
    )
    .unwrap()
    .model;
    let dir = scratch("prefix-cache");
    let spec = PrefixSpec {
        model_sha256: "tiny-qwen2".into(),
        depth: start,
        hidden_size: plain.model.hidden_size(),
        pad_id: 0,
        batch_size: 5,
        cache: dir.clone(),
        f32: true,
    };
    let ids = |set: &[Example]| set.iter().map(|e| e.0.clone()).collect::<Vec<_>>();
    let train_cache = build(&plain, &ids(&train), &spec, |_| {}).unwrap();
    let val_cache = build(&plain, &ids(&val), &spec, |_| {}).unwrap();
    assert_eq!((train_cache.len(), val_cache.len()), (40, 12));
    let go = |inputs: Inputs<'_>| {
        let mut events = Vec::new();
        let mut trained = train_classifier(
            fresh(),
            &train,
            &val,
            &config,
            inputs,
            &RunOptions::default(),
            &weighted_f1,
            |e| match e {
                Event::Step { loss, .. } => events.push(*loss),
                Event::Eval { val_loss, .. } => events.push(*val_loss),
                Event::Checkpoint { .. } => {}
            },
        )
        .unwrap();
        let params = train::optim::Trainable::trainable_tensors(&mut trained.best).unwrap();
        (events, params)
    };
    let (through, p_through) = go(Inputs::Tokens);
    let (cached, p_cached) = go(Inputs::Prefix {
        start,
        train: &train_cache,
        val: &val_cache,
    });
    assert_eq!(through.len(), cached.len());
    assert!(through.len() > 15, "{} events", through.len());
    for (i, (a, b)) in through.iter().zip(&cached).enumerate() {
        assert!((a - b).abs() < 1e-4, "event {i}: {a} vs {b}");
    }
    assert!(
        through.first() != through.last(),
        "the loss moved: the comparison is not vacuous"
    );
    assert_eq!(p_through.len(), p_cached.len());
    for (a, b) in p_through.iter().zip(&p_cached) {
        assert_eq!(a.0, b.0);
        assert!(crate::max_abs_diff(&a.2, &b.2) < 1e-4, "{}", a.0);
    }
    // A second build reads the same chunks back.
    let again = build(&plain, &ids(&train), &spec, |_| {}).unwrap();
    assert_eq!(again.row(3), train_cache.row(3));
    let _ = std::fs::remove_dir_all(dir);
}

/// One pass at the longest cut gives the features of every shorter cut: pooling a row's first
/// c tokens equals pooling the row cut to c, in a batch with rows of other lengths (left
/// padding), and a cut longer than the row pools all of it.
#[test]
fn pooled_features_of_a_cut_equal_those_of_the_row_cut_short() {
    use model::heads::probe::pooled_features;
    let lm = load_model(
        &fixture("tiny/qwen2"),
        &cpu(),
        model::load::LoadOptions::default(),
    )
    .unwrap()
    .model;
    let h = lm.model.hidden_size();
    let depths = [1, 2];
    let rows: Vec<Vec<u32>> = vec![
        (0..9).map(|i| 30 + 7 * i).collect(),
        vec![41, 5, 99],
        (0..6).map(|i| 200 - 11 * i).collect(),
    ];
    let cuts = [4, 100];
    let both = pooled_features(&lm, &rows, &depths, &cuts, 0).unwrap();
    assert_eq!(both[0].len(), cuts.len() * depths.len() * h);
    for (r, row) in rows.iter().enumerate() {
        for (c, &cut) in cuts.iter().enumerate() {
            let short = vec![row[..row.len().min(cut)].to_vec()];
            let alone = pooled_features(&lm, &short, &depths, &[usize::MAX], 0).unwrap();
            let block = &both[r][c * depths.len() * h..(c + 1) * depths.len() * h];
            let diff = crate::max_abs_diff(block, &alone[0]);
            assert!(diff < 1e-4, "row {r}, cut {cut}: {diff}");
        }
    }
    // The two cuts of the long row differ (the test can fail), and a cut of 0 is refused.
    assert!(crate::max_abs_diff(&both[0][..depths.len() * h], &both[0][depths.len() * h..]) > 1e-3);
    let err = pooled_features(&lm, &rows, &depths, &[0], 0).unwrap_err();
    assert!(err.to_string().contains("cuts"), "{err}");
    // So does the cached extraction, which a warm cache would otherwise answer with nothing.
    let spec = train::features::FeatureSpec {
        model_sha256: "0".repeat(64),
        depths: depths.to_vec(),
        cuts: vec![],
        hidden_size: h,
        pad_id: 0,
        batch_size: 2,
        cache: Some(scratch("features-no-cuts")),
    };
    let err = train::features::extract(&lm, &rows, &spec, |_| {}).unwrap_err();
    assert!(err.to_string().contains("cuts"), "{err}");
}
