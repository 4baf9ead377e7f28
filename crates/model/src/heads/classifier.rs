//! MentalQLM's stage-2 head: the final hidden state, mean-pooled over positions, then
//! LayerNorm(hidden) and Linear(hidden, classes).

use burn::module::{Module, Param};
use burn::tensor::{Device, Distribution, Tensor, TensorData};

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
    /// PyTorch's defaults: LayerNorm ones/zeros (eps 1e-5), Linear uniform(±1/sqrt(hidden)).
    pub fn init(hidden: usize, classes: usize, device: &Device) -> Self {
        let bound = 1.0 / (hidden as f64).sqrt();
        let weight = Tensor::random(
            [classes, hidden],
            Distribution::Uniform(-bound, bound),
            device,
        );
        let bias = Tensor::random([classes], Distribution::Uniform(-bound, bound), device);
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
        let b = batch.ids.len();
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
        let h = hidden.dims()[2];
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
        Ok(self.head.forward(pooled))
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

const HEAD_KEYS: [&str; 4] = [
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
    use safetensors::tensor::{Dtype, TensorView};
    let io =
        |p: &std::path::Path, e: std::io::Error| ModelError::Format(formats::FormatError::io(p, e));
    let bad = |p: &std::path::Path, e: String| ModelError::Config {
        path: p.to_path_buf(),
        reason: e,
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let bias = head
        .classifier
        .bias
        .as_ref()
        .map(|b| b.val().unsqueeze_dim::<2>(0));
    let bias = bias.ok_or_else(|| bad(dir, "the classifier has no bias".into()))?;
    let tensors: [Tensor<2>; 4] = [
        head.layer_norm.weight.val().unsqueeze_dim(0),
        head.layer_norm.bias.val().unsqueeze_dim(0),
        head.classifier.weight.val(),
        bias,
    ];
    let mut shapes = Vec::new();
    let mut bytes = Vec::new();
    for (key, t) in HEAD_KEYS.iter().zip(tensors) {
        let dims = t.dims();
        // 1-D tensors were lifted to [1, n] for one array type; store them 1-D again.
        shapes.push(if *key == "classifier.weight" {
            dims.to_vec()
        } else {
            vec![dims[1]]
        });
        let v = t
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| ModelError::Readback(format!("{e:?}")))?;
        bytes.push(v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>());
    }
    let views = HEAD_KEYS
        .iter()
        .zip(shapes.iter().zip(&bytes))
        .map(|(k, (shape, b))| {
            TensorView::new(Dtype::F32, shape.clone(), b)
                .map(|v| (k.to_string(), v))
                .map_err(|e| bad(dir, e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let file = dir.join("classifier_head.safetensors");
    let tmp = dir.join("classifier_head.safetensors.tmp");
    safetensors::serialize_to_file(views, None, &tmp).map_err(|e| bad(&tmp, e.to_string()))?;
    std::fs::rename(&tmp, &file).map_err(|e| io(&file, e))?;
    let cfg = dir.join("classifier.json");
    let tmp = dir.join("classifier.json.tmp");
    let text = serde_json::to_string_pretty(config).map_err(|e| bad(&cfg, e.to_string()))?;
    std::fs::write(&tmp, text).map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, &cfg).map_err(|e| io(&cfg, e))
}

/// Reads a head saved by [`save_head`], checking it fits a model of `hidden` width.
pub fn load_head(
    dir: &std::path::Path,
    hidden: usize,
    device: &Device,
) -> Result<(ClassifierHead, HeadConfig), ModelError> {
    use formats::TensorSource;
    let cfg_path = dir.join("classifier.json");
    let text = std::fs::read_to_string(&cfg_path)
        .map_err(|e| ModelError::Format(formats::FormatError::io(&cfg_path, e)))?;
    let config: HeadConfig = serde_json::from_str(&text).map_err(|e| ModelError::Config {
        path: cfg_path.clone(),
        reason: e.to_string(),
    })?;
    let file = dir.join("classifier_head.safetensors");
    let source = formats::safetensors::SafetensorsSource::open(&file)?;
    let c = config.labels.len();
    let read = |name: &str, shape: Vec<usize>| -> Result<Vec<f32>, ModelError> {
        let info = source.info(name).ok_or_else(|| ModelError::MissingTensor {
            name: name.into(),
            origin: file.display().to_string(),
        })?;
        if info.shape != shape {
            return Err(ModelError::Shape {
                name: name.into(),
                origin: file.display().to_string(),
                expected: shape,
                actual: info.shape,
            });
        }
        Ok(source.read_f32(name)?.0)
    };
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
