"""The host agent's control API: its schema (``schema``), the single source of the
routes, bodies, events and error codes, and the client library (``client``) that the
CLI and the tray use. Nothing here imports the agent, a driver or the engine layer."""
