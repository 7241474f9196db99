"""Tools for the demo, tests and benchmarks: a BLISS-like publisher, an embedded Redis Stack, demo and simulate."""
