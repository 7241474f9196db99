"""HTTP side: routes and server, the status page, the web config (TLS, basic auth)."""
