//! Generation for encoder-decoder models, as transformers' `generate` does it: greedy
//! decoding, or beam search (its vectorised 4.5x implementation, ported step for step, with
//! `length_penalty`, `early_stopping` true/false/"never" and its stopping heuristic), with
//! the logits processors MentalBART's and MentalT5's configs use: `min_length`,
//! `no_repeat_ngram_size`, `forced_bos_token_id` and `forced_eos_token_id`.
//!
//! Settings come from `generation_config.json` (else `config.json`, as transformers falls
//! back); a setting that asks for a strategy or processor this module lacks is refused by
//! name rather than ignored.

use serde_json::Value;

use super::{Seq2SeqLm, SpecialIds};
use crate::ModelError;
use crate::generate::argmax;

/// The most beams taken: each is a full decoder state.
pub const MAX_BEAMS: usize = 64;

/// transformers' default `max_length`.
const DEFAULT_MAX_LENGTH: usize = 20;

/// transformers' `early_stopping`: when beam search ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EarlyStopping {
    /// `false`: a heuristic stops once no running beam is likely to beat the finished ones.
    Heuristic,
    /// `true`: stop as soon as `num_beams` hypotheses are finished.
    Yes,
    /// `"never"`: stop only when no running beam can possibly beat them.
    Never,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GenerationSettings {
    /// The longest decoder sequence, the start token included (transformers' `max_length`).
    pub max_length: usize,
    pub min_length: usize,
    pub num_beams: usize,
    pub length_penalty: f32,
    pub early_stopping: EarlyStopping,
    pub no_repeat_ngram_size: usize,
    pub forced_bos_token_id: Option<u32>,
    pub forced_eos_token_id: Option<u32>,
    pub decoder_start: u32,
    pub eos: Vec<u32>,
    pub pad: u32,
}

/// Keys that select a strategy or processor this module does not implement, with what they
/// are, and whether a value is the default (allowed).
const UNSUPPORTED: [(&str, &str); 10] = [
    ("do_sample", "sampling"),
    ("num_beam_groups", "diverse (group) beam search"),
    ("diversity_penalty", "diverse (group) beam search"),
    ("penalty_alpha", "contrastive search"),
    ("constraints", "constrained beam search"),
    ("force_words_ids", "constrained beam search"),
    ("repetition_penalty", "a repetition penalty"),
    ("encoder_no_repeat_ngram_size", "encoder n-gram blocking"),
    ("bad_words_ids", "banned words"),
    (
        "exponential_decay_length_penalty",
        "a decaying length penalty",
    ),
];

/// Whether a key's value is transformers' default (off).
fn is_default(key: &str, value: &Value) -> bool {
    match key {
        "do_sample" => value.as_bool() == Some(false),
        "num_beam_groups" => value.as_u64() == Some(1),
        "repetition_penalty" => value.as_f64() == Some(1.0),
        "diversity_penalty" | "penalty_alpha" => value.as_f64() == Some(0.0),
        "encoder_no_repeat_ngram_size" => value.as_u64() == Some(0),
        _ => false,
    }
}

impl GenerationSettings {
    /// transformers' defaults for a model with these ids: greedy, `max_length` 20.
    pub fn defaults(ids: SpecialIds) -> Self {
        Self {
            max_length: DEFAULT_MAX_LENGTH,
            min_length: 0,
            num_beams: 1,
            length_penalty: 1.0,
            early_stopping: EarlyStopping::Heuristic,
            no_repeat_ngram_size: 0,
            forced_bos_token_id: None,
            forced_eos_token_id: None,
            decoder_start: ids.decoder_start,
            eos: vec![ids.eos],
            pad: ids.pad,
        }
    }

    /// The settings of `generation_config.json`, else those of `config.json`'s text.
    pub fn from_folder(
        folder: &formats::Folder,
        config_text: &str,
        ids: SpecialIds,
    ) -> Result<Self, ModelError> {
        let (text, file) = if folder.has("generation_config.json") {
            (
                folder.read_string("generation_config.json")?,
                folder.path("generation_config.json"),
            )
        } else {
            (config_text.to_string(), folder.path("config.json"))
        };
        let bad = |reason: String| ModelError::Config {
            path: file.clone(),
            reason,
        };
        let value: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        Self::from_json(&value, ids).map_err(bad)
    }

