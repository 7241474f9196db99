"""Event sinks: what the watchers see becomes metrics, log lines and the recently-ended list."""
