//! The trainable parameters of a model by name, and AdamW over them.
//!
//! The optimizer is ours rather than Burn's because its state must outlive the process: a
//! checkpoint stores each moment under the parameter's PEFT/head name, so `--resume` restores
//! it exactly, whatever ids a fresh process gives the parameters. The update is PyTorch's
//! `torch.optim.AdamW` (decoupled weight decay, bias-corrected moments), which LLaMA-Factory
//! and the paper's classifier code use, and clipping is `clip_grad_norm_` over all parameters
//! together (Burn's clips each tensor on its own).

use std::collections::BTreeMap;

use burn::module::Param;
use burn::tensor::{Gradients, Tensor};
use model::ModelError;
use model::heads::classifier::{HEAD_KEYS, SequenceClassifier};
use model::heads::lm::CausalLm;
use model::io::Named;
use model::lora::peft_io::peft_key;

/// A trainable parameter, whatever its rank.
pub enum ParamMut<'a> {
    Vector(&'a mut Param<Tensor<1>>),
    Matrix(&'a mut Param<Tensor<2>>),
}

impl ParamMut<'_> {
    pub fn dims(&self) -> Vec<usize> {
        match self {
            ParamMut::Vector(p) => p.dims().to_vec(),
            ParamMut::Matrix(p) => p.dims().to_vec(),
        }
    }

    /// The value flattened to `[n]`, without autodiff.
    pub fn flat(&self) -> Tensor<1> {
        match self {
            ParamMut::Vector(p) => p.val().inner(),
            ParamMut::Matrix(p) => {
                let [a, b] = p.dims();
                p.val().inner().reshape([a * b])
            }
        }
    }

    /// The gradient flattened to `[n]`, if the parameter took part in the loss.
    pub fn grad(&self, grads: &Gradients) -> Option<Tensor<1>> {
        match self {
            ParamMut::Vector(p) => p.val().grad(grads),
            ParamMut::Matrix(p) => {
                let [a, b] = p.dims();
                p.val().grad(grads).map(|g| g.reshape([a * b]))
            }
        }
    }

    /// Replaces the value (given flat, without autodiff) by a new trainable leaf on the
    /// parameter's device, keeping its id.
    pub fn set_flat(&mut self, flat: Tensor<1>) {
        match self {
            ParamMut::Vector(p) => {
                let id = p.id;
                let tracked = p.val().is_autodiff();
                **p = Param::initialized(id, leaf(flat, tracked));
            }
            ParamMut::Matrix(p) => {
                let (id, dims) = (p.id, p.dims());
                let tracked = p.val().is_autodiff();
                **p = Param::initialized(id, leaf(flat.reshape(dims), tracked));
            }
        }
    }
}

fn flat(values: &[f32], device: &burn::tensor::Device) -> Tensor<1> {
    Tensor::from_data(
        burn::tensor::TensorData::new(values.to_vec(), [values.len()]),
        device,
    )
}

fn leaf<const D: usize>(t: Tensor<D>, tracked: bool) -> Tensor<D> {
    if tracked {
        t.autodiff().require_grad()
    } else {
        t
    }
}

