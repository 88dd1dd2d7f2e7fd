"""Packaging, and the signed update channels."""
