//! The one decision path (DESIGN, principle 9): how a policy's output on a closed bar becomes the
//! position a model takes. The steps, in order:
//!
//! 1. the confidence threshold (below it the choice becomes HOLD);
//! 2. stop-loss / take-profit on the open position;
//! 3. the drawdown rules (sizes halve, then a sticky halt of entries);
//! 4. the position size (level × size × equity / price);
//! 5. the capital gates (`sim::gates`), which see the session-wide blocks (halt, daily loss
//!    limit, and in paper trading pause, flatten and a stale feed) and the symbol's cooldown.
//!
//! The paper daemon calls [`propose`] and [`step`] for every model bar; the backtest — behind
//! training-time validation, the gate, walk-forward and the learning bench — calls the same two
//! for every bar it steps, against its own account. That is why a simulated replay of an
//! evaluated period trades exactly what the evaluation reported.

use super::gates::{gate, CapitalRules, GateNote, Situation, Want};
use super::N_ACTIONS;
use super::{drawdown_rules, exit_rules, target_level, Account, Action, RiskRules, Rules};
use crate::config::Config;
use crate::market::AssetClass;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// Every rule that turns a policy's choice into orders, as paper trading applies it: from
/// `[backtest]` (account, sizing, costs, risk) and `[live]` (threshold, capital gates, daily
/// loss limit, cooldown). Evaluations record the set they used.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TradingRules {
    /// A single-symbol model's choice below this softmax probability becomes HOLD.
    pub confidence_threshold: f32,
    /// The same for a portfolio model's regime.
    pub portfolio_confidence_threshold: f32,
    /// Share of equity a full-size position (level 1) takes.
    pub position_size: f64,
    pub risk: RiskRules,
    pub capital: CapitalRules,
    /// Entries stop for the day once equity is this share below the day's start.
    pub daily_loss_limit: f64,
    /// No new entry in a symbol within this many seconds of bar time after its last trade.
    pub cooldown_s: i64,
    /// The simulated account: starting cash, proportional slippage, fixed cost per order.
    pub initial_cash: f64,
    pub slippage: f64,
    pub commission: f64,
}

impl TradingRules {
    pub fn from_config(cfg: &Config) -> Self {
        let (b, l) = (&cfg.backtest, &cfg.live);
        TradingRules {
            confidence_threshold: l.confidence_threshold as f32,
            portfolio_confidence_threshold: l.portfolio_confidence_threshold as f32,
            position_size: b.position_size,
            risk: RiskRules::from(b),
            capital: CapitalRules {
                cash_buffer: l.cash_buffer,
                max_position: l.max_position,
                max_exposure: l.max_exposure,
                min_order_value: 1.0,
            },
            daily_loss_limit: l.daily_loss_limit,
            cooldown_s: i64::try_from(l.cooldown_s).unwrap_or(i64::MAX / 4),
            initial_cash: b.initial_cash,
            slippage: b.slippage,
            commission: b.commission,
        }
    }

    /// The same rules acting on every choice of the policy (no confidence threshold): what the
    /// raw policy would do, shown beside the figures "as traded".
    pub fn raw(&self) -> Self {
        TradingRules {
            confidence_threshold: 0.0,
            portfolio_confidence_threshold: 0.0,
            ..*self
        }
    }

    /// Whether the raw policy trades differently under these rules.
    pub fn has_threshold(&self) -> bool {
        self.confidence_threshold > 0.0
    }

    /// The same for a portfolio model.
    pub fn has_portfolio_threshold(&self) -> bool {
        self.portfolio_confidence_threshold > 0.0
    }

    pub fn cooldown(&self) -> Duration {
        Duration::try_seconds(self.cooldown_s).unwrap_or(Duration::MAX)
    }

