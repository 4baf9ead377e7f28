//! The LoRA linear op: `forward` launches the WGSL kernel on wgpu, `backward` gives the op
//! its gradients under autodiff.

pub mod backward;
pub mod forward;
