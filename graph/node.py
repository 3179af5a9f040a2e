"""The base class every node type derives from, built-in or plugin.

A node type is a small class that declares

* ``type_name``: a namespaced name such as ``"core.blur"`` or ``"acme.vignette"``;
* ``version``: bumped whenever the same parameters would produce different pixels
  (it is part of every cache key);
* ``Params``: a pydantic model (use :class:`NodeParams` as its base, which forbids
  unknown fields and coerces nothing);
* ``inputs`` and ``outputs``: dictionaries of :class:`Port`;
* ``varies_per_frame``: ``True`` only when the node's output changes over time by
  itself (a keyframe curve, film grain), not merely because an input changes;
* ``models`` (optional): :class:`~focusgraph.graph.models.ModelSpec` files it needs,
  fetched by ``focusgraph models fetch`` and before a render that uses the node;
* ``persistent`` (optional): ``True`` for a slow node whose outputs (arrays and
  numbers) are worth keeping on disk between renders when it is time-invariant
  (segmentation, inpainting); see :mod:`focusgraph.graph.store`;
* ``evaluate``: a pure function of parameters, inputs and the frame context. Work it
  derives from time-invariant inputs may be kept in the render's node store
  (``ctx.store``, see :mod:`focusgraph.graph.store`) for the next render.

Numeric parameters that should be animatable are declared with :func:`animatable`:
in YAML they take either a number or ``{link: other_node}``, a link to a Scalar
output. The engine resolves links before ``evaluate`` is called, so ``evaluate``
always sees plain numbers.

Example
-------
>>> class Invert(Node):
...     type_name = "acme.invert"
...     class Params(NodeParams):
...         amount: animatable(ge=0, le=1) = 1.0
...     inputs = {"image": Port(PortType.IMAGE)}
...     outputs = {"image": Port(PortType.IMAGE)}
...     def evaluate(self, params, inputs, ctx):
...         image = inputs["image"]
...         return {"image": (image + params.amount * (255 - 2.0 * image)).astype(image.dtype)}
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from focusgraph.graph.models import ModelSpec

if TYPE_CHECKING:
    from focusgraph.graph.store import NodeStore


class PortType(enum.StrEnum):
    """The kinds of value that flow along graph edges.

    ``image`` is an ``(H, W, 3)`` uint8 RGB array; ``mask`` is an ``(H, W)``
    float32 array in ``[0, 1]``; ``scalar`` is a Python float.
    """

    IMAGE = "image"
    MASK = "mask"
    SCALAR = "scalar"


@dataclass(frozen=True)
class Port:
    """A typed input or output of a node."""

    type: PortType
    help: str = ""
    optional: bool = False


class Link(BaseModel):
    """A reference from a parameter to a Scalar output: ``{link: node}`` or ``{link: node.port}``."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    link: str = Field(description="Node id, optionally followed by '.port', of a Scalar output.")


def animatable(*, ge: float | None = None, le: float | None = None, gt: float | None = None) -> Any:
    """Type of a numeric parameter that may be a literal or a :class:`Link`.

    The bounds apply to the literal and to the linked value at every frame.
    """
    number = Annotated[float, Field(ge=ge, le=le, gt=gt)]
    return number | Link


def _usable_path(value: str) -> str:
    if "\0" in value:
        raise ValueError("a path cannot contain a NUL character")
    try:
        Path(value).expanduser()
    except RuntimeError as exc:  # `~name` of a user who does not exist
        raise ValueError(f"cannot expand {value!r}: {exc}") from None
    return value


FilePath = Annotated[str, Field(min_length=1), AfterValidator(_usable_path)]
"""Type of a file-path parameter: non-empty, no NUL byte, and ``~``/``~user`` must expand."""


