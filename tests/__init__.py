"""The Lab's test suite (a package, so that `tests.*` never resolves to a dependency's own tests)."""
