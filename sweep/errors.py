"""The error a bad study file raises, importable without the spec's schema (the CLI catches it cheaply)."""

from __future__ import annotations


class SpecError(ValueError):
    """Invalid study file. `problems` holds one human-readable line per problem."""

    def __init__(self, problems: list[str], source: str = "study"):
        self.problems = problems
        self.source = source
        super().__init__(f"{source}: invalid study\n" + "\n".join(f"  - {p}" for p in problems))
