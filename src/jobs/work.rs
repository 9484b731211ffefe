//! The jobs themselves: each creates its run directory, streams events, and records its outcome
//! in the manifest. They compose the lower modules; the TUI and the CLI only start them.

use super::rundir::DataRef;
use super::runner::{attach, JobRequest, Observer};
use super::{list_runs, CancelToken, Event, EventSink, JobKind, JobStatus, Manifest, RunDir};
use crate::broker::{Broker, SimBroker};
use crate::config::{Config, DataSource};
use crate::data::{store::hash_bars, Store};
use crate::engine::{self, checkpoint, ppo, HostPolicy, ModelMeta, TrainObserver};
use crate::eval::{self, walkforward, Backtester, ValidationMetrics};
use crate::features::{self, FeatureSpec};
use crate::live::PaperTrader;
use crate::market::{Bar, Symbol};
use crate::paths::{write_atomic, Paths};
use crate::sim::{Action, RiskRules, Rules};
use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Runs `req` to completion on the calling thread; returns the run id.
pub fn run(
    paths: &Paths,
    cfg: &Config,
    req: &JobRequest,
    cancel: &CancelToken,
    observer: Option<Observer>,
) -> Result<String> {
    let (label, parent) = match req {
        JobRequest::Fetch { symbols } if symbols.is_empty() => ("universe".to_string(), None),
        JobRequest::Fetch { symbols } => (symbols.join("-"), None),
        JobRequest::Train { symbol } => (symbol.clone(), None),
        JobRequest::Gate { train_run }
        | JobRequest::WalkForward { train_run }
        | JobRequest::Paper { train_run, .. } => {
            let id = resolve_train_run(paths, train_run)?;
            let m = RunDir::open(paths, &id)?.read_manifest()?;
            (m.label, Some(id))
        }
    };
    let kind = req.kind();
    let (dir, mut manifest) = RunDir::create(
        paths,
        kind,
        &label,
        serde_json::to_value(cfg)?,
        parent.clone(),
    )?;
    let sink = attach(EventSink::to_file(&dir.id, &dir.events_path())?, observer);
    sink.emit(Event::Started {
        kind,
        label: label.clone(),
    });
    tracing::info!("job {} started", dir.id);

    let mut ctx = Ctx {
        paths,
        cfg,
        dir: &dir,
        sink: &sink,
        cancel,
        manifest: &mut manifest,
    };
    let result = match req {
        JobRequest::Fetch { symbols } => super::fetch::fetch(&mut ctx, symbols),
        JobRequest::Train { symbol } => train(&mut ctx, symbol),
        JobRequest::Gate { .. } => gate(&mut ctx, parent.as_deref().unwrap_or_default()),
        JobRequest::WalkForward { .. } => {
            walk_forward(&mut ctx, parent.as_deref().unwrap_or_default())
        }
        JobRequest::Paper { bars, .. } => {
            paper(&mut ctx, parent.as_deref().unwrap_or_default(), *bars)
        }
    };
    let (status, message) = match &result {
        Ok(msg) if cancel.is_cancelled() => (JobStatus::Cancelled, format!("cancelled: {msg}")),
        Ok(msg) => (JobStatus::Completed, msg.clone()),
        Err(e) => (JobStatus::Failed, format!("{e:#}")),
    };
    if let Some(io) = sink.io_error() {
        tracing::error!("run {}: events.jsonl incomplete: {io}", dir.id);
    }
    sink.emit(Event::Finished {
        status,
        message: message.clone(),
    });
    dir.finish(&mut manifest, status, &message)?;
    tracing::info!("job {} {}: {message}", dir.id, status.as_str());
    match result {
        Ok(_) => Ok(dir.id.clone()),
        Err(e) => Err(e.context(format!("run {} failed", dir.id))),
    }
}

pub(super) struct Ctx<'a> {
    pub(super) paths: &'a Paths,
    pub(super) cfg: &'a Config,
    pub(super) dir: &'a RunDir,
    pub(super) sink: &'a EventSink,
    pub(super) cancel: &'a CancelToken,
    pub(super) manifest: &'a mut Manifest,
}

impl Ctx<'_> {
    fn save_json(&mut self, name: &str, value: &impl serde::Serialize) -> Result<()> {
        write_atomic(&self.dir.artifact(name), &serde_json::to_vec_pretty(value)?)?;
        self.manifest.artifacts.push(name.to_string());
        Ok(())
    }
}

