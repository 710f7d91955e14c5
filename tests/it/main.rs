//! End-to-end tests: real khabar servers on ephemeral loopback ports with real data directories,
//! driven over gRPC (tonic, grpcurl, the example clients), through the `khabar` binary, and in a
//! container. One test binary, so that the shared harness in `common` compiles once.

mod common;
#[path = "../support/ninjs_schema.rs"]
mod ninjs_schema;

mod cli;
mod cli_commands;
mod cli_json;
mod cli_ninjs;
mod clients;
mod container;
mod contract;
mod crash;
mod disk_full;
mod editorial_read;
mod embargo;
mod failover;
mod faults;
mod feed;
mod grpcurl;
mod ingest;
mod limits;
mod metrics;
mod replicas;
mod security;
mod shutdown;
mod storage;
mod stories;
mod traces;
