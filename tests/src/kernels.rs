//! Our WGSL LoRA kernels: every shader passes naga's validation (no GPU needed), and on
//! wgpu (Mesa's llvmpipe here) the fused forward, every gradient of the op (the backward
//! kernels) and the forward over a quantized base equal the same computation in plain Burn
//! ops, for shapes that are and are not multiples of the tiles, through each schedule: up
//! to 8 rows `lora_rows.wgsl`, more rows CubeCL's matmul and `lora_epilogue.wgsl` (f32
//! base) or `lora_matmul.wgsl` (quantized base, and every product under
//! `MENTALQLM_LORA_SCHEDULE=tiled-split`, split over k where the rules split it), whichever
//! the device times faster where two are close (`lora::tune`), and the rules alone.

use burn::backend::wgpu::wgpu::naga;
use burn::tensor::{Device, Tensor};

use crate::max_abs_diff;

#[test]
fn every_shader_passes_naga_validation() {
    let rendered = kernels::shaders::all_rendered();
    let mut on_disk: Vec<String> = std::fs::read_dir(crate::workspace_root().join("shaders"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".wgsl"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = rendered.iter().map(|(n, _)| n.to_string()).collect();
    listed.sort();
    listed.dedup();
    assert_eq!(
        listed, on_disk,
        "shaders.rs must list every file of shaders/"
    );
    for (name, text) in rendered {
        assert!(
            !text.contains("{{"),
            "{name}: a placeholder was left unfilled"
        );
        let module = naga::front::wgsl::parse_str(&text)
            .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(&text)));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::default(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(&text)));
    }
}

/// The CPU backend, and wgpu where an adapter exists.
/// The CPU and wgpu, with the settings the environment names installed first (this test
/// binary is the edge here, as `main` is the CLI's): a child of
/// `other_schedules_pass_the_same_checks` runs its checks under other schedules.
fn devices() -> Vec<Device> {
    static SETTINGS: std::sync::Once = std::sync::Once::new();
    SETTINGS.call_once(|| {
        let (settings, notes) =
            kernels::settings::Settings::from_variables(|name| std::env::var(name).ok());
        assert!(notes.is_empty(), "{notes:?}");
        kernels::settings::install(settings);
    });
    let mut devices = vec![crate::cpu()];
    devices.extend(crate::wgpu());
    devices
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    model::io::values(t).unwrap()
}

/// The op as plain Burn ops (what the model did before the kernels).
fn plain(
    x: Tensor<2>,
    w: Tensor<2>,
    a: Tensor<2>,
    b: Tensor<2>,
    bias: Tensor<1>,
    s: f64,
) -> Tensor<2> {
    x.clone().matmul(w.transpose())
        + bias.unsqueeze_dim(0)
        + x.matmul(a.transpose()).matmul(b.transpose()) * s
}

type Operands = (Tensor<2>, Tensor<2>, Tensor<2>, Tensor<2>, Tensor<1>);

fn operands(m: usize, k: usize, n: usize, r: usize, device: &Device) -> Operands {
    // Narrower for long sums, so the outputs stay near 1 and 1e-4 is a tight bound.
    let h = (64.0 / k.max(n) as f64).sqrt().min(1.0);
    let u = (-h, h);
    let seed = (m * 1_000_003 + k * 1009 + n * 31 + r) as u64;
    (
        crate::uniform([m, k], u, seed, device),
        crate::uniform([n, k], u, seed + 1, device),
        crate::uniform([r, k], u, seed + 2, device),
        crate::uniform([n, r], u, seed + 3, device),
        crate::uniform([n], u, seed + 4, device),
    )
}

/// `(m, k, n, r)`: up to 8 rows (`lora_rows.wgsl`, k past its 32 lanes too) and more (the
/// epilogue, with r over its 16 ranks per stage too).
const SHAPES: [(usize, usize, usize, usize); 9] = [
    (1, 64, 96, 8),
    (8, 150, 37, 5),
    (17, 40, 33, 20),
    (7, 33, 45, 3),
    (32, 32, 32, 4),
    (50, 100, 70, 16),
    (129, 48, 65, 9),
    // Split products (`schedule::split_k`, from 128 rows): the forward in 4 slices of
    // k = 2048, the input gradient (inner dimension n = 1024) in 2.
    (130, 2048, 24, 3),
    (128, 40, 1024, 4),
];