/// Reads a symbol's bars, generating the synthetic market first if the store has none.
fn load_bars(ctx: &mut Ctx, sym: &Symbol) -> Result<(Vec<Bar>, String)> {
    let store = Store::new(&ctx.paths.data);
    let tf = ctx.cfg.data.timeframe;
    if !store.parquet_path(sym, tf).exists() && ctx.cfg.data.source == DataSource::Synthetic {
        ctx.sink.log(
            "info",
            format!("no stored bars for {sym}: generating the synthetic market"),
        );
        super::fetch::generate_synthetic(ctx.cfg, &store, sym)?;
    }
    let bars = store.read(sym, tf)?;
    let source = store
        .info(sym, tf)
        .map(|i| i.source)
        .unwrap_or_else(|| "unknown".into());
    Ok((bars, source))
}

struct JobObserver<'a, 'b> {
    ctx: &'a mut Ctx<'b>,
    spec: FeatureSpec,
    fm: features::FeatureMatrix,
    closes: Vec<f64>,
    val: std::ops::Range<usize>,
    rules: Rules,
    bars_per_year: f64,
    history: Vec<ValidationMetrics>,
}

impl TrainObserver for JobObserver<'_, '_> {
    fn on_update(&mut self, m: &ppo::UpdateMetrics) {
        self.ctx.sink.emit(Event::Update(m.clone()));
    }

    fn validate(&mut self, update: usize, policy: &HostPolicy) -> Result<f64> {
        let bt = Backtester {
            spec: &self.spec,
            fm: &self.fm,
            closes: &self.closes,
            rules: self.rules,
            risk: None,
        };
        let mut m = bt
            .run(policy, self.val.clone())
            .metrics(self.bars_per_year, self.ctx.cfg.gating.consistency_chunks);
        m.update = update;
        self.ctx.sink.emit(Event::Validation(m.clone()));
        let fitness = m.fitness;
        self.history.push(m);
        Ok(fitness)
    }

    fn on_checkpoint(&mut self, path: &Path, update: usize, reason: &str) {
        self.ctx.sink.emit(Event::Checkpoint {
            path: path.display().to_string(),
            update,
            reason: reason.to_string(),
        });
    }

    fn should_stop(&self) -> bool {
        self.ctx.cancel.is_cancelled()
    }
}

/// A symbol of the universe, or one the store holds (fetched or imported outside the universe).
fn find_symbol(ctx: &Ctx, name: &str) -> Result<Symbol> {
    ctx.cfg.universe.find(name).or_else(|e| {
        Store::new(&ctx.paths.data)
            .list()
            .into_iter()
            .find(|s| s.symbol.eq_ignore_ascii_case(name) && s.timeframe == ctx.cfg.data.timeframe)
            .map(|s| s.symbol())
            .ok_or(e)
    })
}

fn train(ctx: &mut Ctx, symbol: &str) -> Result<String> {
    let cfg = ctx.cfg;
    let sym = find_symbol(ctx, symbol)?;
    let device = engine::device::select(&cfg.ppo.device)?;
    let (bars, source) = load_bars(ctx, &sym)?;
    let sha = hash_bars(&bars);
    ctx.manifest.data.push(DataRef {
        symbol: sym.name.clone(),
        timeframe: cfg.data.timeframe.to_string(),
        source: source.clone(),
        bars: bars.len(),
        first: bars.first().map(|b| b.ts),
        last: bars.last().map(|b| b.ts),
        sha256: sha.clone(),
    });
    ctx.dir.write_manifest(ctx.manifest)?;
    let spec = FeatureSpec::current(cfg.features.window);
    ctx.sink.log(
        "info",
        format!(
            "training {sym} ({source}, {} bars) on {} — {} updates of {} steps, layout {}",
            bars.len(),
            engine::device::describe(&device),
            cfg.ppo.updates(),
            cfg.ppo.steps_per_update(),
            spec.describe()
        ),
    );
    let fm = features::compute(&spec, &sym, &bars);
    let closes: Vec<f64> = bars.iter().map(|b| b.close).collect();
    let (_, val, _) = ppo::split(bars.len(), cfg);
    let data = ppo::TrainData {
        symbol: sym.clone(),
        timeframe: cfg.data.timeframe,
        source,
        bars,
        sha256: sha,
    };
    let out_dir = ctx.dir.path.clone();
    let mut obs = JobObserver {
        spec,
        fm,
        closes,
        val,
        rules: Rules::training(&cfg.env, sym.class),
        bars_per_year: cfg.data.timeframe.bars_per_year(sym.class),
        history: Vec::new(),
        ctx,
    };
    let outcome = ppo::train(cfg, &data, &device, &out_dir, &mut obs)?;
    let history = std::mem::take(&mut obs.history);
    let ctx = obs.ctx;
    ctx.save_json("validations.json", &history)?;
    ctx.manifest.artifacts.push("model.safetensors".into());
    if outcome.best_path.is_some() {
        ctx.manifest.artifacts.push("best.safetensors".into());
    }
    ctx.manifest.summary = json!({
        "symbol": sym.name,
        "updates": outcome.updates_done,
        "timesteps": outcome.timesteps,
        "sps": outcome.sps,
        "elapsed_s": outcome.elapsed_s,
        "best_update": outcome.best_update,
        "final": history.last(),
        "cancelled": outcome.cancelled,
    });
    Ok(format!(
        "{} updates, {} steps at {:.0} steps/s; model saved{}",
        outcome.updates_done,
        outcome.timesteps,
        outcome.sps,
        if outcome.cancelled {
            " before stopping"
        } else {
            ""
        }
    ))
}

