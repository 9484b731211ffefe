//! The verdicts' arithmetic against hand-computed figures on a short, real-looking daily
//! series: the baselines trade plain (no stop-loss, take-profit or drawdown rule, whatever
//! rules the model runs under), and walk-forward folds tile the period with no bar's return
//! lost.

use candle_core::Device;
use chrono::{DateTime, Duration, TimeZone, Utc};
use quantdeck::config::Config;
use quantdeck::engine::{ActorCritic, HostPolicy};
use quantdeck::eval::{baselines, walkforward, Backtester, Baseline, MomentumRule};
use quantdeck::features::{events::EventTable, FeatureMatrix, FeatureSpec};
use quantdeck::market::AssetClass;
use quantdeck::sim::TradingRules;

/// Twelve daily closes: a 2.1 % dip on day 3 (past the 2 % stop-loss of a position bought on
/// day 0), then a rally past the 4 % take-profit.
const CLOSES: [f64; 12] = [
    140.0, 141.8, 139.5, 137.1, 139.0, 143.0, 146.2, 144.1, 147.5, 148.3, 146.9, 150.2,
];

fn days(n: usize) -> Vec<DateTime<Utc>> {
    let first = Utc.with_ymd_and_hms(2024, 3, 4, 5, 0, 0).unwrap();
    let mut out = Vec::new();
    let mut d = first;
    while out.len() < n {
        if !matches!(
            chrono::Datelike::weekday(&d),
            chrono::Weekday::Sat | chrono::Weekday::Sun
        ) {
            out.push(d);
        }
        d += Duration::days(1);
    }
    out
}

/// A one-bar window over zero features: the rules under test never look at them.
fn matrix(spec: &FeatureSpec, n: usize) -> FeatureMatrix {
    FeatureMatrix {
        n_features: spec.names.len(),
        ts: days(n),
        values: vec![0.0; n * spec.names.len()],
        first_valid: 0,
    }
}

fn spec() -> FeatureSpec {
    FeatureSpec::current(1, &EventTable::embedded())
}

/// The default rules: $100k, 10 % positions, 0.05 % slippage, $1 a fill, 2 % stop, 4 % take.
fn rules() -> TradingRules {
    TradingRules::from_config(&Config::default())
}

#[test]
fn buy_and_hold_is_one_order_held_to_the_end_whatever_the_models_stops() {
    let (spec, r) = (spec(), rules());
    let fm = matrix(&spec, CLOSES.len());
    let bt = Backtester::as_traded(&spec, &fm, &CLOSES, AssetClass::Equity, &r, true);
    let rule = MomentumRule { fast: 2, slow: 4 };
    let all = baselines::run_all(&bt, 0..CLOSES.len(), rule, 7);
    let bh = all
        .iter()
        .find(|b| b.baseline == Baseline::BuyHold)
        .unwrap();
    // By hand: 10 % of $100,000 at 140 × 1.0005 = 140.07, $1 commission, held to 150.2.
    let qty = 0.10 * 100_000.0 / 140.0;
    let cash = 100_000.0 - qty * 140.07 - 1.0;
    let end = cash + qty * 150.2;
    assert!(
        (bh.total_return - (end / 100_000.0 - 1.0)).abs() < 1e-12,
        "buy-and-hold {} vs hand {}",
        bh.total_return,
        end / 100_000.0 - 1.0
    );
    assert_eq!(
        bh.equity.len(),
        CLOSES.len(),
        "one point per bar, start included"
    );
    // Through the model's gates the same rule would be stopped out on day 3: not the baseline.
    let gated = bt.run_with(0..CLOSES.len(), |_| (1, 1.0));
    assert!(gated.risk_events > 0 && gated.fills.len() > 1);
    let plain = bt.plain().run_levels(0..CLOSES.len(), |_| 1.0);
    assert_eq!(plain.fills.len(), 1);
    assert!((plain.total_return() - bh.total_return).abs() < 1e-15);
}

