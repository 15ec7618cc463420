//! The crate's one integration-test binary: public API only, table-driven.

// Test helpers may unwrap: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod differential;
mod fuzz;
mod lines_cases;
mod parse_cases;
mod python;
mod reference_suite;
mod validator_differential;
