"""The ``moorage`` command: a thin client of the host agent's API (``moorage.api``)."""
