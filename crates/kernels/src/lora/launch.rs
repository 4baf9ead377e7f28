//! The one way our kernels are launched: contiguous inputs, a fresh f32 output, the
//! integer parameters in a small storage buffer (not a uniform: every binding of our
//! shaders is a read_write storage array), every binding read_write.

use burn::backend::DType;
use burn::backend::wgpu::{CubeTensor, KernelSource, SourceKernel, into_contiguous};
use burn_cubecl::cubecl::ir::attributes::BufferIOAttr;
use burn_cubecl::cubecl::server::KernelArguments;
use burn_cubecl::cubecl::{CubeCount, CubeDim};

/// The output tile of the backward kernels (256 threads, 2×2 values each).
pub const SQUARE: (usize, usize) = (32, 32);

/// Runs `kernel` (`threads` per workgroup) over `inputs` (made contiguous) into a new
/// `[rows, cols]` f32 tensor bound after them, then `params`; one workgroup per `tile` of
/// the output.
pub fn run<K: KernelSource + 'static>(
    kernel: K,
    inputs: Vec<CubeTensor>,
    [rows, cols]: [usize; 2],
    (tile, threads): ((usize, usize), u32),
    params: &[u32],
) -> CubeTensor {
    let inputs: Vec<CubeTensor> = inputs.into_iter().map(into_contiguous).collect();
    let first = &inputs[0];
    let client = first.client.clone();
    let out = CubeTensor::new_contiguous(
        client.clone(),
        first.device.clone(),
        [rows, cols].into(),
        client.empty(rows * cols * 4),
        DType::F32,
    );
    let params = client.create_from_slice(bytemuck::cast_slice(params));
    let args = inputs
        .iter()
        .chain(std::iter::once(&out))
        .fold(KernelArguments::new(), |args, t| {
            args.with_buffer_io(t.handle.clone().binding(), BufferIOAttr::ReadWrite)
        })
        .with_buffer_io(params.binding(), BufferIOAttr::ReadWrite);
    client.launch(
        Box::new(SourceKernel::new(kernel, CubeDim::new_1d(threads))),
        CubeCount::Static(
            cols.div_ceil(tile.1) as u32,
            rows.div_ceil(tile.0) as u32,
            1,
        ),
        args,
    );
    out
}