#[test]
fn fused_forward_equals_burn_ops_on_wgpu_and_cpu() {
    for device in devices() {
        for (m, k, n, r) in SHAPES {
            let (x, w, a, b, bias) = operands(m, k, n, r, &device);
            let want = values(plain(
                x.clone(),
                w.clone(),
                a.clone(),
                b.clone(),
                bias.clone(),
                1.7,
            ));
            let got = values(kernels::lora_linear(x, w, a, b, bias, 1.7));
            let diff = max_abs_diff(&got, &want);
            assert!(
                diff < 1e-4,
                "{device:?} m{m} k{k} n{n} r{r}: max |Δ| {diff}"
            );
        }
    }
}

#[test]
fn gradients_equal_burn_autodiff_on_wgpu_and_cpu() {
    for device in devices() {
        let device = device.autodiff();
        for (m, k, n, r) in SHAPES {
            let (x, w, a, b, bias) = operands(m, k, n, r, &device);
            let track = |t: &Tensor<2>| t.clone().detach().require_grad();
            let weights = crate::uniform([m, n], (-1.0, 1.0), 7, &device);
            let run = |fused: bool| {
                let (x, w, a, b) = (track(&x), track(&w), track(&a), track(&b));
                let bias = bias.clone().detach().require_grad();
                let y = if fused {
                    kernels::lora_linear(
                        x.clone(),
                        w.clone(),
                        a.clone(),
                        b.clone(),
                        bias.clone(),
                        0.5,
                    )
                } else {
                    plain(
                        x.clone(),
                        w.clone(),
                        a.clone(),
                        b.clone(),
                        bias.clone(),
                        0.5,
                    )
                };
                let grads = (y * weights.clone()).sum().backward();
                let g2 = |t: &Tensor<2>| values(t.grad(&grads).expect("tracked"));
                [
                    g2(&x),
                    g2(&w),
                    g2(&a),
                    g2(&b),
                    values(bias.grad(&grads).expect("tracked")),
                ]
            };
            let (got, want) = (run(true), run(false));
            for (name, (g, e)) in ["x", "w", "a", "b", "bias"]
                .iter()
                .zip(got.iter().zip(&want))
            {
                let diff = max_abs_diff(g, e);
                assert!(
                    diff < 1e-4,
                    "{device:?} m{m} k{k} n{n} r{r}: d{name} max |Δ| {diff}"
                );
            }
        }
    }
}

