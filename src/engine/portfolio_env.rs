//! The vectorized portfolio env: `sim::portfolio::Tape::step` for N envs at once on candle
//! tensors, with the inherent API of the single-symbol [`super::env::VecEnv`] (`n`, `obs_dim`,
//! `observe`, `step`) so PPO can drive either.
//!
//! Everything that depends only on the bar — observation rows, execution and mark prices,
//! tradability, and each regime's target weights — is computed once by the plain-Rust rules and
//! uploaded as tables; a step gathers rows of them by each env's bar and action. Account state
//! (quantities, cash, equity, peak) lives on the device; bar indices, episode counters and the
//! slippage draws live on the host (the draws are kept so a parity test can replay them through
//! `sim`).

use super::env::EnvState;
use crate::features::portfolio::{PortfolioFeatures, PortfolioSpec};
use crate::rng::Rng;
use crate::sim::portfolio::{PortfolioRules, Regime, Tape, N_REGIMES};
use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor};
use std::ops::Range;

pub struct PortfolioEnv {
    device: Device,
    spec: PortfolioSpec,
    n: usize,
    s: usize,
    ep_len: usize,
    rules: PortfolioRules,
    /// [T, step_dim] observation rows.
    rows: Tensor,
    /// [T, S] each.
    exec_price: Tensor,
    mark: Tensor,
    tradable: Tensor,
    /// [T · 12, S + 1]: row `t · 12 + a` holds regime `a`'s weights (symbols, then cash) for a
    /// decision executed at `t`; HOLD's rows are unused zeros.
    targets: Tensor,
    arange_w: Tensor,
    /// Exec bars `lo..hi`; `t` is the bar each env's next decision executes at.
    lo: usize,
    hi: usize,
    t: Vec<u32>,
    steps: Vec<usize>,
    /// [N, S]
    qty: Tensor,
    /// [N]
    cash: Tensor,
    equity: Tensor,
    peak: Tensor,
    starts: Rng,
    slippage_rng: Rng,
    /// The last step's draws, `[env * S + symbol]`.
    slippage: Vec<f64>,
    /// Episodes ended so far.
    episodes: u64,
}

