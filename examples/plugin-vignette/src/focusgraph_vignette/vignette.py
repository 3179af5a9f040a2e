"""``acme.vignette``: darken an image towards its corners, in linear light.

A lens passes less light towards the edge of the frame; editors add the same
fall-off on purpose to pull the eye to the centre. This node multiplies the light
(linear-light RGB, not the sRGB code values) by a gain that is 1 inside ``radius``
and falls smoothly to ``1 - strength`` over ``softness``; distances are measured
from ``center`` as fractions of the image's half-diagonal, so the vignette is round
in pixels and a graph looks the same at any resolution.

The node is an example of a third-party plugin: it is registered through the
``focusgraph.nodes`` entry point of its package (see ``pyproject.toml``) and imports
nothing from focusgraph but its public API.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any

import numpy as np
from pydantic import Field

from focusgraph.graph import FrameContext, Node, NodeParams, Port, PortType, animatable

__all__ = ["Vignette", "apply_vignette", "falloff", "from_linear", "to_linear"]

_LINEAR_LEVELS = 65535
"""Linear light is quantised to 16 bits before encoding: every 8-bit level survives a round trip."""


def _srgb_to_linear(values: np.ndarray) -> np.ndarray:
    """The sRGB transfer function's inverse (IEC 61966-2-1), for values in [0, 1]."""
    return np.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(values: np.ndarray) -> np.ndarray:
    """The sRGB transfer function (IEC 61966-2-1), for values in [0, 1]."""
    return np.where(values <= 0.0031308, values * 12.92, 1.055 * values ** (1 / 2.4) - 0.055)


_TO_LINEAR: np.ndarray = _srgb_to_linear(np.arange(256) / 255.0).astype(np.float32)
_TO_SRGB: np.ndarray = np.round(
    _linear_to_srgb(np.arange(_LINEAR_LEVELS + 1) / _LINEAR_LEVELS) * 255.0
).astype(np.uint8)
_TO_LINEAR.flags.writeable = False
_TO_SRGB.flags.writeable = False


def to_linear(image: np.ndarray) -> np.ndarray:
    """Decode 8-bit sRGB to linear light.

    Parameters
    ----------
    image : numpy.ndarray
        uint8 array of any shape.

    Returns
    -------
    numpy.ndarray
        float32 array of the same shape, in [0, 1].
    """
    return _TO_LINEAR[image]


def from_linear(light: np.ndarray) -> np.ndarray:
    """Encode linear light to 8-bit sRGB (values outside [0, 1] are clipped).

    Parameters
    ----------
    light : numpy.ndarray
        float32 array of any shape.

    Returns
    -------
    numpy.ndarray
        uint8 array of the same shape; ``from_linear(to_linear(x)) == x`` for every uint8 ``x``.
    """
    scaled = np.clip(light, 0.0, 1.0) * np.float32(_LINEAR_LEVELS) + np.float32(0.5)
    return _TO_SRGB[scaled.astype(np.uint16)]


@lru_cache(maxsize=8)
def falloff(
    height: int, width: int, radius: float, softness: float, center: tuple[float, float]
) -> np.ndarray:
    """How much of the vignette applies at each pixel: 0 inside ``radius``, 1 beyond ``radius + softness``.

    The transition is a smoothstep (no visible ring at either end). Results are cached
    (the same map serves every frame) and therefore read-only.

    Parameters
    ----------
    height, width : int
        Size of the image in pixels.
    radius : float
        Distance from ``center`` where darkening starts, as a fraction of the half-diagonal.
    softness : float
        Width of the transition in the same unit; 0 gives a hard edge.
    center : tuple of float
        ``(x, y)`` of the vignette's centre in relative coordinates (0..1, origin top-left).

    Returns
    -------
    numpy.ndarray
        ``(height, width)`` float32 array in [0, 1].
    """
    half_diagonal = 0.5 * float(np.hypot(width, height))
    x = (np.arange(width, dtype=np.float32) + 0.5 - center[0] * width) / half_diagonal
    y = (np.arange(height, dtype=np.float32) + 0.5 - center[1] * height) / half_diagonal
    distance = np.hypot(x[None, :], y[:, None])
    if softness == 0:
        amount = (distance > radius).astype(np.float32)
    else:
        ramp = np.clip((distance - radius) / np.float32(softness), 0.0, 1.0)
        amount = (ramp * ramp * (3.0 - 2.0 * ramp)).astype(np.float32)
    amount.flags.writeable = False
    return amount


def apply_vignette(
    image: np.ndarray,
    strength: float,
    radius: float = 0.5,
    softness: float = 0.5,
    center: tuple[float, float] = (0.5, 0.5),
) -> np.ndarray:
    """Darken ``image`` towards its corners.

    Parameters
    ----------
    image : numpy.ndarray
        ``(H, W, 3)`` uint8 RGB; it is not modified.
    strength : float
        Share of the light removed where the vignette is full (0: none, 1: black).
    radius, softness, center
        See :func:`falloff`.

    Returns
    -------
    numpy.ndarray
        A new ``(H, W, 3)`` uint8 array, or ``image`` itself when ``strength`` is 0.
        Pixels inside ``radius`` keep their exact value.
    """
    if strength <= 0.0:
        return image
    height, width = image.shape[:2]
    amount = falloff(height, width, float(radius), float(softness), (float(center[0]), float(center[1])))
    gain = np.float32(1.0) - np.float32(strength) * amount
    return from_linear(to_linear(image) * gain[:, :, None])


Relative = Annotated[float, Field(ge=0, le=1)]


class Vignette(Node):
    """Darken the image towards the corners (in linear light), with an animatable strength."""

    type_name = "acme.vignette"
    version = 1
    description = "Darken towards the corners in linear light; strength animatable (example plugin)."

    class Params(NodeParams):
        strength: animatable(ge=0, le=1) = Field(  # type: ignore[valid-type]
            default=0.5,
            description="Share of the light removed at full vignette (0 = none, 1 = black); "
            "a number or {link: node} to a Scalar output such as a keyframe.",
        )
        radius: float = Field(
            default=0.5,
            ge=0,
            le=1,
            description="Where darkening starts, as a fraction of the half-diagonal from the centre "
            "(0 = at the centre, 1 = at the corners).",
        )
        softness: float = Field(
            default=0.5,
            ge=0,
            le=2,
            description="Width of the transition to full strength, in the same unit as radius (0 = hard).",
        )
        center: list[Relative] = Field(
            default_factory=lambda: [0.5, 0.5],
            min_length=2,
            max_length=2,
            description="[x, y] of the vignette's centre in relative coordinates (0..1, origin top-left).",
        )

    inputs = {"image": Port(PortType.IMAGE, "The image to darken.")}
    outputs = {"image": Port(PortType.IMAGE, "The vignetted image.")}

    def evaluate(self, params: Any, inputs: dict[str, Any], ctx: FrameContext) -> dict[str, Any]:
        """Darken ``inputs["image"]`` by the resolved parameters; the input is never modified.

        Parameters
        ----------
        params : Vignette.Params
            Parameters with ``strength`` resolved to a number for this frame.
        inputs : dict
            ``{"image": (H, W, 3) uint8 RGB}`` (may be read-only).
        ctx : FrameContext
            Unused: the result depends on the parameters and the image only.

        Returns
        -------
        dict
            ``{"image": (H, W, 3) uint8 RGB}``.
        """
        center = (params.center[0], params.center[1])
        image = apply_vignette(inputs["image"], params.strength, params.radius, params.softness, center)
        return {"image": image}
