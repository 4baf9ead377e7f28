//! MentalQLM's stage-2 head: the final hidden state, mean-pooled over positions, then
//! LayerNorm(hidden) and Linear(hidden, classes).

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, TensorData};

use crate::ModelError;
use crate::cache::KvCache;
use crate::decoder::TokenBatch;
use crate::heads::lm::CausalLm;
use crate::linear::Linear;

#[derive(Module, Debug)]
pub struct LayerNorm {
    /// `[hidden]`
    pub weight: Param<Tensor<1>>,
    /// `[hidden]`
    pub bias: Param<Tensor<1>>,
    pub eps: f64,
}

impl LayerNorm {
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let mean = x.clone().mean_dim(1);
        let centred = x - mean;
        let var = centred.clone().square().mean_dim(1);
        centred / (var + self.eps).sqrt() * self.weight.val().unsqueeze_dim(0)
            + self.bias.val().unsqueeze_dim(0)
    }
}

#[derive(Module, Debug)]
pub struct ClassifierHead {
    pub layer_norm: LayerNorm,
    pub classifier: Linear,
}

impl ClassifierHead {
    /// PyTorch's defaults: LayerNorm ones/zeros (eps 1e-5), Linear uniform(±1/sqrt(hidden)),
    /// drawn on the host from `seed`.
    pub fn init(hidden: usize, classes: usize, seed: u64, device: &Device) -> Self {
        use crate::init::{derive_seed, uniform};
        let bound = 1.0 / (hidden as f64).sqrt();
        let weight = uniform(
            [classes, hidden],
            bound,
            derive_seed(seed, "classifier.weight"),
            device,
        );
        let bias = uniform(
            [1, classes],
            bound,
            derive_seed(seed, "classifier.bias"),
            device,
        )
        .reshape([classes]);
        Self {
            layer_norm: LayerNorm {
                weight: Param::from_tensor(Tensor::ones([hidden], device)),
                bias: Param::from_tensor(Tensor::zeros([hidden], device)),
                eps: 1e-5,
            },
            classifier: Linear::new(weight, Some(bias)),
        }
    }

    pub fn classes(&self) -> usize {
        self.classifier.out_features()
    }

    /// `[batch, hidden]` pooled states → `[batch, classes]` logits.
    pub fn forward(&self, pooled: Tensor<2>) -> Tensor<2> {
        self.classifier.forward_2d(self.layer_norm.forward(pooled))
    }
}

/// The base model (with its stage-2 LoRA) and the head, trained together.
#[derive(Module, Debug)]
pub struct SequenceClassifier {
    pub lm: CausalLm,
    pub head: ClassifierHead,
    /// Average over padding positions too, as MentalQLM's code (it passes no attention mask).
    pub pool_include_padding: bool,
}

impl SequenceClassifier {
    /// Left-padded rows for [`SequenceClassifier::forward`]. When padding enters the pooled
    /// mean, every row is padded to `max_length` (the paper's `padding="max_length"`), so
    /// training and inference see the same denominators.
    pub fn batch(
        &self,
        rows: &[Vec<u32>],
        pad_id: u32,
        max_length: usize,
    ) -> (Vec<Vec<u32>>, Vec<Vec<bool>>) {
        let (mut ids, mut valid) = crate::generate::left_pad(rows, pad_id);
        if self.pool_include_padding {
            for (row, mask) in ids.iter_mut().zip(valid.iter_mut()) {
                let extra = max_length.saturating_sub(row.len());
                row.splice(0..0, std::iter::repeat_n(pad_id, extra));
                mask.splice(0..0, std::iter::repeat_n(false, extra));
            }
        }
        (ids, valid)
    }

    /// Class logits `[batch, classes]` for left-padded rows.
    pub fn forward(&self, batch: TokenBatch<'_>) -> Result<Tensor<2>, ModelError> {
        let n = batch.ids.first().map_or(0, Vec::len);
        let valid = batch.valid;
        let rope = self.lm.rope(n);
        let mut cache = KvCache::new(self.lm.model.layers.len());
        let hidden = self.lm.model.forward(
            TokenBatch {
                ids: batch.ids,
                valid,
            },
            &rope,
            &mut cache,
        )?;
        Ok(self.pool_and_classify(hidden, valid))
    }

    /// Class logits from the hidden states after the first `start` layers `[batch, seq,
    /// hidden]` (a cached prefix of the frozen layers), left-padded as `valid` says: the
    /// layers above, then the pool and the head. Equals [`SequenceClassifier::forward`] on
    /// the same rows when the mean leaves padding out.
    pub fn forward_prefix(
        &self,
        x: Tensor<3>,
        start: usize,
        valid: &[Vec<bool>],
    ) -> Result<Tensor<2>, ModelError> {
        if self.pool_include_padding {
            return Err(ModelError::Input(
                "a cached prefix holds no padding positions: it cannot pool over padding".into(),
            ));
        }
        let n = x.dims()[1];
        let rope = self.lm.rope(n);
        let mut cache = KvCache::new(self.lm.model.layers.len());
        let hidden = self
            .lm
            .model
            .forward_from(x, start, valid, &rope, &mut cache)?;
        Ok(self.pool_and_classify(hidden, valid))
    }

