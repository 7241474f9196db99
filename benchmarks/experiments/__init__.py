"""Experiments: exporters instrumented for A/B runs of the benchmark (`--exporter-command`), and micro-benchmarks."""
