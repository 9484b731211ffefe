//! Risk gates of the backtest and the paper trader (seed §6): stop-loss and take-profit exits,
//! halved sizes past one drawdown, a sticky halt on new entries past another. CLOSE and exits are
//! processed before the gates and are always allowed.

use super::{target_level, Account};
use crate::config::BacktestConfig;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RiskRules {
    pub stop_loss: f64,
    pub take_profit: f64,
    pub drawdown_halve: f64,
    pub drawdown_halt: f64,
}

impl From<&BacktestConfig> for RiskRules {
    fn from(b: &BacktestConfig) -> Self {
        RiskRules {
            stop_loss: b.stop_loss,
            take_profit: b.take_profit,
            drawdown_halve: b.drawdown_halve,
            drawdown_halt: b.drawdown_halt,
        }
    }
}

/// What the gates made of the policy's action.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RiskDecision {
    pub level: f64,
    pub size_mult: f64,
    pub reason: Option<&'static str>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RiskGate {
    pub halted: bool,
}

impl RiskGate {
    pub fn decide(
        &mut self,
        rules: &RiskRules,
        acct: &Account,
        action: usize,
        allow_short: bool,
        price: f64,
    ) -> RiskDecision {
        self.decide_level(
            rules,
            acct,
            target_level(acct.level, action, allow_short),
            price,
        )
    }

    /// The gates applied to the position level the policy (or a rule) asks for.
    pub fn decide_level(
        &mut self,
        rules: &RiskRules,
        acct: &Account,
        want: f64,
        price: f64,
    ) -> RiskDecision {
        let open = acct.open_return(price);
        if acct.qty != 0.0 && open <= -rules.stop_loss {
            return RiskDecision {
                level: 0.0,
                size_mult: 1.0,
                reason: Some("stop-loss"),
            };
        }
        if acct.qty != 0.0 && open >= rules.take_profit {
            return RiskDecision {
                level: 0.0,
                size_mult: 1.0,
                reason: Some("take-profit"),
            };
        }
        let dd = acct.drawdown();
        if dd >= rules.drawdown_halt {
            self.halted = true;
        }
        let reduces = want.abs() <= acct.level.abs() && want.signum() * acct.level.signum() >= 0.0;
        if self.halted && !reduces {
            return RiskDecision {
                level: acct.level,
                size_mult: 1.0,
                reason: Some("drawdown halt"),
            };
        }
        let size_mult = if dd >= rules.drawdown_halve { 0.5 } else { 1.0 };
        RiskDecision {
            level: want,
            size_mult,
            reason: None,
        }
    }
}
