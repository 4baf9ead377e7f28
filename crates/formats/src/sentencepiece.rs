//! SentencePiece models (`tokenizer.model` of Llama-2 folders, T5's `spiece.model`) read
//! into a HF `tokenizers::Tokenizer`, so that they tokenize as the `sentencepiece` library
//! (and transformers' slow `LlamaTokenizer`, which wraps it) does.
//!
//! The file is a `ModelProto` protobuf. It is read by the small wire-format reader below
//! (no code generation, no dependency, fuzzed) and only the fields tokenizing needs are
//! kept. The tokenizer is assembled from `tokenizers` parts:
//! - **normalizer:** the model's precompiled character map (after checking that the trie in
//!   it cannot send a lookup out of bounds), then SentencePiece's whitespace rules: strip
//!   and collapse spaces (`remove_extra_whitespaces`), the `▁` dummy prefix
//!   (`add_dummy_prefix`), and spaces written as `▁` (`escape_whitespaces`);
//! - **model:** Unigram with the pieces' scores, or BPE whose merges are ranked by the score
//!   of the merged piece, which is SentencePiece's own merge order; byte fallback as the
//!   model says;
//! - **added tokens:** control pieces and the unknown piece as special tokens, user-defined
//!   pieces as plain ones, each matched whole in the raw text as the slow tokenizer does;
//! - **decoder:** `▁` back to spaces, byte pieces fused into UTF-8, the dummy prefix dropped.

use std::collections::HashSet;
use std::path::Path;

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::BPE;
use tokenizers::models::unigram::Unigram;
use tokenizers::normalizers::replace::{Replace, ReplacePattern};
use tokenizers::normalizers::{Precompiled, Prepend, Sequence as NormalizerSequence};
use tokenizers::{AddedToken, DecoderWrapper, ModelWrapper, NormalizerWrapper, Tokenizer};

use crate::FormatError;

/// The space mark SentencePiece writes spaces as (U+2581).
const SPACE: &str = "\u{2581}";
/// Longest normal piece of a BPE model, in bytes. Merges are found by splitting each piece,
/// so this bounds the work a hostile file can ask for; trained pieces are at most 16 to 512
/// characters (`max_sentencepiece_length`).
const MAX_BPE_PIECE_BYTES: usize = 2048;

/// What a piece is (`ModelProto.SentencePiece.Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceType {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl PieceType {
    fn from_proto(v: u64) -> Option<Self> {
        Some(match v {
            1 => Self::Normal,
            2 => Self::Unknown,
            3 => Self::Control,
            4 => Self::UserDefined,
            5 => Self::Unused,
            6 => Self::Byte,
            _ => return None,
        })
    }
}

/// One vocabulary entry; its id is its index.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    pub piece: String,
    pub score: f32,
    pub kind: PieceType,
}

/// The segmentation algorithm (`TrainerSpec.model_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpModelType {
    Unigram,
    Bpe,
}

/// The fields of a `ModelProto` that tokenizing reads.
#[derive(Debug, Clone)]
pub struct SpModel {
    pub pieces: Vec<Piece>,
    pub model_type: SpModelType,
    pub byte_fallback: bool,
    /// Special ids; `None` where the trainer spec says -1.
    pub unk_id: u32,
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
    pub pad_id: Option<u32>,
    pub precompiled_charsmap: Vec<u8>,
    pub add_dummy_prefix: bool,
    pub remove_extra_whitespaces: bool,
    pub escape_whitespaces: bool,
}

/// A SentencePiece model as a HF tokenizer, with its special ids.
#[derive(Clone)]
pub struct SpTokenizer {
    pub tokenizer: Tokenizer,
    pub model: SpModel,
}

/// Reads `bytes` (a `tokenizer.model` or `spiece.model`) and builds its tokenizer.
/// `origin` names the file in messages.
pub fn tokenizer_from_spm(bytes: &[u8], origin: &Path) -> Result<SpTokenizer, FormatError> {
    let model = parse_model(bytes, origin)?;
    let tokenizer = build_tokenizer(&model, origin)?;
    Ok(SpTokenizer { tokenizer, model })
}

/// Parses and checks a `ModelProto`.
pub fn parse_model(bytes: &[u8], origin: &Path) -> Result<SpModel, FormatError> {
    let err = |reason: String| FormatError::Tokenizer {
        path: origin.to_path_buf(),
        reason: format!("not a valid SentencePiece model: {reason}"),
    };
    let raw = RawModel::decode(bytes).map_err(err)?;
    raw.check().map_err(err)
}