    /// The (masked) mean over positions, then the head.
    fn pool_and_classify(&self, hidden: Tensor<3>, valid: &[Vec<bool>]) -> Tensor<2> {
        let [b, n, h] = hidden.dims();
        let weights: Vec<f32> = valid
            .iter()
            .flat_map(|row| {
                let real = row.iter().filter(|&&v| v).count().max(1) as f32;
                let include = self.pool_include_padding;
                row.iter().map(move |&v| {
                    if include {
                        1.0 / n as f32
                    } else if v {
                        1.0 / real
                    } else {
                        0.0
                    }
                })
            })
            .collect();
        let device = hidden.device();
        let weights = Tensor::<3>::from_data(TensorData::new(weights, [b, n, 1]), &device);
        let pooled = (hidden * weights).sum_dim(1).reshape([b, h]);
        self.head.forward(pooled)
    }
}

/// `classifier.json`: what a saved head classifies and how its input was pooled.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HeadConfig {
    pub dataset: String,
    pub labels: Vec<String>,
    pub hidden_size: usize,
    pub pool_include_padding: bool,
    pub max_length: usize,
}

pub const HEAD_KEYS: [&str; 4] = [
    "layer_norm.weight",
    "layer_norm.bias",
    "classifier.weight",
    "classifier.bias",
];

/// Writes `classifier_head.safetensors` and `classifier.json` into `dir` (temporary names,
/// then renames, so a killed run leaves the previous files intact).
pub fn save_head(
    head: &ClassifierHead,
    config: &HeadConfig,
    dir: &std::path::Path,
) -> Result<(), ModelError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| ModelError::Format(formats::FormatError::io(dir, e)))?;
    let bias = head
        .classifier
        .bias
        .as_ref()
        .ok_or_else(|| ModelError::Config {
            path: dir.to_path_buf(),
            reason: "the classifier has no bias".into(),
        })?;
    let vector = |name: &str, t: Tensor<1>| -> Result<crate::io::Named, ModelError> {
        Ok((name.to_string(), t.dims().to_vec(), crate::io::values(t)?))
    };
    let weight = head.classifier.weight.to_f32();
    let tensors = [
        vector(HEAD_KEYS[0], head.layer_norm.weight.val())?,
        vector(HEAD_KEYS[1], head.layer_norm.bias.val())?,
        (
            HEAD_KEYS[2].to_string(),
            weight.dims().to_vec(),
            crate::io::values(weight)?,
        ),
        vector(HEAD_KEYS[3], bias.val())?,
    ];
    crate::io::write_safetensors(&dir.join("classifier_head.safetensors"), &tensors)?;
    let cfg = dir.join("classifier.json");
    let text = serde_json::to_string_pretty(config).map_err(|e| ModelError::Config {
        path: cfg.clone(),
        reason: e.to_string(),
    })?;
    crate::io::write_atomic(&cfg, text.as_bytes())
}

/// Reads a head saved by [`save_head`] from a folder on disk (`Folder::disk`) or in memory,
/// checking it fits a model of `hidden` width.
pub fn load_head(
    dir: &formats::Folder,
    hidden: usize,
    device: &Device,
) -> Result<(ClassifierHead, HeadConfig), ModelError> {
    let cfg_path = dir.path("classifier.json");
    let text = dir.read_string("classifier.json")?;
    let config: HeadConfig = serde_json::from_str(&text).map_err(|e| ModelError::Config {
        path: cfg_path.clone(),
        reason: e.to_string(),
    })?;
    let file = dir.path("classifier_head.safetensors");
    let source =
        formats::safetensors::SafetensorsSource::open_file(dir, "classifier_head.safetensors")?;
    let c = config.labels.len();
    let read = |name: &str, shape: Vec<usize>| crate::io::read_shaped(&source, &file, name, shape);
    let t1 = |v: Vec<f32>, n: usize| Tensor::<1>::from_data(TensorData::new(v, [n]), device);
    let head = ClassifierHead {
        layer_norm: LayerNorm {
            weight: Param::from_tensor(t1(read("layer_norm.weight", vec![hidden])?, hidden)),
            bias: Param::from_tensor(t1(read("layer_norm.bias", vec![hidden])?, hidden)),
            eps: 1e-5,
        },
        classifier: Linear::new(
            Tensor::from_data(
                TensorData::new(read("classifier.weight", vec![c, hidden])?, [c, hidden]),
                device,
            ),
            Some(t1(read("classifier.bias", vec![c])?, c)),
        ),
    };
    Ok((head, config))
}
