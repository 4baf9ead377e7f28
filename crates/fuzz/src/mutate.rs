//! Deterministic mutations of a seed file: case `i` of a run is a pure function of the
//! run's seed, the target and `i`, so a finding is replayed from its number alone and the
//! supervisor can rebuild any input without the worker having saved it.

/// splitmix64: small, fast and the same on every platform and Rust version.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// The kinds of change a case applies (one to four of them, stacked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation {
    /// Flip one to eight random bits.
    BitFlips,
    /// Cut the file at a random length.
    Truncate,
    /// Overwrite a 4- or 8-byte little-endian field with an extreme value (0, 1, -1, 2³²-1,
    /// 2⁴⁰, 2⁶³-1, 2⁶⁴-1): the counts, lengths and offsets of binary headers.
    ExtremeField,
    /// Replace a run of ASCII digits with an extreme number: the sizes and counts of
    /// text formats (`"num_hidden_layers": 1099511627776`).
    ExtremeNumber,
    /// Copy a span of the file to another place (a duplicated section).
    Duplicate,
    /// Swap two spans (reordered sections).
    Swap,
    /// Remove a span.
    Delete,
    /// Set a byte to a boundary value (0x00, 0xff, 0x7f, 0x80, a quote, a newline, a comma).
    SpecialByte,
}

pub const MUTATIONS: [Mutation; 8] = [
    Mutation::BitFlips,
    Mutation::Truncate,
    Mutation::ExtremeField,
    Mutation::ExtremeNumber,
    Mutation::Duplicate,
    Mutation::Swap,
    Mutation::Delete,
    Mutation::SpecialByte,
];

const EXTREME_U64: [u64; 8] = [
    0,
    1,
    u32::MAX as u64,
    1 << 31,
    1 << 40,
    i64::MAX as u64,
    u64::MAX,
    u64::MAX - 7,
];

const EXTREME_TEXT: [&str; 9] = [
    "0",
    "-1",
    "1099511627776",
    "18446744073709551615",
    "99999999999999999999999",
    "4294967296",
    "1e308",
    "-9223372036854775808",
    "2147483647",
];

const SPECIAL_BYTES: [u8; 8] = [0x00, 0xff, 0x7f, 0x80, b'"', b'\n', b',', b'{'];

/// Where mutations land: binary headers matter more than the bytes of tensor data, so
/// `focus` bytes at the start get three changes in four when the file is longer.
fn position(rng: &mut Rng, len: usize, focus: usize) -> usize {
    if focus > 0 && focus < len && !rng.chance(4) {
        rng.below(focus)
    } else {
        rng.below(len)
    }
}

fn span(rng: &mut Rng, len: usize, focus: usize) -> (usize, usize) {
    let start = position(rng, len, focus);
    let max = (len - start).clamp(1, 64);
    (start, start + 1 + rng.below(max).min(len - start - 1))
}