/// Proto2 defaults of the fields read (sentencepiece_model.proto).
struct RawModel {
    pieces: Vec<Piece>,
    model_type: u64,
    byte_fallback: bool,
    treat_whitespace_as_suffix: bool,
    unk_id: i64,
    bos_id: i64,
    eos_id: i64,
    pad_id: i64,
    precompiled_charsmap: Vec<u8>,
    add_dummy_prefix: bool,
    remove_extra_whitespaces: bool,
    escape_whitespaces: bool,
}

impl RawModel {
    fn decode(bytes: &[u8]) -> Result<Self, String> {
        let mut m = RawModel {
            pieces: Vec::new(),
            model_type: 1,
            byte_fallback: false,
            treat_whitespace_as_suffix: false,
            unk_id: 0,
            bos_id: 1,
            eos_id: 2,
            pad_id: -1,
            precompiled_charsmap: Vec::new(),
            add_dummy_prefix: true,
            remove_extra_whitespaces: true,
            escape_whitespaces: true,
        };
        let mut saw_trainer = false;
        let mut wire = Wire::new(bytes);
        while let Some((field, value)) = wire.next()? {
            match field {
                1 => {
                    let id = m.pieces.len();
                    let piece = decode_piece(value.bytes("pieces")?)
                        .map_err(|e| format!("piece {id}: {e}"))?;
                    m.pieces.push(piece);
                }
                2 => {
                    saw_trainer = true;
                    m.decode_trainer(value.bytes("trainer_spec")?)
                        .map_err(|e| format!("trainer_spec: {e}"))?;
                }
                3 => m
                    .decode_normalizer(value.bytes("normalizer_spec")?)
                    .map_err(|e| format!("normalizer_spec: {e}"))?,
                _ => {}
            }
        }
        if m.pieces.is_empty() {
            return Err(if saw_trainer {
                "it has no pieces".to_string()
            } else {
                "it has neither pieces nor a trainer spec (is this a SentencePiece model?)"
                    .to_string()
            });
        }
        Ok(m)
    }

    fn decode_trainer(&mut self, bytes: &[u8]) -> Result<(), String> {
        let mut wire = Wire::new(bytes);
        while let Some((field, value)) = wire.next()? {
            match field {
                3 => self.model_type = value.varint("model_type")?,
                24 => {
                    self.treat_whitespace_as_suffix =
                        value.varint("treat_whitespace_as_suffix")? != 0
                }
                35 => self.byte_fallback = value.varint("byte_fallback")? != 0,
                40 => self.unk_id = value.int32("unk_id")?,
                41 => self.bos_id = value.int32("bos_id")?,
                42 => self.eos_id = value.int32("eos_id")?,
                43 => self.pad_id = value.int32("pad_id")?,
                _ => {}
            }
        }
        Ok(())
    }

    fn decode_normalizer(&mut self, bytes: &[u8]) -> Result<(), String> {
        let mut wire = Wire::new(bytes);
        while let Some((field, value)) = wire.next()? {
            match field {
                2 => self.precompiled_charsmap = value.bytes("precompiled_charsmap")?.to_vec(),
                3 => self.add_dummy_prefix = value.varint("add_dummy_prefix")? != 0,
                4 => self.remove_extra_whitespaces = value.varint("remove_extra_whitespaces")? != 0,
                5 => self.escape_whitespaces = value.varint("escape_whitespaces")? != 0,
                _ => {}
            }
        }
        Ok(())
    }