/// Momentum (EMA 2/4): long while the fast EMA is above the slow one, short below, recomputed
/// here independently; one order per crossing and none from a stop.
#[test]
fn momentum_trades_its_crossings_and_nothing_else() {
    let (spec, r) = (spec(), rules());
    let fm = matrix(&spec, CLOSES.len());
    let bt = Backtester::as_traded(&spec, &fm, &CLOSES, AssetClass::Equity, &r, true);
    let rule = MomentumRule { fast: 2, slow: 4 };
    let got = rule.run(&bt, 0..CLOSES.len());
    // Independent recomputation: EMAs seeded with the first close, flat before `slow` bars.
    let ema = |n: f64| {
        let a = 2.0 / (n + 1.0);
        let mut e = CLOSES[0];
        CLOSES
            .iter()
            .map(|c| {
                e += a * (c - e);
                e
            })
            .collect::<Vec<f64>>()
    };
    let (fast, slow) = (ema(2.0), ema(4.0));
    let (mut cash, mut qty, mut level, mut fills) = (100_000.0, 0.0, 0.0, 0);
    for t in 0..CLOSES.len() - 1 {
        let want = if t < 4 {
            0.0
        } else if fast[t] > slow[t] {
            1.0
        } else {
            -1.0
        };
        if want != level {
            let equity = cash + qty * CLOSES[t];
            let dq = want * 0.10 * equity / CLOSES[t] - qty;
            let sign: f64 = if dq > 0.0 { 1.0 } else { -1.0 };
            cash -= dq * CLOSES[t] * (1.0 + sign * 0.0005) + 1.0;
            qty += dq;
            level = want;
            fills += 1;
        }
    }
    let end = cash + qty * CLOSES[CLOSES.len() - 1];
    assert_eq!(got.fills.len(), fills);
    assert!(fills >= 2, "the series should cross: {fills}");
    assert!(
        (got.total_return() - (end / 100_000.0 - 1.0)).abs() < 1e-12,
        "momentum {} vs hand {}",
        got.total_return(),
        end / 100_000.0 - 1.0
    );
    assert_eq!(got.risk_events, 0);
}

/// Folds tile the period: chained fold returns equal the whole period's, for the asset's own
/// move and for a costless full-size buy-and-hold, so no bar's return falls between folds.
#[test]
fn folds_tile_the_period_and_lose_no_bar() {
    let spec = spec();
    let fm = matrix(&spec, CLOSES.len());
    let r = TradingRules {
        position_size: 1.0,
        slippage: 0.0,
        commission: 0.0,
        ..rules()
    };
    let r = TradingRules {
        capital: quantdeck::sim::gates::CapitalRules {
            cash_buffer: 0.0,
            max_position: 1.0,
            max_exposure: 1.0,
            min_order_value: 0.0,
        },
        ..r
    };
    let bt = Backtester::as_traded(&spec, &fm, &CLOSES, AssetClass::Equity, &r, true);
    let model = ActorCritic::new(spec.obs_dim(), &[4], 8, 3, &Device::Cpu).unwrap();
    let policy = HostPolicy::from_model(&model).unwrap();
    let period = 0..CLOSES.len();
    let whole_move = CLOSES[CLOSES.len() - 1] / CLOSES[0] - 1.0;
    let rule = MomentumRule { fast: 2, slow: 4 };
    let folds: Vec<_> = walkforward::folds(period.clone(), 3)
        .into_iter()
        .enumerate()
        .map(|(i, range)| walkforward::run_fold(&bt, &policy, i + 1, range, &fm.ts, rule))
        .collect();
    let chained = |f: &dyn Fn(&walkforward::FoldResult) -> f64| {
        folds.iter().map(|x| 1.0 + f(x)).product::<f64>() - 1.0
    };
    assert!((chained(&|f| f.buy_hold_return) - whole_move).abs() < 1e-12);
    let bh = |f: &walkforward::FoldResult| {
        f.baselines
            .iter()
            .find(|b| b.baseline == Baseline::BuyHold)
            .unwrap()
            .total_return
    };
    assert!(
        (chained(&bh) - whole_move).abs() < 1e-12,
        "chained buy-and-hold {} vs the whole period {whole_move}",
        chained(&bh)
    );
    assert_eq!(
        folds.iter().map(|f| f.bars).sum::<usize>(),
        CLOSES.len() - 1
    );
    for w in folds.windows(2) {
        assert_eq!(
            w[0].end, w[1].start,
            "a fold is marked at the next one's first bar"
        );
    }
}
