//! The model's thread: every request's tokens are computed here. Generation requests join
//! the one decoding batch at the next step, whichever model they name (the base or an
//! adapter), up to `max_batch` sequences, and leave it when they end or their client goes
//! (continuous batching, `model::LiveBatch`). Classification requests run between steps.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, TryRecvError};

use classify::{Classification, LoadedProbe, Pipeline, Scorer, blocking};
use data::Dataset;
use formats::tokenizer::TextTokenizer;
use model::generate::{Sampling, pick};
use model::{CausalLm, LiveBatch, RowAdapters};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::{mpsc, oneshot};

/// How one sequence is decoded.
#[derive(Debug, Clone)]
pub struct Params {
    pub max_tokens: usize,
    pub sampling: Sampling,
    pub seed: u64,
    /// Texts that end the answer (not included in it).
    pub stop: Vec<String>,
}

/// What a generation request hears back, in order: text as it comes, then the end.
#[derive(Debug)]
pub enum Event {
    Delta(String),
    Done {
        finish_reason: &'static str,
        completion_tokens: usize,
    },
    Error(String),
}

pub struct GenJob {
    /// Index into the served models (0 is the base).
    pub model: usize,
    pub prompt: Vec<u32>,
    pub params: Params,
    pub events: mpsc::UnboundedSender<Event>,
}

pub struct ClassifyJob {
    pub task: Dataset,
    pub texts: Vec<String>,
    pub question: Option<String>,
    pub reply: oneshot::Sender<Result<Vec<Classification>, String>>,
}

pub enum Job {
    Generate(GenJob),
    Classify(ClassifyJob),
}

pub struct Engine {
    /// The served models: the base, then one copy per adapter (sharing the base weights).
    pub models: Vec<CausalLm>,
    pub tokenizer: TextTokenizer,
    pub max_batch: usize,
    /// `/v1/classify`'s pipeline (the base model).
    pub pipeline: Pipeline,
    pub probes: ShippedProbes,
}

struct Sequence {
    job: GenJob,
    rng: StdRng,
    out: Vec<u32>,
    /// Bytes of the answer's text already sent.
    sent: usize,
    ended: bool,
}

struct Group {
    batch: LiveBatch,
    seqs: Vec<Sequence>,
}

impl Engine {
    /// Serves jobs until every sender is gone and nothing is left decoding.
    pub fn run(mut self, jobs: Receiver<Job>) {
        let mut group = Group {
            batch: LiveBatch::new(&self.models[0]),
            seqs: Vec::new(),
        };
        let mut open = true;
        loop {
            let live = group.seqs.len();
            if live == 0 && !open {
                return;
            }
            let mut joining: Vec<GenJob> = Vec::new();
            // Idle: wait for work. Busy: take what has come, up to the batch limit.
            if live == 0 {
                match jobs.recv() {
                    Ok(job) => self.take(job, &mut joining),
                    Err(_) => return,
                }
            }
            while open && live + joining.len() < self.max_batch {
                match jobs.try_recv() {
                    Ok(job) => self.take(job, &mut joining),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => open = false,
                }
            }
            for job in joining {
                self.join(&mut group, job);
            }
            if !group.seqs.is_empty() {
                self.step(&mut group);
            }
        }
    }

    /// A classification runs at once; a generation waits for the next join.
    fn take(&mut self, job: Job, joining: &mut Vec<GenJob>) {
        match job {
            Job::Generate(g) => joining.push(g),
            Job::Classify(c) => {
                let result = catch_unwind(AssertUnwindSafe(|| self.classify(&c)))
                    .unwrap_or_else(|_| Err("the classifier failed on this input".into()));
                let _ = c.reply.send(result);
            }
        }
    }

    fn classify(&mut self, job: &ClassifyJob) -> Result<Vec<Classification>, String> {
        let items: Vec<(&str, Option<&str>)> = job
            .texts
            .iter()
            .map(|t| (t.as_str(), job.question.as_deref()))
            .collect();
        let probe = self.probes.probe(job.task);
        let scorer = probe.map_or(Scorer::Choice, Scorer::Probe);
        let mut all = Vec::with_capacity(items.len());
        // In the CLI's chunks, so the same texts give the same numbers as `classify`.
        for chunk in items.chunks(self.pipeline.batch_size.max(1)) {
            let out = blocking(self.pipeline.classify(scorer, job.task, chunk))
                .map_err(|e| format!("{e:#}"))?;
            all.extend(out);
        }
        Ok(all)
    }

    /// Prefills one request alone, with its own model, and adds it to the batch. One at a
    /// time: prompts prefilled together are padded to the longest, and IMHI posts differ by
    /// hundreds of tokens (8 joining at once spent most of a serving run in padded prefill).
    fn join(&mut self, group: &mut Group, job: GenJob) {
        let model = &self.models[job.model];
        let pad = self.tokenizer.pad_id;
        let prompt = std::slice::from_ref(&job.prompt);
        // The batch's cache changes only once the prefill has succeeded: a failure here is
        // this request's alone.
        let row = guarded(|| group.batch.join(model, prompt, pad)).and_then(|rows| {
            rows.into_iter()
                .next()
                .ok_or_else(|| "the prefill gave no logits".to_string())
        });
        let row = match row {
            Ok(row) => row,
            Err(why) => {
                let _ = job.events.send(Event::Error(why));
                return;
            }
        };
        let mut seq = Sequence {
            rng: StdRng::seed_from_u64(job.params.seed),
            job,
            out: Vec::new(),
            sent: 0,
            ended: false,
        };
        self.advance(&mut seq, &row);
        group.seqs.push(seq);
        self.prune(group);
    }

