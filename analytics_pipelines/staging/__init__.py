"""Staging: pure functions that turn raw (all-text) source rows into typed, normalized rows plus quarantine."""
