//! Training: configuration, the residual loss through the Taylor pass, Adam and schedules, the
//! loop with evaluation, metrics, checkpoints and resume, and the curves plot.

pub mod config;
pub mod flags;
pub mod head;
pub mod optim;
pub mod plot;
pub mod residual;
pub mod routes;
pub mod run;
pub mod slices;

pub use config::TrainConfig;
pub use run::{PhaseTimes, RunOptions, Summary, TrainError, train};