    /// Reads the generation keys of a JSON object; the error names the key.
    pub fn from_json(value: &Value, ids: SpecialIds) -> Result<Self, String> {
        let mut s = Self::defaults(ids);
        let Some(map) = value.as_object() else {
            return Err("expected a JSON object".into());
        };
        for (key, what) in UNSUPPORTED {
            if let Some(v) = map.get(key)
                && !v.is_null()
                && !is_default(key, v)
            {
                return Err(format!(
                    "`{key}: {v}` asks for {what}, which this runtime does not implement for \
                     encoder-decoder models (greedy and beam search are)"
                ));
            }
        }
        let uint = |key: &str| -> Result<Option<usize>, String> {
            match map.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_u64()
                    .map(|n| Some(n as usize))
                    .ok_or_else(|| format!("`{key}` must be a non-negative integer, found {v}")),
            }
        };
        let id = |key: &str| -> Result<Option<u32>, String> { Ok(uint(key)?.map(|n| n as u32)) };
        if let Some(n) = uint("max_length")? {
            s.max_length = n;
        }
        match uint("max_new_tokens")? {
            Some(n) => s.max_length = n + 1,
            // transformers reads an unchanged default of 20 as "20 new tokens" (its
            // `_prepare_generated_length`), after the decoder start token.
            None if s.max_length == DEFAULT_MAX_LENGTH => s.max_length += 1,
            None => {}
        }
        if let Some(n) = uint("min_length")? {
            s.min_length = n;
        }
        if let Some(n) = uint("num_beams")? {
            s.num_beams = n.max(1);
        }
        if let Some(n) = uint("no_repeat_ngram_size")? {
            s.no_repeat_ngram_size = n;
        }
        if let Some(v) = map.get("length_penalty").filter(|v| !v.is_null()) {
            s.length_penalty = v
                .as_f64()
                .ok_or_else(|| format!("`length_penalty` must be a number, found {v}"))?
                as f32;
        }
        s.early_stopping = match map.get("early_stopping") {
            None | Some(Value::Null) | Some(Value::Bool(false)) => EarlyStopping::Heuristic,
            Some(Value::Bool(true)) => EarlyStopping::Yes,
            Some(Value::String(v)) if v == "never" => EarlyStopping::Never,
            Some(v) => {
                return Err(format!(
                    "`early_stopping` must be true, false or \"never\", found {v}"
                ));
            }
        };
        s.forced_bos_token_id = id("forced_bos_token_id")?;
        s.forced_eos_token_id = id("forced_eos_token_id")?;
        if let Some(start) = id("decoder_start_token_id")? {
            s.decoder_start = start;
        }
        if let Some(pad) = id("pad_token_id")? {
            s.pad = pad;
        }
        match map.get("eos_token_id") {
            None | Some(Value::Null) => {}
            Some(Value::Array(list)) => {
                s.eos = list
                    .iter()
                    .map(|v| v.as_u64().map(|n| n as u32))
                    .collect::<Option<_>>()
                    .ok_or("`eos_token_id` must be an id or a list of ids")?;
            }
            Some(_) => s.eos = vec![id("eos_token_id")?.unwrap_or(ids.eos)],
        }
        if s.num_beams > MAX_BEAMS {
            return Err(format!(
                "`num_beams` {} is more than this runtime takes ({MAX_BEAMS})",
                s.num_beams
            ));
        }
        if s.max_length < 2 {
            return Err(format!(
                "`max_length` {} leaves no room after the decoder start token",
                s.max_length
            ));
        }
        Ok(s)
    }

    /// The decoder ids every answer starts with: the start token, and the forced BOS when
    /// there is one (BART's answers begin `</s> <s>`).
    pub fn answer_prefix(&self) -> Vec<u32> {
        std::iter::once(self.decoder_start)
            .chain(self.forced_bos_token_id)
            .collect()
    }

    /// Applies the logits processors to one row of scores, given the decoder sequence so
    /// far (start token included).
    fn process(&self, scores: &mut [f32], seq: &[u32]) {
        let cur_len = seq.len();
        if cur_len < self.min_length {
            for &e in &self.eos {
                if let Some(s) = scores.get_mut(e as usize) {
                    *s = f32::NEG_INFINITY;
                }
            }
        }
        let n = self.no_repeat_ngram_size;
        if n > 0 && cur_len >= n {
            let prefix = &seq[cur_len + 1 - n..];
            for window in seq.windows(n) {
                if &window[..n - 1] == prefix
                    && let Some(s) = scores.get_mut(window[n - 1] as usize)
                {
                    *s = f32::NEG_INFINITY;
                }
            }
        }
        let forced = if cur_len == 1 {
            self.forced_bos_token_id
        } else if cur_len + 1 == self.max_length {
            self.forced_eos_token_id
        } else {
            None
        };
        if let Some(id) = forced.filter(|&id| (id as usize) < scores.len()) {
            scores.fill(f32::NEG_INFINITY);
            scores[id as usize] = 0.0;
        }
    }
}

