//! A model file rewritten so that its policy alternates on every bar — flat → BUY_75, holding →
//! CLOSE — whatever its depth: tests and benchmarks of the paper daemon need an order per bar.
//! The account block's position level is the third value from the end of the observation.
#![allow(dead_code)]

use quantdeck::engine::{checkpoint, ActorCritic};
use std::collections::HashMap;
use std::path::Path;

pub fn alternate(path: &Path) {
    let dev = candle_core::Device::Cpu;
    let (model, meta) = checkpoint::load_model(path, &dev).expect("model");
    let mut t: HashMap<String, candle_core::Tensor> = model.named_tensors().into_iter().collect();
    let mut put = |k: String, v: Vec<f32>, shape: &[usize]| {
        t.insert(
            k,
            candle_core::Tensor::from_vec(v, shape, &dev).expect("tensor"),
        );
    };
    let dims = &meta.hidden_dims;
    let mut inp = meta.obs_dim;
    for (i, &h) in dims.iter().enumerate() {
        let mut w = vec![0f32; h * inp];
        // Unit 0 carries the position level through every layer: tanh(5·level), then tanh(3·x).
        if i == 0 {
            w[inp - 3] = 5.0;
        } else {
            w[0] = 3.0;
        }
        put(format!("trunk.{i}.weight"), w, &[h, inp]);
        put(format!("trunk.{i}.bias"), vec![0.0; h], &[h]);
        inp = h;
    }
    let h = inp;
    let mut wa = vec![0f32; 8 * h];
    wa[3 * h] = -10.0; // BUY_75 when flat …
    wa[7 * h] = 10.0; // … CLOSE when holding
    let mut ba = vec![0f32; 8];
    ba[3] = 1.0;
    put("actor.weight".into(), wa, &[8, h]);
    put("actor.bias".into(), ba, &[8]);
    let m = ActorCritic::from_tensors(meta.obs_dim, dims, 8, &t, &dev).expect("rebuilt model");
    checkpoint::save_model(path, &m, &meta).expect("saved model");
}

/// A model file rewritten so that its policy always chooses `action` (e.g. BUY_25 = 1: the
/// level climbs 0.25 a bar up to a full position).
pub fn constant(path: &Path, action: usize) {
    let dev = candle_core::Device::Cpu;
    let (model, meta) = checkpoint::load_model(path, &dev).expect("model");
    let mut t: HashMap<String, candle_core::Tensor> = model.named_tensors().into_iter().collect();
    let h = meta.hidden_dims.last().copied().unwrap_or(meta.obs_dim);
    let mut ba = vec![0f32; 8];
    ba[action] = 20.0;
    for (k, v, shape) in [
        ("actor.weight", vec![0f32; 8 * h], vec![8, h]),
        ("actor.bias", ba, vec![8]),
    ] {
        let tensor = candle_core::Tensor::from_vec(v, shape.as_slice(), &dev).expect("tensor");
        t.insert(k.to_string(), tensor);
    }
    let m = ActorCritic::from_tensors(meta.obs_dim, &meta.hidden_dims, 8, &t, &dev).expect("model");
    checkpoint::save_model(path, &m, &meta).expect("saved model");
}
