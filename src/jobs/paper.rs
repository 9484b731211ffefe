//! The paper job: the trained policy trades on the simulated broker over replayed bars that the
//! model never saw.

use super::ctx::Ctx;
use super::{Event, JobSummary};
use crate::broker::{Broker, SimBroker};
use crate::engine::HostPolicy;
use crate::live::PaperTrader;
use crate::sim::{Action, RiskRules, Rules};
use anyhow::{bail, Result};
use std::time::{Duration, Instant};

pub(super) fn paper(ctx: &Ctx, train_run: &str, max_bars: Option<usize>) -> Result<String> {
    let ev = ctx.load_evaluated(train_run)?;
    let sym = ev.symbol.clone();
    let rules = Rules::backtest(&ctx.cfg.backtest, &ctx.cfg.env, sym.class);
    let mut trader = PaperTrader::new(
        ctx.run.id(),
        sym.clone(),
        ev.spec.clone(),
        ctx.events.clone(),
        HostPolicy::from_model(&ev.model)?,
        rules,
        RiskRules::from(&ctx.cfg.backtest),
        ctx.cfg.live.confidence_threshold as f32,
    );
    let mut broker = SimBroker::new(rules);
    let bars = &ev.bars;
    let start = ev.first_unseen().max(trader.history_needed());
    if start >= bars.len() {
        bail!(
            "no out-of-sample {sym} bars to replay: the model saw everything up to {}; fetch newer bars first",
            ev.meta.seen_until().format("%Y-%m-%d %H:%M")
        );
    }
    trader.warm(&bars[start + 1 - trader.history_needed()..start]);
    let n = max_bars
        .unwrap_or(ctx.cfg.live.bars)
        .min(bars.len() - start);
    let pace = (ctx.cfg.live.bars_per_second > 0.0)
        .then(|| Duration::from_secs_f64(1.0 / ctx.cfg.live.bars_per_second));
    ctx.sink.info(format!(
        "paper trading {sym} ({}) on a simulated broker: replaying {n} unseen bars from {}",
        ev.choice.why, bars[start].ts
    ));
    let mut orders = 0;
    for (i, bar) in bars[start..start + n].iter().enumerate() {
        if ctx.cancel.is_cancelled() {
            break;
        }
        let tick = Instant::now();
        broker.on_bar(&sym.name, bar);
        let step = trader.on_bar(&mut broker, bar)?;
        if let Some(o) = &step.order {
            orders += 1;
            ctx.sink.emit(Event::Order(o.clone()));
        }
        if let Some(reason) = step.risk_reason {
            ctx.sink
                .warn(format!("{} {sym}: risk gate: {reason}", bar.ts));
        }
        let acct = broker.account()?;
        ctx.sink.emit(Event::PaperBar {
            ts: bar.ts,
            symbol: sym.name.clone(),
            price: bar.close,
            action: step
                .action
                .map(Action::name)
                .unwrap_or("WARMUP")
                .to_string(),
            cash: acct.cash,
            equity: acct.equity,
            positions: broker.positions()?,
        });
        ctx.sink.emit(Event::Progress {
            done: i as u64 + 1,
            total: n as u64,
            message: bar.ts.to_rfc3339(),
        });
        if let Some(p) = pace {
            std::thread::sleep(p.saturating_sub(tick.elapsed()));
        }
    }
    let acct = broker.account()?;
    let ret = acct.equity / rules.initial_cash - 1.0;
    ctx.save_json("orders.json", &broker.orders()?)?;
    ctx.set_summary(JobSummary::Paper {
        train_run: train_run.to_string(),
        equity: acct.equity,
        cash: acct.cash,
        total_return: ret,
        orders,
    })?;
    Ok(format!(
        "equity {:.2} ({:+.2} %), {orders} orders",
        acct.equity,
        ret * 100.0
    ))
}
