"""The PySide6 tray app: a view on the host agent, with no VM logic of its own."""
