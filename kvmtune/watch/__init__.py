"""Keeping the tuning true: verify's targets and their owners, watch's units (issue #22)."""
