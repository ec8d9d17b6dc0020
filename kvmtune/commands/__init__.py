"""One core function per command: build the Host, do the work, hand off to a renderer."""


class Options:
    """Base of the per-command options: compared and shown by value (the fast-path parity
    tests compare what the fast parser and typer built)."""

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and vars(self) == vars(other)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({vars(self)})"

    @property
    def wants_json(self) -> bool:
        """--json (or --format json): even a failure prints one JSON object."""
        return getattr(self, "json", False) is True or getattr(self, "format", None) == "json"