/// `latest` (newest training run), an exact run id, or a unique prefix of one.
pub fn resolve_train_run(paths: &Paths, s: &str) -> Result<String> {
    let runs: Vec<_> = list_runs(paths)
        .into_iter()
        .filter(|r| r.manifest.kind == JobKind::Train)
        .collect();
    if s == "latest" || s.is_empty() {
        return runs
            .iter()
            .rev()
            .find(|r| {
                r.manifest.status == JobStatus::Completed
                    || r.manifest.status == JobStatus::Cancelled
            })
            .map(|r| r.manifest.id.clone())
            .ok_or_else(|| {
                anyhow!(
                    "no finished training run under {}: run `quantdeck train SYMBOL` first",
                    paths.runs.display()
                )
            });
    }
    let hits: Vec<_> = runs
        .iter()
        .filter(|r| r.manifest.id.starts_with(s))
        .collect();
    match hits.as_slice() {
        [one] => Ok(one.manifest.id.clone()),
        [] => bail!("no training run matches {s:?} (see `quantdeck runs`)"),
        many => bail!(
            "{s:?} matches {} training runs; give more of the id",
            many.len()
        ),
    }
}

/// The model to evaluate for a training run: the best checkpoint when the latest gate of the run
/// said to use it (fitness declined), else the final model.
pub fn resolve_model(paths: &Paths, train_run: &str) -> Result<PathBuf> {
    let dir = RunDir::open(paths, train_run)?;
    let gate = list_runs(paths).into_iter().rev().find(|r| {
        r.manifest.kind == JobKind::Gate
            && r.manifest.parent.as_deref() == Some(train_run)
            && r.manifest.status == JobStatus::Completed
    });
    let use_best = gate.is_some_and(|g| {
        g.manifest
            .summary
            .get("use_checkpoint")
            .is_some_and(|v| !v.is_null())
    });
    let best = dir.artifact("best.safetensors");
    let path = if use_best && best.exists() {
        best
    } else {
        dir.artifact("model.safetensors")
    };
    if !path.exists() {
        bail!(
            "training run {train_run} has no model file ({}): did it fail before saving?",
            path.display()
        );
    }
    Ok(path)
}

fn gate(ctx: &mut Ctx, train_run: &str) -> Result<String> {
    let dir = RunDir::open(ctx.paths, train_run)?;
    let p = dir.artifact("validations.json");
    let text = std::fs::read_to_string(&p).with_context(|| {
        format!(
            "training run {train_run} has no validation history ({})",
            p.display()
        )
    })?;
    let history: Vec<ValidationMetrics> = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a validation history", p.display()))?;
    let res = eval::assess(&ctx.cfg.gating, &history);
    let checkpoint = res.use_checkpoint.map(|u| format!("best (update {u})"));
    ctx.sink.emit(Event::Gate {
        class: res.class.as_str().to_string(),
        flags: res.flags.clone(),
        use_checkpoint: checkpoint.clone(),
        metrics: res.metrics.clone(),
    });
    ctx.save_json("gate.json", &res)?;
    ctx.manifest.summary = json!({
        "train_run": train_run,
        "class": res.class.as_str(),
        "flags": res.flags,
        "use_checkpoint": res.use_checkpoint,
        "metrics": res.metrics,
    });
    let flags = if res.flags.is_empty() {
        "no flags".to_string()
    } else {
        res.flags.join(", ")
    };
    Ok(format!("{}: {flags}", res.class.as_str()))
}

