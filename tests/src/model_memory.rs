//! Models built from files held in memory (the browser's path) equal those read from disk,
//! and the asynchronous scoring the browser uses equals the blocking one.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use formats::Folder;
use model::load::{LoadOptions, load_folder};
use model::load_model;
use model::score::{continuation_logprobs, continuation_logprobs_async};

use crate::{cpu, fixture, full_logits};

/// Polls a future to completion on this thread (the CPU backend's reads are ready at once).
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

fn memory_folder(dir: &str, names: &[&str]) -> Folder {
    let mut folder = Folder::memory("picked files");
    for name in names {
        let bytes = std::fs::read(fixture(dir).join(name)).unwrap();
        folder.insert(name, bytes).unwrap();
    }
    folder
}

#[test]
fn hf_model_from_memory_equals_disk_and_async_scores_equal_blocking() {
    let files = ["config.json", "model.safetensors", "tokenizer.json"];
    let memory = load_folder(
        &memory_folder("tiny/qwen2", &files),
        &cpu(),
        LoadOptions::default(),
    )
    .unwrap();
    let disk = load_model(
        &fixture("tiny/qwen2"),
        &cpu(),
        model::load::LoadOptions::default(),
    )
    .unwrap();
    let row = [1u32, 5, 9, 30, 2];
    assert_eq!(
        full_logits(&memory.model, &row),
        full_logits(&disk.model, &row)
    );
    let (mt, dt) = (memory.tokenizer.unwrap(), disk.tokenizer.unwrap());
    assert_eq!(
        mt.encode("hello there").unwrap(),
        dt.encode("hello there").unwrap()
    );
    assert_eq!(mt.stop_ids, dt.stop_ids);

    let prompts = vec![vec![3u32, 4, 5, 6], vec![7u32, 8]];
    let candidates = vec![vec![10u32, 11], vec![12u32], vec![13u32, 14, 15]];
    let blocking = continuation_logprobs(&disk.model, &prompts, &candidates, 0).unwrap();
    let r#async = block_on(continuation_logprobs_async(
        &disk.model,
        &prompts,
        &candidates,
        0,
    ))
    .unwrap();
    assert_eq!(blocking, r#async);
    assert_eq!(blocking.len(), 2);
    assert_eq!(blocking[0].len(), 3);
}

#[test]
fn missing_and_broken_memory_files_are_named() {
    let err = |folder: Folder| match load_folder(&folder, &cpu(), LoadOptions::default()) {
        Ok(_) => panic!("loaded, expected an error"),
        Err(e) => e.to_string(),
    };
    let msg = err(memory_folder(
        "tiny/qwen2",
        &["config.json", "tokenizer.json"],
    ));
    assert!(msg.contains("picked files/model.safetensors"), "{msg}");
    let msg = err(memory_folder("tiny/qwen2", &["model.safetensors"]));
    assert!(msg.contains("picked files/config.json"), "{msg}");

    let mut folder = memory_folder("tiny/qwen2", &["config.json", "tokenizer.json"]);
    let bytes = std::fs::read(fixture("tiny/qwen2/model.safetensors")).unwrap();
    folder
        .insert("model.safetensors", bytes[..bytes.len() / 3].to_vec())
        .unwrap();
    let msg = err(folder);
    assert!(msg.contains("model.safetensors"), "{msg}");

    let msg = err(memory_folder(
        "tiny/qwen2-vocab-mismatch",
        &["config.json", "model.safetensors", "tokenizer.json"],
    ));
    assert!(msg.contains("tokenizer.json"), "{msg}");
}
