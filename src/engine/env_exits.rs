//! The verdicts' stop-loss and take-profit inside the training env (`env.exits = "as_traded"`):
//! `sim::exit_rules` on N envs at once. Each env keeps the entry price `sim::Account::apply_fill`
//! keeps (the fill price with slippage on opening or flipping, the average on adding, unchanged
//! on reducing), and before an env's action a position whose open return has reached either
//! exit is closed, whatever the policy chose — as every backtest and the paper daemon do.

use anyhow::Result;
use candle_core::{DType, Tensor};

pub struct Exits {
    stop_loss: f64,
    take_profit: f64,
    /// Each env's entry price; 0 where it holds nothing.
    entry: Tensor,
}

impl Exits {
    pub fn new(
        stop_loss: f64,
        take_profit: f64,
        n: usize,
        device: &candle_core::Device,
    ) -> Result<Self> {
        Ok(Exits {
            stop_loss,
            take_profit,
            entry: Tensor::zeros(n, DType::F32, device)?,
        })
    }

    /// 1 where the open position at `price` has reached the stop-loss or the take-profit, else 0.
    pub fn hit(&self, price: &Tensor, qty: &Tensor) -> Result<Tensor> {
        let held = qty.ne(0f64)?;
        let one = Tensor::ones_like(&self.entry)?;
        let entry = held.where_cond(&self.entry, &one)?;
        let side = (qty.gt(0f64)?.to_dtype(DType::F32)? - qty.lt(0f64)?.to_dtype(DType::F32)?)?;
        let open = ((price / entry)? - 1.0)?.mul(&side)?;
        let stop = open.le(-self.stop_loss)?.to_dtype(DType::F32)?;
        let take = open.ge(self.take_profit)?.to_dtype(DType::F32)?;
        Ok((stop + take)?.mul(&held.to_dtype(DType::F32)?)?)
    }

    /// The entry prices after moving from `qty` to `qty_new` (`dq` apart) at `price`, with
    /// `slippage` on the fill.
    pub fn after_fill(
        &mut self,
        price: &Tensor,
        qty: &Tensor,
        qty_new: &Tensor,
        dq: &Tensor,
        slippage: f64,
    ) -> Result<()> {
        let dir = (dq.gt(0f64)?.to_dtype(DType::F32)? - dq.lt(0f64)?.to_dtype(DType::F32)?)?;
        let fill = price.mul(&dir.affine(slippage, 1.0)?)?;
        let flat = qty_new.eq(0f64)?;
        let zero = Tensor::zeros_like(&self.entry)?;
        let one = Tensor::ones_like(&self.entry)?;
        let opens = (qty.eq(0f64)?.to_dtype(DType::F32)?
            + qty.mul(qty_new)?.lt(0f64)?.to_dtype(DType::F32)?)?
        .gt(0f64)?;
        let adds = qty_new.abs()?.gt(&qty.abs()?)?;
        let divisor = flat.where_cond(&one, qty_new)?;
        let average = ((self.entry.mul(qty)? + fill.mul(dq)?)? / divisor)?;
        let entry = adds.where_cond(&average, &self.entry)?;
        let entry = opens.where_cond(&fill, &entry)?;
        self.entry = flat.where_cond(&zero, &entry)?;
        Ok(())
    }

    /// Envs where `keep` is 0 restart flat: no entry price.
    pub fn restart_flat(&mut self, keep: &Tensor) -> Result<()> {
        self.entry = self.entry.mul(keep)?;
        Ok(())
    }

    /// Envs where `opened` is 1 (flat until now) hold a position given at `price`: their entry.
    pub fn open_at(&mut self, opened: &Tensor, price: &Tensor) -> Result<()> {
        self.entry = (&self.entry + opened.mul(price)?)?;
        Ok(())
    }

    pub fn entry(&self) -> &Tensor {
        &self.entry
    }

    pub fn set_entry(&mut self, t: Tensor) {
        self.entry = t;
    }
}