/// A model whose trainable parameters can be listed by stable names: the PEFT key of every
/// LoRA factor and, for the classifier, `head.` + the head's file keys.
pub trait Trainable {
    fn trainable(&mut self) -> Vec<(String, ParamMut<'_>)>;

    /// Every trainable tensor's name, shape and values, for checkpoints.
    fn trainable_tensors(&mut self) -> Result<Vec<Named>, ModelError> {
        self.trainable()
            .into_iter()
            .map(|(name, p)| Ok((name, p.dims(), model::io::values(p.flat())?)))
            .collect()
    }

    /// Sets every trainable tensor from `tensors` (a checkpoint): each must be present with
    /// the same shape.
    fn load_trainable(&mut self, tensors: &[Named], origin: &str) -> Result<(), ModelError> {
        let by_name: BTreeMap<&str, &Named> = tensors.iter().map(|t| (t.0.as_str(), t)).collect();
        for (name, mut p) in self.trainable() {
            let Some((_, shape, values)) = by_name.get(name.as_str()) else {
                return Err(ModelError::MissingTensor {
                    name,
                    origin: origin.to_string(),
                });
            };
            if *shape != p.dims() {
                return Err(ModelError::Shape {
                    name,
                    origin: origin.to_string(),
                    expected: p.dims(),
                    actual: shape.clone(),
                });
            }
            let device = p.flat().device();
            p.set_flat(flat(values, &device));
        }
        Ok(())
    }
}

impl Trainable for CausalLm {
    fn trainable(&mut self) -> Vec<(String, ParamMut<'_>)> {
        let mut out = Vec::new();
        for (layer, path, linear) in self.model.linears_mut() {
            if let Some(lora) = linear.lora.as_mut() {
                out.push((
                    peft_key(layer, path, "lora_A"),
                    ParamMut::Matrix(&mut lora.lora_A),
                ));
                out.push((
                    peft_key(layer, path, "lora_B"),
                    ParamMut::Matrix(&mut lora.lora_B),
                ));
            }
        }
        out
    }
}

impl Trainable for SequenceClassifier {
    fn trainable(&mut self) -> Vec<(String, ParamMut<'_>)> {
        let mut out = self.lm.trainable();
        let head = &mut self.head;
        let name = |i: usize| format!("head.{}", HEAD_KEYS[i]);
        out.push((name(0), ParamMut::Vector(&mut head.layer_norm.weight)));
        out.push((name(1), ParamMut::Vector(&mut head.layer_norm.bias)));
        // A head is made dense (`ClassifierHead::init`, `load_head`).
        if let Some(weight) = head.classifier.weight.dense_mut() {
            out.push((name(2), ParamMut::Matrix(weight)));
        }
        if let Some(bias) = head.classifier.bias.as_mut() {
            out.push((name(3), ParamMut::Vector(bias)));
        }
        out
    }
}

/// Flat gradients by parameter name.
pub type Grads = BTreeMap<String, Tensor<1>>;

/// The gradients of every trainable parameter from one backward pass, scaled by `scale`
/// and added to `acc` (gradient accumulation).
pub fn accumulate(acc: &mut Grads, model: &mut impl Trainable, grads: &Gradients, scale: f64) {
    for (name, p) in model.trainable() {
        let Some(g) = p.grad(grads) else { continue };
        let g = if scale == 1.0 { g } else { g * scale };
        match acc.remove(&name) {
            Some(sum) => acc.insert(name, sum + g),
            None => acc.insert(name, g),
        };
    }
}

/// Scales all gradients together so their joint L2 norm is at most `max_norm` (PyTorch's
/// `clip_grad_norm_`, eps 1e-6). Returns the norm before clipping.
pub fn clip_global_norm(grads: &mut Grads, max_norm: Option<f64>) -> Result<f64, ModelError> {
    let Some(first) = grads.values().next() else {
        return Ok(0.0);
    };
    let device = first.device();
    let mut total = Tensor::<1>::zeros([1], &device);
    for g in grads.values() {
        total = total + g.clone().square().sum();
    }
    let norm = (model::io::values(total)?[0] as f64).sqrt();
    if let Some(max) = max_norm
        && norm > max
    {
        let factor = max / (norm + 1e-6);
        for g in grads.values_mut() {
            *g = g.clone() * factor;
        }
    }
    Ok(norm)
}

/// AdamW as `torch.optim.AdamW` (betas 0.9/0.999, eps 1e-8 unless set).
pub struct AdamW {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Updates taken so far (PyTorch's per-parameter `step`; all parameters move together).
    pub steps: u64,
    /// First and second moments by parameter name, flat.
    moments: BTreeMap<String, (Tensor<1>, Tensor<1>)>,
}

impl AdamW {
    pub fn new(weight_decay: f64) -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            steps: 0,
            moments: BTreeMap::new(),
        }
    }

    /// One update of every parameter that has a gradient.
    pub fn step(&mut self, model: &mut impl Trainable, grads: &Grads, lr: f64) {
        self.steps += 1;
        let t = self.steps as i32;
        let (c1, c2) = (1.0 - self.beta1.powi(t), 1.0 - self.beta2.powi(t));
        for (name, mut p) in model.trainable() {
            let Some(g) = grads.get(&name) else { continue };
            let (m, v) = match self.moments.remove(&name) {
                Some((m, v)) => (m, v),
                None => (g.zeros_like(), g.zeros_like()),
            };
            let m = m * self.beta1 + g.clone() * (1.0 - self.beta1);
            let v = v * self.beta2 + g.clone().square() * (1.0 - self.beta2);
            let denom = (v.clone() / c2).sqrt() + self.eps;
            let value = p.flat() * (1.0 - lr * self.weight_decay);
            p.set_flat(value - m.clone() / denom * (lr / c1));
            self.moments.insert(name, (m, v));
        }
    }

    /// The moments as named tensors (`<name>.exp_avg`, `<name>.exp_avg_sq`, PyTorch's names).
    pub fn state_tensors(&self) -> Result<Vec<Named>, ModelError> {
        let mut out = Vec::with_capacity(self.moments.len() * 2);
        for (name, (m, v)) in &self.moments {
            let n = m.dims()[0];
            out.push((
                format!("{name}.exp_avg"),
                vec![n],
                model::io::values(m.clone())?,
            ));
            out.push((
                format!("{name}.exp_avg_sq"),
                vec![n],
                model::io::values(v.clone())?,
            ));
        }
        Ok(out)
    }

    /// Restores moments written by [`AdamW::state_tensors`] after `steps` updates.
    pub fn load_state(
        &mut self,
        tensors: &[Named],
        steps: u64,
        model: &mut impl Trainable,
        origin: &str,
    ) -> Result<(), ModelError> {
        let Some(device) = model.trainable().first().map(|(_, p)| p.flat().device()) else {
            return Err(ModelError::Input(
                "the model has no trainable parameters".into(),
            ));
        };
        let device = &device;
        let by_name: BTreeMap<&str, &Vec<f32>> =
            tensors.iter().map(|t| (t.0.as_str(), &t.2)).collect();
        self.moments.clear();
        for (name, _, values) in tensors {
            let Some(param) = name.strip_suffix(".exp_avg") else {
                continue;
            };
            let Some(sq) = by_name.get(format!("{param}.exp_avg_sq").as_str()) else {
                return Err(ModelError::MissingTensor {
                    name: format!("{param}.exp_avg_sq"),
                    origin: origin.to_string(),
                });
            };
            let (m, v) = (flat(values, device), flat(sq, device));
            self.moments.insert(param.to_string(), (m, v));
        }
        self.steps = steps;
        Ok(())
    }
}
