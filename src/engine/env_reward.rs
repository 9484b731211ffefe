//! The seed reward (`sim::reward`) for N envs at once on candle tensors: the same eight
//! components, weighted by the curriculum at the current progress, with per-env state (the open
//! position's entry price, the differential Sharpe ratio's moments — in f64, whose variance f32
//! would round away). Each step's weighted components are summed on the device for the update's
//! statistics, read once per update.

use crate::sim::reward::{
    curriculum_weights, RewardComponent, RewardPart, SeedParams, DSR_MIN_VARIANCE, N_COMPONENTS,
};
use anyhow::Result;
use candle_core::{DType, Device, Tensor};

/// What the env's step computed, as `[N]` f32 tensors.
pub struct StepTensors<'a> {
    pub price: &'a Tensor,
    pub next: &'a Tensor,
    pub qty_old: &'a Tensor,
    pub qty_new: &'a Tensor,
    pub dq: &'a Tensor,
    pub level_new: &'a Tensor,
    /// Slippage and commission paid this step.
    pub cost: &'a Tensor,
    pub equity_before: &'a Tensor,
    pub equity: &'a Tensor,
    /// The peak after this step.
    pub peak: &'a Tensor,
    /// The policy's normalised entropy per env, when the collector supplies it.
    pub uncertainty: Option<&'a Tensor>,
}

pub struct SeedReward {
    prm: SeedParams,
    slippage: f64,
    /// Curriculum weights `[1, 8]`.
    weights: Tensor,
    /// Average entry price of the open position (0 when flat).
    entry: Tensor,
    dsr_a: Tensor,
    dsr_b: Tensor,
    /// Σ of the weighted components and of their absolute values over the update's samples.
    sum: Tensor,
    abs_sum: Tensor,
    samples: usize,
}

fn f32_mask(t: Tensor) -> Result<Tensor> {
    Ok(t.to_dtype(DType::F32)?)
}

impl SeedReward {
    pub fn new(prm: SeedParams, slippage: f64, n: usize, device: &Device) -> Result<Self> {
        let mut r = SeedReward {
            prm,
            slippage,
            weights: Tensor::zeros((1, N_COMPONENTS), DType::F32, device)?,
            entry: Tensor::zeros(n, DType::F32, device)?,
            dsr_a: Tensor::zeros(n, DType::F64, device)?,
            dsr_b: Tensor::zeros(n, DType::F64, device)?,
            sum: Tensor::zeros(N_COMPONENTS, DType::F32, device)?,
            abs_sum: Tensor::zeros(N_COMPONENTS, DType::F32, device)?,
            samples: 0,
        };
        r.set_progress(0.0)?;
        Ok(r)
    }

    /// Sets the curriculum's weights for training progress `p` ∈ [0, 1].
    pub fn set_progress(&mut self, p: f64) -> Result<()> {
        let w = curriculum_weights(p).map(|x| x as f32);
        self.weights = Tensor::from_slice(&w, (1, N_COMPONENTS), self.entry.device())?;
        Ok(())
    }

    /// The step's reward `[N]`; moves the entry prices and the Sharpe moments.
    pub fn step(&mut self, s: &StepTensors) -> Result<Tensor> {
        let prm = &self.prm;
        let zero = s.price.zeros_like()?;
        let ret = ((s.next / s.price)? - 1.0)?;
        let pnl = ((s.equity - s.equity_before)? / s.equity_before)?;
        let sign_level = s.level_new.sign()?;

        // Direction and magnitude: the side of the position against a large enough move.
        let moved = f32_mask(ret.abs()?.gt(prm.direction_threshold)?)?;
        let side = (sign_level.mul(&ret.sign()?)? * moved)?;
        let magnitude = side.mul(&ret.abs()?.affine(100.0, 0.0)?.minimum(1.0)?)?;
        let pnl_c = pnl.affine(100.0, 0.0)?.clamp(-2.0, 2.0)?;

        // Entry prices as `Account::apply_fill` keeps them: the fill price (slippage included)
        // on a new or flipped position, the average on an increase, unchanged on a reduction.
        let fill = s.price.mul(&s.dq.sign()?.affine(self.slippage, 1.0)?)?;
        let (old_abs, new_abs) = (s.qty_old.abs()?, s.qty_new.abs()?);
        let opposite = s.qty_old.mul(s.qty_new)?.lt(0.0)?;
        let opened = s.qty_old.eq(0.0)?.maximum(&opposite)?;
        let grew = new_abs.gt(&old_abs)?;
        let averaged = ((self.entry.mul(s.qty_old)? + fill.mul(s.dq)?)? / s.qty_new)?;
        let kept = grew.where_cond(&averaged, &self.entry)?;
        let entry_new = s
            .qty_new
            .eq(0.0)?
            .where_cond(&zero, &opened.where_cond(&fill, &kept)?)?;

        // Stop/take-profit: an exit at or past take-profit, or a position held past its stop.
        let has_old = s.qty_old.ne(0.0)?;
        let exit_ret = has_old.where_cond(
            &((s.price / &self.entry)? - 1.0)?.mul(&s.qty_old.sign()?)?,
            &zero,
        )?;
        let reduced =
            f32_mask(has_old)?.mul(&f32_mask(new_abs.lt(&old_abs)?.maximum(&opposite)?)?)?;
        let took_profit = reduced.mul(&f32_mask(exit_ret.ge(prm.take_profit)?)?)?;
        let has_new = s.qty_new.ne(0.0)?;
        let open_ret = has_new.where_cond(
            &((s.next / &entry_new)? - 1.0)?.mul(&s.qty_new.sign()?)?,
            &zero,
        )?;
        let past_stop = f32_mask(has_new)?.mul(&f32_mask(open_ret.le(-prm.stop_loss)?)?)?;
        // +1 on profit taken, else −1 past the stop: tp − (1 − tp)·stop.
        let stop_tp = (&took_profit - (1.0 - &took_profit)?.mul(&past_stop)?)?;

        let explore = match s.uncertainty {
            Some(u) => u.affine(prm.explore_scale, 0.0)?,
            None => zero.clone(),
        };
        let slip = (s.cost / s.equity_before)?
            .affine(prm.slippage_penalty, 0.0)?
            .minimum(1.0)?
            .neg()?;
        let dd = (1.0 - (s.equity / s.peak)?)?.relu()?;
        let excess = dd.affine(1.0, -prm.drawdown_threshold)?.relu()?;
        let drawdown = excess.sqr()?.affine(-prm.drawdown_penalty, 0.0)?;
        let dsr = self.dsr(&pnl)?;

        let parts = Tensor::stack(
            &[
                &side, &magnitude, &pnl_c, &stop_tp, &explore, &slip, &drawdown, &dsr,
            ],
            1,
        )?;
        let weighted = parts.broadcast_mul(&self.weights)?;
        self.sum = (&self.sum + weighted.sum(0)?)?;
        self.abs_sum = (&self.abs_sum + weighted.abs()?.sum(0)?)?;
        self.samples += s.price.elem_count();
        self.entry = entry_new;
        Ok(weighted.sum(1)?)
    }

