use super::reward::StepOutcome;
use crate::config::{BacktestConfig, EnvConfig, EnvCosts};
use crate::market::AssetClass;
use serde::{Deserialize, Serialize};

/// Sizing and frictions. `full_position` is the share of equity a level of 1.0 holds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rules {
    pub initial_cash: f64,
    pub full_position: f64,
    /// Proportional cost per unit traded (slippage), e.g. 0.001 = 0.1 %.
    pub slippage: f64,
    /// Fixed cost per order, in account currency.
    pub commission: f64,
    pub allow_short: bool,
}

impl Rules {
    /// The training account (seed §2): $1,000, position $ = min(acct·(1−buffer)·base, acct·max),
    /// paying `env.costs`' costs. The account is too small for a fixed commission to mean what it
    /// means at the backtest's size, so the backtest's commission is charged as its share of a
    /// full-size backtest order, on top of the slippage.
    pub fn training(env: &EnvConfig, bt: &BacktestConfig, class: AssetClass) -> Self {
        let full = ((1.0 - env.cash_buffer) * env.base_position).min(env.max_position);
        let slippage = match (env.costs, class) {
            (EnvCosts::Backtest, _) => bt.cost_per_unit(),
            (EnvCosts::Own, AssetClass::Equity) => env.slippage_equity,
            (EnvCosts::Own, AssetClass::Crypto) => env.slippage_crypto,
        };
        Rules {
            initial_cash: env.initial_cash,
            full_position: full,
            slippage,
            commission: 0.0,
            allow_short: class == AssetClass::Equity && env.allow_short_equity,
        }
    }

    /// The backtest / paper account (seed §6): $100k, 10 % per position, $1 commission.
    pub fn backtest(bt: &BacktestConfig, env: &EnvConfig, class: AssetClass) -> Self {
        Rules {
            initial_cash: bt.initial_cash,
            full_position: bt.position_size,
            slippage: bt.slippage,
            commission: bt.commission,
            allow_short: class == AssetClass::Equity && env.allow_short_equity,
        }
    }
}

/// A trade the account made: signed quantity, the price paid per unit (slippage included) and a
/// fixed cost (commission).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fill {
    pub qty: f64,
    pub price: f64,
    pub cost: f64,
}

/// A single-symbol account in currency units. Equity = cash + qty × price (a short's negative
/// quantity makes its market value negative, so P&L follows the price correctly).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub cash: f64,
    pub qty: f64,
    /// Position level in [-1, 1] that the actions move.
    pub level: f64,
    pub entry_price: f64,
    pub equity: f64,
    pub peak: f64,
    pub initial: f64,
}

impl Account {
    pub fn new(rules: &Rules) -> Self {
        Account {
            cash: rules.initial_cash,
            qty: 0.0,
            level: 0.0,
            entry_price: 0.0,
            equity: rules.initial_cash,
            peak: rules.initial_cash,
            initial: rules.initial_cash,
        }
    }

    /// A fresh account already holding `level` at `price`, sized as [`Account::rebalance`] sizes
    /// it but given rather than bought (no costs): the training env's exploring starts
    /// (`env.start = "random"`).
    pub fn opened_at(rules: &Rules, level: f64, price: f64) -> Self {
        let mut a = Account::new(rules);
        if level != 0.0 && price > 0.0 {
            a.qty = level * rules.full_position * a.equity / price;
            a.cash -= a.qty * price;
            a.level = level;
            a.entry_price = price;
        }
        a
    }

    /// Moves to `level` at `price`, sizing the position as `level × full_position × size_mult ×
    /// equity`. A level that does not change trades nothing.
    pub fn rebalance(
        &mut self,
        rules: &Rules,
        level: f64,
        price: f64,
        size_mult: f64,
    ) -> Option<Fill> {
        if level == self.level || price <= 0.0 {
            return None;
        }
        let target_qty = level * rules.full_position * size_mult * self.equity / price;
        let dq = target_qty - self.qty;
        let fill = Fill {
            qty: dq,
            price: price * (1.0 + dq.signum() * rules.slippage),
            cost: rules.commission,
        };
        self.apply_fill(&fill);
        self.level = level;
        self.mark_only(price);
        Some(fill)
    }