impl PortfolioEnv {
    /// `n` envs over the exec bars `range` (clipped to where a full observation exists), each
    /// restarting at a random bar every `ep_len` steps or at the range's end.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        spec: &PortfolioSpec,
        features: &PortfolioFeatures,
        tape: &Tape,
        rules: PortfolioRules,
        range: Range<usize>,
        ep_len: usize,
        n: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        let s = spec.n_symbols();
        if tape.n_symbols != s || features.step_dim != spec.step_dim() {
            bail!(
                "portfolio env: the tape has {} symbols and the features {} per step, but the layout {}",
                tape.n_symbols,
                features.step_dim,
                spec.describe()
            );
        }
        let exec = tape.exec_range(spec.first_exec_bar(), range)?;
        if exec.len() < 2 || n == 0 {
            bail!(
                "portfolio env: {} exec bars and {n} envs: need at least 2 bars and 1 env",
                exec.len()
            );
        }
        let nt = tape.n_bars;
        let f32s = |xs: &[f64]| xs.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        let mut targets = vec![0f32; nt * N_REGIMES * (s + 1)];
        for t in 1..nt {
            for r in Regime::ALL {
                if let Some(w) = tape.targets(t, r) {
                    let at = (t * N_REGIMES + r.index()) * (s + 1);
                    for (k, x) in w.symbols.iter().chain([&w.cash]).enumerate() {
                        targets[at + k] = *x as f32;
                    }
                }
            }
        }
        let tradable: Vec<f32> = tape
            .tradable
            .iter()
            .map(|&b| f32::from(u8::from(b)))
            .collect();
        let init = rules.initial_cash as f32;
        let full = |v: f32| Tensor::full(v, n, device);
        let mut env = PortfolioEnv {
            device: device.clone(),
            spec: spec.clone(),
            n,
            s,
            ep_len: ep_len.clamp(1, exec.len()),
            rules,
            rows: Tensor::from_vec(features.values.clone(), (nt, features.step_dim), device)?,
            exec_price: Tensor::from_vec(f32s(&tape.exec_price), (nt, s), device)?,
            mark: Tensor::from_vec(f32s(&tape.mark), (nt, s), device)?,
            tradable: Tensor::from_vec(tradable, (nt, s), device)?,
            targets: Tensor::from_vec(targets, (nt * N_REGIMES, s + 1), device)?,
            arange_w: Tensor::arange(0u32, spec.window as u32, device)?.unsqueeze(0)?,
            lo: exec.start,
            hi: exec.end,
            t: vec![0; n],
            steps: vec![0; n],
            qty: Tensor::zeros((n, s), DType::F32, device)?,
            cash: full(init)?,
            equity: full(init)?,
            peak: full(init)?,
            starts: Rng::derive(seed, "portfolio-env"),
            slippage_rng: Rng::derive(seed, "portfolio-slippage"),
            slippage: vec![0.0; n * s],
            episodes: 0,
        };
        for i in 0..n {
            env.t[i] = env.random_start();
        }
        Ok(env)
    }

    pub fn n(&self) -> usize {
        self.n
    }

    pub fn obs_dim(&self) -> usize {
        self.spec.obs_dim()
    }

    /// The observation layout (sequence length, step and tail sizes, names).
    pub fn layout(&self) -> &PortfolioSpec {
        &self.spec
    }

    /// The bar each env's next decision executes at (for tests and diagnostics).
    pub fn clock(&self) -> &[u32] {
        &self.t
    }

    /// The slippage draws the last [`Self::step`] used, `[env * n_symbols + symbol]`.
    pub fn last_slippage(&self) -> &[f64] {
        &self.slippage
    }

    fn random_start(&mut self) -> u32 {
        let span = self.hi - self.lo - self.ep_len;
        (self.lo + self.starts.below(span + 1)) as u32
    }

    fn t_tensor(&self, offset: i64) -> Result<Tensor> {
        let v: Vec<u32> = self.t.iter().map(|&t| (t as i64 + offset) as u32).collect();
        Ok(Tensor::from_vec(v, self.n, &self.device)?)
    }

    /// Observations [N, obs_dim]: rows `t − window ..= t − 1` of each env, then its tail
    /// (weights at the last close, cash share, tanh(10 · P&L), drawdown).
    pub fn observe(&self) -> Result<Tensor> {
        let w = self.spec.window;
        let idx = self
            .t_tensor(-(w as i64))?
            .unsqueeze(1)?
            .broadcast_add(&self.arange_w)?
            .flatten_all()?;
        let seq = self
            .rows
            .index_select(&idx, 0)?
            .reshape((self.n, w * self.spec.step_dim()))?;
        let marks = self.mark.index_select(&self.t_tensor(-1)?, 0)?;
        let eq = self.equity.unsqueeze(1)?;
        let weights = (&self.qty * marks)?.broadcast_div(&eq)?;
        let cash = (&self.cash / &self.equity)?;
        let init = self.rules.initial_cash;
        let pnl = ((&self.equity / init)? - 1.0)?.affine(10.0, 0.0)?.tanh()?;
        let dd = (1.0 - (&self.equity / &self.peak)?)?.relu()?;
        let account = Tensor::stack(&[&cash, &pnl, &dd], 1)?;
        Ok(Tensor::cat(&[&seq, &weights, &account], 1)?)
    }

    /// Applies one regime per env (u32 [N], each below 12); returns rewards [N] and which envs
    /// restarted (their reward is their episode's last).
    pub fn step(&mut self, actions: &Tensor) -> Result<(Tensor, Vec<bool>)> {
        let acts: Vec<u32> = actions.to_vec1::<u32>()?;
        if acts.len() != self.n {
            bail!("{} actions for {} portfolio envs", acts.len(), self.n);
        }
        if let Some(a) = acts.iter().find(|&&a| a as usize >= N_REGIMES) {
            bail!("action {a} is not one of the 12 portfolio regimes (0–11)");
        }
        let s = self.s;
        let idx: Vec<u32> = self
            .t
            .iter()
            .zip(&acts)
            .map(|(&t, &a)| t * N_REGIMES as u32 + a)
            .collect();
        let hold: Vec<f32> = acts
            .iter()
            .map(|&a| f32::from(u8::from(a as usize == Regime::Hold.index())))
            .collect();
        let fr = self.rules.frictions;
        fr.draw_slippage(&mut self.slippage_rng, &mut self.slippage);
        let slip = Tensor::from_vec(
            self.slippage.iter().map(|&x| x as f32).collect::<Vec<_>>(),
            (self.n, s),
            &self.device,
        )?;

        let t_now = self.t_tensor(0)?;
        let px = self.exec_price.index_select(&t_now, 0)?;
        let trad = self.tradable.index_select(&t_now, 0)?;
        let mark = self.mark.index_select(&t_now, 0)?;
        let w = self
            .targets
            .index_select(&Tensor::from_vec(idx, self.n, &self.device)?, 0)?
            .narrow(1, 0, s)?;
        let hold = Tensor::from_vec(hold, (self.n, 1), &self.device)?;

        let held = (&self.qty * &px)?;
        let before = (&self.cash + held.sum(1)?)?.unsqueeze(1)?;
        let frozen = (&held * (1.0 - &trad)?)?.sum_keepdim(1)?;
        let deployable = (&before - frozen)?;
        let px_safe = (&px + (1.0 - &trad)?)?;
        let goal = w.broadcast_mul(&deployable)?.div(&px_safe)?;
        let keep_trad = (1.0 - &trad)?;
        let traded = ((&trad * goal)? + (&keep_trad * &self.qty)?)?;
        let keep_hold = (1.0 - &hold)?;
        let qty = (hold.broadcast_mul(&self.qty)? + keep_hold.broadcast_mul(&traded)?)?;
        let dq = (&qty - &self.qty)?;
        let value = (dq.abs()? * &px)?;
        let impact = value
            .broadcast_div(&before.maximum(1e-9f32)?)?
            .sqrt()?
            .affine(fr.impact, 0.0)?;
        let rate = ((slip + impact)? + fr.spread)?;
        let cost = (&value * rate)?.sum(1)?;
        let cash = ((&self.cash - (&dq * &px)?.sum(1)?)? - cost)?;
        let equity = (&cash + (&qty * &mark)?.sum(1)?)?;
        let reward = (&equity / &self.equity)?
            .maximum(1e-6f32)?
            .log()?
            .affine(self.rules.reward_scale, 0.0)?;
        self.peak = self.peak.maximum(&equity)?;
        self.qty = qty;
        self.cash = cash;
        self.equity = equity;

        let mut dones = vec![false; self.n];
        for ((t, steps), done) in self.t.iter_mut().zip(&mut self.steps).zip(&mut dones) {
            *t += 1;
            *steps += 1;
            *done = *steps >= self.ep_len || *t as usize >= self.hi;
        }
        if dones.iter().any(|d| *d) {
            self.episodes += dones.iter().filter(|d| **d).count() as u64;
            for i in (0..self.n).filter(|&i| dones[i]) {
                self.t[i] = self.random_start();
                self.steps[i] = 0;
            }
            self.reset_where(&dones)?;
        }
        Ok((reward, dones))
    }

    fn reset_where(&mut self, dones: &[bool]) -> Result<()> {
        let m: Vec<f32> = dones.iter().map(|&d| f32::from(u8::from(d))).collect();
        let m = Tensor::from_vec(m, self.n, &self.device)?;
        let keep = (1.0 - &m)?;
        let init = m.affine(self.rules.initial_cash, 0.0)?;
        self.qty = self.qty.broadcast_mul(&keep.unsqueeze(1)?)?;
        self.cash = (self.cash.mul(&keep)? + &init)?;
        self.equity = (self.equity.mul(&keep)? + &init)?;
        self.peak = (self.peak.mul(&keep)? + &init)?;
        Ok(())
    }

    /// Equity per env, marked at the close of the last executed bar.
    pub fn equity(&self) -> Result<Vec<f32>> {
        Ok(self.equity.to_vec1::<f32>()?)
    }

    /// Shares held, `[env][symbol]`.
    pub fn quantities(&self) -> Result<Vec<Vec<f32>>> {
        Ok(self.qty.to_vec2::<f32>()?)
    }

    pub fn cash(&self) -> Result<Vec<f32>> {
        Ok(self.cash.to_vec1::<f32>()?)
    }

    /// Episodes ended so far.
    pub fn episodes(&self) -> u64 {
        self.episodes
    }

    /// The state between steps (cheap: tensors are shared, not copied).
    pub fn state(&self) -> EnvState {
        EnvState {
            t: self.t.clone(),
            steps: self.steps.clone(),
            rng: self.starts.clone(),
            aux_rng: Some(self.slippage_rng.clone()),
            episodes: self.episodes,
            tensors: [
                ("qty", &self.qty),
                ("cash", &self.cash),
                ("equity", &self.equity),
                ("peak", &self.peak),
            ]
            .into_iter()
            .map(|(n, t)| (n.to_string(), t.clone()))
            .collect(),
        }
    }

    /// Continues from a saved state of an env built the same way (same panel, universe, envs).
    pub fn restore(&mut self, s: EnvState) -> Result<()> {
        if s.t.len() != self.n || s.steps.len() != self.n {
            bail!(
                "the saved portfolio env state holds {} envs, this env {}",
                s.t.len(),
                self.n
            );
        }
        let Some(aux) = s.aux_rng else {
            bail!("the saved env state has no slippage stream: it is not a portfolio env's");
        };
        let (mut qty, mut cash, mut equity, mut peak) = (None, None, None, None);
        for (name, t) in s.tensors {
            let (slot, want): (&mut Option<Tensor>, &[usize]) = match name.as_str() {
                "qty" => (&mut qty, &[self.n, self.s]),
                "cash" => (&mut cash, &[self.n]),
                "equity" => (&mut equity, &[self.n]),
                "peak" => (&mut peak, &[self.n]),
                other => bail!(
                    "the saved env state holds {other:?}, which the portfolio env does not use"
                ),
            };
            if t.dims() != want {
                bail!(
                    "saved env tensor {name} has shape {:?}, expected {want:?}",
                    t.dims()
                );
            }
            *slot = Some(t.to_device(&self.device)?);
        }
        let (Some(qty), Some(cash), Some(equity), Some(peak)) = (qty, cash, equity, peak) else {
            bail!(
                "the saved portfolio env state lacks an account tensor (qty, cash, equity, peak)"
            );
        };
        if s.t
            .iter()
            .any(|&t| (t as usize) < self.lo || t as usize >= self.hi)
        {
            bail!("the saved env clocks fall outside this env's bars");
        }
        self.qty = qty;
        self.cash = cash;
        self.equity = equity;
        self.peak = peak;
        self.t = s.t;
        self.steps = s.steps;
        self.starts = s.rng;
        self.slippage_rng = aux;
        self.episodes = s.episodes;
        Ok(())
    }
}
