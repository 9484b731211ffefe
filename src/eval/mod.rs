//! Evaluation: metrics, the backtest (policy + sim rules + risk gates), training-time validation,
//! gating (APPROVED / REVIEW / DROP) and walk-forward folds with the deployment decision.

pub mod backtest;
pub mod baselines;
pub mod composite;
pub mod gate;
pub mod learning;
pub mod metrics;
pub mod oracle;
pub mod pooled;
pub mod portfolio;
pub mod portfolio_traded;
pub mod portfolio_walk;
pub mod walkforward;

pub use backtest::{BacktestFill, BacktestResult, Backtester};
pub use baselines::{Baseline, BaselineResult, MomentumRule};
pub use composite::{composite_score, CompositeInputs, CompositeScore, ScoreScales};
pub use gate::{assess, GateClass, GateFlag, GateResult};
pub use metrics::Evidence;
pub use metrics::{RawFigures, ValidationMetrics};
pub use pooled::validate_on;
pub use portfolio::{PortfolioEvaluation, PortfolioMarket, PortfolioStats};
pub use portfolio_traded::{PortfolioFill, PortfolioTrader, TradedRun};
pub use walkforward::{decide, Decision, DecisionReport, FoldResult};
