//! `mentalqlm bench kernels`: the LoRA linear timed on one device, in one run: the bare base
//! matmul, Burn's built-in LoRA (`Module::apply_lora`, which rebuilds `W + s·A·B` on every
//! forward), the unfused LoRA in Burn ops, and our fused op (on wgpu our WGSL kernels);
//! forward alone and forward + backward (gradients of x, A and B; the base frozen); and the
//! fused forward over a base kept quantized (Q8_0 and Q4_1).

use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::module::{Lora, Module, Param};
use burn::tensor::{Device, Distribution, Tensor};
use clap::Args as ClapArgs;

use crate::device::DeviceArg;
use kernels::{PackedWeight, QuantFormat, QuantizedLinear};
use serde::Serialize;

#[derive(ClapArgs, Debug)]
pub struct KernelArgs {
    /// cpu or wgpu (a software adapter such as llvmpipe is used if it is the only one);
    /// auto takes wgpu on a hardware adapter, else the CPU.
    #[arg(long, value_enum, default_value_t = DeviceArg::Wgpu)]
    pub device: DeviceArg,
    /// Projections as in×out, the 0.5B-class shapes by default (Qwen2.5-0.5B: 896, 4864;
    /// Qwen1.5-0.5B: 1024, 2816).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "896x896,896x4864,4864x896,1024x2816"
    )]
    pub shapes: Vec<String>,
    #[arg(long, value_delimiter = ',', default_value = "4,8,16")]
    pub ranks: Vec<usize>,
    /// Token counts (rows of x).
    #[arg(long, value_delimiter = ',', default_value = "1,32,512")]
    pub tokens: Vec<usize>,
    /// Timed calls per round and variant, after one warm-up call (which also autotunes).
    #[arg(long, default_value_t = 5)]
    pub iters: usize,
    /// Rounds, each timing every variant in turn; the median round is reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// One JSON object per measurement instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(ClapArgs, Debug)]
pub struct ShaderArgs {
    /// The folder to write `NAME-NN.wgsl` files to (created if missing).
    #[arg(long)]
    pub out: std::path::PathBuf,
}

