//! The ops on Burn's CPU backend over f32 values; other dtypes take the reference.

use burn::backend::Flex;
use burn::backend::TensorMetadata;
use burn::backend::tensor::FloatTensor;

use super::FusedActivationOps;
use crate::cpu::{self, CHUNK};
use crate::reference;

impl FusedActivationOps for Flex {
    fn softmax_last(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let Some(values) = cpu::dense_f32(&x) else {
            return reference::softmax_last::<Self>(x);
        };
        let shape = x.shape().to_vec();
        let width = last(&shape);
        let mut y = values.into_owned();
        cpu::for_each_chunk(
            &mut y,
            width,
            #[inline(always)]
            |_, row| cpu::softmax_in_place(row),
        );
        cpu::tensor(y, &shape)
    }

    fn softmax_last_backward(y: FloatTensor<Self>, g: FloatTensor<Self>) -> FloatTensor<Self> {
        let (Some(ys), Some(gs)) = (cpu::dense_f32(&y), cpu::dense_f32(&g)) else {
            return reference::softmax_last_backward::<Self>(y, g);
        };
        let shape = y.shape().to_vec();
        let width = last(&shape);
        let mut dx = cpu::zeros(ys.len());
        cpu::for_each_chunk(
            &mut dx,
            width,
            #[inline(always)]
            |i, out| {
                let rows = i * width..(i + 1) * width;
                let (y, g) = (&ys[rows.clone()], &gs[rows]);
                let dot = cpu::dot(y, g);
                for ((o, &y), &g) in out.iter_mut().zip(y).zip(g) {
                    *o = y * (g - dot);
                }
            },
        );
        cpu::tensor(dx, &shape)
    }

    fn swiglu(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        let (Some(gs), Some(us)) = (cpu::dense_f32(&gate), cpu::dense_f32(&up)) else {
            return reference::swiglu::<Self>(gate, up);
        };
        let shape = gate.shape().to_vec();
        let y = cpu::zip_map(
            &gs,
            &us,
            #[inline(always)]
            |g, u| g * sigmoid(g) * u,
        );
        cpu::tensor(y, &shape)
    }

    fn swiglu_backward(
        gate: FloatTensor<Self>,
        up: FloatTensor<Self>,
        g: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (Some(gates), Some(ups), Some(grads)) = (
            cpu::dense_f32(&gate),
            cpu::dense_f32(&up),
            cpu::dense_f32(&g),
        ) else {
            return reference::swiglu_backward::<Self>(gate, up, g);
        };
        let shape = gate.shape().to_vec();
        let (mut d_gate, mut d_up) = (cpu::zeros(gates.len()), cpu::zeros(gates.len()));
        cpu::for_each_chunk2(
            &mut d_gate,
            &mut d_up,
            CHUNK,
            #[inline(always)]
            |i, dg, du| {
                let at = i * CHUNK..i * CHUNK + dg.len();
                let inputs = gates[at.clone()]
                    .iter()
                    .zip(&ups[at.clone()])
                    .zip(&grads[at]);
                for ((dg, du), ((&x, &u), &g)) in dg.iter_mut().zip(du.iter_mut()).zip(inputs) {
                    let s = sigmoid(x);
                    *du = g * x * s;
                    *dg = g * u * s * (1.0 + x * (1.0 - s));
                }
            },
        );
        (cpu::tensor(d_gate, &shape), cpu::tensor(d_up, &shape))
    }
}

fn last(shape: &[usize]) -> usize {
    shape.last().copied().unwrap_or(1).max(1)
}

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + cpu::exp(-x))
}
