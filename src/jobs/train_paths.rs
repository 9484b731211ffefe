//! What a single-symbol run trains on besides its own training range: drawn paths of the
//! synthetic market (`synthetic.train_paths`) in place of the stored one, and pooled symbols
//! (`env.pool_symbols`) beside it. Validation and evaluation stay on the trained symbol's bars.

use super::ctx::Ctx;
use super::rundir::DataRef;
use crate::config::Config;
use crate::data::store::hash_bars;
use crate::engine::drawn::{self, PathDrawer, TrainPaths};
use crate::engine::{ppo::TrainData, DrawnPath};
use anyhow::{bail, Result};

/// The paths the run's episodes come from; none: the trained symbol's training range alone.
/// `resumed`: the pooled bars must be those the run started with (a resume is bit for bit).
pub(super) fn training_paths(
    ctx: &Ctx,
    cfg: &Config,
    data: &TrainData,
    resumed: bool,
) -> Result<TrainPaths> {
    let available = crate::data::budget::mem_available().map_or(4e9, |b| b as f64);
    let drawer = drawer(ctx, cfg, data, available)?;
    if drawer.is_none() && cfg.synthetic.redraw_every > 0 {
        ctx.sink.info(format!(
            "synthetic.redraw_every = {} is not applied: it redraws drawn synthetic paths, and this run trains on one path (synthetic.train_paths = {}, {} bars)",
            cfg.synthetic.redraw_every, cfg.synthetic.train_paths, data.source
        ));
    }
    let mut paths = match &drawer {
        Some(d) => draw_first(ctx, cfg, d)?,
        None => Vec::new(),
    };
    let mut extra = if paths.is_empty() {
        augmented(ctx, cfg, data, available)?
    } else {
        if cfg.env.augment_paths > 0 {
            ctx.sink.info("env.augment_paths is not applied: the drawn paths replace the stored path, whose copies it would make".to_string());
        }
        Vec::new()
    };
    extra.extend(pooled(ctx, cfg, data, available, resumed)?);
    if extra.is_empty() {
        return Ok(TrainPaths { paths, drawer });
    }
    if paths.is_empty() {
        // The trained symbol's own training bars train beside the pool.
        let bars = &data.bars[..data.train.end];
        paths.push(DrawnPath::from_bars(
            &data.spec,
            &data.symbol,
            bars,
            &ctx.events,
        ));
    }
    paths.extend(extra);
    Ok(TrainPaths { paths, drawer })
}

/// The drawn paths every validation scores after the stored validation range
/// (`synthetic.validation_paths`, `eval::pooled`): none when 0, and none on real bars, which
/// have one path (said).
pub(super) fn validation_paths(
    ctx: &Ctx,
    cfg: &Config,
    data: &TrainData,
) -> Result<Vec<DrawnPath>> {
    let n = cfg.synthetic.validation_paths;
    if n == 0 || data.validation.is_empty() {
        return Ok(Vec::new());
    }
    if data.source != crate::data::synthetic::SOURCE {
        ctx.sink.info(format!(
            "synthetic.validation_paths = {n} applies to the synthetic market only: these {} bars are one path, and its validation range alone validates",
            data.source
        ));
        return Ok(Vec::new());
    }
    let available = crate::data::budget::mem_available().map_or(4e9, |b| b as f64);
    let started = std::time::Instant::now();
    let paths = drawn::validation_paths(
        cfg,
        &data.symbol,
        &data.spec,
        &ctx.events,
        &data.bars,
        data.validation.end,
        available,
    )?;
    ctx.sink.info(format!(
        "validating on the stored path's validation range and {n} drawn paths over the same days, chained into one history (drawn in {:.1} s): the gate chooses its checkpoint on all {}",
        started.elapsed().as_secs_f64(),
        n + 1
    ));
    Ok(paths)
}

/// `env.augment_paths` copies of the trained symbol's training bars with resampled volatility
/// and return noise (`drawn::augment`), drawn from a stream of `ppo.seed`, so a resume redraws
/// them.
fn augmented(ctx: &Ctx, cfg: &Config, data: &TrainData, available: f64) -> Result<Vec<DrawnPath>> {
    let (k, env) = (cfg.env.augment_paths, &cfg.env);
    if k == 0 || data.train.is_empty() {
        return Ok(Vec::new());
    }
    let bars = &data.bars[..data.train.end];
    let need = drawn::estimate_bytes(k, bars.len(), &data.spec);
    if need > available / 2.0 {
        bail!(
            "env.augment_paths = {k} would need ≈ {:.1} GiB but this machine has {:.1} GiB available: use fewer copies",
            need / drawn::GIB,
            available / drawn::GIB
        );
    }
    let mut rng = crate::rng::Rng::derive(cfg.ppo.seed, "augment");
    let mut out = Vec::with_capacity(k);
    for _ in 0..k {
        let scale = (1.0 + env.augment_vol).powf(2.0 * rng.uniform() - 1.0);
        let copy = drawn::augment(bars, scale, env.augment_noise, &mut rng)?;
        out.push(DrawnPath::from_bars(
            &data.spec,
            &data.symbol,
            &copy,
            &ctx.events,
        ));
    }
    ctx.sink.info(format!(
        "augmentation: {k} copies of {}'s training bars (volatility × [1/{v}, {v}], close noise {:.2} × |return|)",
        data.symbol,
        env.augment_noise,
        v = 1.0 + env.augment_vol
    ));
    Ok(out)
}

