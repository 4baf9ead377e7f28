//! Seeded initialisation drawn on the host. A device's own RNG is shared by everything on
//! that device (and differs between backends), so weights drawn there depend on what ran
//! before; drawn here, a seed gives the same adapter or head on every device.

use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A seed for one named tensor of a run seeded with `seed` (FNV-1a over the name).
pub fn derive_seed(seed: u64, name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for b in name.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

/// Uniform values in `[-bound, bound)`.
pub fn uniform(shape: [usize; 2], bound: f64, seed: u64, device: &Device) -> Tensor<2> {
    let mut rng = StdRng::seed_from_u64(seed);
    let values: Vec<f32> = (0..shape[0] * shape[1])
        .map(|_| rng.random_range(-bound..bound) as f32)
        .collect();
    Tensor::from_data(TensorData::new(values, shape), device)
}
