"""The host agent: one background process per machine that owns the VM, the
forwarders and the health checks, and tells the CLI and the tray about it in
typed events over a local control API (a user-only unix socket)."""
