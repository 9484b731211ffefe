//! Drawdown early stop (seed §3; off by default). Measured on the validation backtest's maximum
//! drawdown (the training account's sizing on the held-out validation bars), at every validation.
//! A validation at or past the threshold restarts training from the last good state — the most
//! recent validation under the threshold, or the run's start (or resume point) before any — with
//! the learning rates × `lr_factor` and the entropy coefficient × `ent_factor`, compounding per
//! retry; once the retries are spent, training stops and the final model is the last good one.
//! Restarting from the last good state rather than the best keeps the curve's time axis simple
//! (it rewinds a little) and keeps what was learned since the best validation.

use super::state::Progress;
use crate::config::PpoConfig;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EarlyStop {
    pub threshold: f64,
    pub retries: usize,
    pub lr_factor: f64,
    pub ent_factor: f64,
}

/// What a validation's drawdown means for the run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// Under the threshold (or not measured): go on; this state is the new last good one.
    Fine,
    /// Restart from the last good state with these (cumulative) scales.
    Retry {
        retry: usize,
        lr_scale: f64,
        ent_scale: f64,
    },
    /// Retries spent: stop.
    Stop,
}

impl EarlyStop {
    pub fn from_config(p: &PpoConfig) -> Option<Self> {
        p.early_stop.then_some(EarlyStop {
            threshold: p.early_stop_drawdown,
            retries: p.early_stop_retries,
            lr_factor: p.early_stop_lr_factor,
            ent_factor: p.early_stop_entropy_factor,
        })
    }

    pub fn judge(&self, drawdown: Option<f64>, progress: &Progress) -> Verdict {
        match drawdown {
            Some(dd) if dd >= self.threshold => {
                if progress.retries_used < self.retries {
                    Verdict::Retry {
                        retry: progress.retries_used + 1,
                        lr_scale: progress.lr_scale * self.lr_factor,
                        ent_scale: progress.ent_scale * self.ent_factor,
                    }
                } else {
                    Verdict::Stop
                }
            }
            _ => Verdict::Fine,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_retries_compound_then_stop() {
        let es = EarlyStop::from_config(&PpoConfig {
            early_stop: true,
            ..Default::default()
        })
        .unwrap();
        assert_eq!((es.threshold, es.retries), (0.5, 3));
        let mut p = Progress::start();
        assert_eq!(es.judge(Some(0.49), &p), Verdict::Fine);
        assert_eq!(es.judge(None, &p), Verdict::Fine);
        let mut seen = Vec::new();
        loop {
            match es.judge(Some(0.5), &p) {
                Verdict::Retry {
                    retry,
                    lr_scale,
                    ent_scale,
                } => {
                    seen.push((retry, lr_scale, ent_scale));
                    p.retries_used = retry;
                    p.lr_scale = lr_scale;
                    p.ent_scale = ent_scale;
                }
                Verdict::Stop => break,
                Verdict::Fine => unreachable!("a drawdown at the threshold counts"),
            }
        }
        assert_eq!(
            seen,
            vec![(1, 0.5, 1.5), (2, 0.25, 2.25), (3, 0.125, 3.375)]
        );
        assert!(
            EarlyStop::from_config(&PpoConfig::default()).is_none(),
            "off by default"
        );
    }
}
