//! The market as the portfolio rules see it, derived once from a panel and its factor table:
//! who can trade at each bar, at which price, what every holding is worth, and the regimes'
//! target weights. Then [`Tape::step`], one decision at a time.
//!
//! Timing (seed 002 §13c): a decision for bar T is made on observations that end at bar T−1
//! (its close); it executes at **the open of T**, the first price after that information; the
//! step ends marked at **the close of T**. The reward is the step's log return,
//! `ln(equity at close T / equity at close T−1) × reward_scale`: it includes the overnight move
//! of the old holdings, the costs, and the day's move of the new ones. Log returns add up over an
//! episode to its log growth, so the return the policy maximises is the compounded one.
//!
//! Missing bars: a symbol without a bar at T is not tradable at T; its holding stays and is
//! valued at its last close (its "mark"). A symbol is **eligible** for the regimes at T when it
//! is tradable at T and has factor scores at T−1 (a full lookback of bars).

use super::{target_weights, PortfolioAccount, PortfolioRules, Rebalance, Regime, Weights};
use crate::data::Panel;
use crate::features::portfolio::{FactorScores, FactorTable};
use crate::market::AssetClass;
use anyhow::{bail, Result};
use chrono::{DateTime, Utc};
use std::ops::Range;

#[derive(Debug, Clone, PartialEq)]
pub struct Tape {
    pub n_bars: usize,
    pub n_symbols: usize,
    pub class: AssetClass,
    pub ts: Vec<DateTime<Utc>>,
    /// `[t * n_symbols + i]`: the open where the symbol trades at t, else its last close before
    /// t (what a frozen holding is worth during the rebalance); 0 before its first bar.
    pub exec_price: Vec<f64>,
    /// `[t * n_symbols + i]`: the close at t, else the last close before; 0 before the first bar.
    pub mark: Vec<f64>,
    pub tradable: Vec<bool>,
    pub eligible: Vec<bool>,
    /// Scores at t−1, the ones a decision executed at t ranks by (`None` at t = 0).
    scores: Vec<Option<FactorScores>>,
}

/// One step's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct StepOutcome {
    pub reward: f64,
    /// `None` for HOLD.
    pub rebalance: Option<Rebalance>,
    /// Equity marked at the close of the step's bar.
    pub equity: f64,
}

impl Tape {
    pub fn new(panel: &Panel, factors: &FactorTable) -> Tape {
        let (n, m) = (panel.n_bars(), panel.n_symbols());
        let mut exec_price = vec![0.0; n * m];
        let mut mark = vec![0.0; n * m];
        let mut tradable = vec![false; n * m];
        let mut eligible = vec![false; n * m];
        let mut scores = vec![None; n * m];
        for t in 0..n {
            for i in 0..m {
                let k = t * m + i;
                let last = if t > 0 { mark[k - m] } else { 0.0 };
                tradable[k] = panel.is_available(t, i);
                exec_price[k] = panel.open(t, i).unwrap_or(last);
                mark[k] = panel.close(t, i).unwrap_or(last);
                if t > 0 {
                    scores[k] = factors.scores[k - m];
                    eligible[k] = tradable[k] && scores[k].is_some();
                }
            }
        }
        Tape {
            n_bars: n,
            n_symbols: m,
            class: panel.class,
            ts: panel.ts.clone(),
            exec_price,
            mark,
            tradable,
            eligible,
            scores,
        }
    }

    fn cells(&self, t: usize) -> Range<usize> {
        t * self.n_symbols..(t + 1) * self.n_symbols
    }

    pub fn marks(&self, t: usize) -> &[f64] {
        &self.mark[self.cells(t)]
    }

    pub fn exec_prices(&self, t: usize) -> &[f64] {
        &self.exec_price[self.cells(t)]
    }

    pub fn tradable_at(&self, t: usize) -> &[bool] {
        &self.tradable[self.cells(t)]
    }

    pub fn eligible_at(&self, t: usize) -> &[bool] {
        &self.eligible[self.cells(t)]
    }

    /// The regime's target weights for a decision executed at `t` (`None` for HOLD).
    pub fn targets(&self, t: usize, regime: Regime) -> Option<Weights> {
        target_weights(regime, &self.scores[self.cells(t)], self.eligible_at(t))
    }

    /// Exec bars an episode or evaluation can use within `range`: from `first_exec` (the
    /// layout's first bar with a full observation window) to the end of the tape.
    pub fn exec_range(&self, first_exec: usize, range: Range<usize>) -> Result<Range<usize>> {
        let lo = range.start.max(first_exec).max(1);
        let hi = range.end.min(self.n_bars);
        if hi <= lo {
            bail!(
                "no bar to trade: the range {}..{} of {} bars leaves none after the {}-bar lookback and window",
                range.start,
                range.end,
                self.n_bars,
                first_exec
            );
        }
        Ok(lo..hi)
    }

    /// One decision executed at bar `t` (≥ 1): rebalances to `action`'s regime (HOLD trades
    /// nothing) with the slippage draws `slippage` (one per symbol), marks at the close of `t`,
    /// and returns the reward. An action outside the 12 regimes is an error.
    pub fn step(
        &self,
        account: &mut PortfolioAccount,
        rules: &PortfolioRules,
        t: usize,
        action: usize,
        slippage: &[f64],
    ) -> Result<StepOutcome> {
        let Some(regime) = Regime::from_index(action) else {
            bail!("action {action} is not one of the 12 portfolio regimes (0–11)");
        };
        if t == 0 || t >= self.n_bars {
            bail!(
                "bar {t} cannot be traded: decisions execute at bars 1..{}",
                self.n_bars
            );
        }
        let before = account.equity;
        let rebalance = self.targets(t, regime).map(|w| {
            account.rebalance(
                &rules.frictions,
                &w,
                self.exec_prices(t),
                self.tradable_at(t),
                slippage,
            )
        });
        account.mark(self.marks(t));
        let ratio = if before > 0.0 {
            account.equity / before
        } else {
            1.0
        };
        Ok(StepOutcome {
            reward: ratio.max(1e-6).ln() * rules.reward_scale,
            rebalance,
            equity: account.equity,
        })
    }
}
