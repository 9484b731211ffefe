//! The session as the Paper pane and `paper status` show it, built from the components: the
//! broker's account, the links, the latches, one row per model (its book beside the broker's
//! quantity, what is in flight, the room left below the position cap, the stop-loss and
//! take-profit prices), the portfolio's weights, open and problem orders.

use super::daemon::Daemon;
use super::exec::view_of;
use super::view::{
    AccountView, ExternalPosition, Modes, OrderView, PaperSnapshot, PortfolioView, PositionView,
    SymbolRow, WeightRow,
};
use crate::broker::Broker;
use crate::sim::{Account, RiskRules};

/// The prices at which the stop-loss and the take-profit would close `book`'s position
/// (`sim::risk::exit_rules`' thresholds, solved for the price).
pub fn exit_prices(risk: &RiskRules, book: &Account) -> (Option<f64>, Option<f64>) {
    if book.qty == 0.0 || book.entry_price <= 0.0 {
        return (None, None);
    }
    let s = book.qty.signum();
    let stop = book.entry_price * (1.0 - s * risk.stop_loss);
    let take = book.entry_price * (1.0 + s * risk.take_profit);
    (
        Some(stop).filter(|p| *p > 0.0),
        Some(take).filter(|p| *p > 0.0),
    )
}

impl<B: Broker> Daemon<'_, B> {
    pub fn emit_snapshot(&mut self) {
        self.last_snapshot = Some(self.now());
        self.out.snapshot(&self.snapshot());
    }

    /// Days the session has traded: bar time since its first decision (a replay runs faster
    /// than the clock), else wall time.
    fn days(&self) -> f64 {
        let span = match (self.state.first_bar, self.health.last_bar) {
            (Some(a), Some(b)) if b > a => b - a,
            _ => self.now() - self.state.started,
        };
        (span.num_seconds() as f64 / 86_400.0).max(1.0 / 24.0)
    }

    fn row(&self, i: usize, equity: f64, days: f64) -> SymbolRow {
        let s = &self.strategy.models()[i];
        let ms = self.state.models.get(&s.symbol.name);
        let px = self.mirror.price(&s.symbol.name).unwrap_or(0.0);
        let book = &s.book;
        let pnl = book.cash + book.qty * px - book.initial;
        let in_flight = self.exec.inflight.signed(&s.symbol.name);
        let cap = self.settings.rules.capital.max_position;
        let (stop_loss, take_profit) = exit_prices(&self.settings.rules.risk, book);
        SymbolRow {
            symbol: s.symbol.name.clone(),
            run: s.run.clone(),
            timeframe: s.timeframe.to_string(),
            last_bar: ms.and_then(|m| m.last_bar),
            action: ms.and_then(|m| m.last_action.clone()),
            confidence: ms.map_or(0.0, |m| m.confidence),
            gate: ms.map_or(String::new(), |m| m.gate.clone()),
            level: book.level,
            position: PositionView {
                qty: book.qty,
                avg_price: book.entry_price,
                price: px,
                unrealized_pnl: if book.qty != 0.0 {
                    (px - book.entry_price) * book.qty
                } else {
                    0.0
                },
            },
            pnl,
            live_daily: (book.initial > 0.0).then(|| pnl / book.initial / days),
            expected_daily: self.expected_daily.get(&s.symbol.name).copied(),
            broker_qty: self
                .mirror
                .positions_at
                .map(|_| self.mirror.position(&s.symbol.name)),
            in_flight,
            cap_room: (equity > 0.0 && px > 0.0)
                .then(|| cap - ((book.qty + in_flight) * px).abs() / equity),
            stop_loss,
            take_profit,
            stopped: self.state.stopped.get(&s.symbol.name).cloned(),
        }
    }

    pub fn snapshot(&self) -> PaperSnapshot {
        let equity = self.equity();
        let day_start = self
            .state
            .latches
            .day
            .map_or(self.state.initial_equity, |d| d.1);
        let days = self.days();
        let rows = if self.strategy.symbols().is_empty() {
            self.rows_from_state()
        } else {
            (0..self.strategy.models().len())
                .map(|i| self.row(i, equity, days))
                .collect()
        };
        let mut open_orders: Vec<OrderView> =
            self.exec.ledger.open().map(|o| view_of(o, false)).collect();
        open_orders.extend(self.exec.ledger.external_open().map(|o| view_of(o, true)));
        let mut health = self.health.clone();
        health.rest_errors = self.mirror.rest_errors + self.exec.rest_errors;
        PaperSnapshot {
            at: self.now(),
            broker: self.exec.broker.kind(),
            session: self.state.session.clone(),
            account: AccountView {
                cash: self.mirror.cash().unwrap_or(equity),
                equity,
                buying_power: self.mirror.buying_power(equity),
                day_pnl: equity - day_start,
                initial: self.state.initial_equity,
            },
            rows,
            open_orders,
            external_positions: self
                .external
                .iter()
                .map(|(symbol, qty)| ExternalPosition {
                    symbol: symbol.clone(),
                    qty: *qty,
                })
                .collect(),
            health,
            modes: self.modes(),
            problem_orders: self.exec.problems.iter().cloned().collect(),
            portfolio: self.portfolio_view(days),
        }
    }

    /// Without models loaded (a flatten made while the daemon is down): each model the state
    /// remembers, with its position from the broker's orders.
    fn rows_from_state(&self) -> Vec<SymbolRow> {
        self.state
            .models
            .iter()
            .map(|(sym, m)| {
                let price = self.mirror.price(sym).unwrap_or(0.0);
                SymbolRow {
                    symbol: sym.clone(),
                    run: m.run.clone(),
                    last_bar: m.last_bar,
                    action: m.last_action.clone(),
                    gate: m.gate.clone(),
                    level: m.level,
                    position: PositionView {
                        qty: self.exec.ledger.position(sym),
                        price,
                        ..Default::default()
                    },
                    broker_qty: Some(self.mirror.position(sym)),
                    stopped: self.state.stopped.get(sym).cloned(),
                    ..Default::default()
                }
            })
            .collect()
    }

    fn modes(&self) -> Modes {
        Modes {
            paused: self.state.paused,
            flatten: self.state.flatten.as_ref().map(|fl| match fl.done {
                None => format!("requested {} by {}", fl.requested.format("%H:%M:%S"), fl.by),
                Some(t) if fl.ok => format!("done {}: flat", t.format("%H:%M:%S")),
                Some(t) => format!(
                    "done {} with problems: {}",
                    t.format("%H:%M:%S"),
                    fl.rows.join("; ")
                ),
            }),
            halted: self.state.latches.halted,
            stale_feed: self.stale_feed.clone(),
            daily_loss_hit: self.state.latches.daily_loss_hit,
            stopped: self
                .state
                .stopped
                .iter()
                .map(|(s, why)| format!("{s}: {why}"))
                .collect(),
        }
    }

    /// The portfolio part of the snapshot; `days` the session has traded (bar time).
    fn portfolio_view(&self, days: f64) -> Option<PortfolioView> {
        let p = self.strategy.portfolio()?;
        let ps = self.state.portfolio.as_ref();
        let equity = self.equity();
        let share = |v: f64| if equity > 0.0 { v / equity } else { 0.0 };
        let rows: Vec<WeightRow> = p
            .symbols
            .iter()
            .map(|s| {
                let qty = self.exec.ledger.position(&s.name);
                let price = self.mirror.price(&s.name).unwrap_or(0.0);
                WeightRow {
                    symbol: s.name.clone(),
                    target: ps
                        .and_then(|x| x.targets.get(&s.name).copied())
                        .unwrap_or(0.0),
                    actual: share(qty * price),
                    qty,
                    price,
                    gate: ps
                        .and_then(|x| x.gates.get(&s.name).cloned())
                        .unwrap_or_default(),
                    broker_qty: self
                        .mirror
                        .positions_at
                        .map(|_| self.mirror.position(&s.name)),
                }
            })
            .collect();
        let cash = self
            .mirror
            .cash()
            .map_or(1.0 - rows.iter().map(|r| r.actual).sum::<f64>(), share);
        Some(PortfolioView {
            run: p.run.clone(),
            timeframe: p.timeframe().to_string(),
            last_bar: ps.and_then(|x| x.last_bar),
            regime: ps.and_then(|x| x.regime.clone()),
            chosen: ps.and_then(|x| x.chosen.clone()),
            confidence: ps.map_or(0.0, |x| x.confidence),
            rows,
            cash,
            live_daily: (self.state.initial_equity > 0.0)
                .then(|| (equity / self.state.initial_equity - 1.0) / days),
            expected_daily: self.expected_daily.get(&p.run).copied(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_prices_solve_the_risk_rules_for_the_price() {
        let risk = RiskRules {
            stop_loss: 0.02,
            take_profit: 0.04,
            drawdown_halve: 0.1,
            drawdown_halt: 0.15,
        };
        let mut book = Account {
            cash: 0.0,
            qty: 10.0,
            level: 1.0,
            entry_price: 100.0,
            equity: 0.0,
            peak: 0.0,
            initial: 0.0,
        };
        let (s, t) = exit_prices(&risk, &book);
        assert!((s.unwrap() - 98.0).abs() < 1e-9 && (t.unwrap() - 104.0).abs() < 1e-9);
        // At those prices `exit_rules` fires.
        assert!(book.open_return(98.0) <= -risk.stop_loss + 1e-12);
        book.qty = -10.0;
        let (s, t) = exit_prices(&risk, &book);
        assert!((s.unwrap() - 102.0).abs() < 1e-9 && (t.unwrap() - 96.0).abs() < 1e-9);
        book.qty = 0.0;
        assert_eq!(exit_prices(&risk, &book), (None, None));
    }
}
