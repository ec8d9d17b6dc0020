"""A spinner on stderr while a slow step runs, only when stderr is a terminal."""

from __future__ import annotations

import contextlib
import sys


def terminal_progress():
    """A progress(text) context-manager factory, or None when nobody is watching."""
    if not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty()):
        return None
    from rich.console import Console

    console = Console(stderr=True)

    @contextlib.contextmanager
    def progress(text: str):
        with console.status(text):
            yield

    return progress