    /// One decoding step of every sequence. Rows of one model run that model; a batch mixing
    /// models runs the base once for all rows, each row adding its own adapter's low-rank
    /// terms (`model::RowAdapters`): nothing is merged, and each row gets its tokens alone.
    fn step(&mut self, group: &mut Group) {
        // A sequence in the batch has a token: one that ends at its first is pruned at once.
        let ids: Vec<u32> = group
            .seqs
            .iter()
            .map(|s| s.out.last().copied().unwrap_or(self.tokenizer.pad_id))
            .collect();
        let first = group.seqs[0].job.model;
        let rows = if group.seqs.iter().all(|s| s.job.model == first) {
            let model = &self.models[first];
            guarded(|| group.batch.step(model, &ids))
        } else {
            let base = &self.models[0];
            let decoders = self.models.iter().map(|m| &m.model).collect();
            let rows = group
                .seqs
                .iter()
                .map(|s| (s.job.model != 0).then_some(s.job.model))
                .collect();
            guarded(|| {
                let routes = RowAdapters::new(&base.model, decoders, rows)?;
                group.batch.step_routed(base, &ids, Some(&routes))
            })
        };
        let rows = match rows {
            Ok(rows) => rows,
            Err(why) => {
                fail_group(group, &why, &self.models[0]);
                return;
            }
        };
        for (seq, row) in group.seqs.iter_mut().zip(rows) {
            self.advance(seq, &row);
        }
        self.prune(group);
    }

    /// Picks the sequence's next token and tells its client what it adds.
    fn advance(&self, seq: &mut Sequence, logits: &[f32]) {
        let id = pick(logits, seq.job.params.sampling, &mut seq.rng);
        if self.tokenizer.stop_ids.contains(&id) {
            self.end(seq, "stop", None);
            return;
        }
        seq.out.push(id);
        let text = self.tokenizer.decode(&seq.out).unwrap_or_default();
        if let Some(cut) = seq
            .job
            .params
            .stop
            .iter()
            .filter_map(|s| text.find(s.as_str()))
            .min()
        {
            self.end(seq, "stop", Some(&text[..cut]));
            return;
        }
        if seq.out.len() >= seq.job.params.max_tokens {
            self.end(seq, "length", Some(&text));
            return;
        }
        // Hold back what could still become a stop text, and a character cut mid-way.
        let longest_stop = seq
            .job
            .params
            .stop
            .iter()
            .map(String::len)
            .max()
            .unwrap_or(0);
        let mut ready = text.trim_end_matches('\u{FFFD}').len();
        ready = ready.saturating_sub(longest_stop.saturating_sub(1));
        while !text.is_char_boundary(ready) {
            ready -= 1;
        }
        if ready > seq.sent {
            let _ = seq
                .job
                .events
                .send(Event::Delta(text[seq.sent..ready].to_string()));
            seq.sent = ready;
        }
    }

    /// Sends the rest of the answer (`text`, up to where it ends) and the end.
    fn end(&self, seq: &mut Sequence, finish_reason: &'static str, text: Option<&str>) {
        let text = match text {
            Some(t) => t.to_string(),
            None => self.tokenizer.decode(&seq.out).unwrap_or_default(),
        };
        if text.len() > seq.sent && text.is_char_boundary(seq.sent) {
            let _ = seq
                .job
                .events
                .send(Event::Delta(text[seq.sent..].to_string()));
        }
        let _ = seq.job.events.send(Event::Done {
            finish_reason,
            completion_tokens: seq.out.len(),
        });
        seq.ended = true;
    }

    /// Sequences that ended, or whose client is gone, leave the batch.
    fn prune(&self, group: &mut Group) {
        for s in group
            .seqs
            .iter()
            .filter(|s| !s.ended && s.job.events.is_closed())
        {
            eprintln!(
                "generation stopped: the client left after {} of at most {} tokens; its slot is free",
                s.out.len(),
                s.job.params.max_tokens
            );
        }
        let keep: Vec<bool> = group
            .seqs
            .iter()
            .map(|s| !s.ended && !s.job.events.is_closed())
            .collect();
        if keep.iter().all(|&k| k) {
            return;
        }
        group.batch.retain(&keep);
        let mut k = keep.iter();
        group.seqs.retain(|_| *k.next().unwrap_or(&false));
    }
}

/// Every sequence of a failed batch gets the error; the batch starts afresh.
fn fail_group(group: &mut Group, why: &str, model: &CausalLm) {
    for s in group.seqs.drain(..) {
        let _ = s.job.events.send(Event::Error(why.to_string()));
    }
    group.batch = LiveBatch::new(model);
}

/// Runs a model call; its error, or a panic, becomes the message its requests get.
fn guarded<T>(f: impl FnOnce() -> Result<T, model::ModelError>) -> Result<T, String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the model failed on this batch".into()),
    }
}

/// The trained classifier of each task, loaded on first use; `None` where no shipped one
/// fits the model.
pub struct ShippedProbes {
    pub load: Box<dyn FnMut(Dataset) -> Option<LoadedProbe> + Send>,
    pub loaded: HashMap<Dataset, Option<LoadedProbe>>,
}

impl ShippedProbes {
    pub fn probe(&mut self, task: Dataset) -> Option<&LoadedProbe> {
        if !self.loaded.contains_key(&task) {
            let p = (self.load)(task);
            self.loaded.insert(task, p);
        }
        self.loaded.get(&task).and_then(Option::as_ref)
    }
}
