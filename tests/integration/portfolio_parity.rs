//! One decision path for portfolio models: the paper daemon on the simulated broker, replaying
//! a universe's bars, trades exactly what the as-traded evaluation (`eval::portfolio_traded`)
//! reports for the same bars and rules — the equity before every decision, every fill (bar,
//! member, quantity, price) and the final mark — with a member that misses bars (masked), under
//! the default rules and under a confidence threshold with a cooldown and tight latches.

use candle_core::{Device, Tensor};
use chrono::{DateTime, Duration, TimeZone, Utc};
use quantdeck::broker::types::{Order, Side};
use quantdeck::broker::{Broker, SimBroker, SimCosts};
use quantdeck::config::Config;
use quantdeck::data::Panel;
use quantdeck::engine::{ActorCritic, HostPolicy};
use quantdeck::eval::{PortfolioTrader, TradedRun};
use quantdeck::features::portfolio::{self as pfeat, PortfolioSpec};
use quantdeck::jobs::{CancelToken, Event, EventSink};
use quantdeck::live::feed::ReplayFeed;
use quantdeck::live::journal::Journal;
use quantdeck::live::state::DaemonState;
use quantdeck::live::view::DecidedBar;
use quantdeck::live::{Daemon, PortfolioSlot, Settings};
use quantdeck::market::{Bar, Symbol, Timeframe};
use quantdeck::rng::Rng;
use quantdeck::sim::portfolio::{Regime, N_REGIMES};
use quantdeck::sim::TradingRules;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const MEMBERS: [&str; 3] = ["SYNA/USD", "SYNB/USD", "SYNC/USD"];
const TF: Timeframe = Timeframe::Minute(15);

/// Correlated random walks, one 15-minute bar per member and time; the third member misses
/// every seventh time (masked: not traded, its holding valued at its last close).
fn series(n: usize) -> Vec<Vec<Bar>> {
    let from = Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap();
    let mut rng = Rng::new(21);
    let mut px = [100.0, 50.0, 20.0];
    let mut out = vec![Vec::new(); 3];
    for k in 0..n {
        let ts = from + Duration::minutes(15 * k as i64);
        let common = 0.008 * rng.normal();
        for i in 0..3 {
            let open = px[i];
            px[i] *= 1.0 + common + 0.006 * rng.normal();
            if i == 2 && k % 7 == 3 {
                continue;
            }
            out[i].push(Bar {
                ts,
                open,
                high: open.max(px[i]) * 1.001,
                low: open.min(px[i]) * 0.999,
                close: px[i],
                volume: 10.0,
            });
        }
    }
    out
}

/// A random network whose policy head is scaled up, so it is decisive and switches regimes.
fn model(spec: &PortfolioSpec) -> ActorCritic {
    let dev = Device::Cpu;
    let m = ActorCritic::new(spec.obs_dim(), &[16], N_REGIMES, 11, &dev).unwrap();
    let mut t: HashMap<String, Tensor> = m.named_tensors().into_iter().collect();
    let w = t["actor.weight"].affine(150.0, 0.0).unwrap();
    t.insert("actor.weight".into(), w);
    ActorCritic::from_tensors(spec.obs_dim(), &[16], N_REGIMES, &t, &dev).unwrap()
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1.0)
}

/// What the daemon reported: its decisions, and the broker's fills (time, member, signed qty,
/// price), and its final equity.
struct Paper {
    decided: Vec<DecidedBar>,
    fills: Vec<(DateTime<Utc>, String, f64, f64)>,
    equity: f64,
}

/// The model's slot with each member's history before `from`, as the paper job warms it.
fn warmed_slot(
    spec: &PortfolioSpec,
    model: &ActorCritic,
    symbols: &[Symbol],
    bars: &[Vec<Bar>],
    from: DateTime<Utc>,
) -> PortfolioSlot {
    let mut slot = PortfolioSlot::new(
        "train-x",
        spec.clone(),
        symbols.to_vec(),
        HostPolicy::from_model(model).unwrap(),
    );
    let keep = slot.history_needed() + 4;
    for (i, b) in bars.iter().enumerate() {
        let end = b.partition_point(|x| x.ts < from);
        for x in &b[end.saturating_sub(keep)..end] {
            slot.push(i, *x);
        }
    }
    slot
}