/// Writes `kernels::shaders::all_rendered()`, one file per rendering, and prints how many.
pub fn write_shaders(args: ShaderArgs) -> Result<()> {
    let out = &args.out;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let rendered = kernels::shaders::all_rendered();
    for (i, (name, text)) in rendered.iter().enumerate() {
        let stem = name.trim_end_matches(".wgsl");
        let path = out.join(format!("{stem}-{i:02}.wgsl"));
        formats::atomic::write_atomic(&path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    println!("{} shaders written to {}", rendered.len(), out.display());
    Ok(())
}

/// A bare weight, for Burn's built-in LoRA.
#[derive(Module, Debug)]
struct Weight {
    weight: Param<Tensor<2>>,
}

#[derive(Debug, Serialize)]
struct Row {
    k: usize,
    n: usize,
    rank: usize,
    tokens: usize,
    /// Milliseconds per call: forward.
    base_fwd: f64,
    burn_lora_fwd: f64,
    unfused_fwd: f64,
    fused_fwd: f64,
    fused_q8_0_fwd: f64,
    fused_q4_1_fwd: f64,
    /// Milliseconds per call: forward + backward.
    burn_lora_fwd_bwd: f64,
    unfused_fwd_bwd: f64,
    fused_fwd_bwd: f64,
}

fn parse_shape(s: &str) -> Result<(usize, usize)> {
    let (a, b) = s
        .split_once('x')
        .with_context(|| format!("--shapes: `{s}` is not IN×OUT such as 896x4864"))?;
    let k = a
        .trim()
        .parse()
        .with_context(|| format!("--shapes: `{a}`"))?;
    let n = b
        .trim()
        .parse()
        .with_context(|| format!("--shapes: `{b}`"))?;
    if k == 0 || n == 0 {
        bail!("--shapes: `{s}` has a zero side");
    }
    if k % 32 != 0 {
        bail!("--shapes: `{s}`: IN must be a multiple of 32, the quantized block length");
    }
    Ok((k, n))
}

/// Milliseconds per call of each variant: one warm-up call each (which also autotunes), then
/// `rounds` rounds that each time `iters` calls of every variant in turn, the device drained
/// around each block; the median round per variant. Alternating spreads a machine's drift
/// over all variants instead of charging it to whichever ran during it.
fn time_rounds(
    device: &Device,
    iters: usize,
    rounds: usize,
    variants: &mut [Box<dyn FnMut() + '_>],
) -> Result<Vec<f64>> {
    let sync = || device.sync().map_err(|e| anyhow::anyhow!("{e:?}"));
    for f in variants.iter_mut() {
        f();
    }
    sync()?;
    let mut times = vec![Vec::with_capacity(rounds); variants.len()];
    for _ in 0..rounds {
        for (f, times) in variants.iter_mut().zip(&mut times) {
            let start = Instant::now();
            for _ in 0..iters {
                f();
            }
            sync()?;
            times.push(start.elapsed().as_secs_f64() * 1e3 / iters as f64);
        }
    }
    Ok(times
        .into_iter()
        .map(|mut t| {
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        })
        .collect())
}

fn measure(
    device: &Device,
    (k, n, r, m): (usize, usize, usize, usize),
    iters: usize,
    rounds: usize,
) -> Result<Row> {
    let u = Distribution::Uniform(-0.1, 0.1);
    let s = 2.0;
    let x = Tensor::<2>::random([m, k], u, device);
    let w = Tensor::<2>::random([n, k], u, device);
    let a = Tensor::<2>::random([r, k], u, device);
    let b = Tensor::<2>::random([n, r], u, device);
    let bias = Tensor::<1>::zeros([n], device);
    let burn_lora = Weight {
        weight: Param::from_tensor(w.clone()),
    }
    .apply_lora(Lora::new(r, s * r as f64));
    let unfused = |x: Tensor<2>, a: Tensor<2>, b: Tensor<2>| {
        x.clone().matmul(w.clone().transpose()) + x.matmul(a.transpose()).matmul(b.transpose()) * s
    };
    let host_w = model::io::values(w.clone())?;
    let quantized = [QuantFormat::Q8_0, QuantFormat::Q4_1]
        .into_iter()
        .map(|format| {
            let gguf = kernels::quant::quantize_gguf(format, &host_w);
            let packed = PackedWeight::from_gguf(format.ggml(), &gguf, n, k)?;
            Ok(QuantizedLinear::new(&packed, device))
        })
        .collect::<Result<Vec<_>>>()?;
    let fused_quantized = |q: &QuantizedLinear| {
        let _ = kernels::lora_linear_quantized(x.clone(), q, a.clone(), b.clone(), bias.clone(), s);
    };

    // Forward + backward with autodiff: x, A and B tracked, W frozen.
    let track = |t: &Tensor<2>| Tensor::from_inner(t.clone()).require_grad();
    let (xg, ag, bg) = (track(&x), track(&a), track(&b));
    let (wd, biasd) = (
        Tensor::from_inner(w.clone()),
        Tensor::from_inner(bias.clone()),
    );
    let burn_lora_ad = Weight {
        weight: Param::from_tensor(wd.clone()).set_require_grad(false),
    }
    .apply_lora(Lora::new(r, s * r as f64));

    // In the order of `Row`'s fields.
    let mut variants: Vec<Box<dyn FnMut() + '_>> = vec![
        Box::new(|| {
            let _ = x.clone().matmul(w.clone().transpose());
        }),
        Box::new(|| {
            let _ = x.clone().matmul(burn_lora.weight.val().transpose());
        }),
        Box::new(|| {
            let _ = unfused(x.clone(), a.clone(), b.clone());
        }),
        Box::new(|| {
            let _ =
                kernels::lora_linear(x.clone(), w.clone(), a.clone(), b.clone(), bias.clone(), s);
        }),
        Box::new(|| fused_quantized(&quantized[0])),
        Box::new(|| fused_quantized(&quantized[1])),
        Box::new(|| {
            let y = xg.clone().matmul(burn_lora_ad.weight.val().transpose());
            let _ = y.sum().backward();
        }),
        Box::new(|| {
            let y = xg.clone().matmul(wd.clone().transpose())
                + xg.clone()
                    .matmul(ag.clone().transpose())
                    .matmul(bg.clone().transpose())
                    * s;
            let _ = y.sum().backward();
        }),
        Box::new(|| {
            let y = kernels::lora_linear(
                xg.clone(),
                wd.clone(),
                ag.clone(),
                bg.clone(),
                biasd.clone(),
                s,
            );
            let _ = y.sum().backward();
        }),
    ];
    let ms: [f64; 9] = time_rounds(device, iters, rounds, &mut variants)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("one time per variant"))?;
    Ok(Row {
        k,
        n,
        rank: r,
        tokens: m,
        base_fwd: ms[0],
        burn_lora_fwd: ms[1],
        unfused_fwd: ms[2],
        fused_fwd: ms[3],
        fused_q8_0_fwd: ms[4],
        fused_q4_1_fwd: ms[5],
        burn_lora_fwd_bwd: ms[6],
        unfused_fwd_bwd: ms[7],
        fused_fwd_bwd: ms[8],
    })
}

pub fn run(args: KernelArgs) -> Result<()> {
    let chosen = crate::device::choose(args.device)?;
    let device = chosen.device.clone();
    if args.iters == 0 || args.rounds == 0 || args.ranks.contains(&0) || args.tokens.contains(&0) {
        bail!("--iters, --rounds, --ranks and --tokens must be at least 1");
    }
    let shapes = args
        .shapes
        .iter()
        .map(|s| parse_shape(s))
        .collect::<Result<Vec<_>>>()?;
    let settings = kernels::settings::current();
    let tile = settings
        .lora_tile
        .map_or("default".into(), |t| format!("{t:?}"));
    eprintln!(
        "device: {}; schedule: {:?}; factor gradients: {:?}; tile over 8 rows: {tile}; the median of {} rounds of {} timed calls after a warm-up",
        chosen.description, settings.lora_schedule, settings.lora_factors, args.rounds, args.iters
    );
    if !args.json {
        println!(
            "{:>11} {:>3} {:>5} | {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} | {:>8} {:>8} {:>8} | {:>6} {:>6} {:>6} {:>6}",
            "in×out",
            "r",
            "tok",
            "base",
            "burn",
            "unfused",
            "fused",
            "q8_0",
            "q4_1",
            "burn",
            "unfused",
            "fused",
            "f/base",
            "f/burn",
            "burn/f",
            "q8/bas"
        );
        println!(
            "{:>22}| {:^59} | {:^26} | {:^6} {:^6} {:^6} {:^6}",
            "", "forward, ms", "forward+backward, ms", "fwd", "fwd", "f+b", "fwd"
        );
    }
    // The schedules timed on the device while each row was measured (`lora::tune`).
    let mut seen = kernels::lora::tune::decisions().len();
    for &(k, n) in &shapes {
        for &r in &args.ranks {
            for &m in &args.tokens {
                let row = measure(&device, (k, n, r, m), args.iters, args.rounds)?;
                let decisions = kernels::lora::tune::decisions();
                let tuned = &decisions[seen.min(decisions.len())..];
                seen = decisions.len();
                if args.json {
                    let mut value = serde_json::to_value(&row)?;
                    value["device"] = chosen.description.clone().into();
                    value["tile"] = tile.clone().into();
                    value["tuned"] = tuned.iter().map(decision_json).collect();
                    println!("{value}");
                } else {
                    for d in tuned {
                        eprintln!("{}", describe(d));
                    }
                    println!(
                        "{:>11} {:>3} {:>5} | {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} | {:>8.3} {:>8.3} {:>8.3} | {:>6.2} {:>6.2} {:>6.2} {:>6.2}",
                        format!("{k}×{n}"),
                        r,
                        m,
                        row.base_fwd,
                        row.burn_lora_fwd,
                        row.unfused_fwd,
                        row.fused_fwd,
                        row.fused_q8_0_fwd,
                        row.fused_q4_1_fwd,
                        row.burn_lora_fwd_bwd,
                        row.unfused_fwd_bwd,
                        row.fused_fwd_bwd,
                        row.fused_fwd / row.base_fwd,
                        row.fused_fwd / row.burn_lora_fwd,
                        row.burn_lora_fwd_bwd / row.fused_fwd_bwd,
                        row.fused_q8_0_fwd / row.base_fwd,
                    );
                }
            }
        }
    }
    Ok(())
}

/// One timed choice of schedule, as the JSON rows carry it.
fn decision_json(d: &kernels::lora::tune::Decision) -> serde_json::Value {
    let key = &d.key;
    serde_json::json!({
        "rows": key.rows,
        "outputs": key.outputs,
        "depth": key.depth,
        "bits": key.bits,
        "x_transposed": key.x_transposed,
        "w_transposed": key.w_transposed,
        "rivals": d.rivals.iter().map(|(s, ms)| serde_json::json!({"schedule": s.to_string(), "ms": ms})).collect::<Vec<_>>(),
        "chosen": d.chosen.to_string(),
    })
}

/// One timed choice of schedule, as a line of the table's log.
fn describe(d: &kernels::lora::tune::Decision) -> String {
    let key = &d.key;
    let rivals: Vec<String> = d
        .rivals
        .iter()
        .map(|(s, ms)| format!("{s} {ms:.3} ms"))
        .collect();
    let weight = if key.bits == 32 {
        "f32".to_string()
    } else {
        format!("{}-bit codes", key.bits)
    };
    format!(
        "  timed {}×{}×{} over {weight}{}: {} → {}",
        key.rows,
        key.depth,
        key.outputs,
        if key.w_transposed {
            ", W transposed"
        } else {
            ""
        },
        rivals.join(", "),
        d.chosen
    )
}
