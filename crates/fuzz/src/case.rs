//! Case `i` of a run: which seed, which of its files, and the mutated bytes.

use formats::gguf::GgufFile;

use crate::mutate::{Mutation, Rng, mutate};
use crate::targets::{Seed, Target};

pub struct Case {
    pub index: u64,
    /// The seed's files with one of them mutated.
    pub files: Seed,
    /// The mutated file's name.
    pub mutated: String,
    pub mutations: Vec<Mutation>,
}

/// A stable hash of a target's name, so that targets draw different cases from one seed.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The bytes a format's header occupies; mutations favour them (see [`crate::mutate`]).
/// Called once per seed file ([`crate::targets::SeedFile::new`]).
pub fn header_len(name: &str, bytes: &[u8]) -> usize {
    if name.ends_with(".safetensors") && bytes.len() >= 8 {
        let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
        return (8 + n as usize).min(bytes.len());
    }
    if name.ends_with(".gguf") {
        if let Ok(file) = GgufFile::from_bytes(bytes.to_vec(), name) {
            return file.data_start().min(bytes.len());
        }
    }
    0
}

impl Case {
    pub fn new(target: &Target, run_seed: u64, index: u64) -> Self {
        let mut rng =
            Rng::new(run_seed ^ name_hash(target.name) ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let seed = &target.seeds[rng.below(target.seeds.len())];
        let mutable: Vec<usize> = (0..seed.len()).filter(|&k| seed[k].mutable).collect();
        let pick = mutable[rng.below(mutable.len())];
        let mut files = seed.clone();
        let file = &mut files[pick];
        let (bytes, mutations) = mutate(&file.bytes, &mut rng, file.focus);
        file.bytes = bytes;
        let mutated = file.name.clone();
        Self {
            index,
            files,
            mutated,
            mutations,
        }
    }
}
