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


@contextlib.contextmanager
def bar_progress():
    """A progress(text, done=None, total=None) callback: a bar on stderr at a terminal, else silent."""
    if not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty()):
        yield lambda text, done=None, total=None: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("starting", total=None)

        def progress(text: str, done: int | None = None, total: int | None = None) -> None:
            bar.update(task, description=text, completed=done or 0, total=total)

        yield progress
