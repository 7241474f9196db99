"""The exporter's benchmarks and experiments, run as modules from the repository root (`python -m benchmarks.bench`)."""
