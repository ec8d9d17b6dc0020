"""Renderers only format: they never read the host."""