/// The checks above under the other schedules, each in a child process of this test binary
/// (the variables are installed once per process, by `devices`): `tiled-split` sends every product to
/// `lora_matmul.wgsl` (which by default takes only a quantized base over more than 8 rows),
/// computing `x·Aᵀ` and `g·B` in the same pass, over slices of k where the rules split one,
/// the epilogue adding them up; `rules` keeps the rules untimed, so the kernels that lose a
/// timed close call in this process (`lora::tune`) are checked too, and with it
/// `MENTALQLM_LORA_FACTORS=matmul` takes the factor gradients as two products, where by
/// default `lora_factors.wgsl` computes both.
#[test]
fn other_schedules_pass_the_same_checks() {
    if std::env::var_os("MENTALQLM_LORA_SCHEDULE").is_some() {
        return; // the child itself, if a filter ever selects this test there
    }
    for (schedule, factors, checks) in [
        (
            "tiled-split",
            "auto",
            &[
                "kernels::fused_forward_equals_burn_ops_on_wgpu_and_cpu",
                "kernels::gradients_equal_burn_autodiff_on_wgpu_and_cpu",
                "kernels::quantized_forward_equals_dequantize_then_matmul",
            ][..],
        ),
        (
            "rules",
            "matmul",
            &[
                "kernels::fused_forward_equals_burn_ops_on_wgpu_and_cpu",
                "kernels::gradients_equal_burn_autodiff_on_wgpu_and_cpu",
                "kernels::quantized_forward_equals_dequantize_then_matmul",
            ][..],
        ),
    ] {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "--test-threads", "2"])
            .args(checks)
            .env("MENTALQLM_LORA_SCHEDULE", schedule)
            .env("MENTALQLM_LORA_FACTORS", factors)
            .output()
            .expect("the test binary runs itself");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let passed = format!("test result: ok. {} passed", checks.len());
        assert!(
            out.status.success() && stdout.contains(&passed),
            "under MENTALQLM_LORA_SCHEDULE={schedule} MENTALQLM_LORA_FACTORS={factors}:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Natively, where two kernels are close (more than 8 rows over an f32 base: CubeCL's
/// matmul with the epilogue, or the tiled kernel) both are timed on the device the first
/// time a shape is seen, the faster is kept, and the other row counts of its power-of-two
/// class reuse it; the input gradient, which reads W transposed, is timed on its own.
#[test]
fn close_calls_are_timed_once_and_the_faster_kept() {
    use kernels::lora::tune::{Decision, decisions};
    use kernels::schedule::Schedule;
    use kernels::shaders::Tile;
    if std::env::var_os("MENTALQLM_LORA_SCHEDULE").is_some() {
        return; // nothing is timed under another schedule
    }
    let Some(device) = crate::wgpu() else { return };
    let (k, n, r) = (176, 88, 6); // a shape no other test uses
    let class = |d: &&Decision, w_transposed: bool| {
        d.key.rows.next_power_of_two() == 256
            && [d.key.depth, d.key.outputs] == if w_transposed { [n, k] } else { [k, n] }
            && d.key.bits == 32
            && d.key.w_transposed == w_transposed
    };
    for m in [200, 250] {
        let device = device.clone().autodiff();
        let (x, w, a, b, bias) = operands(m, k, n, r, &device);
        let want = values(plain(
            x.clone().inner(),
            w.clone().inner(),
            a.clone().inner(),
            b.clone().inner(),
            bias.clone().inner(),
            0.8,
        ));
        let x = x.require_grad();
        let y = kernels::lora_linear(x.clone(), w, a, b, bias, 0.8);
        let diff = max_abs_diff(&values(y.clone().inner()), &want);
        assert!(diff < 1e-4, "m{m}: max |Δ| {diff}");
        let _ = y.sum().backward();
    }
    let made = decisions();
    for w_transposed in [false, true] {
        let found: Vec<&Decision> = made.iter().filter(|d| class(d, w_transposed)).collect();
        assert_eq!(
            found.len(),
            1,
            "one decision for 256 rows, W transposed: {w_transposed}: {made:?}"
        );
        let d = found[0];
        assert_eq!(d.key.rows, 200, "timed on the first row count of its class");
        let [(first, t0), (second, t1)] = d.rivals[..] else {
            panic!("two rivals, the product is not split: {d:?}")
        };
        assert_eq!(
            [first, second],
            [
                Schedule::Epilogue,
                Schedule::Tiled(Tile::for_rows(200, &kernels::settings::Settings::DEFAULT))
            ]
        );
        assert!(
            t0.is_finite() && t1.is_finite() && t0 > 0.0 && t1 > 0.0,
            "{d:?}"
        );
        assert_eq!(d.chosen, if t1 < t0 { second } else { first }, "{d:?}");
    }
}

/// The model with a PEFT adapter gives the same logits with the fused op on and off.
#[test]
fn model_logits_equal_with_kernels_on_and_off() {
    let row: Vec<u32> = (0..20).map(|i| (i * 13 + 7) % 250).collect();
    for device in devices() {
        let mut lm = model::load_model(
            &crate::fixture("tiny/llama"),
            &device,
            model::load::LoadOptions::default(),
        )
        .unwrap()
        .model;
        model::lora::peft_io::load_adapter(
            &mut lm,
            &formats::Folder::disk(&crate::fixture("lora/llama-adapter")),
        )
        .unwrap();
        let set = |lm: &mut model::CausalLm, on: bool| {
            let mut n = 0;
            for (_, _, linear) in lm.model.linears_mut() {
                if let Some(lora) = linear.lora.as_mut() {
                    lora.fused = on;
                    n += 1;
                }
            }
            n
        };
        let layers = lm.model.layers.len();
        assert_eq!(
            set(&mut lm, true),
            7 * layers,
            "every projection has an adapter"
        );
        let on = crate::full_logits(&lm, &row);
        set(&mut lm, false);
        let off = crate::full_logits(&lm, &row);
        let diff = max_abs_diff(&on, &off);
        assert!(diff < 1e-4, "{device:?}: logits differ by {diff}");
    }
}

/// `[n, k]` weights with k a whole number of 32-value blocks; m and n are not multiples of
/// the 32-wide tiles, and 150 output rows span several of them. Up to 64 rows take
/// `lora_rows.wgsl` in blocks of 8 (19 ends in a block of 3), 65 the tiled kernel, and 130
/// rows over k = 1024 are split in 2 slices where the tiled kernel is (`tiled-split`, or
/// timed faster).
const QUANT_SHAPES: [(usize, usize, usize, usize); 7] = [
    (1, 32, 45, 8),
    (7, 64, 33, 3),
    (8, 96, 150, 4),
    (19, 64, 37, 5),
    (40, 96, 70, 16),
    (65, 160, 32, 4),
    (130, 1024, 24, 3),
];

const FORMATS: [QuantFormat; 3] = [QuantFormat::Q8_0, QuantFormat::Q4_0, QuantFormat::Q4_1];

use kernels::{PackedWeight, QuantFormat, QuantizedLinear};

/// The quantized-base forward equals dequantize-then-matmul, with the dequantization done
/// by the GGUF reader (ggml's reference formulas), not by the kernel's packing.
#[test]
fn quantized_forward_equals_dequantize_then_matmul() {
    for device in devices() {
        for format in FORMATS {
            for (m, k, n, r) in QUANT_SHAPES {
                let (x, w, a, b, bias) = operands(m, k, n, r, &device);
                let gguf = kernels::quant::quantize_gguf(format, &values(w));
                let dequantized =
                    formats::dequant::dequantize(format.ggml(), &gguf, n * k).unwrap();
                let w = Tensor::<2>::from_data(
                    burn::tensor::TensorData::new(dequantized, [n, k]),
                    &device,
                );
                let want = values(plain(x.clone(), w, a.clone(), b.clone(), bias.clone(), 1.3));
                let packed = PackedWeight::from_gguf(format.ggml(), &gguf, n, k).unwrap();
                let q = QuantizedLinear::new(&packed, &device);
                let got = values(kernels::lora_linear_quantized(x, &q, a, b, bias, 1.3));
                let diff = max_abs_diff(&got, &want);
                assert!(
                    diff < 1e-4,
                    "{device:?} {format:?} m{m} k{k} n{n} r{r}: max |Δ| {diff}"
                );
            }
        }
    }
}

/// On the CPU a batch of up to `CHUNKED_ROWS` decoding rows reads the codes 8 rows at a
/// time, and each row's base product equals, to the bit, that row's product alone.
#[test]
fn a_batch_of_decoding_rows_gives_each_row_its_bits_alone() {
    let device = crate::cpu();
    let (m, k, n, r) = (kernels::lora::cpu_quantized::CHUNKED_ROWS, 96, 70, 4);
    let (x, w, a, b, bias) = operands(m, k, n, r, &device);
    let gguf = kernels::quant::quantize_gguf(QuantFormat::Q4_1, &values(w));
    let packed = PackedWeight::from_gguf(QuantFormat::Q4_1.ggml(), &gguf, n, k).unwrap();
    let q = QuantizedLinear::new(&packed, &device);
    let all = values(kernels::lora_linear_quantized(
        x.clone(),
        &q,
        a.clone(),
        b.clone(),
        bias.clone(),
        0.0,
    ));
    for i in [0, 7, 8, 19, m - 1] {
        let row = x.clone().narrow(0, i, 1);
        let alone = values(kernels::lora_linear_quantized(
            row,
            &q,
            a.clone(),
            b.clone(),
            bias.clone(),
            0.0,
        ));
        assert!(
            alone
                .iter()
                .zip(&all[i * n..(i + 1) * n])
                .all(|(p, q)| p.to_bits() == q.to_bits()),
            "row {i} of {m}: max |Δ| {}",
            max_abs_diff(&alone, &all[i * n..(i + 1) * n])
        );
    }
}

/// A real projection of the default model (its first Q4_1 layer weight) through the
/// quantized kernel.
#[test]
fn quantized_forward_on_a_default_model_weight() {
    let path = crate::workspace_root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let gguf = formats::gguf::GgufFile::open(&path).expect("run scripts/setup-model.sh");
    let name = gguf
        .tensors()
        .iter()
        .find(|t| t.name.starts_with("blk.") && t.ggml_type == formats::dequant::GgmlType::Q4_1)
        .map(|t| t.name.clone())
        .expect("the default model has Q4_1 layer weights");
    let raw = gguf.read_raw(&name).unwrap();
    let [n, k] = [raw.shape()[0], raw.shape()[1]];
    let dequantized = formats::dequant::dequantize(raw.ggml_type, raw.bytes, n * k).unwrap();
    let packed = PackedWeight::from_gguf(raw.ggml_type, raw.bytes, n, k).unwrap();
    for device in devices() {
        let (x, _, a, b, bias) = operands(5, k, n, 8, &device);
        let w = Tensor::<2>::from_data(
            burn::tensor::TensorData::new(dequantized.clone(), [n, k]),
            &device,
        );
        let want = values(plain(x.clone(), w, a.clone(), b.clone(), bias.clone(), 0.5));
        let q = QuantizedLinear::new(&packed, &device);
        let got = values(kernels::lora_linear_quantized(x, &q, a, b, bias, 0.5));
        let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
        let diff = max_abs_diff(&got, &want);
        assert!(
            diff < 1e-4 * scale,
            "{device:?} {name} [{n}, {k}]: max |Δ| {diff} (|y| ≤ {scale})"
        );
    }
}

/// Half floats (`--weights f16`): the forward over F16 codes equals the matmul over the same
/// values widened on the host, on every device (the CPU's kernels for a few rows and for
/// many; elsewhere the backend-op decoding), and a table lookup gives the rows exactly.
/// The weights hold the awkward halves: subnormals, both zeros, the largest finite value.
#[test]
fn half_float_forward_equals_the_widened_weight() {
    let special = [6.0e-8f32, -6.0e-8, 3.0e-5, 0.0, -0.0, 1.0e-4, -2.5];
    for device in devices() {
        for (m, k, n, r) in QUANT_SHAPES {
            let (x, w, a, b, bias) = operands(m, k, n, r, &device);
            let mut w = values(w);
            let len = w.len();
            for (i, v) in special.iter().enumerate() {
                w[(i * 131) % len] = *v;
            }
            let halves = kernels::quant::quantize_gguf(QuantFormat::F16, &w);
            let widened: Vec<f32> = halves
                .chunks_exact(2)
                .map(|h| half::f16::from_le_bytes([h[0], h[1]]).to_f32())
                .collect();
            let wt = Tensor::<2>::from_data(
                burn::tensor::TensorData::new(widened.clone(), [n, k]),
                &device,
            );
            let want = values(plain(
                x.clone(),
                wt,
                a.clone(),
                b.clone(),
                bias.clone(),
                1.3,
            ));
            let packed = PackedWeight::from_gguf(QuantFormat::F16.ggml(), &halves, n, k).unwrap();
            let q = QuantizedLinear::new(&packed, &device);
            assert_eq!(q.format, QuantFormat::F16);
            let got = values(kernels::lora_linear_quantized(x, &q, a, b, bias, 1.3));
            let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
            let diff = max_abs_diff(&got, &want);
            assert!(
                diff < 1e-5 * scale,
                "{device:?} F16 m{m} k{k} n{n} r{r}: max |Δ| {diff} (|y| ≤ {scale})"
            );
            let ids = [n - 1, 0, n / 2];
            let rows = values(q.rows(Tensor::from_data(
                burn::tensor::TensorData::new(ids.map(|i| i as i32).to_vec(), [3]),
                &device,
            )));
            for (j, &i) in ids.iter().enumerate() {
                let (got, want) = (&rows[j * k..(j + 1) * k], &widened[i * k..(i + 1) * k]);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(got),
                    bits(want),
                    "{device:?} F16 row {i} of [{n}, {k}]"
                );
            }
        }
    }
}

