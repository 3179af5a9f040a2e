"""Previews: a contact sheet of a few frames across the timeline, and single frames.

A preview evaluates the graph without its output nodes, taking the image that would
reach the first output. Sheets are rendered at a reduced size (the timeline's
``max_side``), so the time-invariant work (segmentation, inpainting) is cheap too.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from focusgraph.graph.compile import CompiledGraph, CompiledNode
from focusgraph.graph.errors import EncodeError, GraphValidationError, Problem
from focusgraph.graph.node import PortType
from focusgraph.graph.scheduler import Evaluator
from focusgraph.graph.store import NodeStore

SHEET_COLUMNS = 4
LABEL_HEIGHT = 22
GAP = 4
MASK_TINT = np.array([255, 60, 40], np.float32)


def final_image_port(graph: CompiledGraph) -> tuple[CompiledNode, str]:
    """The first output node and its first image input: what a preview shows."""
    for node in graph.outputs:
        for port, spec in node.cls.inputs.items():
            if spec.type == PortType.IMAGE and port in node.inputs:
                return node, port
    raise GraphValidationError([Problem(None, "nodes", "no output node receives an image to preview")])


def _find_output(graph: CompiledGraph, wanted: PortType, name: str | None) -> tuple[str, str] | None:
    """``(node, port)`` of the first ``wanted`` output in evaluation order, or of node ``name``."""
    for node_id in graph.order:
        node = graph.nodes[node_id]
        if name is not None and node_id != name.partition(".")[0]:
            continue
        for port, spec in node.cls.outputs.items():
            if spec.type == wanted and (name is None or "." not in name or name.partition(".")[2] == port):
                return node_id, port
    if name is not None:
        raise GraphValidationError([Problem(name, None, f"no {wanted.value} output to show as the mask")])
    return None


def evaluate_frames(
    graph: CompiledGraph,
    frames: list[int],
    max_side: int | None,
    on_first: Any = None,
) -> list[np.ndarray]:
    """The image reaching the first output at each of ``frames``, at most ``max_side`` px long.

    ``on_first``, if given, is called with every node's outputs of the first frame.
    """
    timeline = dataclasses.replace(graph.timeline, max_side=max_side)
    output, port = final_image_port(graph)
    evaluator = Evaluator(graph, NodeStore.default())
    images: list[np.ndarray] = []
    for frame in frames:
        outputs = evaluator.run(timeline.context(frame))
        if on_first is not None and not images:
            on_first(outputs)
        images.append(np.array(evaluator.output_inputs(output)[port]))
    return images


def sheet_frames(frame_count: int, count: int) -> list[int]:
    """``count`` frame indices spread evenly from the first to the last frame."""
    if frame_count <= 1 or count <= 1:
        return [0]
    return sorted({round(i * (frame_count - 1) / (count - 1)) for i in range(count)})


def mask_overlay(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``image`` darkened outside the mask and tinted red over its soft edge and interior."""
    if mask.shape != image.shape[:2]:
        mask = cv2.resize(mask, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
    alpha = np.clip(mask, 0, 1)[..., None].astype(np.float32)
    shown = image.astype(np.float32) * (0.35 + 0.65 * alpha)
    shown = shown * (1 - 0.35 * alpha) + MASK_TINT * 0.35 * alpha
    return np.clip(shown + 0.5, 0, 255).astype(np.uint8)


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    """``tile`` with a dark strip under it carrying ``text``."""
    strip = np.full((LABEL_HEIGHT, tile.shape[1], 3), 24, np.uint8)
    cv2.putText(
        strip, text, (6, LABEL_HEIGHT - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (235, 235, 235), 1, cv2.LINE_AA
    )
    return np.vstack([tile, strip])


def _shrink(image: np.ndarray, side: int) -> np.ndarray:
    """``image`` scaled down (area filter) so its longer side is at most ``side``."""
    scale = side / max(image.shape[:2])
    if scale >= 1:
        return image
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def contact_sheet(
    graph: CompiledGraph,
    *,
    frames: int = 6,
    tile_side: int = 360,
    render_side: int = 720,
    mask: str | None = None,
) -> np.ndarray:
    """A sheet of ``frames`` frames across the timeline, each labelled with its time, plus the mask.

    Parameters
    ----------
    graph : CompiledGraph
        The graph to preview.
    frames : int
        Number of frames, spread from the first to the last.
    tile_side : int
        Longest side of each frame on the sheet.
    render_side : int
        Longest side the graph renders at (the photo is shrunk first). Segmentation
        needs some resolution to find hair and hands as the full render does, so this
        is larger than the tiles.
    mask : str, optional
        Node (or ``node.port``) whose mask is overlaid; default: the first mask
        output in evaluation order (the segmentation).

    Returns
    -------
    numpy.ndarray
        The sheet, ``(H, W, 3)`` uint8 RGB.
    """
    timeline = graph.timeline
    indices = sheet_frames(timeline.frame_count, frames)
    found = _find_output(graph, PortType.MASK, mask)
    source = _find_output(graph, PortType.IMAGE, None)
    overlays: list[np.ndarray] = []

    def overlay(outputs: dict[str, dict[str, Any]]) -> None:
        if found is not None and source is not None:
            image, alpha = outputs[source[0]][source[1]], outputs[found[0]][found[1]]
            shown = mask_overlay(np.asarray(image), np.asarray(alpha))
            overlays.append(_label(_shrink(shown, tile_side), f"mask: {found[0]}"))

    images = evaluate_frames(graph, indices, max(render_side, tile_side), on_first=overlay)
    tiles = [
        _label(
            _shrink(image, tile_side),
            f"t = {index / timeline.fps:.2f} s  (frame {index + 1}/{timeline.frame_count})",
        )
        for index, image in zip(indices, images, strict=True)
    ]
    return _grid(overlays + tiles)


def _grid(tiles: list[np.ndarray]) -> np.ndarray:
    """Tiles (all the same size) in rows of :data:`SHEET_COLUMNS`, on a dark background."""
    height, width = tiles[0].shape[:2]
    columns = min(SHEET_COLUMNS, len(tiles))
    rows = -(-len(tiles) // columns)
    sheet = np.full((rows * (height + GAP) + GAP, columns * (width + GAP) + GAP, 3), 12, np.uint8)
    for index, tile in enumerate(tiles):
        row, column = divmod(index, columns)
        top, left = GAP + row * (height + GAP), GAP + column * (width + GAP)
        sheet[top : top + tile.shape[0], left : left + tile.shape[1]] = tile
    return sheet


def write_png(image: np.ndarray, target: Path, *, overwrite: bool = False) -> Path:
    """Write an RGB image as PNG atomically (temporary file beside ``target``, then rename).

    Raises
    ------
    EncodeError
        The target exists (without ``overwrite``), is a directory, or its folder is missing.
    """
    target = target.expanduser()
    if target.suffix.lower() != ".png":
        raise EncodeError(f"'{target}': a preview is a PNG; give a path ending in .png")
    if target.is_dir():
        raise EncodeError(f"'{target}' is a directory; give a file name")
    if target.exists() and not overwrite:
        raise EncodeError(f"'{target}' exists; pass --overwrite to replace it")
    if not target.parent.is_dir():
        raise EncodeError(f"directory '{target.parent}' of '{target}' does not exist; create it first")
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise EncodeError(f"cannot encode the preview for '{target}'")
    temp = target.with_name(f".{target.name}.focusgraph-tmp-{secrets.token_hex(6)}.png")
    try:
        temp.write_bytes(data.tobytes())
        os.replace(temp, target)
    except OSError as error:
        temp.unlink(missing_ok=True)
        raise EncodeError(f"cannot write '{target}': {error.strerror}") from error
    return target
