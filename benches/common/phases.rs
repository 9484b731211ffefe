//! Where one PPO update's time goes, phase by phase, at a config's shape (`--phases`): the env,
//! the rollout's forward passes, a whole rollout, GAE, the minibatch gathers, the hand-written
//! forward + backward, the fused optimizer step, and — for comparison in the same run — the
//! candle-autograd path the engine used before (forward, loss, `backward`, per-tensor norm
//! clipping with host reads, candle-nn AdamW). Figures are milliseconds per update.

use super::timing::median;
use candle_core::{DType, Device, Tensor, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use quantdeck::config::Config;
use quantdeck::engine::adam::ActorCriticAdam;
use quantdeck::engine::backward::{forward, ppo_grad, split_heads, Batch, Coefs};
use quantdeck::engine::critic::{self, CriticFit};
use quantdeck::engine::env::VecEnv;
use quantdeck::engine::flat::FlatParams;
use quantdeck::engine::ppo::{gae, TrainData};
use quantdeck::engine::rollout::{self, Collector};
use quantdeck::engine::ActorCritic;
use quantdeck::rng::Rng;
use quantdeck::sim::{Rules, N_ACTIONS};

pub fn run(cfg: &Config, data: &TrainData) {
    let dev = Device::Cpu;
    let p = &cfg.ppo;
    let (n, s_len, mb) = (p.n_envs, p.n_steps, p.minibatch);
    let batch = n * s_len;
    let per_update = p.epochs * batch.div_ceil(mb);
    let closes: Vec<f64> = data.bars.iter().map(|b| b.close).collect();
    let mut env = VecEnv::new(
        &data.spec,
        &data.fm,
        &closes,
        data.train.clone(),
        Rules::training(&cfg.env, &cfg.backtest, data.symbol.class),
        cfg.env.episode_len,
        cfg.env.reward_scale,
        n,
        p.seed,
        &dev,
    )
    .expect("env");
    let model =
        ActorCritic::new(data.spec.obs_dim(), &p.hidden_dims, N_ACTIONS, 1, &dev).expect("model");
    let mut params = FlatParams::from_model(&model).expect("params");
    let mut rng = Rng::new(1);
    let mut collector = Collector::new(&env, s_len, &dev).expect("collector");
    let row = |label: &str, secs: f64| println!("  {label:<46} {:>8.1} ms", secs * 1e3);

    let actions =
        Tensor::new(&(0..n as u32).map(|i| i % 8).collect::<Vec<_>>()[..], &dev).expect("actions");
    row(
        "env observe + step (S steps)",
        median(
            || {
                for _ in 0..s_len {
                    env.observe().expect("observe");
                    env.step(&actions).expect("step");
                }
            },
            3,
        ),
    );
    let obs = env.observe().expect("observe");
    let layers = params.layers().expect("layers");
    row(
        "rollout forward + log-softmax (S steps)",
        median(
            || {
                for _ in 0..s_len {
                    let (logits, _) =
                        split_heads(&forward(&layers, &obs).expect("fwd").heads).expect("heads");
                    candle_nn::ops::log_softmax(&logits, D::Minus1).expect("lsm");
                }
            },
            3,
        ),
    );
    let policy = rollout::mlp_policy(&params).expect("policy");
    let ro = collector
        .collect(&mut env, N_ACTIONS, &policy, &mut rng)
        .expect("rollout");
    row(
        "whole rollout (forward, sampling, env, copies)",
        median(
            || {
                drop(
                    collector
                        .collect(&mut env, N_ACTIONS, &policy, &mut rng)
                        .expect("rollout"),
                )
            },
            3,
        ),
    );
    row(
        "GAE on the host",
        median(
            || {
                drop(gae(
                    &ro.rewards,
                    &ro.values,
                    &ro.dones,
                    &ro.last_value,
                    n,
                    0.995,
                    0.95,
                ))
            },
            5,
        ),
    );

    // Minibatch inputs, as the trainer builds them.
    let mut order: Vec<u32> = (0..batch as u32).collect();
    rng.shuffle(&mut order);
    let ix = Tensor::from_slice(&order[..mb], mb, &dev).expect("ix");
    let onehot_all = ro
        .actions
        .unsqueeze(1)
        .and_then(|a| {
            a.broadcast_eq(&Tensor::arange(0u32, N_ACTIONS as u32, &dev)?.unsqueeze(0)?)?
                .to_dtype(DType::F32)
        })
        .expect("onehot");
    let noise = |k: usize| Tensor::randn(0f32, 1.0, k, &dev).expect("randn");
    let (adv, ret) = (noise(batch), noise(batch));
    let gather = || {
        (
            ro.obs.index_select(&ix, 0).expect("obs"),
            onehot_all.index_select(&ix, 0).expect("onehot"),
            ro.logp.index_select(&ix, 0).expect("logp"),
            adv.index_select(&ix, 0).expect("adv"),
            ret.index_select(&ix, 0).expect("ret"),
        )
    };
    row(
        "minibatch gathers",
        median(|| drop(gather()), 5) * per_update as f64,
    );
    let (o, oh, old, a, r) = gather();
    let b = Batch {
        obs: &o,
        onehot: &oh,
        old_logp: &old,
        adv: &a,
        returns: &r,
    };
    let coefs = Coefs {
        clip: p.clip,
        vf_coef: p.vf_coef,
        ent_coef: 0.01,
    };
    row(
        "hand-written forward + loss + backward",
        median(|| drop(ppo_grad(&layers, &b, coefs).expect("grad")), 5) * per_update as f64,
    );
    let (grad, _) = ppo_grad(&layers, &b, coefs).expect("grad");
    let mut adam = ActorCriticAdam::new(&params).expect("adam");
    row(
        "actor + critic Adam, joint on-device clipping",
        median(
            || {
                adam.step(&mut params, &grad, 1e-4, 3e-4, 0.5)
                    .expect("adam")
            },
            5,
        ) * per_update as f64,
    );
    let fit = CriticFit {
        epochs: p.critic_epochs,
        minibatch: mb,
        lr: 3e-4,
        vf_coef: p.vf_coef,
        max_grad_norm: p.max_grad_norm,
        stop: &|| false,
    };
    row(
        &format!("critic-only epochs ({})", p.critic_epochs),
        median(
            || {
                drop(
                    critic::fit(&mut params, &mut adam, &ro.obs, &ret, &mut rng, fit)
                        .expect("critic epochs"),
                )
            },
            3,
        ),
    );

    // The previous engine's minibatch step, on the same minibatch.
    let mut opt = AdamW::new(
        model.vars(),
        ParamsAdamW {
            lr: 1e-4,
            weight_decay: 0.0,
            ..Default::default()
        },
    )
    .expect("adamw");
    let autograd_loss = || {
        let (logits, v) = model.forward(&o).expect("fwd");
        let logp_full = candle_nn::ops::log_softmax(&logits, D::Minus1).expect("lsm");
        let logp = (&logp_full * &oh).and_then(|t| t.sum(1)).expect("logp");
        let ratio = (&logp - &old).and_then(|t| t.exp()).expect("ratio");
        let s1 = (&ratio * &a).expect("s1");
        let s2 = ratio
            .clamp(1.0 - p.clip, 1.0 + p.clip)
            .and_then(|t| t * &a)
            .expect("s2");
        let pg = s1
            .minimum(&s2)
            .and_then(|t| t.mean_all()?.neg())
            .expect("pg");
        let vl = (&v - &r)
            .and_then(|t| t.sqr()?.mean_all()? * 0.5)
            .expect("vl");
        let ent = (logp_full.exp().expect("p") * &logp_full)
            .and_then(|t| t.sum(D::Minus1)?.mean_all()?.neg())
            .expect("ent");
        ((&pg + (&vl * p.vf_coef).expect("v")).expect("l") - (&ent * 0.01).expect("e")).expect("l")
    };
    row(
        "autograd (before): forward + loss + backward",
        median(|| drop(autograd_loss().backward().expect("backward")), 5) * per_update as f64,
    );
    let mut grads = autograd_loss().backward().expect("backward");
    row(
        "autograd (before): norm clip (host reads) + AdamW",
        median(
            || {
                let mut total = 0f64;
                for v in model.vars() {
                    if let Some(g) = grads.get(&v) {
                        total += g
                            .sqr()
                            .and_then(|t| t.sum_all()?.to_scalar::<f32>())
                            .expect("n") as f64;
                    }
                }
                let scale = 0.5 / (total.sqrt() + 1e-6);
                for v in model.vars() {
                    if let Some(g) = grads.remove(&v) {
                        grads.insert(&v, (g * scale.min(1.0)).expect("scale"));
                    }
                }
                opt.step(&grads).expect("step");
            },
            5,
        ) * per_update as f64,
    );

    // The first layer's two big products, as a GEMM throughput figure.
    let h1 = p.hidden_dims[0];
    let w = Tensor::randn(0f32, 1.0, (h1, data.spec.obs_dim()), &dev).expect("w");
    let g = Tensor::randn(0f32, 1.0, (mb, h1), &dev).expect("g");
    let fwd = median(|| drop(o.matmul(&w.t().expect("t")).expect("mm")), 5);
    let wgrad = median(|| drop(g.t().expect("t").matmul(&o).expect("mm")), 5);
    let flops = 2.0 * (mb * h1 * data.spec.obs_dim()) as f64;
    println!(
        "  first layer [{mb}x{}]x[{}x{h1}]: forward {:.1} GFLOP/s, weight gradient {:.1} GFLOP/s",
        data.spec.obs_dim(),
        data.spec.obs_dim(),
        flops / fwd / 1e9,
        flops / wgrad / 1e9
    );
}
