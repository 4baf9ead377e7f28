//! GPT-2's byte-level BPE from its two files, `vocab.json` and `merges.txt`, as BART and
//! RoBERTa folders ship it when they have no `tokenizer.json`: built into a `tokenizers`
//! tokenizer the way transformers' slow `BartTokenizer` tokenizes (no prefix space, the
//! special tokens matched whole in the raw text, `<mask>` taking the space before it).

use std::path::Path;

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

use crate::FormatError;

/// The special tokens of BART's vocabulary, when it has them.
const SPECIAL: [&str; 5] = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"];

/// Builds the tokenizer. `vocab_path` and `merges_path` name the files in messages.
pub fn tokenizer_from_files(
    vocab: &[u8],
    merges: &[u8],
    vocab_path: &Path,
    merges_path: &Path,
) -> Result<Tokenizer, FormatError> {
    let err = |path: &Path, reason: String| FormatError::Tokenizer {
        path: path.to_path_buf(),
        reason,
    };
    let vocab: Vocab = serde_json::from_slice(vocab)
        .map_err(|e| err(vocab_path, format!("not a JSON object of token → id: {e}")))?;
    let merges = parse_merges(merges).map_err(|reason| err(merges_path, reason))?;
    for (i, (a, b)) in merges.iter().enumerate() {
        for part in [a, b, &format!("{a}{b}")] {
            if !vocab.contains_key(part.as_str()) {
                return Err(err(
                    merges_path,
                    format!(
                        "merge {} (`{a} {b}`) uses `{part}`, which vocab.json does not hold",
                        i + 1
                    ),
                ));
            }
        }
    }
    let unk = vocab.contains_key("<unk>").then(|| "<unk>".to_string());
    let specials: Vec<AddedToken> = SPECIAL
        .iter()
        .filter(|t| vocab.contains_key(**t))
        .map(|t| AddedToken::from(*t, true).lstrip(*t == "<mask>"))
        .collect();
    let mut builder = BPE::builder().vocab_and_merges(vocab, merges);
    if let Some(unk) = unk {
        builder = builder.unk_token(unk);
    }
    let model = builder
        .build()
        .map_err(|e| err(vocab_path, format!("cannot build its BPE model: {e}")))?;
    let mut tok = Tokenizer::new(model);
    tok.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tok.with_decoder(Some(ByteLevelDecoder::default()));
    tok.add_special_tokens(&specials);
    Ok(tok)
}

/// `merges.txt`: an optional `#version` line, then one `left right` pair per line.
fn parse_merges(bytes: &[u8]) -> Result<Vec<(String, String)>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    let mut merges = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if (i == 0 && line.starts_with("#version")) || line.trim().is_empty() {
            continue;
        }
        let mut parts = line.split(' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(b), None) if !a.is_empty() && !b.is_empty() => {
                merges.push((a.to_string(), b.to_string()))
            }
            _ => {
                return Err(format!(
                    "line {}: expected two tokens separated by one space, found `{line}`",
                    i + 1
                ));
            }
        }
    }
    Ok(merges)
}
