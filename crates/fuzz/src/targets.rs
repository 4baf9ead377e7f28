//! What is fuzzed: each target is a set of valid files (the seeds, committed fixtures) and
//! the reader that users' files go through. A case mutates one file of a seed and runs the
//! reader; it must return `Ok` or an error that names one of the input's files.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use data::Dataset;
use formats::gguf::GgufFile;
use formats::gguf_tokenizer::tokenizer_from_gguf;
use formats::safetensors::SafetensorsSource;
use formats::tokenizer::TextTokenizer;
use formats::{Folder, TensorSource};
use model::heads::probe::{ProbeExpect, load_probe};
use model::{CausalLm, LoadOptions, load_folder};

/// One file of a seed.
#[derive(Debug, Clone)]
pub struct SeedFile {
    pub name: String,
    pub bytes: Vec<u8>,
    /// Whether cases change this file (the others stay valid, so that the reader gets past
    /// them to the mutated one).
    pub mutable: bool,
    /// The bytes its header occupies, where mutations land more often: found once here,
    /// not for every case (a GGUF header is found by parsing the file).
    pub focus: usize,
}

impl SeedFile {
    pub fn new(name: &str, bytes: Vec<u8>, mutable: bool) -> Self {
        let focus = crate::case::header_len(name, &bytes);
        Self {
            name: name.to_string(),
            bytes,
            mutable,
            focus,
        }
    }
}

pub type Seed = Vec<SeedFile>;

/// How a reader is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gguf,
    HfModel,
    Seq2Seq,
    Tokenizer,
    Peft,
    Probe,
    Head,
    ImhiCsv,
    DepCsv,
    Predictions,
    /// The harness checking itself: by case number, accepts, panics, asks for 1 TiB, or
    /// hangs. Not in [`NAMES`]; its test proves each kind of finding is caught.
    SelfCheck,
}

pub struct Target {
    pub name: &'static str,
    pub about: &'static str,
    pub kind: Kind,
    pub seeds: Vec<Seed>,
}

pub const NAMES: [&str; 10] = [
    "gguf",
    "safetensors",
    "seq2seq",
    "tokenizer",
    "peft",
    "probe",
    "head",
    "imhi-csv",
    "dep-csv",
    "predictions",
];

/// Files read by one case: a folder in memory (what the browser hands over) or, for the
/// readers that take a path, the same files written to a scratch folder.
pub struct Input<'a> {
    pub folder: Folder,
    pub disk: &'a Path,
}

/// State a worker builds once: the device and a base model that adapters attach to.
pub struct Context {
    pub device: Device,
    pub tiny: CausalLm,
    pub probe_expect: ProbeHints,
}

pub struct ProbeHints {
    pub sha256: String,
    pub hidden: usize,
}

/// The committed fixtures and shipped classifiers that seed the targets.
#[derive(Debug, Clone)]
pub struct Roots {
    pub fixtures: PathBuf,
    pub classifiers: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        Self {
            fixtures: root.join("tests/fixtures"),
            classifiers: root.join("classifiers"),
        }
    }
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read seed {}: {e}", path.display()))
}

fn file(dir: &Path, name: &str, mutable: bool) -> anyhow::Result<SeedFile> {
    Ok(SeedFile::new(name, read(&dir.join(name))?, mutable))
}

fn one(path: &Path, name: &str) -> anyhow::Result<Seed> {
    Ok(vec![SeedFile::new(name, read(path)?, true)])
}