    /// The differential Sharpe ratio of the step returns (see `sim::reward::DsrState`), in f64.
    fn dsr(&mut self, pnl: &Tensor) -> Result<Tensor> {
        let r = pnl.to_dtype(DType::F64)?.affine(100.0, 0.0)?;
        let (a, b) = (&self.dsr_a, &self.dsr_b);
        let da = (&r - a)?;
        let db = (r.sqr()? - b)?;
        let var = (b - a.sqr()?)?;
        let raw = ((b.mul(&da)? - (a.mul(&db)? * 0.5)?)? / var.mul(&var.sqrt()?)?)?;
        let dsr = var
            .gt(DSR_MIN_VARIANCE)?
            .where_cond(&raw, &var.zeros_like()?)?
            .affine(self.prm.dsr_scale, 0.0)?
            .clamp(-1.0, 1.0)?;
        let eta = self.prm.dsr_eta;
        self.dsr_a = (a + da.affine(eta, 0.0)?)?;
        self.dsr_b = (b + db.affine(eta, 0.0)?)?;
        Ok(dsr.to_dtype(DType::F32)?)
    }

    /// A new episode for the envs where `keep` (f32 `[N]`) is 0.
    pub fn reset_where(&mut self, keep: &Tensor) -> Result<()> {
        self.entry = self.entry.mul(keep)?;
        let keep64 = keep.to_dtype(DType::F64)?;
        self.dsr_a = self.dsr_a.mul(&keep64)?;
        self.dsr_b = self.dsr_b.mul(&keep64)?;
        Ok(())
    }

    /// Mean and share of each weighted component since the last call (one device read).
    /// The share is the component's part of Σ|wᵢ·cᵢ| over all components and samples.
    pub fn take_stats(&mut self) -> Result<Vec<RewardPart>> {
        let v: Vec<f32> = Tensor::cat(&[&self.sum, &self.abs_sum], 0)?.to_vec1()?;
        let n = self.samples.max(1) as f64;
        let total: f64 = v[N_COMPONENTS..].iter().map(|x| *x as f64).sum();
        let parts = RewardComponent::ALL
            .iter()
            .enumerate()
            .map(|(i, c)| RewardPart {
                component: *c,
                mean: v[i] as f64 / n,
                share: if total > 0.0 {
                    v[N_COMPONENTS + i] as f64 / total
                } else {
                    0.0
                },
            })
            .collect();
        self.sum = self.sum.zeros_like()?;
        self.abs_sum = self.abs_sum.zeros_like()?;
        self.samples = 0;
        Ok(parts)
    }

    /// The per-env state, for checkpoints.
    pub fn tensors(&self) -> Vec<(&'static str, Tensor)> {
        vec![
            ("entry", self.entry.clone()),
            ("dsr_a", self.dsr_a.clone()),
            ("dsr_b", self.dsr_b.clone()),
        ]
    }

    /// Restores one tensor of [`SeedReward::tensors`]; false for a name it does not hold.
    pub fn restore(&mut self, name: &str, t: Tensor) -> bool {
        match name {
            "entry" => self.entry = t,
            "dsr_a" => self.dsr_a = t,
            "dsr_b" => self.dsr_b = t,
            _ => return false,
        }
        true
    }
}
