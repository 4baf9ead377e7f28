//! Fixed answers scored under an encoder-decoder model: the summed log-probability of each
//! candidate continuation of a decoder prefix, for `choice` classification.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};

use super::Seq2SeqLm;
use crate::ModelError;

/// The summed log-probability of each candidate (decoder ids after `prefix`) given the
/// encoder input `input`, in candidate order. One encoder pass; the candidates are decoded
/// together, right-padded (the causal mask keeps padding from reaching earlier positions).
pub async fn continuation_logprobs_async(
    model: &Seq2SeqLm,
    input: &[u32],
    prefix: &[u32],
    candidates: &[Vec<u32>],
) -> Result<Vec<f64>, ModelError> {
    if prefix.is_empty() || candidates.is_empty() || candidates.iter().any(Vec::is_empty) {
        return Err(ModelError::Input(
            "scoring needs a decoder prefix and non-empty candidates".into(),
        ));
    }
    let n = candidates.len();
    let len = prefix.len() + candidates.iter().map(Vec::len).max().unwrap_or(0);
    let pad = model.special_ids().pad;
    let rows: Vec<Vec<u32>> = candidates
        .iter()
        .map(|c| {
            let mut row = prefix.to_vec();
            row.extend_from_slice(c);
            row.resize(len, pad);
            row
        })
        .collect();
    let encoded = model.encode(&[input.to_vec()])?;
    let mut state = model.start(encoded.select(&vec![0; n]));
    let logits = model.decode(&mut state, &rows)?;
    // Position t predicts row[t + 1]; the last position predicts nothing (its target is 0).
    let targets: Vec<i64> = rows
        .iter()
        .flat_map(|row| (0..len).map(move |t| row.get(t + 1).map_or(0, |&id| id as i64)))
        .collect();
    let device = logits.device();
    let targets = Tensor::<3, Int>::from_data(TensorData::new(targets, [n, len, 1]), &device);
    let picked = log_softmax(logits, 2).gather(2, targets).reshape([n * len]);
    let values = crate::io::values_async(picked).await?;
    let first = prefix.len() - 1;
    Ok(candidates
        .iter()
        .enumerate()
        .map(|(i, c)| {
            values[i * len + first..i * len + first + c.len()]
                .iter()
                .map(|&v| f64::from(v))
                .sum()
        })
        .collect())
}