/// A row's log-softmax, in f32 as transformers computes it.
fn log_softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = row.iter().map(|&v| (v - max).exp()).sum();
    let log_sum = sum.ln() + max;
    row.iter_mut().for_each(|v| *v -= log_sum);
}

/// Generates an answer for each encoder input (ids with the model's special tokens, see
/// [`Seq2SeqLm::encoder_input`]): greedy when `num_beams` is 1 (batched; `on_token` sees
/// each token as it comes), else beam search one input at a time (`on_token` sees the best
/// hypothesis's tokens when it is chosen). Returns the new ids of each input, without the
/// start token and the EOS. Blocking reads: native code ([`generate_async`] in a browser).
pub fn generate(
    model: &Seq2SeqLm,
    inputs: &[Vec<u32>],
    settings: &GenerationSettings,
    on_token: impl FnMut(usize, u32),
) -> Result<Vec<Vec<u32>>, ModelError> {
    burn::tensor::try_read_sync(generate_async(model, inputs, settings, on_token))
        .ok_or_else(|| ModelError::Readback("this device cannot be read without waiting".into()))?
}

/// [`generate`] with an asynchronous readback of each step's logits, for the browser.
pub async fn generate_async(
    model: &Seq2SeqLm,
    inputs: &[Vec<u32>],
    settings: &GenerationSettings,
    mut on_token: impl FnMut(usize, u32),
) -> Result<Vec<Vec<u32>>, ModelError> {
    // The decoder stops at the model's last position (BART's learned table), as
    // transformers caps `max_length` by `max_position_embeddings`.
    let capped;
    let settings = match model.max_positions() {
        Some(max) if settings.max_length > max => {
            capped = GenerationSettings {
                max_length: max,
                ..settings.clone()
            };
            &capped
        }
        _ => settings,
    };
    if settings.num_beams > 1 {
        let mut out = Vec::with_capacity(inputs.len());
        for (i, input) in inputs.iter().enumerate() {
            let ids = beam_search(model, input, settings).await?;
            ids.iter().for_each(|&t| on_token(i, t));
            out.push(ids);
        }
        return Ok(out);
    }
    greedy(model, inputs, settings, on_token).await
}

async fn greedy(
    model: &Seq2SeqLm,
    inputs: &[Vec<u32>],
    settings: &GenerationSettings,
    mut on_token: impl FnMut(usize, u32),
) -> Result<Vec<Vec<u32>>, ModelError> {
    let mut state = model.start(model.encode(inputs)?);
    let mut seqs: Vec<Vec<u32>> = vec![vec![settings.decoder_start]; inputs.len()];
    // The sequences still decoding, by index; a finished one leaves the batch.
    let mut active: Vec<usize> = (0..inputs.len()).collect();
    let mut step: Vec<Vec<u32>> = vec![vec![settings.decoder_start]; inputs.len()];
    let mut out = vec![Vec::new(); inputs.len()];
    for _ in 1..settings.max_length {
        let logits = model.decode(&mut state, &step)?;
        let vocab = logits.dims()[2];
        let rows = crate::io::values_async(logits.reshape([active.len(), vocab])).await?;
        // The sequences that go on, and their rows in this step's batch.
        let (mut keep, mut kept_rows) = (Vec::new(), Vec::new());
        for (r, (row, &seq)) in rows.chunks(vocab).zip(&active).enumerate() {
            let mut row = row.to_vec();
            settings.process(&mut row, &seqs[seq]);
            let next = argmax(&row);
            seqs[seq].push(next);
            if settings.eos.contains(&next) {
                continue;
            }
            out[seq].push(next);
            on_token(seq, next);
            keep.push(seq);
            kept_rows.push(r);
        }
        if keep.is_empty() {
            break;
        }
        if keep.len() != active.len() {
            state.select(&kept_rows);
        }
        step = keep
            .iter()
            .map(|&s| vec![*seqs[s].last().unwrap_or(&0)])
            .collect();
        active = keep;
    }
    Ok(out)
}

