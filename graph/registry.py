"""Node type registry, filled from the ``focusgraph.nodes`` entry-point group.

Built-in nodes are declared in focusgraph's own ``pyproject.toml`` exactly like a
third-party plugin declares its nodes, so both go through this one path.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points

from focusgraph.graph.errors import PluginError
from focusgraph.graph.node import Node

ENTRY_POINT_GROUP = "focusgraph.nodes"
DEFAULT_NAMESPACE = "core"


@dataclass(frozen=True)
class PluginFailure:
    """A plugin entry point that could not be loaded."""

    name: str
    origin: str
    message: str


@dataclass
class Registry:
    """Known node types by their namespaced name, plus the plugins that failed to load."""

    types: dict[str, type[Node]] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)
    failures: list[PluginFailure] = field(default_factory=list)

    def add(self, cls: type[Node], origin: str = "focusgraph") -> None:
        """Register ``cls`` under its ``type_name``; a second claim on a name is an error."""
        name = cls.type_name
        if "." not in name:
            raise PluginError(f"node type {name!r} from {origin} must be namespaced, e.g. 'acme.{name}'")
        if name in self.types and self.types[name] is not cls:
            raise PluginError(
                f"node type {name!r} is defined by both {self.origins[name]} and {origin}; "
                "uninstall one of them or use --no-plugins"
            )
        self.types[name] = cls
        self.origins[name] = origin

    def canonical(self, name: str) -> str:
        """Full type name: ``blur`` is shorthand for ``core.blur``."""
        return name if "." in name else f"{DEFAULT_NAMESPACE}.{name}"

    def get(self, name: str) -> type[Node] | None:
        """The node class for ``name`` (short or full), or ``None``."""
        return self.types.get(self.canonical(name))

    def failure_for(self, name: str) -> PluginFailure | None:
        """The failed plugin whose entry point would have provided type ``name``, if any."""
        canonical = self.canonical(name)
        return next((failure for failure in self.failures if failure.name == canonical), None)

    def suggest(self, name: str) -> str | None:
        """Closest known type name to a misspelt ``name``."""
        candidates = list(self.types) + [
            key.split(".", 1)[1] for key in self.types if key.startswith(DEFAULT_NAMESPACE + ".")
        ]
        matches = difflib.get_close_matches(name, candidates, n=1, cutoff=0.5)
        return matches[0] if matches else None


def _origin(entry_point: EntryPoint) -> str:
    dist = entry_point.dist
    return f"{dist.name} {dist.version}" if dist is not None else entry_point.value


def is_builtin_origin(origin: str) -> bool:
    """Whether a :attr:`Registry.origins` value names focusgraph itself."""
    return origin.split(" ", 1)[0] == "focusgraph"


def _is_builtin(entry_point: EntryPoint) -> bool:
    return entry_point.value.startswith("focusgraph.nodes.")


def build_registry(entry_points_: Iterable[EntryPoint] | None = None, *, plugins: bool = True) -> Registry:
    """Load node types from the entry-point group.

    Parameters
    ----------
    entry_points_ : iterable of EntryPoint, optional
        Defaults to the installed ``focusgraph.nodes`` group.
    plugins : bool
        If false, only focusgraph's own nodes are loaded.

    A plugin that fails to import (or declares no namespaced ``type_name``) is recorded
    in ``Registry.failures`` and does not affect any other node; a built-in that fails
    to import is a bug and raises.
    Two packages claiming one type name raise :class:`PluginError` naming both.
    """
    registry = Registry()
    eps = list(entry_points(group=ENTRY_POINT_GROUP) if entry_points_ is None else entry_points_)
    for ep in sorted(eps, key=lambda e: (not _is_builtin(e), e.name)):
        builtin = _is_builtin(ep)
        if not builtin and not plugins:
            continue
        try:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, Node)):
                raise TypeError(f"{ep.value} is not a focusgraph Node subclass")
            if "." not in getattr(cls, "type_name", ""):
                raise TypeError(
                    f"type_name {getattr(cls, 'type_name', None)!r} must be namespaced ('acme.name')"
                )
        except Exception as exc:
            if builtin:
                raise
            registry.failures.append(PluginFailure(ep.name, _origin(ep), f"{type(exc).__name__}: {exc}"))
            continue
        registry.add(cls, _origin(ep))
    return registry


_default: Registry | None = None


def default_registry() -> Registry:
    """The process-wide registry with plugins enabled (built once)."""
    global _default
    if _default is None:
        _default = build_registry()
    return _default