    fn check(self) -> Result<SpModel, String> {
        let model_type = match self.model_type {
            1 => SpModelType::Unigram,
            2 => SpModelType::Bpe,
            3 => {
                return Err(
                    "model_type is WORD, which is not supported (only Unigram and BPE)".into(),
                );
            }
            4 => {
                return Err(
                    "model_type is CHAR, which is not supported (only Unigram and BPE)".into(),
                );
            }
            t => {
                return Err(format!(
                    "model_type is {t}, not one of Unigram (1), BPE (2), WORD (3) or CHAR (4)"
                ));
            }
        };
        if self.treat_whitespace_as_suffix {
            return Err("treat_whitespace_as_suffix is set, which is not supported".into());
        }
        let n = self.pieces.len();
        let mut seen = HashSet::with_capacity(n);
        let mut bytes = HashSet::new();
        for (id, p) in self.pieces.iter().enumerate() {
            if p.kind == PieceType::Byte {
                bytes.insert(p.piece.as_str());
            }
            if p.piece.is_empty() {
                return Err(format!("piece {id} is empty"));
            }
            if !p.score.is_finite() {
                return Err(format!("piece {id} ({:?}) has score {}", p.piece, p.score));
            }
            if !seen.insert(p.piece.as_str()) {
                return Err(format!("piece {id} ({:?}) is defined twice", p.piece));
            }
            if model_type == SpModelType::Bpe
                && p.kind == PieceType::Normal
                && p.piece.len() > MAX_BPE_PIECE_BYTES
            {
                return Err(format!(
                    "piece {id} is {} bytes long, past the {MAX_BPE_PIECE_BYTES} allowed",
                    p.piece.len()
                ));
            }
        }
        let id = |name: &str, v: i64| -> Result<Option<u32>, String> {
            match v {
                -1 => Ok(None),
                v if v >= 0 && (v as u64) < n as u64 => Ok(Some(v as u32)),
                v => Err(format!("{name} is {v}, outside the {n} pieces")),
            }
        };
        let unk_id = id("unk_id", self.unk_id)?
            .ok_or("unk_id is -1; SentencePiece requires an unknown piece")?;
        if self.pieces[unk_id as usize].kind != PieceType::Unknown {
            return Err(format!(
                "unk_id {unk_id} names {:?}, which is not of type UNKNOWN",
                self.pieces[unk_id as usize].piece
            ));
        }
        if self.byte_fallback {
            for b in 0..=255u8 {
                let name = byte_piece(b);
                if !bytes.contains(name.as_str()) {
                    return Err(format!(
                        "byte_fallback is set but the byte piece {name} is missing"
                    ));
                }
            }
        }
        if !self.precompiled_charsmap.is_empty() {
            check_charsmap(&self.precompiled_charsmap)
                .map_err(|e| format!("normalizer_spec.precompiled_charsmap: {e}"))?;
        }
        Ok(SpModel {
            model_type,
            byte_fallback: self.byte_fallback,
            unk_id,
            bos_id: id("bos_id", self.bos_id)?,
            eos_id: id("eos_id", self.eos_id)?,
            pad_id: id("pad_id", self.pad_id)?,
            precompiled_charsmap: self.precompiled_charsmap,
            add_dummy_prefix: self.add_dummy_prefix,
            remove_extra_whitespaces: self.remove_extra_whitespaces,
            escape_whitespaces: self.escape_whitespaces,
            pieces: self.pieces,
        })
    }
}

fn decode_piece(bytes: &[u8]) -> Result<Piece, String> {
    let mut piece = Piece {
        piece: String::new(),
        score: 0.0,
        kind: PieceType::Normal,
    };
    let mut wire = Wire::new(bytes);
    while let Some((field, value)) = wire.next()? {
        match field {
            1 => piece.piece = value.string("piece")?,
            2 => piece.score = value.float("score")?,
            3 => {
                let v = value.varint("type")?;
                piece.kind = PieceType::from_proto(v).ok_or_else(|| {
                    format!("type is {v}, not a SentencePiece piece type (1..=6)")
                })?;
            }
            _ => {}
        }
    }
    Ok(piece)
}

/// `<0x41>`: how SentencePiece spells a byte piece.
fn byte_piece(b: u8) -> String {
    format!("<0x{b:02X}>")
}

