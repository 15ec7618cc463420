//! The crate's one integration-test binary: public API only, table-driven.

mod differential;
mod fuzz;
mod lines_cases;
mod parse_cases;
mod python;
mod reference_suite;