    /// When a cooldown started by a trade at `at` ends (saturating: a huge cooldown is "never").
    pub fn cooldown_until(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        at.checked_add_signed(self.cooldown())
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// The account a model (or a baseline) trades under these rules: sizing and costs.
    pub fn account(&self, allow_short: bool) -> Rules {
        Rules {
            initial_cash: self.initial_cash,
            full_position: self.position_size,
            slippage: self.slippage,
            commission: self.commission,
            allow_short,
        }
    }

    /// `size 10 % · slippage 0.05 % + $1/order · confidence ≥ 0.40 · stop 2 % / take 4 % · …`
    pub fn describe(&self) -> String {
        let r = &self.risk;
        format!(
            "size {} % · slippage {} % + ${}/order · confidence ≥ {:.2} · stop {} % / take {} % · halve at {} % DD, halt at {} % · cap {} %/position, {} % allocated · daily loss {} % · cooldown {} s",
            trim(self.position_size * 100.0),
            trim(self.slippage * 100.0),
            trim(self.commission),
            self.confidence_threshold,
            trim(r.stop_loss * 100.0),
            trim(r.take_profit * 100.0),
            trim(r.drawdown_halve * 100.0),
            trim(r.drawdown_halt * 100.0),
            trim(self.capital.max_position * 100.0),
            trim((1.0 - self.capital.cash_buffer).min(self.capital.max_exposure) * 100.0),
            trim(self.daily_loss_limit * 100.0),
            self.cooldown_s
        )
    }

    /// The rules a portfolio model trades by (no stops or position size: the regime's weights
    /// size it): `slippage 0.05 % + $1/order · regime confidence ≥ 0.00 · halve at 10 % DD, …`.
    pub fn describe_portfolio(&self) -> String {
        let r = &self.risk;
        format!(
            "slippage {} % + ${}/order · regime confidence ≥ {:.2} · halve at {} % DD, halt at {} % · cap {} %/position, {} % allocated · daily loss {} % · cooldown {} s",
            trim(self.slippage * 100.0),
            trim(self.commission),
            self.portfolio_confidence_threshold,
            trim(r.drawdown_halve * 100.0),
            trim(r.drawdown_halt * 100.0),
            trim(self.capital.max_position * 100.0),
            trim((1.0 - self.capital.cash_buffer).min(self.capital.max_exposure) * 100.0),
            trim(self.daily_loss_limit * 100.0),
            self.cooldown_s
        )
    }
}

/// Whether a model of `class` may go short under `cfg` (equities only, when allowed).
pub fn shorts_allowed(cfg: &Config, class: AssetClass) -> bool {
    class == AssetClass::Equity && cfg.env.allow_short_equity
}

/// A number without trailing zeros: 10, 0.05, 2.5.
fn trim(x: f64) -> String {
    let s = format!("{x:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The session-wide latches the rules keep between bars: the equity peak (drawdown), the
/// trading day and its starting equity (daily loss limit), and the sticky drawdown halt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latches {
    pub peak_equity: f64,
    /// The trading day and the equity it started with.
    pub day: Option<(NaiveDate, f64)>,
    /// Sticky drawdown halt: set past `drawdown_halt`, cleared only by the user.
    pub halted: bool,
    /// The daily loss limit was hit today: no new entries until the next day.
    #[serde(default)]
    pub daily_loss_hit: bool,
}

/// What marking the equity at a decision found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Marked {
    /// Drawdown from the peak, in [0, 1].
    pub drawdown: f64,
    /// The daily loss limit was hit at this mark (it was not before).
    pub daily_loss_now: bool,
}

impl Latches {
    pub fn new(equity: f64) -> Self {
        Latches {
            peak_equity: equity,
            day: None,
            halted: false,
            daily_loss_hit: false,
        }
    }

    /// Marks `equity` at a decision on `day`: a new day resets the daily loss latch and records
    /// the day's start, the limit latches once equity falls past it, the peak moves up.
    pub fn mark(&mut self, day: NaiveDate, equity: f64, daily_loss_limit: f64) -> Marked {
        match self.day {
            Some((d, _)) if d == day => {}
            _ => {
                self.day = Some((day, equity));
                self.daily_loss_hit = false;
            }
        }
        let mut daily_loss_now = false;
        if let Some((_, start)) = self.day {
            if equity < start * (1.0 - daily_loss_limit) && !self.daily_loss_hit {
                self.daily_loss_hit = true;
                daily_loss_now = true;
            }
        }
        self.peak_equity = self.peak_equity.max(equity);
        let drawdown = if self.peak_equity > 0.0 {
            (1.0 - equity / self.peak_equity).max(0.0)
        } else {
            0.0
        };
        Marked {
            drawdown,
            daily_loss_now,
        }
    }

    /// Why these latches block new entries, if they do (paper adds pause, flatten, stale feed).
    pub fn entry_block(&self) -> Option<&'static str> {
        if self.halted {
            Some("drawdown halt")
        } else if self.daily_loss_hit {
            Some("daily loss limit")
        } else {
            None
        }
    }
}

/// What the model asks for on one bar, after the threshold and the risk rules.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Proposal {
    /// The policy's most probable action and its probability.
    pub action: usize,
    pub confidence: f32,
    /// The action after the confidence threshold (below it: HOLD).
    pub acted: usize,
    /// The level after the risk rules, and the size multiplier of the drawdown rules.
    pub level: f64,
    pub size_mult: f64,
    /// Why the risk rules changed the policy's wish (stop-loss, take-profit, drawdown halt).
    pub risk: Option<&'static str>,
}