/// The drawer of `synthetic.train_paths` paths (none when 1). Real bars have one path: the
/// setting is said to be ignored there.
fn drawer(ctx: &Ctx, cfg: &Config, data: &TrainData, available: f64) -> Result<Option<PathDrawer>> {
    let n = cfg.synthetic.train_paths;
    if n <= 1 {
        return Ok(None);
    }
    if data.source != crate::data::synthetic::SOURCE {
        ctx.sink.info(format!(
            "synthetic.train_paths = {n} applies to the synthetic market only: these {} bars are one path, and it trains",
            data.source
        ));
        return Ok(None);
    }
    PathDrawer::new(
        cfg,
        &data.symbol,
        &data.spec,
        &ctx.events,
        &data.bars,
        data.train.clone(),
        available,
    )
}

/// The first generation of drawn paths, said with how often they are redrawn.
fn draw_first(ctx: &Ctx, cfg: &Config, drawer: &PathDrawer) -> Result<Vec<DrawnPath>> {
    let started = std::time::Instant::now();
    let paths = drawer.draw(0)?;
    let (n, bars) = (paths.len(), paths.first().map_or(0, |p| p.closes.len()));
    let redraws = match cfg.synthetic.redraw_every {
        0 => String::new(),
        k => format!(", {n} new ones every {k} updates"),
    };
    ctx.sink.info(format!(
        "training on {n} drawn paths of the synthetic market ({bars} bars each, drawn in {:.1} s{redraws}); the stored path only validates and evaluates",
        started.elapsed().as_secs_f64()
    ));
    Ok(paths)
}

/// The `env.pool_symbols` series, each cut at the trained symbol's last training bar (nothing
/// from its validation or out-of-sample time trains), with the trained symbol's features.
fn pooled(
    ctx: &Ctx,
    cfg: &Config,
    data: &TrainData,
    available: f64,
    resumed: bool,
) -> Result<Vec<DrawnPath>> {
    let names = &cfg.env.pool_symbols;
    if names.is_empty() || data.train.is_empty() {
        return Ok(Vec::new());
    }
    let cut = data.bars[data.train.end - 1].ts;
    let (mut out, mut refs, mut need) = (Vec::new(), Vec::new(), 0.0);
    for name in names {
        let sym = ctx.find_symbol(name)?;
        if sym.name.eq_ignore_ascii_case(&data.symbol.name) {
            continue;
        }
        if sym.class != data.symbol.class {
            bail!(
                "env.pool_symbols: {sym} is {} but {} is {}: pool symbols of one asset class (one session calendar, one set of costs)",
                sym.class.as_str(),
                data.symbol,
                data.symbol.class.as_str()
            );
        }
        let (mut bars, source) = ctx.load_bars(&sym)?;
        bars.truncate(bars.partition_point(|b| b.ts <= cut));
        need += drawn::estimate_bytes(1, bars.len(), &data.spec);
        if need > available / 2.0 {
            bail!(
                "env.pool_symbols: the pooled bars would need ≈ {:.1} GiB by {sym} but this machine has {:.1} GiB available: pool fewer symbols",
                need / drawn::GIB,
                available / drawn::GIB
            );
        }
        let path = DrawnPath::from_bars(&data.spec, &sym, &bars, &ctx.events);
        let warm_up = path.fm.first_observable(data.spec.window);
        if bars.len() < warm_up + 3 {
            ctx.sink.warn(format!(
                "env.pool_symbols: {sym} has {} bars up to {cut}, too few for the {}-bar warm-up and window: not pooled",
                bars.len(),
                warm_up
            ));
            continue;
        }
        refs.push(DataRef {
            symbol: sym.name.clone(),
            timeframe: cfg.data.timeframe.to_string(),
            source,
            bars: bars.len(),
            first: bars.first().map(|b| b.ts),
            last: bars.last().map(|b| b.ts),
            sha256: hash_bars(&bars),
        });
        out.push(path);
    }
    record_pool(ctx, refs, resumed)?;
    if !out.is_empty() {
        ctx.sink.info(format!(
            "pooled training: {} and {} other symbol(s), their bars up to {cut}",
            data.symbol,
            out.len()
        ));
    }
    Ok(out)
}

/// Lists the pooled series in the manifest; on a resume, refuses bars other than those listed.
fn record_pool(ctx: &Ctx, refs: Vec<DataRef>, resumed: bool) -> Result<()> {
    if !resumed {
        return ctx.run.update(|m| m.data.extend(refs));
    }
    let then = ctx.dir().read_manifest()?.data;
    for r in &refs {
        let before = then.iter().find(|d| d.symbol == r.symbol);
        if before.is_none_or(|d| d.sha256 != r.sha256) {
            bail!(
                "the pooled {} bars differ from those the run started with (refetched, revised or re-imported, or newly pooled): train a new run",
                r.symbol
            );
        }
    }
    Ok(())
}
