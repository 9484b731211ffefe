//! The candle engine: device choice, the actor-critic network, the vectorized trading env (a
//! tensor version of `sim`), PPO with its schedules, checkpoints, and batched inference.

pub mod checkpoint;
pub mod device;
pub mod env;
pub mod model;
pub mod policy;
pub mod portfolio_env;
pub mod ppo;
pub mod schedule;

pub use checkpoint::{load_model, save_model, ModelMeta};
pub use model::ActorCritic;
pub use policy::HostPolicy;
pub use ppo::{train, TrainData, TrainObserver, TrainOutcome};