impl Proposal {
    /// A new level: only then does the model trade.
    pub fn changes(&self, current: f64) -> bool {
        self.level != current
    }

    /// The threshold turned the policy's choice into HOLD.
    pub fn held(&self) -> bool {
        self.acted != self.action
    }
}

/// Steps 1–3: the policy's choice (`action` with probability `confidence`) against the model's
/// own `book` at `price`, the session's drawdown `dd` and its sticky `halted` latch.
#[allow(clippy::too_many_arguments)]
pub fn propose(
    rules: &TradingRules,
    book: &Account,
    action: usize,
    confidence: f32,
    price: f64,
    dd: f64,
    halted: &mut bool,
    allow_short: bool,
) -> Proposal {
    let action = action.min(N_ACTIONS - 1);
    let acted = if confidence < rules.confidence_threshold {
        0
    } else {
        action
    };
    let want = target_level(book.level, acted, allow_short);
    let risk = &rules.risk;
    let d = exit_rules(risk, book, price)
        .unwrap_or_else(|| drawdown_rules(risk, dd, halted, book.level, want));
    Proposal {
        action,
        confidence,
        acted,
        level: d.level,
        size_mult: d.size_mult,
        risk: d.reason,
    }
}

/// The rest of a bar's situation, as the session sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Circumstances {
    pub symbol: String,
    pub price: f64,
    /// The session's equity (a backtest: its own account's), which sizes the position.
    pub equity: f64,
    pub situation: Situation,
    /// The symbol is within its cooldown after the last trade.
    pub cooling: bool,
    /// The broker takes a long↔short flip in one order.
    pub flip_in_one_order: bool,
    /// Units of this symbol ordered and not yet filled (signed). Paper trading counts them as
    /// held, so an order that fills bars later is never ordered again on top (the cap holds);
    /// the backtest fills at once, so this is 0 there and sizing is unchanged.
    pub in_flight: f64,
}

/// The decision on one bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub proposal: Proposal,
    /// The position to move to (signed units) and the level recorded with it; `None`: nothing
    /// to trade on this bar.
    pub order: Option<(f64, f64)>,
    /// The gates' word: `ok`, why it held, what resized or blocked it.
    pub note: String,
}

/// `held: BUY_50 at confidence 0.32 < 0.40`.
pub fn held_note(p: &Proposal, threshold: f32) -> String {
    format!(
        "held: {} at confidence {:.2} < {:.2}",
        Action::name(p.action),
        p.confidence,
        threshold
    )
}

/// Steps 4–5: sizes the proposal and passes it through the capital gates. `current` is the
/// model's filled position (signed units), `level` the level it holds; the gates judge the
/// position with its orders in flight (`c.in_flight`) counted as held. A change against an
/// order still in flight waits for it (a broker refuses the opposite side meanwhile).
pub fn step(
    rules: &TradingRules,
    p: Proposal,
    current: f64,
    level: f64,
    c: &Circumstances,
) -> Step {
    if !p.changes(level) {
        let note = if p.held() {
            held_note(&p, rules.confidence_threshold)
        } else {
            p.risk.map_or("ok".into(), str::to_string)
        };
        return Step {
            proposal: p,
            order: None,
            note,
        };
    }
    let held = current + c.in_flight;
    let target = p.level * rules.position_size * p.size_mult * c.equity / c.price;
    let want = Want {
        symbol: c.symbol.clone(),
        price: c.price,
        current: held,
        target,
        cooling: c.cooling,
    };
    let (sized, gnote) = gate(&[want], &c.situation, &rules.capital, c.flip_in_one_order)
        .pop()
        .unwrap_or((held, GateNote::Blocked("no decision".into())));
    if (sized - held) * c.in_flight < 0.0 {
        return Step {
            proposal: p,
            order: None,
            note: "waiting: an order in flight".into(),
        };
    }
    let note = match (p.risk, &gnote) {
        (Some(r), GateNote::Ok) => r.to_string(),
        (Some(r), n) => format!("{r}; {}", n.text()),
        (None, n) => n.text(),
    };
    let order =
        (!(matches!(gnote, GateNote::Blocked(_)) && sized == held)).then_some((sized, p.level));
    Step {
        proposal: p,
        order,
        note,
    }
}

#[cfg(test)]
mod tests;
