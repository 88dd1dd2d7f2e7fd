"""moorage: a local Linux VM with the real Docker engine, driven from the host's `docker` CLI."""

__version__ = "0.1.0"