/// Applies one mutation in place.
pub fn apply(bytes: &mut Vec<u8>, mutation: Mutation, rng: &mut Rng, focus: usize) {
    if bytes.is_empty() {
        bytes.push(SPECIAL_BYTES[rng.below(SPECIAL_BYTES.len())]);
        return;
    }
    let len = bytes.len();
    match mutation {
        Mutation::BitFlips => {
            for _ in 0..1 + rng.below(8) {
                let at = position(rng, len, focus);
                bytes[at] ^= 1 << rng.below(8);
            }
        }
        Mutation::Truncate => bytes.truncate(position(rng, len, focus)),
        Mutation::ExtremeField => {
            let value = EXTREME_U64[rng.below(EXTREME_U64.len())];
            let width = if rng.chance(2) { 4 } else { 8 };
            // Header fields sit at multiples of 4 in GGUF and safetensors' length prefix.
            let at = position(rng, len, focus) & !3;
            let le = value.to_le_bytes();
            for (k, b) in le.iter().take(width).enumerate() {
                if let Some(slot) = bytes.get_mut(at + k) {
                    *slot = *b;
                }
            }
        }
        Mutation::ExtremeNumber => {
            let runs = digit_runs(bytes);
            if runs.is_empty() {
                return apply(bytes, Mutation::BitFlips, rng, focus);
            }
            let (start, end) = runs[rng.below(runs.len())];
            let text = EXTREME_TEXT[rng.below(EXTREME_TEXT.len())].as_bytes();
            bytes.splice(start..end, text.iter().copied());
        }
        Mutation::Duplicate => {
            let (start, end) = span(rng, len, focus);
            let chunk = bytes[start..end].to_vec();
            let at = position(rng, len, focus);
            bytes.splice(at..at, chunk);
        }
        Mutation::Swap => {
            let (a0, a1) = span(rng, len, focus);
            let (b0, b1) = span(rng, len, focus);
            if a1 <= b0 || b1 <= a0 {
                let (first, second) = if a0 < b0 {
                    ((a0, a1), (b0, b1))
                } else {
                    ((b0, b1), (a0, a1))
                };
                let mut out = Vec::with_capacity(len);
                out.extend_from_slice(&bytes[..first.0]);
                out.extend_from_slice(&bytes[second.0..second.1]);
                out.extend_from_slice(&bytes[first.1..second.0]);
                out.extend_from_slice(&bytes[first.0..first.1]);
                out.extend_from_slice(&bytes[second.1..]);
                *bytes = out;
            }
        }
        Mutation::Delete => {
            let (start, end) = span(rng, len, focus);
            bytes.drain(start..end);
        }
        Mutation::SpecialByte => {
            let at = position(rng, len, focus);
            bytes[at] = SPECIAL_BYTES[rng.below(SPECIAL_BYTES.len())];
        }
    }
}

/// `[start, end)` of every run of ASCII digits (at most 4096 of them).
fn digit_runs(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < bytes.len() && runs.len() < 4096 {
        if bytes[i].is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            runs.push((start, i));
        } else {
            i += 1;
        }
    }
    runs
}

/// Case `case` of a run: one to four mutations of `seed_bytes`, chosen by `rng`.
pub fn mutate(seed_bytes: &[u8], rng: &mut Rng, focus: usize) -> (Vec<u8>, Vec<Mutation>) {
    let mut bytes = seed_bytes.to_vec();
    let mut applied = Vec::new();
    for _ in 0..1 + rng.below(4) {
        let m = MUTATIONS[rng.below(MUTATIONS.len())];
        apply(&mut bytes, m, rng, focus);
        applied.push(m);
    }
    (bytes, applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_are_reproducible_and_differ() {
        let seed = b"{\"num_hidden_layers\": 2, \"hidden_size\": 64}".to_vec();
        let a = mutate(&seed, &mut Rng::new(7), 0);
        let b = mutate(&seed, &mut Rng::new(7), 0);
        assert_eq!(a, b);
        let distinct: std::collections::HashSet<Vec<u8>> = (0..200)
            .map(|i| mutate(&seed, &mut Rng::new(i), 0).0)
            .collect();
        assert!(distinct.len() > 150, "{} distinct of 200", distinct.len());
    }

    #[test]
    fn extreme_number_replaces_a_digit_run() {
        let mut hits = 0;
        for i in 0..200 {
            let mut bytes = b"{\"layers\": 2}".to_vec();
            apply(&mut bytes, Mutation::ExtremeNumber, &mut Rng::new(i), 0);
            let text = String::from_utf8(bytes).unwrap();
            assert!(text.starts_with("{\"layers\": ") && text.ends_with('}'));
            hits += usize::from(text != "{\"layers\": 2}");
        }
        assert!(hits > 150);
    }

    #[test]
    fn every_mutation_survives_tiny_inputs() {
        for m in MUTATIONS {
            for len in 0..6 {
                for i in 0..50 {
                    let mut bytes = vec![b'7'; len];
                    apply(&mut bytes, m, &mut Rng::new(i), 2);
                }
            }
        }
    }
}