/// Builds the HF tokenizer for a checked model.
pub fn build_tokenizer(m: &SpModel, origin: &Path) -> Result<Tokenizer, FormatError> {
    let err = |reason: String| FormatError::Tokenizer {
        path: origin.to_path_buf(),
        reason,
    };
    let unk = m.pieces[m.unk_id as usize].piece.clone();
    let model: ModelWrapper = match m.model_type {
        SpModelType::Unigram => {
            let vocab = m
                .pieces
                .iter()
                .map(|p| (p.piece.clone(), f64::from(p.score)))
                .collect();
            Unigram::from(vocab, Some(m.unk_id as usize), m.byte_fallback)
                .map_err(|e| err(format!("cannot build its Unigram model: {e}")))?
                .into()
        }
        SpModelType::Bpe => {
            let vocab: tokenizers::models::bpe::Vocab = m
                .pieces
                .iter()
                .zip(0u32..)
                .map(|(p, id)| (p.piece.clone(), id))
                .collect();
            let merges = bpe_merges(&m.pieces, &vocab);
            BPE::builder()
                .vocab_and_merges(vocab, merges)
                .unk_token(unk)
                .fuse_unk(true)
                .byte_fallback(m.byte_fallback)
                .build()
                .map_err(|e| err(format!("cannot build its BPE model: {e}")))?
                .into()
        }
    };

    let mut normalizers: Vec<NormalizerWrapper> = Vec::new();
    if !m.precompiled_charsmap.is_empty() {
        let map = Precompiled::from(&m.precompiled_charsmap)
            .map_err(|e| err(format!("normalizer_spec.precompiled_charsmap: {e}")))?;
        normalizers.push(map.into());
    }
    let replace =
        |pattern: ReplacePattern, content: &str| -> Result<NormalizerWrapper, FormatError> {
            Ok(Replace::new(pattern, content)
                .map_err(|e| err(format!("cannot build its normalizer: {e}")))?
                .into())
        };
    if m.remove_extra_whitespaces {
        normalizers.push(replace(ReplacePattern::Regex("^ +| +$".into()), "")?);
        normalizers.push(replace(ReplacePattern::Regex(" {2,}".into()), " ")?);
    }
    let space = if m.escape_whitespaces { SPACE } else { " " };
    if m.add_dummy_prefix {
        normalizers.push(Prepend::new(space.to_string()).into());
    }
    if m.escape_whitespaces {
        normalizers.push(replace(ReplacePattern::String(" ".into()), SPACE)?);
    }

    let mut decoders: Vec<DecoderWrapper> = Vec::new();
    if m.escape_whitespaces {
        decoders.push(
            Replace::new(SPACE, " ")
                .map_err(|e| err(format!("cannot build its decoder: {e}")))?
                .into(),
        );
    }
    decoders.push(ByteFallback::new().into());
    decoders.push(Fuse::new().into());
    if m.add_dummy_prefix {
        decoders.push(Strip::new(' ', 1, 0).into());
    }

    let mut tok = Tokenizer::new(model);
    tok.with_normalizer(Some(NormalizerSequence::new(normalizers)));
    tok.with_decoder(Some(DecoderSequence::new(decoders)));
    // Matched whole in the raw text, before normalizing, as the slow tokenizer splits on
    // its special and added tokens before calling SentencePiece.
    let added =
        |p: &Piece, special: bool| AddedToken::from(p.piece.clone(), special).normalized(false);
    let special: Vec<AddedToken> = m
        .pieces
        .iter()
        .filter(|p| matches!(p.kind, PieceType::Control | PieceType::Unknown))
        .map(|p| added(p, true))
        .collect();
    let user: Vec<AddedToken> = m
        .pieces
        .iter()
        .filter(|p| p.kind == PieceType::UserDefined)
        .map(|p| added(p, false))
        .collect();
    tok.add_special_tokens(&special);
    tok.add_tokens(&user);
    Ok(tok)
}

/// BPE merges in SentencePiece's order: a merge's rank is the score of the piece it makes
/// (higher first); ties go to the lower merged id, then the lower left and right ids.
/// Every split of a normal piece into two pieces of the vocabulary (`ids`, the BPE model's
/// own map; ids are indices, since pieces are unique) is a merge.
fn bpe_merges(pieces: &[Piece], ids: &tokenizers::models::bpe::Vocab) -> Vec<(String, String)> {
    let mut merges: Vec<(f32, usize, u32, u32)> = Vec::new();
    for (id, p) in pieces.iter().enumerate() {
        if p.kind != PieceType::Normal {
            continue;
        }
        for (at, _) in p.piece.char_indices().skip(1) {
            let (l, r) = p.piece.split_at(at);
            if let (Some(&li), Some(&ri)) = (ids.get(l), ids.get(r)) {
                merges.push((p.score, id, li, ri));
            }
        }
    }
    merges.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then(a.1.cmp(&b.1))
            .then(a.2.cmp(&b.2))
            .then(a.3.cmp(&b.3))
    });
    merges
        .into_iter()
        .map(|(_, _, l, r)| {
            (
                pieces[l as usize].piece.clone(),
                pieces[r as usize].piece.clone(),
            )
        })
        .collect()
}