class NodeParams(BaseModel):
    """Base class of every node's ``Params``: unknown fields are errors, nothing is coerced."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


@dataclass(frozen=True)
class FrameContext:
    """Where in the timeline a node is being evaluated.

    Attributes
    ----------
    frame : int
        Index of the frame, 0-based.
    fps : float
        Frames per second of the timeline.
    frame_count : int
        Number of frames in the render.
    size : tuple of int, optional
        ``(width, height)`` requested by the timeline, or ``None`` for the photo's size.
    max_side : int, optional
        Longest side a source node should produce, or ``None`` for no limit. Previews
        set it to render quickly at a reduced size; a node that reads an image shrinks
        it to fit (nodes whose lengths are relative to the image then look the same).
    store : NodeStore, optional
        The render's node store, where a node may keep arrays it derives from
        time-invariant inputs (:meth:`~focusgraph.graph.store.NodeStore.put_array_in_background`),
        or ``None`` (no store). Not part of the context's equality.
    """

    frame: int
    fps: float
    frame_count: int
    size: tuple[int, int] | None = None
    max_side: int | None = None
    store: NodeStore | None = field(default=None, compare=False, repr=False)

    @property
    def time(self) -> float:
        """Time of this frame in seconds."""
        return self.frame / self.fps

    @property
    def duration(self) -> float:
        """Length of the timeline in seconds."""
        return self.frame_count / self.fps


@dataclass(frozen=True)
class Timeline:
    """Frame rate, length, optional output size and optional size limit of a render."""

    fps: float
    frame_count: int
    size: tuple[int, int] | None = None
    max_side: int | None = None

    def context(self, frame: int) -> FrameContext:
        """Return the evaluation context of ``frame``."""
        return FrameContext(frame, self.fps, self.frame_count, self.size, self.max_side)

    def frame_at(self, seconds: float) -> int:
        """Index of the frame shown at ``seconds`` (clamped to the timeline)."""
        return min(self.frame_count - 1, max(0, round(seconds * self.fps)))


class Node:
    """Base class of all node types; see the module docstring for what to declare."""

    type_name: ClassVar[str]
    version: ClassVar[int] = 1
    Params: ClassVar[type[NodeParams]] = NodeParams
    inputs: ClassVar[dict[str, Port]] = {}
    outputs: ClassVar[dict[str, Port]] = {}
    varies_per_frame: ClassVar[bool] = False
    description: ClassVar[str] = ""
    models: ClassVar[list[ModelSpec]] = []
    persistent: ClassVar[bool] = False

    def evaluate(self, params: Any, inputs: dict[str, Any], ctx: FrameContext) -> dict[str, Any]:
        """Compute the outputs of one frame.

        Parameters
        ----------
        params : Params
            The node's parameters with every link resolved to a number.
        inputs : dict
            Values of the connected input ports, by port name (optional ports that are
            not connected are absent).
        ctx : FrameContext
            The frame being rendered.

        Returns
        -------
        dict
            A value for every output port.
        """
        raise NotImplementedError

    def varies_at(self, params: Any) -> bool:
        """Whether the output changes with time at these (resolved) parameters.

        Defaults to ``varies_per_frame``; a node that is static for some values (grain
        with ``amount`` 0) says so, and the scheduler then reuses its previous result.
        """
        return self.varies_per_frame

    def persists(self, params: Any) -> bool:
        """Whether outputs computed with these parameters go to the node store.

        Defaults to ``persistent``; a node that is slow only for some parameters (a
        depth model, but not the quick estimate) says so.
        """
        return self.persistent

    def input_files(self, params: Any) -> list[Path]:
        """Files this node reads, so the engine can refuse to overwrite them."""
        return []

    def required_models(self, params: Any) -> list[ModelSpec]:
        """Model files a render with ``params`` needs (provisioned before the first frame).

        Defaults to every model the class declares in ``models``.
        """
        return list(self.models)


class Writer:
    """Receives the frames of one render from an :class:`OutputNode`.

    ``write`` is called once per frame in order; then exactly one of ``commit``
    (all frames written: make the output appear) or ``abort`` (remove every trace).
    """

    def write(self, inputs: dict[str, Any], ctx: FrameContext) -> None:
        raise NotImplementedError

    def commit(self) -> Path:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError


class OutputNode(Node):
    """A sink: consumes frames and writes a file. A graph needs at least one."""

    def output_path(self, params: Any) -> Path:
        """The file this node will create."""
        raise NotImplementedError

    def open(self, params: Any, timeline: Timeline, overwrite: bool) -> Writer:
        """Start writing; called once before the first frame."""
        raise NotImplementedError

    def evaluate(self, params: Any, inputs: dict[str, Any], ctx: FrameContext) -> dict[str, Any]:
        return {}