/// transformers' beam search for one input (`batch_size` 1), step for step: the top
/// `2·num_beams` continuations of all beams by summed log-probability; those that end (EOS
/// or `max_length`) among the top `num_beams` join the finished set with their score divided
/// by `length^length_penalty`; the best `num_beams` that do not end continue.
pub async fn beam_search(
    model: &Seq2SeqLm,
    input: &[u32],
    s: &GenerationSettings,
) -> Result<Vec<u32>, ModelError> {
    const DEAD: f32 = -1.0e9;
    let beams = s.num_beams;
    let keep = (1 + s.eos.len()).max(2) * beams;
    let encoded = model.encode(&[input.to_vec()])?;
    let mut state = model.start(encoded.select(&vec![0; beams]));
    let mut running: Vec<Vec<u32>> = vec![vec![s.decoder_start]; beams];
    let mut running_scores = vec![DEAD; beams];
    running_scores[0] = 0.0;
    // The finished hypotheses: sequence, score, and whether the slot holds one.
    let mut finished: Vec<(Vec<u32>, f32, bool)> = vec![(running[0].clone(), DEAD, false); beams];
    let mut improvable = true;
    let mut step: Vec<Vec<u32>> = running.clone();
    let mut cur_len = 1;
    loop {
        let logits = model.decode(&mut state, &step)?;
        let vocab = logits.dims()[2];
        let mut rows = crate::io::values_async(logits.reshape([beams, vocab])).await?;
        for (b, row) in rows.chunks_mut(vocab).enumerate() {
            log_softmax(row);
            s.process(row, &running[b]);
            row.iter_mut().for_each(|v| *v += running_scores[b]);
        }
        // The top `keep` of beams × vocabulary, best first (ties to the lower index).
        let mut order: Vec<usize> = (0..rows.len()).collect();
        let top = keep.min(order.len());
        order.select_nth_unstable_by(top - 1, |&a, &b| {
            rows[b].total_cmp(&rows[a]).then(a.cmp(&b))
        });
        order.truncate(top);
        order.sort_by(|&a, &b| rows[b].total_cmp(&rows[a]).then(a.cmp(&b)));
        let candidates: Vec<(usize, u32, f32, bool)> = order
            .iter()
            .map(|&i| {
                let (beam, token) = (i / vocab, (i % vocab) as u32);
                let ends = s.eos.contains(&token) || cur_len + 1 >= s.max_length;
                (beam, token, rows[i], ends)
            })
            .collect();

        // The beams that go on: the best `beams` candidates that did not end.
        let mut next: Vec<(usize, f32)> = candidates
            .iter()
            .enumerate()
            .map(|(i, c)| (i, c.2 + if c.3 { DEAD } else { 0.0 }))
            .collect();
        next.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        next.truncate(beams);

        // The finished set: the best `beams` of the old one and the candidates among the
        // top `beams` that just ended.
        let all_finished = finished.iter().all(|f| f.2);
        let length = (cur_len as f32).powf(s.length_penalty);
        let mut merged: Vec<(Vec<u32>, f32, bool)> = std::mem::take(&mut finished);
        for (i, &(beam, token, score, ends)) in candidates.iter().enumerate() {
            let just_finished = ends && i < beams;
            let mut score = score / length;
            if all_finished && s.early_stopping == EarlyStopping::Yes {
                score += DEAD;
            }
            if !improvable {
                score += DEAD;
            }
            if !just_finished {
                score += DEAD;
            }
            let mut seq = running[beam].clone();
            seq.push(token);
            merged.push((seq, score, just_finished));
        }
        let mut idx: Vec<usize> = (0..merged.len()).collect();
        idx.sort_by(|&a, &b| merged[b].1.total_cmp(&merged[a].1).then(a.cmp(&b)));
        finished = idx[..beams].iter().map(|&i| merged[i].clone()).collect();

        let sources: Vec<usize> = next.iter().map(|&(i, _)| candidates[i].0).collect();
        running = next
            .iter()
            .map(|&(i, _)| {
                let mut seq = running[candidates[i].0].clone();
                seq.push(candidates[i].1);
                seq
            })
            .collect();
        running_scores = next.iter().map(|&(_, score)| score).collect();
        state.select(&sources);
        step = running.iter().map(|r| vec![r[r.len() - 1]]).collect();
        cur_len += 1;

        // transformers' `_check_early_stop_heuristic`.
        let best_length = if s.early_stopping == EarlyStopping::Never && s.length_penalty > 0.0 {
            s.max_length - 1
        } else {
            cur_len - 1
        };
        let best_running = running_scores[0] / (best_length as f32).powf(s.length_penalty);
        let worst_finished = finished.iter().map(|f| f.1).fold(f32::INFINITY, f32::min);
        improvable &= finished
            .iter()
            .any(|f| best_running > if f.2 { worst_finished } else { DEAD });
        let all_done = finished.iter().all(|f| f.2);
        let open = !(all_done && s.early_stopping == EarlyStopping::Yes);
        let can_continue = !candidates.iter().all(|c| c.3);
        if !(improvable && open && can_continue) {
            break;
        }
    }
    let best = &finished[0].0;
    Ok(best[1..]
        .iter()
        .copied()
        .take_while(|t| !s.eos.contains(t))
        .collect())
}