/// Checks a precompiled character map (`<u32 trie size><double-array trie><strings>`) so
/// that no input can make a lookup index past the trie or the strings: `spm_precompiled`
/// indexes without bounds checks. Every node reachable from the root is visited once.
fn check_charsmap(blob: &[u8]) -> Result<(), String> {
    let size_bytes: [u8; 4] = blob
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or("shorter than its 4-byte header")?;
    let trie_size = u32::from_le_bytes(size_bytes) as usize;
    let rest = &blob[4..];
    if trie_size > rest.len() {
        return Err(format!(
            "its trie is {trie_size} bytes but only {} follow the header",
            rest.len()
        ));
    }
    let units: Vec<usize> = rest[..trie_size]
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let strings = std::str::from_utf8(&rest[trie_size / 4 * 4..])
        .map_err(|e| format!("its normalized strings are not UTF-8: {e}"))?;
    let unit = |pos: usize| {
        units.get(pos).copied().ok_or_else(|| {
            format!(
                "its trie points to unit {pos}, past its {} units",
                units.len()
            )
        })
    };
    // darts-clone's unit layout, as spm_precompiled reads it.
    let offset = |u: usize| (u >> 10) << ((u & (1 << 9)) >> 6);
    let label = |u: usize| u & ((1 << 31) | 0xFF);
    let has_leaf = |u: usize| (u >> 8) & 1 == 1;
    let value = |u: usize| u & ((1 << 31) - 1);

    let root = offset(unit(0)?);
    let mut seen = HashSet::new();
    let mut stack = vec![root];
    while let Some(node) = stack.pop() {
        if !seen.insert(node) {
            continue;
        }
        for c in 1..=255usize {
            let pos = node ^ c;
            let u = unit(pos)?;
            if label(u) != c {
                continue;
            }
            let child = pos ^ offset(u);
            if has_leaf(u) {
                let start = value(unit(child)?);
                if start > strings.len() || !strings.is_char_boundary(start) {
                    return Err(format!(
                        "its trie points to byte {start} of its {}-byte strings, not a character start",
                        strings.len()
                    ));
                }
            }
            stack.push(child);
        }
    }
    Ok(())
}

/// One field's value, by wire type.
enum Value<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32(u32),
}

impl<'a> Value<'a> {
    fn kind(&self) -> &'static str {
        match self {
            Value::Varint(_) => "a varint",
            Value::Fixed64 => "a 64-bit value",
            Value::Bytes(_) => "a length-delimited value",
            Value::Fixed32(_) => "a 32-bit value",
        }
    }
    fn varint(&self, name: &str) -> Result<u64, String> {
        match self {
            Value::Varint(v) => Ok(*v),
            other => Err(format!("{name} is {}, expected a varint", other.kind())),
        }
    }
    /// A proto `int32`: negative values are sign-extended to ten bytes.
    fn int32(&self, name: &str) -> Result<i64, String> {
        Ok(i64::from(self.varint(name)? as i64 as i32))
    }
    fn float(&self, name: &str) -> Result<f32, String> {
        match self {
            Value::Fixed32(v) => Ok(f32::from_bits(*v)),
            other => Err(format!(
                "{name} is {}, expected a 32-bit float",
                other.kind()
            )),
        }
    }
    fn bytes(&self, name: &str) -> Result<&'a [u8], String> {
        match self {
            Value::Bytes(b) => Ok(b),
            other => Err(format!(
                "{name} is {}, expected a length-delimited value",
                other.kind()
            )),
        }
    }
    fn string(&self, name: &str) -> Result<String, String> {
        let b = self.bytes(name)?;
        String::from_utf8(b.to_vec()).map_err(|e| format!("{name} is not UTF-8: {e}"))
    }
}

/// The protobuf wire format, read field by field.
struct Wire<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Wire<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let start = self.pos;
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| format!("truncated varint at byte {start}"))?;
            self.pos += 1;
            if shift == 63 && b > 1 {
                return Err(format!("varint at byte {start} overflows 64 bits"));
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(format!("varint at byte {start} is longer than 10 bytes"))
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                format!(
                    "{what} at byte {} needs {n} bytes, {} remain",
                    self.pos,
                    self.buf.len() - self.pos
                )
            })?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// The next field number and value, or `None` at the end.
    fn next(&mut self) -> Result<Option<(u64, Value<'a>)>, String> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let at = self.pos;
        let key = self.varint()?;
        let field = key >> 3;
        if field == 0 {
            return Err(format!("field number 0 at byte {at}"));
        }
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8, "a 64-bit value")?;
                Value::Fixed64
            }
            2 => {
                let len = self.varint()?;
                let len = usize::try_from(len).map_err(|_| format!("length {len} at byte {at}"))?;
                Value::Bytes(self.take(len, "a length-delimited value")?)
            }
            5 => {
                let b = self.take(4, "a 32-bit value")?;
                Value::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            t => {
                return Err(format!(
                    "field {field} at byte {at} has wire type {t}, which this reader does not take (groups or invalid)"
                ));
            }
        };
        Ok(Some((field, value)))
    }
}

/// The SentencePiece file among a folder's files: `tokenizer.model` (Llama) or
/// `spiece.model` (T5).
pub fn sentencepiece_file(names: &[String]) -> Option<&'static str> {
    ["tokenizer.model", "spiece.model"]
        .into_iter()
        .find(|f| names.iter().any(|n| n == f))
}