/// Every kind of half decodes exactly, on every device: subnormals, both zeros, the largest
/// finite value, powers of two at each end of the exponent range.
#[test]
fn half_floats_decode_exactly() {
    let bits: Vec<u16> = [
        0x0001, 0x8001, 0x03FF, 0x0400, 0x0000, 0x8000, 0x7BFF, 0xFBFF, 0x3C00, 0xBC00, 0x3555,
        0x0200, 0x7800, 0x1234, 0xC8D2, 0x5A5A,
    ]
    .into_iter()
    .cycle()
    .take(64)
    .collect();
    let halves: Vec<u8> = bits.iter().flat_map(|b| b.to_le_bytes()).collect();
    let want: Vec<u32> = bits
        .iter()
        .map(|&b| half::f16::from_bits(b).to_f32().to_bits())
        .collect();
    let packed = PackedWeight::from_gguf(QuantFormat::F16.ggml(), &halves, 2, 32).unwrap();
    for device in devices() {
        let q = QuantizedLinear::new(&packed, &device);
        let got: Vec<u32> = values(q.dequantize()).iter().map(|v| v.to_bits()).collect();
        assert_eq!(got, want, "{device:?}");
    }
}

/// F16 codes take 68 bytes per 32 values (the halves and a unit scale): 53% of f32.
#[test]
fn half_float_weights_use_53_percent_of_f32_memory() {
    let (n, k) = (64, 4864);
    let w: Vec<f32> = (0..n * k).map(|i| (i % 97) as f32 / 50.0 - 1.0).collect();
    let halves = kernels::quant::quantize_gguf(QuantFormat::F16, &w);
    assert_eq!(halves.len(), 2 * n * k);
    let packed = PackedWeight::from_gguf(QuantFormat::F16.ggml(), &halves, n, k).unwrap();
    let share = packed.device_bytes() as f64 / (4 * n * k) as f64;
    assert!((share - 68.0 / 128.0).abs() < 1e-9, "F16: {share}");
    let short = PackedWeight::from_gguf(QuantFormat::F16.ggml(), &halves[..10], n, k).unwrap_err();
    assert!(short.to_string().contains("F16"), "{short}");
}

