//! Helpers for the integration tests in `tests/`: start the real binaries on loopback.
