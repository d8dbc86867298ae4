//! FastDFS client used by the CLI, the gateway, tests and benchmarks.

pub mod storage;