impl Target {
    pub fn load(name: &str, roots: &Roots) -> anyhow::Result<Self> {
        let fx = &roots.fixtures;
        let tiny = fx.join("tiny/qwen2");
        let (about, kind, seeds) = match name {
            "gguf" => (
                "GGUF header, metadata, tensor table, dequantization, tokenizer and model build",
                Kind::Gguf,
                vec![
                    vec![SeedFile::new(
                        "tiny-model.gguf",
                        crate::gguf_seed::tiny_model_gguf(fx)?,
                        true,
                    )],
                    one(&fx.join("gguf/tiny_qwen2_tok.gguf"), "tiny.gguf")?,
                    one(&fx.join("gguf/quants.gguf"), "quants.gguf")?,
                ],
            ),
            "safetensors" => (
                "a HF model folder: model.safetensors and config.json, built into a model",
                Kind::HfModel,
                vec![vec![
                    file(&tiny, "model.safetensors", true)?,
                    file(&tiny, "config.json", true)?,
                    file(&tiny, "tokenizer.json", false)?,
                ]],
            ),
            "seq2seq" => (
                "a BART or T5 folder: config.json, generation_config.json and model.safetensors, \
                 built, then one encoder pass and one decoder step",
                Kind::Seq2Seq,
                ["bart", "t5"]
                    .iter()
                    .map(|m| {
                        let dir = fx.join("tiny").join(m);
                        let tok = if *m == "bart" {
                            "vocab.json"
                        } else {
                            "spiece.model"
                        };
                        let mut files = vec![
                            file(&dir, "config.json", true)?,
                            file(&dir, "generation_config.json", true)?,
                            file(&dir, "model.safetensors", true)?,
                            file(&dir, tok, false)?,
                        ];
                        if *m == "bart" {
                            files.push(file(&dir, "merges.txt", false)?);
                        }
                        Ok(files)
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?,
            ),
            "tokenizer" => (
                "tokenizer.json, a SentencePiece tokenizer.model, or BART's vocab.json and \
                 merges.txt, then encoding and decoding a post",
                Kind::Tokenizer,
                vec![
                    one(&tiny.join("tokenizer.json"), "tokenizer.json")?,
                    one(&fx.join("spm/bpe.model"), "tokenizer.model")?,
                    one(&fx.join("spm/unigram.model"), "tokenizer.model")?,
                    vec![
                        file(&fx.join("tiny/bart"), "vocab.json", true)?,
                        file(&fx.join("tiny/bart"), "merges.txt", true)?,
                    ],
                ],
            ),
            "peft" => (
                "a PEFT adapter (adapter_config.json, adapter_model.safetensors) on a model",
                Kind::Peft,
                vec![vec![
                    file(&fx.join("lora/qwen2-adapter"), "adapter_config.json", true)?,
                    file(
                        &fx.join("lora/qwen2-adapter"),
                        "adapter_model.safetensors",
                        true,
                    )?,
                ]],
            ),
            "probe" => (
                "a shipped classifier: classifier.json and probe.safetensors",
                Kind::Probe,
                vec![vec![
                    file(&roots.classifiers.join("DR"), "classifier.json", true)?,
                    file(&roots.classifiers.join("DR"), "probe.safetensors", true)?,
                ]],
            ),
            "head" => (
                "a stage-2 head: classifier.json and classifier_head.safetensors",
                Kind::Head,
                vec![vec![
                    file(&fx.join("lora/head"), "classifier.json", true)?,
                    file(&fx.join("lora/head"), "classifier_head.safetensors", true)?,
                ]],
            ),
            "imhi-csv" => (
                "an IMHI CSV file (query, gpt-3.5-turbo) read as DR examples",
                Kind::ImhiCsv,
                vec![one(&fx.join("data/imhi/train/DR/train.csv"), "train.csv")?],
            ),
            "dep-csv" => (
                "a DEP-SEVERITY CSV file (text, label)",
                Kind::DepCsv,
                vec![one(
                    &fx.join("data/dep-severity/english.csv"),
                    "english.csv",
                )?],
            ),
            "predictions" => (
                "a predictions JSONL file, then scoring it with the label rules",
                Kind::Predictions,
                vec![one(
                    &fx.join("metrics/predictions_DR.jsonl"),
                    "predictions_DR.jsonl",
                )?],
            ),
            "self-check" => (
                "the harness itself: a panic, an over-allocation and a hang on purpose",
                Kind::SelfCheck,
                vec![vec![SeedFile::new("self.txt", b"0123".to_vec(), true)]],
            ),
            other => anyhow::bail!("unknown target `{other}` (targets: {})", NAMES.join(", ")),
        };
        Ok(Self {
            name: NAMES
                .iter()
                .find(|n| **n == name)
                .copied()
                .unwrap_or("self-check"),
            about,
            kind,
            seeds,
        })
    }
}

impl Kind {
    /// Whether the reader takes a path rather than a folder in memory.
    pub fn reads_disk(self) -> bool {
        matches!(self, Kind::ImhiCsv | Kind::DepCsv | Kind::Predictions)
    }
}

impl Context {
    pub fn new(roots: &Roots) -> anyhow::Result<Self> {
        let device = Device::flex();
        let tiny = model::load_model(
            &roots.fixtures.join("tiny/qwen2"),
            &device,
            LoadOptions::default(),
        )?
        .model;
        let text = std::fs::read_to_string(roots.classifiers.join("DR/classifier.json"))?;
        let value: serde_json::Value = serde_json::from_str(&text)?;
        let probe_expect = ProbeHints {
            sha256: value["base_model_sha256"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            hidden: value["hidden_size"].as_u64().unwrap_or(0) as usize,
        };
        Ok(Self {
            device,
            tiny,
            probe_expect,
        })
    }
}

/// Runs the reader of `kind` on one input. `Err` is a rejection (its message is checked by
/// the caller); a panic is caught by the caller.
pub fn run(kind: Kind, input: &Input<'_>, ctx: &Context) -> Result<(), String> {
    let folder = &input.folder;
    let text = |e: &dyn std::fmt::Display| e.to_string();
    match kind {
        Kind::Gguf => {
            let name = folder.names().into_iter().next().unwrap_or_default();
            let file = GgufFile::open_in(folder, &name).map_err(|e| text(&e))?;
            // Every stage runs even when an earlier one failed: each reads other fields.
            let mut first: Option<String> = None;
            let mut note = |r: Result<(), String>| {
                if let Err(e) = r {
                    first.get_or_insert(e);
                }
            };
            for t in file.tensor_names() {
                note(file.read_f32(&t).map(|_| ()).map_err(|e| text(&e)));
            }
            note(file.model_config().map(|_| ()).map_err(|e| text(&e)));
            note(
                tokenizer_from_gguf(file.metadata())
                    .map(|_| ())
                    .map_err(|e| text(&e)),
            );
            note(
                load_folder(folder, &ctx.device, LoadOptions::default())
                    .map(|_| ())
                    .map_err(|e| text(&e)),
            );
            note(
                load_folder(
                    folder,
                    &ctx.device,
                    LoadOptions {
                        keep_quantized: true,
                        codes_at_load: None,
                        max_tensor_bytes: Some(4096),
                        progress: None,
                    },
                )
                .map(|_| ())
                .map_err(|e| text(&e)),
            );
            first.map_or(Ok(()), Err)
        }
        Kind::HfModel => {
            let source =
                SafetensorsSource::open_file(folder, "model.safetensors").map_err(|e| text(&e))?;
            for t in source.tensor_names() {
                source.read_f32(&t).map_err(|e| text(&e))?;
            }
            load_folder(folder, &ctx.device, LoadOptions::default())
                .map(|_| ())
                .map_err(|e| text(&e))
        }
        Kind::Seq2Seq => {
            let loaded = model::seq2seq::load_seq2seq(folder, &ctx.device, LoadOptions::default())
                .map_err(|e| text(&e))?;
            let m = &loaded.model;
            let input = m.encoder_input(&[5, 6, 7]);
            let mut state = m.start(m.encode(&[input]).map_err(|e| text(&e))?);
            let start = vec![vec![loaded.generation.decoder_start]];
            m.decode(&mut state, &start)
                .map(|_| ())
                .map_err(|e| text(&e))
        }
        Kind::Tokenizer => {
            let tok = TextTokenizer::from_folder(folder)
                .map_err(|e| text(&e))?
                .ok_or_else(|| "the seed has no tokenizer file".to_string())?;
            let ids = tok
                .encode("I have felt  hopeless for weeks, ＡＢＣ 😀. Is this normal?")
                .map_err(|e| text(&e))?;
            tok.decode(&ids).map(|_| ()).map_err(|e| text(&e))
        }
        Kind::Peft => {
            let mut lm = ctx.tiny.clone();
            model::lora::peft_io::load_adapter(&mut lm, folder)
                .map(|_| ())
                .map_err(|e| text(&e))
        }
        Kind::Probe => {
            let expect = ProbeExpect {
                model_sha256: &ctx.probe_expect.sha256,
                hidden_size: ctx.probe_expect.hidden,
                dataset: "DR",
                classes: 2,
            };
            let (probe, _) = load_probe(folder, &expect).map_err(|e| text(&e))?;
            let features = vec![0.5f32; probe.features()];
            let p = probe.probabilities(&features, 0);
            if p.iter().any(|v| !v.is_finite()) {
                // Not a crash, but worth knowing: the reader let non-finite weights through.
                return Err(format!(
                    "{}: non-finite probabilities",
                    folder.path("probe.safetensors").display()
                ));
            }
            Ok(())
        }
        Kind::Head => {
            model::heads::classifier::load_head(folder, ctx.tiny.config.hidden_size, &ctx.device)
                .map(|_| ())
                .map_err(|e| text(&e))
        }
        Kind::ImhiCsv => data::imhi::load_csv(&input.disk.join("train.csv"), Dataset::Dr)
            .map(|_| ())
            .map_err(|e| text(&e)),
        Kind::DepCsv => data::dep_severity::load(&input.disk.join("english.csv"))
            .map(|_| ())
            .map_err(|e| text(&e)),
        Kind::Predictions => {
            let path = input.disk.join("predictions_DR.jsonl");
            let rows = data::predictions::read_predictions(&path).map_err(|e| text(&e))?;
            data::score_predictions(Dataset::Dr, &rows)
                .map(|_| ())
                .map_err(|e| format!("{}: {e}", path.display()))
        }
        Kind::SelfCheck => {
            let n = folder.open("self.txt").map_err(|e| text(&e))?.len();
            match n % 4 {
                0 => Ok(()),
                1 => panic!("self-check panic"),
                2 => {
                    let v: Vec<u8> = Vec::with_capacity(1 << 40);
                    Err(format!("self.txt: allocated {}", v.capacity()))
                }
                _ => loop {
                    std::thread::sleep(std::time::Duration::from_secs(1));
                },
            }
        }
    }
}

/// Whether a rejection names one of the input's files (by name or by its folder label).
pub fn names_a_file(message: &str, seed: &Seed) -> bool {
    seed.iter().any(|f| message.contains(&f.name))
}