/// The broker's fills: (time, member, signed quantity, price).
fn filled(orders: &[Order]) -> Vec<(DateTime<Utc>, String, f64, f64)> {
    let f = quantdeck::broker::simulated::f;
    orders
        .iter()
        .filter(|o| o.filled_qty > rust_decimal::Decimal::ZERO)
        .map(|o| {
            let sign = if o.side == Side::Buy { 1.0 } else { -1.0 };
            let px = o.filled_avg_price.map(f).unwrap_or(0.0);
            let at = o.filled_at.expect("a fill time");
            (at, o.symbol.clone(), sign * f(o.filled_qty), px)
        })
        .collect()
}

/// Replays the members' bars from `from` to `to` through the daemon (history warmed from the
/// bars before), the last time marking only, as `paper --fold` does.
fn paper(
    spec: &PortfolioSpec,
    model: &ActorCritic,
    rules: TradingRules,
    bars: &[Vec<Bar>],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Paper {
    let dir = tempfile::tempdir().unwrap();
    let symbols: Vec<Symbol> = MEMBERS.iter().map(|s| Symbol::crypto(s)).collect();
    let slot = warmed_slot(spec, model, &symbols, bars, from);
    let costs = SimCosts {
        slippage: rules.slippage,
        commission: rules.commission,
    };
    let broker = SimBroker::open(rules.initial_cash, costs, false, None).unwrap();
    let state = DaemonState::new("t", broker.kind(), rules.initial_cash, Utc::now());
    let settings = Settings {
        rules,
        commission: rules.commission,
        order_timeout: std::time::Duration::from_secs(30),
        extended_hours: false,
        late_bar_grace: Duration::seconds(10),
    };
    let decided = Arc::new(Mutex::new(Vec::new()));
    let seen = decided.clone();
    let sink = EventSink::detached("t").observe(move |r| {
        if let Event::Decided(d) = &r.event {
            seen.lock().unwrap().push((**d).clone());
        }
    });
    let cancel = CancelToken::new();
    let out = quantdeck::jobs::PaperOutput::new(&sink, &cancel);
    let journal = Journal::open(&dir.path().join("journal.jsonl")).unwrap();
    let mut d = Daemon::new(
        dir.path().to_path_buf(),
        &out,
        broker,
        settings,
        state,
        journal,
        quantdeck::live::Strategy::Portfolio(Box::new(slot)),
    );
    let per_symbol: Vec<(String, Vec<Bar>)> = symbols
        .iter()
        .zip(bars)
        .map(|(s, b)| {
            let mine = b.iter().filter(|x| x.ts >= from && x.ts <= to).copied();
            (s.name.clone(), mine.collect())
        })
        .collect();
    let feed = ReplayFeed::new(per_symbol, None, 0.0).marking_the_last();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (orders, equity) = rt.block_on(async {
        d.run(feed, None).await.unwrap();
        let orders = d
            .broker()
            .orders_since(DateTime::<Utc>::MIN_UTC)
            .await
            .unwrap();
        let acct = d.broker().account().await.unwrap();
        (orders, quantdeck::broker::simulated::f(acct.equity))
    });
    let fills = filled(&orders);
    let decided = decided.lock().unwrap().clone();
    Paper {
        decided,
        fills,
        equity,
    }
}

/// Holds the daemon's session against the evaluation's run, bar for bar. Quantities and
/// equities agree to 1e-6 relative, not exactly: the daemon's orders carry Decimal quantities
/// rounded down to 9 decimals (`live::orders::plan`) and the broker keeps its books in Decimal.
fn assert_same(panel: &Panel, run: &TradedRun, p: &Paper) {
    assert_eq!(p.decided.len(), run.rows.len(), "decisions");
    let mut acted = [0usize; N_REGIMES];
    for (k, d) in p.decided.iter().enumerate() {
        assert_eq!(d.symbol, "portfolio");
        assert_eq!(d.bar, panel.ts[run.rows[k]], "decision {k}");
        assert!(
            close(d.equity, run.equity[k], 1e-6),
            "decision {k} ({}): paper equity {} vs evaluation {}",
            d.bar,
            d.equity,
            run.equity[k]
        );
        let r = Regime::ALL.iter().find(|r| r.name() == d.acted).unwrap();
        acted[r.index()] += 1;
        // The members the decision ordered are the ones that filled at its bar.
        let mut named: Vec<&str> = d.targets.iter().map(|(s, _)| s.as_str()).collect();
        let mut filled: Vec<&str> = p
            .fills
            .iter()
            .filter(|f| f.0 == d.bar)
            .map(|f| f.1.as_str())
            .collect();
        named.sort();
        filled.sort();
        assert_eq!(named, filled, "decision {k}");
    }
    assert_eq!(acted, run.acted, "regimes acted on");
    assert_eq!(p.fills.len(), run.fills.len(), "fills");
    for (f, x) in p.fills.iter().zip(&run.fills) {
        assert_eq!(f.0, panel.ts[x.row], "fill time");
        assert_eq!(f.1, panel.symbols[x.member].name, "fill member");
        assert!(close(f.2, x.qty, 1e-6), "qty {} vs {}", f.2, x.qty);
        assert!(close(f.3, x.price, 1e-9), "price {} vs {}", f.3, x.price);
    }
    let end = *run.equity.last().unwrap();
    assert!(close(p.equity, end, 1e-6), "final {} vs {end}", p.equity);
}

#[test]
fn the_paper_daemon_trades_what_the_as_traded_evaluation_reports() {
    let names: Vec<String> = MEMBERS.iter().map(|s| s.to_string()).collect();
    let spec = PortfolioSpec::new(&names, TF, 3, 6);
    let bars = series(420);
    let symbols: Vec<Symbol> = MEMBERS.iter().map(|s| Symbol::crypto(s)).collect();
    let panel = Panel::align(&symbols, TF, &bars, None).unwrap();
    let features = pfeat::compute(&spec, &panel).unwrap();
    let model = model(&spec);
    let policy = HostPolicy::from_model(&model).unwrap();
    let (a, b) = (60, 380);
    let trader = |rules| PortfolioTrader {
        spec: &spec,
        panel: &panel,
        features: &features,
        rules,
    };

    // The default rules: 20 % per position, 70 % allocated, no threshold.
    let rules = TradingRules::from_config(&Config::default());
    let run = trader(rules).run(a..b, |o| policy.act(o)).unwrap();
    let used = run.acted.iter().filter(|n| **n > 0).count();
    assert!(
        run.fills.len() > 20 && used >= 3,
        "{} fills, {:?}",
        run.fills.len(),
        run.acted
    );
    let masked_rows = run
        .rows
        .iter()
        .filter(|&&t| panel.close(t, 2).is_none())
        .count();
    assert!(masked_rows > 10, "the third member is masked at times");
    let (from, to) = (panel.ts[run.rows[0]], panel.ts[run.mark]);
    assert_same(&panel, &run, &paper(&spec, &model, rules, &bars, from, to));

    // A threshold between two of the raw run's confidences near the median (so no confidence
    // sits on it), a cooldown, a daily loss limit and tight drawdown rules.
    let mut c = run.confidences.clone();
    c.sort_by(f32::total_cmp);
    let mid = c.len() / 2;
    let threshold = (c[mid] + c[(mid + 1..c.len()).find(|&k| c[k] > c[mid]).unwrap()]) / 2.0;
    let mut cfg = Config::default();
    cfg.live.portfolio_confidence_threshold = threshold as f64;
    cfg.live.cooldown_s = 3600;
    cfg.live.daily_loss_limit = 0.01;
    cfg.backtest.drawdown_halve = 0.02;
    cfg.backtest.drawdown_halt = 0.04;
    let rules = TradingRules::from_config(&cfg);
    let run = trader(rules).run(a..b, |o| policy.act(o)).unwrap();
    assert!(
        run.held > 20 && !run.fills.is_empty(),
        "held {}, {} fills",
        run.held,
        run.fills.len()
    );
    let raw = trader(rules).raw().run(a..b, |o| policy.act(o)).unwrap();
    assert_ne!(raw.fills, run.fills, "the threshold is not a no-op");
    assert_same(&panel, &run, &paper(&spec, &model, rules, &bars, from, to));
}
