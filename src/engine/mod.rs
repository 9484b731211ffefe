//! The candle engine: device choice, the actor-critic network, the vectorized trading env (a
//! tensor version of `sim`), PPO with its schedules, checkpoints, and batched inference.

pub mod adam;
pub mod amp;
pub mod backward;
pub mod checkpoint;
pub mod critic;
pub mod device;
pub mod device_check;
pub mod digest;
pub mod drawn;
pub mod early_stop;
pub mod env;
pub mod env_exits;
pub mod env_reward;
pub mod flat;
pub mod gru;
pub mod gru_bptt;
pub mod gru_chunks;
pub mod gru_kernels;
pub mod gru_layers;
pub mod gru_pool;
pub mod gru_train;
pub mod host_gru;
pub mod host_kernels;
pub mod memory;
pub mod mlp_kernels;
pub mod model;
mod net;
pub mod ops;
pub mod policy;
pub mod portfolio_env;
pub mod ppo;
pub mod prune;
pub mod rollout;
pub mod samples;
pub mod schedule;
pub mod sizing;
pub mod state;
pub mod train_env;
mod train_set;
mod trainer;

pub use checkpoint::{load_model, load_policy, save_gru_model, save_model, ModelMeta};
pub use drawn::DrawnPath;
pub use model::ActorCritic;
pub use policy::HostPolicy;
pub use ppo::{resume, train, train_on_paths, TrainData, TrainObserver, TrainOutcome};
