//! The candle engine: device choice, the actor-critic network, the vectorized trading env (a
//! tensor version of `sim`), PPO with its schedules, checkpoints, and batched inference.

pub mod backward;
pub mod checkpoint;
pub mod device;
pub mod env;
pub mod flat;
pub mod gru;
pub mod host_gru;
pub mod model;
pub mod ops;
pub mod policy;
pub mod portfolio_env;
pub mod ppo;
pub mod rollout;
pub mod schedule;
pub mod sizing;

pub use checkpoint::{load_model, save_model, ModelMeta};
pub use model::ActorCritic;
pub use policy::HostPolicy;
pub use ppo::{train, TrainData, TrainObserver, TrainOutcome};
