"""Tests of the ``acme.vignette`` node: the pixels, the parameters, and its place in a graph.

They run against the installed package (``pip install .`` first): the entry-point tests
check what focusgraph itself will find.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from focusgraph_vignette import Vignette
from PIL import Image
from pydantic import ValidationError

from focusgraph.graph import FrameContext, GraphValidationError, Link, compile_graph, load_document, render
from focusgraph.graph.registry import ENTRY_POINT_GROUP, build_registry

CTX = FrameContext(frame=0, fps=30.0, frame_count=1)


def srgb_to_linear(level: float) -> float:
    """An 8-bit sRGB level as linear light (written out here, independently of the plugin)."""
    value = level / 255.0
    return value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055) ** 2.4


def linear_to_srgb(light: float) -> float:
    """Linear light as an 8-bit sRGB level (not rounded)."""
    value = light * 12.92 if light <= 0.0031308 else 1.055 * light ** (1 / 2.4) - 0.055
    return 255.0 * value


def vignette(image: np.ndarray, **params: Any) -> np.ndarray:
    """Run the node on one frame with ``params``; the input is made read-only as the engine's may be."""
    image.flags.writeable = False
    result: np.ndarray = Vignette().evaluate(Vignette.Params(**params), {"image": image}, CTX)["image"]
    return result


def grey(height: int = 81, width: int = 101, level: int = 128) -> np.ndarray:
    """A uniform image of odd size, so that it has a centre pixel."""
    return np.full((height, width, 3), level, np.uint8)


def noise(height: int = 60, width: int = 80) -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, (height, width, 3), dtype=np.uint8)


# pixels ------------------------------------------------------------------------------------


def test_centre_pixel_is_unchanged_even_at_full_strength() -> None:
    image = grey()
    out = vignette(image.copy(), strength=1.0, radius=0.2, softness=0.3)
    assert out[40, 50].tolist() == [128, 128, 128]
    assert (out[35:46, 45:56] == 128).all()  # everything inside the radius (0.2 * 65 px)
    assert out[0, 0].tolist() == [0, 0, 0]  # full strength removes all light at the corners


@pytest.mark.parametrize("strength", [0.25, 0.6, 0.9])
@pytest.mark.parametrize("level", [40, 128, 230])
def test_corners_lose_strength_of_their_light(strength: float, level: int) -> None:
    """Beyond radius + softness the linear light is multiplied by 1 - strength."""
    out = vignette(grey(level=level), strength=strength, radius=0.2, softness=0.3)
    expected = linear_to_srgb((1 - strength) * srgb_to_linear(level))
    for y, x in [(0, 0), (0, -1), (-1, 0), (-1, -1)]:
        assert abs(float(out[y, x, 0]) - expected) <= 0.5 + 1e-6, (y, x, out[y, x], expected)


def test_darkening_is_done_in_linear_light_not_on_code_values() -> None:
    """Half the light of level 128 is level 92 (sRGB), not 64 (what scaling code values would give)."""
    out = vignette(grey(level=128), strength=0.5, radius=0.1, softness=0.2)
    assert out[0, 0, 0] == 92


def test_strength_zero_is_the_identity() -> None:
    image = noise()
    out = vignette(image, strength=0.0, radius=0.0, softness=0.0)
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert np.array_equal(out, image)


def test_every_level_survives_the_linear_round_trip() -> None:
    """Where the gain is 1 nothing changes: no level is lost to the sRGB -> linear -> sRGB trip."""
    levels = np.repeat(np.arange(256, dtype=np.uint8), 3).reshape(16, 16, 3)
    out = vignette(levels.copy(), strength=1.0, radius=1.0, softness=0.5)
    assert np.array_equal(out, levels)


def test_darker_with_more_strength_and_further_from_the_centre() -> None:
    image = noise()
    results = [vignette(image.copy(), strength=s).astype(int) for s in (0.0, 0.25, 0.5, 0.75, 1.0)]
    for weaker, stronger in pairwise(results):
        assert (stronger <= weaker).all()
        assert (stronger < weaker).any()
    diagonal = vignette(grey(101, 101, 200), strength=0.8)[np.arange(50, 101), np.arange(50, 101), 0]
    assert (np.diff(diagonal.astype(int)) <= 0).all() and diagonal[-1] < diagonal[0]


