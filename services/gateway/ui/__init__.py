"""The gateway's web UI: server-rendered pages, their context and the security headers."""
