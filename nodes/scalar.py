"""``core.scalar``: a number derived from a graph input or another Scalar, ``value * scale + offset``.

Graph documents substitute inputs but do no arithmetic; this node is the small step
in between, so that a preset can expose one natural control (a blur strength of
0.15-0.35) and feed a node the quantity it needs (an aperture of strength x 0.07).
Linked to a keyframe, it rescales a whole curve.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from focusgraph.graph.node import FrameContext, Node, NodeParams, Port, PortType, animatable


class Scalar(Node):
    """Output ``value * scale + offset`` as a Scalar (time-invariant unless ``value`` is linked)."""

    type_name = "core.scalar"
    description = "A number, value * scale + offset: derive a parameter from a graph input or another Scalar."

    class Params(NodeParams):
        value: animatable(ge=-1e6, le=1e6) = Field(  # type: ignore[valid-type]
            description="The number, or {link: node} to another Scalar (animatable)."
        )
        scale: float = Field(default=1.0, ge=-1e6, le=1e6, description="Multiplies `value`.")
        offset: float = Field(default=0.0, ge=-1e6, le=1e6, description="Added after scaling.")

    outputs: ClassVar[dict[str, Port]] = {"value": Port(PortType.SCALAR, "value * scale + offset.")}

    def evaluate(self, params: Any, inputs: dict[str, Any], ctx: FrameContext) -> dict[str, Any]:
        """The scaled and offset value."""
        return {"value": float(params.value) * params.scale + params.offset}
