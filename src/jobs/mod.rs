//! Jobs: firmware runs judged by rules (exit code, console patterns), with artifacts
//! (console log, JUnit XML, LCOV). `runner` runs one job on the session machinery;
//! `rules` and `junit` are pure; `cli` is `virserver run`, `submit` is `virserver submit`.

pub mod cli;
pub mod failure;
pub mod junit;
pub mod rules;
pub mod runner;
pub mod service;
pub mod submit;