def test_center_moves_the_bright_spot() -> None:
    out = vignette(grey(), strength=0.8, radius=0.1, softness=0.3, center=[0.0, 0.0])
    assert out[0, 0, 0] == 128 and out[-1, -1, 0] < 60


def test_hard_edge_at_softness_zero() -> None:
    out = vignette(grey(), strength=0.5, radius=0.5, softness=0.0)
    assert set(np.unique(out[..., 0]).tolist()) == {92, 128}


def test_input_is_not_modified_and_output_is_a_new_array() -> None:
    image = noise()
    before = image.copy()
    out = vignette(image, strength=0.7)
    assert np.array_equal(image, before) and out is not image


# parameters --------------------------------------------------------------------------------


def test_params_defaults_and_link() -> None:
    params = Vignette.Params()
    assert (params.strength, params.radius, params.softness, params.center) == (0.5, 0.5, 0.5, [0.5, 0.5])
    linked = Vignette.Params.model_validate({"strength": {"link": "fade"}})
    assert linked.strength == Link(link="fade")


@pytest.mark.parametrize(
    "params",
    [
        {"strenght": 0.5},  # unknown field (extra=forbid)
        {"strength": 1.5},
        {"strength": -0.1},
        {"strength": "0.5"},  # strict: no string-to-number coercion
        {"strength": {"link": "fade", "port": "value"}},
        {"radius": -0.1},
        {"radius": 1.2},
        {"softness": 3},
        {"center": [0.5]},
        {"center": [0.5, 0.5, 0.5]},
        {"center": [1.5, 0.5]},
    ],
)
def test_params_reject_unknown_fields_and_out_of_range_values(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Vignette.Params.model_validate(params)


def test_every_param_is_documented() -> None:
    for name, info in Vignette.Params.model_fields.items():
        assert info.description, name


# registration and graphs -------------------------------------------------------------------


def test_entry_point_is_installed() -> None:
    (point,) = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == "acme.vignette"]
    assert point.value == "focusgraph_vignette.vignette:Vignette"
    assert point.dist is not None
    assert (point.dist.name, point.dist.version) == ("focusgraph-vignette", "0.1.0")
    registry = build_registry()
    assert registry.get("acme.vignette") is Vignette
    assert registry.origins["acme.vignette"] == "focusgraph-vignette 0.1.0"
    assert build_registry(plugins=False).get("acme.vignette") is None


GRAPH = """\
version: 1
name: vignette-test
inputs:
  image: {type: path}
  output: {type: path}
timeline: {fps: 10, duration: 0}
nodes:
  photo: {type: load, params: {path: $image}}
  fade: {type: keyframe, params: {keys: [{time: 0, value: 0.75}, {time: 1, value: 0}]}}
  framed:
    type: acme.vignette
    inputs: {image: photo}
    params: {strength: {link: fade}, radius: 0.2, softness: 0.3}
  still: {type: encode, inputs: {image: framed}, params: {path: $output}}
"""


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    Image.fromarray(grey(64, 96, 150)).save(path)
    return path


def test_graph_compiles_and_renders(photo: Path, tmp_path: Path) -> None:
    out = tmp_path / "still.png"
    graph = compile_graph(
        load_document(GRAPH), {"image": str(photo), "output": str(out)}, registry=build_registry()
    )
    node = graph.nodes["framed"]
    assert node.cls is Vignette and set(node.links) == {"strength"}
    assert render(graph) == [out]
    pixels = np.asarray(Image.open(out).convert("RGB"))
    expected = linear_to_srgb(0.25 * srgb_to_linear(150))
    assert pixels[32, 48, 0] == 150 and abs(float(pixels[0, 0, 0]) - expected) <= 0.5 + 1e-6


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (("radius: 0.2", "radius: 2.0"), "framed.params.radius"),
        (("softness: 0.3", "softness: 0.3, amount: 1"), "framed.params.amount"),
        (("inputs: {image: photo}", "inputs: {image: fade}"), "framed.inputs.image"),
        (("{link: fade}", "{link: photo}"), "framed.params.strength"),
    ],
)
def test_graph_errors_name_the_node_and_field(photo: Path, change: tuple[str, str], fragment: str) -> None:
    text = GRAPH.replace(*change)
    assert text != GRAPH
    with pytest.raises(GraphValidationError) as caught:
        compile_graph(
            load_document(text), {"image": str(photo), "output": "x.png"}, registry=build_registry()
        )
    assert fragment in str(caught.value)
