//! The CPU's fused softmax and SwiGLU (`kernels::activation`): values and gradients equal
//! Burn's own ops, for shapes whose rows are and are not multiples of the vector width, with
//! masked keys (-1e30, as the model's mask) and large inputs.

use burn::tensor::activation::{silu, softmax};
use burn::tensor::{Tensor, TensorData};

use crate::max_abs_diff;

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    model::io::values(t).unwrap()
}

const SHAPES: [[usize; 3]; 4] = [[1, 1, 5], [2, 3, 16], [3, 7, 45], [2, 9, 256]];

#[test]
fn softmax_and_its_gradient_equal_burn_ops() {
    let device = crate::cpu().autodiff();
    for shape in SHAPES {
        for spread in [1.0, 30.0] {
            let mut x = crate::uniform(shape, (-spread, spread), 1, &device);
            if shape[2] > 1 {
                // The causal mask's value on the first key of every row but the last.
                let mut mask = vec![0f32; shape.iter().product()];
                for row in 0..shape[0] * shape[1] - 1 {
                    mask[row * shape[2]] = -1e30;
                }
                x = x + Tensor::from_data(TensorData::new(mask, shape), &device);
            }
            let g = crate::uniform(shape, (-1.0, 1.0), 2, &device);
            let run = |fused: bool| {
                let x = x.clone().detach().require_grad();
                let y = if fused {
                    kernels::softmax_last(x.clone())
                } else {
                    softmax(x.clone(), 2)
                };
                let grads = (y.clone() * g.clone()).sum().backward();
                (values(y), values(x.grad(&grads).unwrap()))
            };
            let ((y0, g0), (y1, g1)) = (run(false), run(true));
            let what = format!("{shape:?} spread {spread}");
            assert!(max_abs_diff(&y1, &y0) < 1e-6, "{what}: softmax");
            assert!(max_abs_diff(&g1, &g0) < 1e-5, "{what}: gradient");
        }
    }
}

#[test]
fn swiglu_and_its_gradients_equal_burn_ops() {
    let device = crate::cpu().autodiff();
    for shape in SHAPES.into_iter().chain([[2, 300, 70]]) {
        for spread in [1.0, 100.0] {
            let u = (-spread, spread);
            let (gate, up) = (
                crate::uniform(shape, u, 3, &device),
                crate::uniform(shape, u, 4, &device),
            );
            let g = crate::uniform(shape, (-1.0, 1.0), 2, &device);
            let run = |fused: bool| {
                let (gate, up) = (
                    gate.clone().detach().require_grad(),
                    up.clone().detach().require_grad(),
                );
                let y = if fused {
                    kernels::swiglu(gate.clone(), up.clone())
                } else {
                    silu(gate.clone()) * up.clone()
                };
                let grads = (y.clone() * g.clone()).sum().backward();
                let dg = values(gate.grad(&grads).unwrap());
                (values(y), dg, values(up.grad(&grads).unwrap()))
            };
            let ((y0, dg0, du0), (y1, dg1, du1)) = (run(false), run(true));
            let what = format!("{shape:?} spread {spread}");
            let tol = 1e-5 * spread as f32 * spread as f32;
            assert!(max_abs_diff(&y1, &y0) < tol, "{what}: value");
            assert!(max_abs_diff(&dg1, &dg0) < tol, "{what}: gate gradient");
            assert!(max_abs_diff(&du1, &du0) < tol, "{what}: up gradient");
        }
    }
}
