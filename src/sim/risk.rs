//! Risk gates of the backtest and the paper trader (seed §6): stop-loss and take-profit exits,
//! halved sizes past one drawdown, a sticky halt on new entries past another. CLOSE and exits are
//! processed before the gates and are always allowed.

use super::Account;
use crate::config::BacktestConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
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

/// Stop-loss and take-profit on the open position: they close it whatever the policy wants.
pub fn exit_rules(rules: &RiskRules, acct: &Account, price: f64) -> Option<RiskDecision> {
    let open = acct.open_return(price);
    let reason = if acct.qty != 0.0 && open <= -rules.stop_loss {
        "stop-loss"
    } else if acct.qty != 0.0 && open >= rules.take_profit {
        "take-profit"
    } else {
        return None;
    };
    Some(RiskDecision {
        level: 0.0,
        size_mult: 1.0,
        reason: Some(reason),
    })
}

/// The drawdown rules: sizes halve past `drawdown_halve`; past `drawdown_halt` the (sticky)
/// `halted` latch blocks everything but reductions. `dd` is the account's drawdown from its peak:
/// the backtest's own account, or the paper daemon's whole portfolio.
pub fn drawdown_rules(
    rules: &RiskRules,
    dd: f64,
    halted: &mut bool,
    level: f64,
    want: f64,
) -> RiskDecision {
    if dd >= rules.drawdown_halt {
        *halted = true;
    }
    let reduces = want.abs() <= level.abs() && want.signum() * level.signum() >= 0.0;
    if *halted && !reduces {
        return RiskDecision {
            level,
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