    /// Books a fill: `fill.qty` (signed) at `fill.price` (what was paid per unit, slippage
    /// included), plus a fixed `fill.cost`. The entry price is the average paid for the open
    /// position. The paper daemon books the broker's fills with this, the backtest its own.
    pub fn apply_fill(&mut self, fill: &Fill) {
        let (dq, price) = (fill.qty, fill.price);
        let mut new_qty = self.qty + dq;
        // Fills summed from exact broker decimals leave float dust when a position closes;
        // no broker trades below 1e-9 of a unit.
        if new_qty.abs() < 1e-9 {
            new_qty = 0.0;
        }
        if new_qty == 0.0 {
            self.entry_price = 0.0;
        } else if self.qty == 0.0 || (self.qty > 0.0) != (new_qty > 0.0) {
            self.entry_price = price;
        } else if new_qty.abs() > self.qty.abs() {
            self.entry_price = (self.entry_price * self.qty + price * dq) / new_qty;
        }
        self.cash -= dq * price + fill.cost;
        self.qty = new_qty;
    }

    /// Revalues without moving the peak (after a trade, within a bar).
    pub fn mark_only(&mut self, price: f64) {
        self.equity = self.cash + self.qty * price;
    }

    /// Revalues the account at a new price.
    pub fn mark(&mut self, price: f64) {
        self.equity = self.cash + self.qty * price;
        self.peak = self.peak.max(self.equity);
    }

    /// One environment step: act at `price` (the bar's close), then mark at `next_price`.
    /// Returns the reward: the step's equity change as a share of equity before it, × `scale`.
    pub fn step_action(
        &mut self,
        rules: &Rules,
        action: usize,
        price: f64,
        next_price: f64,
        scale: f64,
    ) -> f64 {
        let level = super::target_level(self.level, action, rules.allow_short);
        self.move_and_mark(rules, level, price, next_price, scale)
    }

    /// [`Account::step_action`] under the verdicts' stop-loss and take-profit
    /// (`sim::exit_rules`, before the action, as every backtest applies them): the training env
    /// with `env.exits = "as_traded"`.
    pub fn step_action_with_exits(
        &mut self,
        rules: &Rules,
        risk: &super::RiskRules,
        action: usize,
        price: f64,
        next_price: f64,
        scale: f64,
    ) -> f64 {
        let level = match super::exit_rules(risk, self, price) {
            Some(exit) => exit.level,
            None => super::target_level(self.level, action, rules.allow_short),
        };
        self.move_and_mark(rules, level, price, next_price, scale)
    }

    /// Moves to `level` at `price`, marks at `next_price`: the step's return × `scale`.
    fn move_and_mark(
        &mut self,
        rules: &Rules,
        level: f64,
        price: f64,
        next_price: f64,
        scale: f64,
    ) -> f64 {
        let before = self.equity;
        self.rebalance(rules, level, price, 1.0);
        self.mark(next_price);
        (self.equity - before) / before * scale
    }

    /// One environment step as [`Account::step_action`], returning what the seed reward's
    /// components are computed from (`sim::reward`).
    pub fn step_outcome(
        &mut self,
        rules: &Rules,
        action: usize,
        price: f64,
        next_price: f64,
    ) -> StepOutcome {
        let before = self.equity;
        let (old_qty, old_open) = (self.qty, self.open_return(price));
        let level = super::target_level(self.level, action, rules.allow_short);
        let fill = self.rebalance(rules, level, price, 1.0);
        self.mark(next_price);
        let cost = fill.map_or(0.0, |f| (f.price - price).abs() * f.qty.abs() + f.cost);
        // Reduced, closed or flipped: some of the old position was exited at `price`.
        let reduced =
            old_qty != 0.0 && (self.qty.abs() < old_qty.abs() || self.qty * old_qty < 0.0);
        StepOutcome {
            level: self.level,
            price_return: next_price / price - 1.0,
            pnl: (self.equity - before) / before,
            cost: cost / before,
            exit_return: reduced.then_some(old_open),
            open_return: self.open_return(next_price),
            drawdown: self.drawdown(),
        }
    }

    pub fn drawdown(&self) -> f64 {
        if self.peak > 0.0 {
            (1.0 - self.equity / self.peak).max(0.0)
        } else {
            0.0
        }
    }

    /// The observation's account block (see `features::ACCOUNT_FEATURES`).
    pub fn features(&self) -> [f32; 3] {
        let pnl = self.equity / self.initial - 1.0;
        [
            self.level as f32,
            (10.0 * pnl).tanh() as f32,
            self.drawdown() as f32,
        ]
    }

    /// Return of the open position since entry (0 when flat), signed for shorts.
    pub fn open_return(&self, price: f64) -> f64 {
        if self.qty == 0.0 || self.entry_price <= 0.0 {
            0.0
        } else {
            (price / self.entry_price - 1.0) * self.qty.signum()
        }
    }
}