/// Q8_0 keeps 36 bytes per 32 values and the 4-bit formats 24: both under 30% of f32.
#[test]
fn quantized_weights_use_under_30_percent_of_f32_memory() {
    let (n, k) = (896, 4864);
    let w: Vec<f32> = (0..n * k)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    for format in FORMATS {
        let gguf = kernels::quant::quantize_gguf(format, &w);
        let packed = PackedWeight::from_gguf(format.ggml(), &gguf, n, k).unwrap();
        let share = packed.device_bytes() as f64 / (4 * n * k) as f64;
        let expected = if format == QuantFormat::Q8_0 {
            36.0
        } else {
            24.0
        } / 128.0;
        assert!((share - expected).abs() < 1e-9, "{format:?}: {share}");
        assert!(
            share <= 0.30,
            "{format:?} uses {:.1}% of f32",
            share * 100.0
        );
    }
}

#[test]
fn packing_rejects_bad_weights_with_the_reason() {
    use formats::dequant::GgmlType;
    let gguf = kernels::quant::quantize_gguf(QuantFormat::Q8_0, &[0.5; 64]);
    let short = PackedWeight::from_gguf(GgmlType::Q8_0, &gguf[..60], 1, 64).unwrap_err();
    assert_eq!(
        short.to_string(),
        "a [1, 64] Q8_0 weight needs 68 bytes, got 60"
    );
    let partial = PackedWeight::from_gguf(GgmlType::Q8_0, &gguf, 2, 48).unwrap_err();
    assert!(partial.to_string().contains("48 values"), "{partial}");
    let other = PackedWeight::from_gguf(GgmlType::Q6_K, &gguf, 1, 64).unwrap_err();
    assert!(other.to_string().contains("Q6_K"), "{other}");
}