/// Loads the model for a run and its data, refusing a layout mismatch.
fn model_and_data(
    ctx: &mut Ctx,
    train_run: &str,
) -> Result<(engine::ActorCritic, ModelMeta, Vec<Bar>, FeatureSpec)> {
    let path = resolve_model(ctx.paths, train_run)?;
    let (model, meta) = checkpoint::load_model(&path, &candle_core::Device::Cpu)?;
    let data_spec = FeatureSpec::current(meta.feature_spec.window);
    meta.check_layout(&data_spec)
        .with_context(|| format!("cannot use {}", path.display()))?;
    let sym = Symbol {
        name: meta.symbol.clone(),
        class: meta.class,
    };
    let (bars, _) = load_bars(ctx, &sym)?;
    ctx.sink.log(
        "info",
        format!(
            "model {} ({} params, {})",
            path.display(),
            meta.param_count,
            meta.feature_spec.describe()
        ),
    );
    Ok((model, meta, bars, data_spec))
}

fn walk_forward(ctx: &mut Ctx, train_run: &str) -> Result<String> {
    let (model, meta, bars, spec) = model_and_data(ctx, train_run)?;
    let sym = Symbol {
        name: meta.symbol.clone(),
        class: meta.class,
    };
    let fm = features::compute(&spec, &sym, &bars);
    let closes: Vec<f64> = bars.iter().map(|b| b.close).collect();
    let ts: Vec<_> = bars.iter().map(|b| b.ts).collect();
    let (_, _, test) = ppo::split(bars.len(), ctx.cfg);
    let policy = HostPolicy::from_model(&model)?;
    let rules = Rules::backtest(&ctx.cfg.backtest, &ctx.cfg.env, sym.class);
    let bt = Backtester {
        spec: &spec,
        fm: &fm,
        closes: &closes,
        rules,
        risk: Some(RiskRules::from(&ctx.cfg.backtest)),
    };
    let bpy = meta.timeframe.bars_per_year(sym.class);
    let ranges = walkforward::folds(test, ctx.cfg.walk_forward.folds);
    let mut results = Vec::new();
    for (i, r) in ranges.iter().enumerate() {
        if ctx.cancel.is_cancelled() {
            break;
        }
        let f = walkforward::run_fold(&bt, &policy, i + 1, r.clone(), &ts, bpy);
        ctx.sink.emit(Event::Fold(f.clone()));
        ctx.sink.emit(Event::Progress {
            done: i as u64 + 1,
            total: ranges.len() as u64,
            message: format!("fold {}", i + 1),
        });
        results.push(f);
    }
    let (decision, positive, std) =
        walkforward::decide(&results, ctx.cfg.walk_forward.max_sharpe_std);
    ctx.sink.emit(Event::Decision {
        decision: decision.as_str().to_string(),
        positive_folds: positive,
        folds: results.len(),
        sharpe_std: std,
    });
    ctx.save_json("walkforward.json", &json!({ "folds": results, "decision": decision, "positive_folds": positive, "sharpe_std": std }))?;
    ctx.manifest.summary = json!({ "train_run": train_run, "decision": decision.as_str(), "positive_folds": positive, "folds": results.len(), "sharpe_std": std });
    Ok(format!(
        "{}: {positive}/{} folds positive, Sharpe std {std:.2}",
        decision.as_str(),
        results.len()
    ))
}

fn paper(ctx: &mut Ctx, train_run: &str, max_bars: Option<usize>) -> Result<String> {
    let (model, meta, bars, spec) = model_and_data(ctx, train_run)?;
    let sym = Symbol {
        name: meta.symbol.clone(),
        class: meta.class,
    };
    let (_, _, test) = ppo::split(bars.len(), ctx.cfg);
    let rules = Rules::backtest(&ctx.cfg.backtest, &ctx.cfg.env, sym.class);
    let mut trader = PaperTrader::new(
        &ctx.dir.id,
        sym.clone(),
        spec,
        HostPolicy::from_model(&model)?,
        rules,
        RiskRules::from(&ctx.cfg.backtest),
        ctx.cfg.live.confidence_threshold as f32,
    );
    let mut broker = SimBroker::new(rules);
    let start = test.start.max(trader.history_needed());
    trader.warm(&bars[start + 1 - trader.history_needed()..start]);
    let n = max_bars
        .unwrap_or(ctx.cfg.live.bars)
        .min(bars.len() - start);
    let pace = (ctx.cfg.live.bars_per_second > 0.0)
        .then(|| Duration::from_secs_f64(1.0 / ctx.cfg.live.bars_per_second));
    ctx.sink.log(
        "info",
        format!(
            "paper trading {sym} on a simulated broker: replaying {n} bars from {}",
            bars[start].ts
        ),
    );
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
                .log("warn", format!("{} {sym}: risk gate: {reason}", bar.ts));
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
    ctx.manifest.summary = json!({ "train_run": train_run, "equity": acct.equity, "cash": acct.cash, "return": ret, "orders": orders });
    Ok(format!(
        "equity {:.2} ({:+.2} %), {orders} orders",
        acct.equity,
        ret * 100.0
    ))
}
