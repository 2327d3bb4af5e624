//! Helpers for the e2e tests: a client from `e2e/cluster env`, temporary namespaces, waiting on
//! conditions with a deadline. Tests live in `e2e/tests/`.
#![forbid(unsafe_code)]
