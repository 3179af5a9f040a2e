"""The focusgraph exception hierarchy.

Every failure a user can cause is raised as a subclass of :class:`FocusgraphError`.
Each class carries the process exit code the CLI uses for it, so scripts can tell
a bad graph from a bad photo from a failed encode::

    FocusgraphError            (1)
    ├── GraphValidationError   (2)  bad graph, preset or arguments
    ├── PluginError            (2)  a node plugin failed to load or collides
    ├── InputImageError        (3)  the photo (or a mask/depth image) cannot be used
    ├── ModelError             (4)  a segmentation model is missing or broken
    ├── EncodeError            (5)  the output cannot be written
    └── NodeExecutionError     (1)  a node failed while rendering
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One validation finding, located by node id and field path."""

    node: str | None
    field: str | None
    message: str

    def __str__(self) -> str:
        return f"{_where(self.node, self.field)}{self.message}"


def _where(node: str | None, field: str | None) -> str:
    """``node blur.params.radius: `` or ``inputs.image: `` (no node) or nothing."""
    if node:
        return f"node {node}.{field}: " if field else f"node {node}: "
    return f"{field}: " if field else ""


class FocusgraphError(Exception):
    """Base class of every error focusgraph raises on purpose."""

    exit_code: int = 1

    def __init__(
        self,
        message: str,
        *,
        node: str | None = None,
        field: str | None = None,
        source: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.node = node
        self.field = field
        self.source = source

    def __str__(self) -> str:
        prefix = f"{self.source}: " if self.source else ""
        return f"{prefix}{_where(self.node, self.field)}{self.message}"


class GraphValidationError(FocusgraphError):
    """The graph document, a preset or a command-line binding is invalid.

    Parameters
    ----------
    problems : list of Problem
        Every problem found; validation collects all of them before raising.
    source : str, optional
        The file the graph came from, named in the message.
    """

    exit_code = 2

    def __init__(self, problems: list[Problem], *, source: str | None = None) -> None:
        self.problems = list(problems)
        first = self.problems[0] if self.problems else Problem(None, None, "invalid graph")
        super().__init__(first.message, node=first.node, field=first.field, source=source)

    def __str__(self) -> str:
        prefix = f"{self.source}: " if self.source else ""
        if len(self.problems) == 1:
            return f"{prefix}{self.problems[0]}"
        lines = [f"{prefix}{len(self.problems)} problems in the graph:"]
        lines += [f"  - {problem}" for problem in self.problems]
        return "\n".join(lines)


class PluginError(FocusgraphError):
    """A node plugin could not be loaded, or two plugins claim the same type name."""

    exit_code = 2


class InputImageError(FocusgraphError):
    """An input image is missing, unreadable, truncated or otherwise unusable."""

    exit_code = 3


class ModelError(FocusgraphError):
    """A model file is missing, fails its checksum, or cannot be run."""

    exit_code = 4


class EncodeError(FocusgraphError):
    """The output file could not be written completely."""

    exit_code = 5


class NodeExecutionError(FocusgraphError):
    """A node raised while evaluating a frame."""

    exit_code = 1
