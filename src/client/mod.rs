//! FastDFS client used by the CLI, the gateway, tests and benchmarks.

pub mod pool;
pub mod storage;
pub mod tracker;
