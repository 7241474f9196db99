"""bliss-exporter: Prometheus metrics and structured logs for BLISS scans published through blissdata."""

__version__ = "0.1.0"

#: The exporter's default HTTP port.
DEFAULT_PORT = 9811
