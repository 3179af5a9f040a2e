"""Tests of core.depth: a user depth file, the ground-plane estimate and the ONNX model slot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper
from photos import photo_path
from pydantic import ValidationError

from focusgraph.graph import compile_graph, load_document, render_frame
from focusgraph.graph.cli import main
from focusgraph.graph.errors import GraphValidationError, InputImageError, ModelError, NodeExecutionError
from focusgraph.graph.node import FrameContext
from focusgraph.nodes import depth as depth_module
from focusgraph.nodes.depth import Depth

CTX = FrameContext(frame=0, fps=25.0, frame_count=1)


def run(image: np.ndarray, mask: np.ndarray | None = None, **params: Any) -> np.ndarray:
    inputs: dict[str, Any] = {"image": image}
    if mask is not None:
        inputs["mask"] = mask
    result = Depth().evaluate(Depth.Params(**params), inputs, CTX)["depth"]
    assert isinstance(result, np.ndarray) and result.dtype == np.float32
    assert result.shape == image.shape[:2]
    assert np.isfinite(result).all() and float(result.min()) >= 0.0 and float(result.max()) <= 1.0
    return result


def photo(width: int, height: int) -> np.ndarray:
    """A horizontal brightness ramp, dark on the left, bright on the right."""
    ramp = np.linspace(0, 255, width, dtype=np.float32)
    return np.repeat(np.repeat(ramp[None, :, None], height, 0), 3, 2).astype(np.uint8)


# file -----------------------------------------------------------------------------------


def test_8bit_file_is_resized_and_scaled_by_its_range(tmp_path: Path) -> None:
    path = tmp_path / "depth.png"
    cv2.imwrite(str(path), np.repeat(np.linspace(0, 255, 200).astype(np.uint8)[None], 100, 0))
    result = run(photo(100, 50), source="file", path=str(path))
    assert result.shape == (50, 100)
    assert result[:, 0].max() < 0.02 and result[:, -1].min() > 0.98  # black = near, by default
    assert (np.diff(result[25]) >= 0).all()
    white_near = run(photo(100, 50), source="file", path=str(path), near="white")
    np.testing.assert_allclose(white_near, 1.0 - result, atol=1e-6)


@pytest.mark.parametrize("channels", [1, 3])
def test_16bit_file_keeps_its_precision(tmp_path: Path, channels: int) -> None:
    ramp = np.linspace(0, 65535, 600).round().astype(np.uint16)[:, None]
    samples = np.repeat(ramp, 800, 1)  # the photo's shape (4:3), larger
    if channels == 3:
        samples = np.dstack([samples] * 3)
    path = tmp_path / "depth16.png"
    cv2.imwrite(str(path), samples)
    result = run(photo(640, 480), source="file", path=str(path))
    column = result[:, 320]
    assert len(np.unique(column)) > 256  # 8 bits would give at most 256 values
    np.testing.assert_allclose(column, np.linspace(0, 1, 480), atol=0.01)


def test_file_of_another_shape_is_centre_cropped(tmp_path: Path) -> None:
    square = np.zeros((200, 200), np.uint8)
    square[:, 100:] = 255  # left half near, right half far
    path = tmp_path / "square.png"
    cv2.imwrite(str(path), square)
    result = run(photo(50, 100), source="file", path=str(path))  # a tall photo: the middle columns
    assert result[:, :20].max() < 0.01 and result[:, 30:].min() > 0.99


def test_file_errors_name_the_path_field(tmp_path: Path) -> None:
    missing = tmp_path / "nope.png"
    with pytest.raises(InputImageError) as info:
        run(photo(40, 30), source="file", path=str(missing))
    assert info.value.field == "params.path" and "nope.png" in str(info.value)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    with pytest.raises(InputImageError) as info:
        run(photo(40, 30), source="file", path=str(corrupt))
    assert info.value.field == "params.path"
    assert Depth().input_files(Depth.Params(source="file", path=str(missing))) == [missing]
    assert Depth().input_files(Depth.Params()) == []


def test_subject_depth_forces_the_subject_in_a_file_map(tmp_path: Path) -> None:
    path = tmp_path / "flat.png"
    cv2.imwrite(str(path), np.full((30, 40), 200, np.uint8))
    mask = np.zeros((30, 40), np.float32)
    mask[10:20, 10:20] = 1.0
    mask[10:20, 20] = 0.5
    kept = run(photo(40, 30), mask, source="file", path=str(path))
    np.testing.assert_allclose(kept, 200 / 255, atol=1e-6)
    forced = run(photo(40, 30), mask, source="file", path=str(path), subject_depth=0.1)
    assert forced[15, 15] == pytest.approx(0.1) and forced[0, 0] == pytest.approx(200 / 255)
    assert forced[15, 20] == pytest.approx(0.5 * 0.1 + 0.5 * 200 / 255)  # the soft edge blends


# estimate ---------------------------------------------------------------------------------


def standing(
    height: int = 400, width: int = 300, box: tuple[int, int, int, int] = (100, 300, 120, 180)
) -> np.ndarray:
    """A standing rectangle (rows y0:y1, columns x0:x1) with a soft 2-pixel edge."""
    y0, y1, x0, x1 = box
    mask = np.zeros((height, width), np.float32)
    mask[y0:y1, x0:x1] = 1.0
    return np.clip(cv2.GaussianBlur(mask, (0, 0), 1.0), 0.0, 1.0)


def test_estimate_puts_the_subject_on_a_ground_plane() -> None:
    mask = standing()
    result = run(photo(300, 400), mask)
    assert np.allclose(result[110:290, 130:170], 0.3, atol=1e-5)  # subject_depth
    edge = result[200, 120]  # the soft edge stays soft: between the subject and the background
    assert 0.3 < edge < result[200, 20]
    column = result[:, 20].astype(np.float64)  # far from the subject
    assert (np.diff(column) <= 1e-6).all()  # top far, nearer row by row down to the bottom edge
    assert np.abs(np.diff(column)).max() < 0.02  # no step at the feet (a 0.3 jump, smoothed)
    feet = 298  # 99th percentile of the mask's rows
    floor = column[feet + 20 :]
    assert (np.diff(floor) < 0).all() and floor[-1] == pytest.approx(0.05, abs=0.01)
    behind = column[: feet - 20]
    assert behind[0] == pytest.approx(1.0) and 0.6 < behind[-1] < 0.7
    horizon = 100 - 40  # the subject's top minus 10% of the height
    assert np.allclose(column[: horizon - 20], 1.0, atol=1e-6)
    assert (np.diff(behind[horizon + 20 :]) < 0).all()
    assert column[feet - 20] == pytest.approx(0.6 + 0.4 * 20 / (feet - horizon), abs=0.01)
    assert column[feet + 20] == pytest.approx(0.3 - 0.25 * 20 / (399 - feet), abs=0.01)


def test_estimate_parameters_move_the_planes() -> None:
    mask = standing()
    result = run(
        photo(300, 400),
        mask,
        subject_depth=0.5,
        near_depth=0.2,
        background_depth=0.7,
        far_depth=0.9,
        horizon=0,
    )
    assert result[200, 150] == pytest.approx(0.5)
    assert result[0, 20] == pytest.approx(0.9, abs=0.005) and result[-1, 20] == pytest.approx(0.2, abs=0.01)


def test_estimate_without_a_subject_is_a_vertical_ramp() -> None:
    empty = run(photo(60, 80), np.zeros((80, 60), np.float32))
    np.testing.assert_allclose(empty[:, 7], np.linspace(1.0, 0.05, 80), atol=1e-6)
    np.testing.assert_array_equal(run(photo(60, 80)), empty)


def test_a_subject_cut_by_the_bottom_edge_has_no_floor() -> None:
    result = run(photo(300, 400), standing(box=(150, 400, 100, 200)))
    column = result[:, 20]
    assert column[-1] == pytest.approx(0.6, abs=0.01)  # the background, not a floor in front
    assert (np.diff(column.astype(np.float64)) <= 1e-6).all()


@settings(max_examples=40, deadline=None)
@given(
    height=st.integers(24, 160),
    width=st.integers(24, 160),
    top=st.floats(0.0, 0.9),
    tall=st.floats(0.05, 1.0),
    left=st.floats(0.3, 0.8),
)
def test_estimate_is_a_valid_monotone_map(
    height: int, width: int, top: float, tall: float, left: float
) -> None:
    y0 = int(top * height)
    y1 = min(height, y0 + max(1, int(tall * height)))
    x0 = int(left * width)
    mask = np.zeros((height, width), np.float32)
    mask[y0:y1, x0 : x0 + max(1, width // 8)] = 1.0
    result = run(photo(width, height), mask)
    assert np.allclose(result[mask == 1.0], 0.3)
    column = result[:, 0].astype(np.float64)  # never the subject's column
    assert (np.diff(column) <= 1e-6).all()


GRAPH = """\
version: 1
name: depth
inputs:
  image: {type: path}
  model: {type: path, default: none.onnx}
  output: {type: path, default: out.png}
