use serde::{Deserialize, Serialize};

pub const N_ACTIONS: usize = 8;

/// The seed's eight actions (v4.0+). BUY/SELL move the position level by a quarter, half or
/// three quarters of full size; repeating an action scales up to full size.
pub const ACTION_MEANINGS: [&str; N_ACTIONS] = [
    "HOLD", "BUY_25", "BUY_50", "BUY_75", "SELL_25", "SELL_50", "SELL_75", "CLOSE",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    Hold,
    Buy(u8),
    Sell(u8),
    Close,
}

impl Action {
    pub fn from_index(i: usize) -> Action {
        match i {
            1 => Action::Buy(25),
            2 => Action::Buy(50),
            3 => Action::Buy(75),
            4 => Action::Sell(25),
            5 => Action::Sell(50),
            6 => Action::Sell(75),
            7 => Action::Close,
            _ => Action::Hold,
        }
    }

    pub fn name(i: usize) -> &'static str {
        ACTION_MEANINGS.get(i).copied().unwrap_or("HOLD")
    }

    /// Signed change of the position level (`None` for CLOSE, which sets it to zero).
    pub fn delta(self) -> Option<f64> {
        match self {
            Action::Hold => Some(0.0),
            Action::Buy(p) => Some(p as f64 / 100.0),
            Action::Sell(p) => Some(-(p as f64) / 100.0),
            Action::Close => None,
        }
    }
}

/// The position level after `action`: in [-1, 1], or [0, 1] where shorting is not allowed.
pub fn target_level(level: f64, action: usize, allow_short: bool) -> f64 {
    let lo = if allow_short { -1.0 } else { 0.0 };
    match Action::from_index(action).delta() {
        None => 0.0,
        Some(d) => (level + d).clamp(lo, 1.0),
    }
}
