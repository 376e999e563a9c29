"""Benchmarks: scripts that print a table and write JSON; never part of the test suite."""
