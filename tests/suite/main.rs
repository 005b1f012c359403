//! Every integration test in one binary (one link of the library instead of one per file):
//! each module is one area, its file's head says what it checks against which oracle.
//! `cargo test --test suite formula` runs one area; `tests/allocations.rs` (a counting global
//! allocator) and `tests/mpi.rs` (feature `mpi`) stay binaries of their own.

mod common;

mod catalogue;
mod cli;
mod collapsed;
mod custom_pde;
mod estimators;
mod fixture_jets;
mod formula;
mod fuzz_readers;
mod gradient_terms;
mod highorder;
mod network_oracle;
mod operator_exact;
mod problems;
mod rules_oracle;
mod train;
