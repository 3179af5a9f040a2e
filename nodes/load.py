"""The Load node: read the photo every graph starts from."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from focusgraph.graph.errors import InputImageError
from focusgraph.graph.node import FilePath, FrameContext, Node, NodeParams, Port, PortType
from focusgraph.nodes._imagefile import DEFAULT_MAX_PIXELS, fit_cover, read_rgb


class Load(Node):
    """Read a photo as upright 8-bit RGB, fitted to the timeline size when one is set.

    Any format Pillow reads (JPEG, PNG, WebP, TIFF, ...) is accepted; EXIF orientation
    is applied once, grayscale/palette/CMYK/16-bit images are converted to 8-bit RGB
    and transparency is resolved by ``alpha``. Truncated, corrupt, empty or oversized
    files are refused with an :class:`~focusgraph.graph.errors.InputImageError`.

    When the timeline has a size, the photo is scaled to cover it (area filter when
    shrinking, Lanczos when enlarging) and its centre is cropped to exactly that size.
    A preview's ``max_side`` then shrinks it to fit that longest side.
    The output array is read-only: it is computed once and shared by every frame.
    """

    type_name = "core.load"
    version = 1
    description = (
        "Read a photo (JPEG, PNG, WebP, TIFF, ...) as upright 8-bit RGB; with a timeline "
        "size, scale it to cover that size and crop the centre."
    )

    class Params(NodeParams):
        path: FilePath = Field(
            description=(
                "Photo to read: JPEG, PNG, WebP, TIFF or any other format Pillow reads "
                "(first frame of animated files). EXIF orientation is applied."
            ),
        )
        max_pixels: int = Field(
            default=DEFAULT_MAX_PIXELS,
            gt=0,
            description=(
                "Refuse photos with more pixels (width x height) than this, checked from "
                "the file header before anything is decoded. Pillow's own safety limit "
                "(about 179 megapixels) applies above it."
            ),
        )
        alpha: Literal["white", "black", "ignore"] = Field(
            default="white",
            description=(
                "What transparent pixels become: 'white' composites the photo over white "
                "(as a viewer shows it on a page), 'black' over black, 'ignore' drops the "
                "alpha channel and keeps the stored colours, which are often black or "
                "arbitrary where the image is fully transparent."
            ),
        )

    outputs = {"image": Port(PortType.IMAGE, help="The photo, (H, W, 3) uint8 RGB.")}
    varies_per_frame = False

    def evaluate(self, params: Any, inputs: dict[str, Any], ctx: FrameContext) -> dict[str, Any]:
        """Read the photo and fit it to ``ctx.size`` when the timeline has one."""
        try:
            image = read_rgb(params.path, max_pixels=params.max_pixels, alpha=params.alpha)
        except InputImageError as exc:
            exc.field = exc.field or "params.path"
            raise
        if ctx.size is not None:
            image = fit_cover(image, ctx.size)
        if ctx.max_side is not None and max(image.shape[:2]) > ctx.max_side:
            scale = ctx.max_side / max(image.shape[:2])
            shrunk = (max(2, round(image.shape[1] * scale)), max(2, round(image.shape[0] * scale)))
            image = fit_cover(image, shrunk)
        image.flags.writeable = False  # reused for every frame: nobody may edit it in place
        return {"image": image}

    def input_files(self, params: Any) -> list[Path]:
        """The photo this node reads."""
        return [Path(params.path).expanduser()]
