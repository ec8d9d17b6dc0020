"""Readers of the host: each ``read_*`` takes a Host and returns frozen facts.

Probes never judge and never print; parsing lives in functions that take text
so it is tested on strings.
"""
