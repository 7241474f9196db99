"""bliss-exporter: Prometheus metrics and structured logs for BLISS scans published through blissdata."""

__version__ = "0.1.0"
