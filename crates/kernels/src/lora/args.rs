//! What a launch binds: every storage binding read_write, a one-element placeholder (made
//! once per device) for each binding it leaves unused, and the integer parameters as
//! CubeCL's per-launch uniform.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use burn::backend::DType;
use burn::backend::wgpu::CubeTensor;
use burn_cubecl::CubeDevice;
use burn_cubecl::cubecl::ir::attributes::BufferIOAttr;
use burn_cubecl::cubecl::server::{KernelArguments, MetadataBindingInfo};

use crate::shaders;

/// The bindings a launch may leave unused, each with its own placeholder: one dispatch
/// may not bind one writable range twice.
#[derive(Clone, Copy)]
pub(super) enum Unused {
    Scales,
    Mins,
    T,
    F,
    Bias,
}

/// A one-element f32 tensor for a binding a launch does not use, made once per device and
/// binding (on a launch-bound GPU a fresh upload per launch is host time worth saving).
/// The kernels never read or write it: their parameters say the binding is unused.
pub(super) fn placeholder(like: &CubeTensor, slot: Unused) -> CubeTensor {
    type Slots = [CubeTensor; 5];
    static MADE: LazyLock<Mutex<HashMap<CubeDevice, Slots>>> = LazyLock::new(Default::default);
    let mut made = MADE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let slots = made.entry(like.device.clone()).or_insert_with(|| {
        let client = &like.client;
        std::array::from_fn(|_| {
            CubeTensor::new_contiguous(
                client.clone(),
                like.device.clone(),
                [1].into(),
                client.create_from_slice(bytemuck::cast_slice(&[0f32])),
                DType::F32,
            )
        })
    });
    slots[slot as usize].clone()
}

/// The storage bindings in order, each read_write, then the integer parameters as CubeCL's
/// per-launch uniform (bound after the buffers; cached by value, so a repeated shape uploads
/// nothing), padded to the shaders' [`shaders::PARAM_WORDS`] words.
pub(super) fn arguments(tensors: &[&CubeTensor], params: &[usize]) -> KernelArguments {
    assert!(
        params.len() <= shaders::PARAM_WORDS,
        "{} parameters for a uniform of {}",
        params.len(),
        shaders::PARAM_WORDS
    );
    let mut words = [0u32; shaders::PARAM_WORDS];
    for (word, &value) in words.iter_mut().zip(params) {
        *word = value as u32;
    }
    // Two 32-bit words per 64-bit info word, the first in the low half (little-endian).
    let info = words
        .chunks(2)
        .map(|pair| u64::from(pair[0]) | (u64::from(pair[1]) << 32))
        .collect();
    tensors
        .iter()
        .fold(KernelArguments::new(), |args, t| {
            args.with_buffer_io(t.handle.clone().binding(), BufferIOAttr::ReadWrite)
        })
        .with_info(MetadataBindingInfo::custom(info))
}