timeline: {fps: 10, duration: 0}
nodes:
  photo: {type: load, params: {path: $image}}
  subject: {type: segment, inputs: {image: photo}}
  depth: {type: depth, inputs: {image: photo, mask: subject}, params: DEPTH}
  clip: {type: encode, inputs: {image: photo, mask: depth}, params: {path: $output}}
"""


def test_estimate_on_a_real_photo_puts_the_person_nearer(provisioned: None) -> None:
    path = photo_path("girl-2.jpg")
    graph = compile_graph(load_document(GRAPH.replace("DEPTH", "{}")), {"image": str(path)})
    result = render_frame(graph, 0)["depth"]["depth"]
    cutout = cv2.imread(str(photo_path("girl-2.reference-cutout.png")), cv2.IMREAD_UNCHANGED)
    assert cutout is not None
    alpha = cutout[..., 3].astype(np.float32) / 255
    assert result.shape == alpha.shape and result.dtype == np.float32
    person, background = float(result[alpha > 0.5].mean()), float(result[alpha < 0.5].mean())
    assert person == pytest.approx(0.3, abs=0.02)
    assert background > person + 0.3


# model ------------------------------------------------------------------------------------


def tiny_model(
    path: Path, *, keepdims: bool = True, shape: list[Any] | None = None, identity: bool = False
) -> Path:
    """An ONNX model whose output is the mean of its three input channels."""
    spatial = shape or ["h", "w"]
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, *spatial])
    if identity:
        node = helper.make_node("Identity", ["image"], ["out"])
        out_shape: list[Any] = [1, 3, *spatial]
    else:
        node = helper.make_node("ReduceMean", ["image"], ["out"], axes=[1], keepdims=int(keepdims))
        out_shape = [1, 1, *spatial] if keepdims else [1, *spatial]
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, out_shape)
    graph = helper.make_graph([node], "mean", [image], [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


PLAIN: dict[str, Any] = {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}


@pytest.mark.parametrize("keepdims", [True, False])
def test_model_output_is_flipped_inverse_depth(tmp_path: Path, keepdims: bool) -> None:
    model = str(tiny_model(tmp_path / "mean.onnx", keepdims=keepdims))
    image = photo(160, 120)  # brightness = inverse depth: the bright right side is near
    result = run(image, source="model", model=model, model_size=64, **PLAIN)
    assert result[:, :3].min() > 0.97 and result[:, -3:].max() < 0.03
    assert (np.diff(result[60].astype(np.float64)) <= 1e-6).all()
    expected = 1 - np.clip((np.linspace(0, 1, 160) - 0.02) / 0.96, 0, 1)  # 2nd-98th percentile stretch
    np.testing.assert_allclose(result[60], expected, atol=0.05)
    as_depth = run(image, source="model", model=model, model_size=64, output_is="depth", **PLAIN)
    np.testing.assert_allclose(as_depth, 1.0 - result, atol=1e-5)


def test_model_uses_imagenet_normalisation_and_a_fixed_input_size(tmp_path: Path) -> None:
    model = str(tiny_model(tmp_path / "fixed.onnx", shape=[32, 32]))
    image = photo(100, 60)
    result = run(image, source="model", model=model)  # model_size 384 is ignored: the model says 32
    assert result[:, 0].min() > 0.97 and result[:, -1].max() < 0.03
    mask = np.zeros((60, 100), np.float32)
    mask[20:40, 10:30] = 1.0
    forced = run(image, mask, source="model", model=model, subject_depth=0.5)
    assert forced[30, 20] == pytest.approx(0.5) and forced[30, 90] == pytest.approx(result[30, 90])


def test_model_session_is_cached(tmp_path: Path) -> None:
    model = str(tiny_model(tmp_path / "cached.onnx"))
    run(photo(64, 64), source="model", model=model, model_size=32)
    before = depth_module._session.cache_info().hits
    run(photo(64, 64), source="model", model=model, model_size=32)
    assert depth_module._session.cache_info().hits == before + 1


def test_model_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as info:
        run(photo(40, 30), source="model", model=str(tmp_path / "absent.onnx"))
    assert info.value.field == "params.model" and "absent.onnx" in str(info.value)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not a model at all")
    with pytest.raises(ModelError) as info:
        run(photo(40, 30), source="model", model=str(corrupt))
    assert info.value.field == "params.model" and "corrupt.onnx" in str(info.value)
    wrong = str(tiny_model(tmp_path / "rgb.onnx", identity=True))
    with pytest.raises(NodeExecutionError, match=r"returned shape \(1, 3, 32, 32\); expected"):
        run(photo(40, 30), source="model", model=wrong, model_size=32)
    assert Depth().input_files(Depth.Params(source="model", model=wrong)) == [Path(wrong)]
    assert Depth().required_models(Depth.Params(source="model", model=wrong)) == []


def test_corrupt_model_exits_4_with_one_line(
    tmp_path: Path, small_photo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corrupt = tmp_path / "broken.onnx"
    corrupt.write_bytes(b"\x08\x07garbage")
    graph = tmp_path / "graph.yaml"
    graph.write_text(
        GRAPH.replace("  subject: {type: segment, inputs: {image: photo}}\n", "")
        .replace("mask: subject", "mask: photo")  # no segmentation: the depth node alone
        .replace("{image: photo, mask: photo}", "{image: photo}")
        .replace("DEPTH", "{source: model, model: $model}")
    )
    out = tmp_path / "o.png"
    code = main(
        ["-q", "render", str(graph), "-i", str(small_photo), "-o", str(out), "--set", f"model={corrupt}"]
    )
    assert code == 4
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "node depth.params.model" in lines[0] and "broken.onnx" in lines[0]
    assert not out.exists()


# validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"source": "file"}, "`path`"),
        ({"source": "model"}, "`model`"),
        ({"path": "d.png"}, "`path`"),
        ({"model_size": 100}, "multiple of 32"),
        ({"std": [1.0, 0.0, 1.0]}, "`std`"),
        ({"mean": [0.5]}, "at least 3"),
        ({"subject_depth": 1.5}, "less than or equal to 1"),
    ],
)
def test_invalid_params(params: dict[str, Any], named: str) -> None:
    with pytest.raises(ValidationError, match=named):
        Depth.Params(**params)


def test_graph_validation_names_the_missing_field() -> None:
    doc = load_document(GRAPH.replace("DEPTH", "{source: model}"))
    with pytest.raises(GraphValidationError) as info:
        compile_graph(doc, {"image": "x.jpg"})
    assert "node depth.params" in str(info.value) and "needs `model`" in str(info.value)
