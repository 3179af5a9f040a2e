"""The disk store of persistent nodes: re-renders reuse segmentation and plates exactly."""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import pytest

from focusgraph.graph import Evaluator, FrameContext, Node, NodeParams, Port, PortType, load_document, render
from focusgraph.graph.compile import compile_graph
from focusgraph.graph.registry import build_registry
from focusgraph.graph.store import (
    DEFAULT_LIMIT_MB,
    ENV_VAR,
    KEPT_SHARE,
    SIZE_ENV_VAR,
    NodeStore,
    array_key,
    content_digest,
    default_folder,
    node_key,
    package_digest,
)


class CountedDisc(Node):
    """A persistent test node: a disc mask, counting its real evaluations."""

    type_name = "test.counted-disc"
    persistent = True
    calls: ClassVar[int] = 0

    class Params(NodeParams):
        fraction: float = 0.3

    inputs = {"image": Port(PortType.IMAGE)}
    outputs = {"mask": Port(PortType.MASK), "area": Port(PortType.SCALAR)}

    def evaluate(self, params: Any, inputs: dict[str, Any], ctx: FrameContext) -> dict[str, Any]:
        type(self).calls += 1
        height, width = inputs["image"].shape[:2]
        y, x = np.mgrid[0:height, 0:width]
        mask = (np.hypot(x - width / 2, y - height / 2) < params.fraction * min(height, width)).astype(
            np.float32
        )
        return {"mask": mask, "area": float(mask.mean())}


GRAPH = """\
version: 1
name: store-test
inputs:
  image: {type: path}
  output: {type: path}
  fraction: {type: number, default: 0.3}
timeline: {fps: 10, duration: 1}
nodes:
  photo: {type: load, params: {path: $image}}
  subject: {type: test.counted-disc, inputs: {image: photo}, params: {fraction: $fraction}}
  matte: {type: feather, inputs: {mask: subject.mask}, params: {radius: 2, units: px}}
  plate: {type: inpaint, inputs: {image: photo, mask: matte}}
  focus: {type: keyframe, params: {keys: [{time: 0, value: 5}, {time: 1, value: 0}]}}
  background: {type: blur, inputs: {image: plate.image}, params: {radius: {link: focus}, units: px}}
  final: {type: composite, inputs: {foreground: photo, background: background, mask: matte}}
  clip: {type: encode, inputs: {image: final}, params: {path: $output}}
"""


def compiled(photo: Path, out: Path, fraction: float = 0.3) -> Any:
    registry = build_registry()
    registry.add(CountedDisc, "tests")
    values = {"image": str(photo), "output": str(out), "fraction": fraction}
    return compile_graph(load_document(GRAPH), values, registry=registry)


def test_a_re_render_restores_persistent_nodes_and_writes_the_same_clip(
    small_photo: Path, tmp_path: Path, level_rungs: list[float]
) -> None:
    store = NodeStore(tmp_path / "store")
    CountedDisc.calls = 0
    levels = level_rungs
    first = Evaluator(compiled(small_photo, tmp_path / "a.mp4"), store)
    render(first.graph, evaluator=first)
    assert first.evaluations["subject"] == first.evaluations["plate"] == 1
    archives = [entry for entry in store.entries() if entry.suffix == ".npz"]
    kept = [entry for entry in store.entries() if entry.suffix == ".npy"]
    assert store.hits == 0 and len(archives) == 2  # the disc and the plate
    assert len(kept) == len(levels) > 3  # the blur's levels of the plate (5 px down to 0)
    levels.clear()
    again = Evaluator(compiled(small_photo, tmp_path / "b.mp4"), store)
    render(again.graph, evaluator=again)
    assert CountedDisc.calls == 1
    assert again.restored["subject"] == again.restored["plate"] == 1
    assert again.evaluations["subject"] == again.evaluations["plate"] == 0
    assert levels == [] and store.hits == 2 + len(kept)  # every level read back, none blurred
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()


def test_restored_outputs_equal_evaluated_ones_in_type_and_value(small_photo: Path, tmp_path: Path) -> None:
    store = NodeStore(tmp_path / "store")
    graph = compiled(small_photo, tmp_path / "a.mp4")
    evaluated = Evaluator(graph, store).run(graph.timeline.context(0))
    store.flush()
    second = Evaluator(graph, store)
    restored = second.run(graph.timeline.context(0))
    assert second.restored["subject"] == second.restored["plate"] == 1
    for node in ("subject", "plate"):
        for port, value in evaluated[node].items():
            again = restored[node][port]
            assert type(again) is type(value)
            np.testing.assert_array_equal(np.asarray(again), np.asarray(value))
            if isinstance(value, np.ndarray):
                assert again.dtype == value.dtype and again.shape == value.shape
                assert not again.flags.writeable  # restored outputs are read-only


def test_other_pixels_or_parameters_are_not_served_from_the_store(small_photo: Path, tmp_path: Path) -> None:
    store = NodeStore(tmp_path / "store")
    graph = compiled(small_photo, tmp_path / "a.mp4")
    Evaluator(graph, store).run(graph.timeline.context(0))
    store.flush()
    other = compiled(small_photo, tmp_path / "a.mp4", fraction=0.2)
    evaluator = Evaluator(other, store)
    evaluator.run(other.timeline.context(0))
    assert evaluator.evaluations["subject"] == 1 and evaluator.restored["subject"] == 0
    # The same path with one pixel changed: the key follows the pixels, not the file name.
    image = cv2.imread(str(small_photo))
    image[0, 0] = 255 - image[0, 0]
    cv2.imwrite(str(small_photo), image)
    edited = Evaluator(compiled(small_photo, tmp_path / "a.mp4"), store)
    edited.run(edited.graph.timeline.context(0))
    assert edited.evaluations["subject"] == 1 and edited.evaluations["plate"] == 1


def test_the_key_covers_version_code_models_and_inputs() -> None:
    image = np.zeros((4, 4, 3), np.uint8)
    base = node_key("t.x", 1, __name__, {"a": 1}, {"image": image}, ["abc"])
    assert base == node_key("t.x", 1, __name__, {"a": 1}, {"image": image.copy()}, ["abc"])
    changed = image.copy()
    changed[1, 2, 0] = 1
    others = [
        node_key("t.x", 2, __name__, {"a": 1}, {"image": image}, ["abc"]),
        node_key("t.y", 1, __name__, {"a": 1}, {"image": image}, ["abc"]),
        node_key("t.x", 1, __name__, {"a": 2}, {"image": image}, ["abc"]),
        node_key("t.x", 1, __name__, {"a": 1}, {"image": changed}, ["abc"]),
        node_key("t.x", 1, __name__, {"a": 1}, {"image": image.astype(np.float32)}, ["abc"]),
        node_key("t.x", 1, __name__, {"a": 1}, {"image": image}, ["abd"]),
        node_key("t.x", 1, "focusgraph.nodes.blur", {"a": 1}, {"image": image}, ["abc"]),
    ]
    assert len({base, *others}) == len(others) + 1


def test_kept_array_keys_cover_code_parts_and_contents() -> None:
    image = np.zeros((4, 4, 3), np.uint8)
    changed = image.copy()
    changed[3, 0, 2] = 7
    digests = {content_digest(image), content_digest(changed), content_digest(image.astype(np.float32))}
    assert len(digests) == 3 and content_digest(image.copy()) == content_digest(image)
    base = array_key(__name__, {"level": 1.5, "image": content_digest(image)})
    assert base == array_key(__name__, {"image": content_digest(image.copy()), "level": 1.5})
    others = [
        array_key(__name__, {"level": 1.62, "image": content_digest(image)}),
        array_key(__name__, {"level": 1.5, "image": content_digest(changed)}),
        array_key("focusgraph.nodes.blur", {"level": 1.5, "image": content_digest(image)}),
    ]
    assert len({base, *others}) == len(others) + 1


def test_kept_arrays_come_back_read_only_and_share_the_limit(tmp_path: Path) -> None:
    store = NodeStore(tmp_path / "store", limit_bytes=int(3.5 * 2**20))
    block = np.arange(2**20, dtype=np.uint8)  # 1 MiB
    assert store.put("node", {"mask": np.zeros(2**18, np.float32)})  # 1 MiB of node outputs
    assert store.put_array_in_background("level-a", block)
    store.flush()
    found = store.get_array("level-a")
    assert found is not None and not found.flags.writeable
    np.testing.assert_array_equal(found, block)
    assert store.get_array("level-b") is None and (store.hits, store.misses) == (1, 1)
    assert len(store.entries()) == 2 and store.size_bytes() > 2 * 2**20
    # This store may keep KEPT_SHARE of its limit (1.75 MiB): the second array is refused,
    # so kept arrays cannot crowd every node's outputs out of the store.
    assert KEPT_SHARE * store.limit_bytes < 2 * block.nbytes
    assert not store.put_array_in_background("level-b", block)
    store.flush()
    assert store.get_array("level-b") is None
    # Beyond the limit kept arrays go first (least recently used first), then node outputs.
    os.utime(store.folder / "node.npz", (1, 1))  # the oldest entry
    another = NodeStore(store.folder, limit_bytes=store.limit_bytes)
    assert another.put_array_in_background("level-c", block)
    another.flush()
    assert another.put("node-2", {"mask": block})
    assert sorted(path.name for path in another.entries()) == ["level-c.npy", "node-2.npz", "node.npz"]
    assert another.put("node-3", {"mask": block})
    assert sorted(path.name for path in another.entries()) == ["node-2.npz", "node-3.npz", "node.npz"]


def test_a_damaged_kept_array_is_a_miss_and_is_deleted(tmp_path: Path) -> None:
    store = NodeStore(tmp_path / "store")
    store.folder.mkdir()
    (store.folder / "junk.npy").write_bytes(b"\x93NUMPY not really an array")
    np.save(store.folder / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.savez(store.folder / "archive.npz", a=np.zeros(3))
    (store.folder / "archive.npz").rename(store.folder / "archive.npy")  # an .npz where an .npy belongs
    assert all(store.get_array(name) is None for name in ("junk", "objects", "archive"))
    assert store.entries() == [] and store.misses == 3


def test_an_unreadable_entry_is_recomputed_and_replaced(small_photo: Path, tmp_path: Path) -> None:
    store = NodeStore(tmp_path / "store")
    graph = compiled(small_photo, tmp_path / "a.mp4")
    Evaluator(graph, store).run(graph.timeline.context(0))
    store.flush()
    for entry in store.entries():
        entry.write_bytes(b"not an archive")
    evaluator = Evaluator(graph, store)
    evaluator.run(graph.timeline.context(0))
    store.flush()
    assert evaluator.evaluations["subject"] == evaluator.evaluations["plate"] == 1
    assert all(np.load(entry).files for entry in store.entries())


def test_least_recently_used_entries_go_first_beyond_the_limit(tmp_path: Path) -> None:
    store = NodeStore(tmp_path / "store", limit_bytes=int(3.5 * 2**20))
    block = np.zeros(2**20 // 4, np.float32)  # 1 MiB each
    for name in ("old", "used", "new"):
        assert store.put(name, {"mask": block})
        os.utime(store.folder / f"{name}.npz", (1, {"old": 10, "used": 20, "new": 30}[name]))
    assert store.get("used") is not None  # now the most recently used
    assert store.put("newest", {"mask": block})
    assert sorted(path.stem for path in store.entries()) == ["new", "newest", "used"]
    assert store.size_bytes() <= store.limit_bytes


def test_outputs_that_are_not_arrays_or_numbers_are_not_stored(tmp_path: Path) -> None:
    store = NodeStore(tmp_path / "store")
    assert not store.put("k", {"mask": np.zeros(3), "meta": {"a": 1}})
    store.put_in_background("k", {"mask": np.zeros(3), "meta": {"a": 1}})
    store.flush()
    assert store.entries() == []


def test_a_background_write_lands_whole_and_stale_partial_files_go(tmp_path: Path) -> None:
    store = NodeStore(tmp_path / "store")
    store.folder.mkdir()
    stale = store.folder / ".killed.partial"
    stale.write_bytes(b"half")
    os.utime(stale, (1, 1))
    fresh = store.folder / ".writing.partial"
    fresh.write_bytes(b"in progress")
    mask = np.arange(12, dtype=np.float32).reshape(3, 4)
    store.put_in_background("k", {"mask": mask, "noise": 0.5})
    store.flush()
    found = store.get("k")
    assert found is not None and found[0]["noise"] == 0.5
    np.testing.assert_array_equal(found[0]["mask"], mask)
    assert not stale.exists() and fresh.exists()


def test_an_unwritable_store_costs_only_the_speed_up(small_photo: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the store's folder would be")
    store = NodeStore(blocker / "store")
    assert not store.put("k", {"mask": np.zeros(3)})
    graph = compiled(small_photo, tmp_path / "a.mp4")
    assert render(graph, store=store) == [tmp_path / "a.mp4"]
    assert store.entries() == [] and store.hits == 0 and store.misses > 2  # the nodes and the levels


def test_a_damaged_or_foreign_entry_never_breaks_a_lookup(tmp_path: Path) -> None:
    store = NodeStore(tmp_path / "store")
    store.folder.mkdir()
    np.save(store.folder / "plain.npy", np.zeros(3))
    (store.folder / "plain.npy").rename(store.folder / "plain.npz")  # a .npy where an .npz belongs
    (store.folder / "junk.npz").write_bytes(b"PK\x03\x04 not really a zip")
    assert store.get("plain") is None and store.get("junk") is None
    assert store.entries() == []  # both deleted, to be recomputed


def test_numbers_and_warnings_come_back_as_they_were(tmp_path: Path) -> None:
    store = NodeStore(tmp_path / "store")
    outputs = {"a": 0.25, "b": 3, "c": np.float32(1.5), "d": np.int64(-2), "e": np.zeros((2, 2), np.uint16)}
    assert store.put("k", outputs, ["30\tfocusgraph.nodes.x\tno person found"])
    found = store.get("k")
    assert found is not None
    restored, log = found
    assert log == ["30\tfocusgraph.nodes.x\tno person found"]
    for name, value in outputs.items():
        assert type(restored[name]) is type(value)
        np.testing.assert_array_equal(restored[name], value)
    assert not store.put("huge", {"a": 2**70})  # not an int64: not stored, rather than pickled


class Warner(Node):
    """A persistent test node that warns, and whose output follows the timeline's size limit."""

    type_name = "test.warner"
    persistent = True
    outputs = {"image": Port(PortType.IMAGE)}

    def evaluate(self, params: Any, inputs: dict[str, Any], ctx: FrameContext) -> dict[str, Any]:
        logging.getLogger("focusgraph.tests").warning("careful: %s", ctx.max_side)
        side = ctx.max_side or 40
        return {"image": np.zeros((side, side, 3), np.uint8)}


WARNER_GRAPH = """\
version: 1
name: warner
timeline: {fps: 10, duration: 0.1}
inputs:
  output: {type: path}
nodes:
  source: {type: test.warner}
  still: {type: encode, inputs: {image: source}, params: {path: $output}}
"""


def test_a_restored_node_warns_again_and_the_timeline_is_part_of_the_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry = build_registry()
    registry.add(Warner, "tests")
    values = {"output": str(tmp_path / "still.png")}
    graph = compile_graph(load_document(WARNER_GRAPH), values, registry=registry)
    store = NodeStore(tmp_path / "store")
    for _ in range(2):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="focusgraph"):
            outputs = Evaluator(graph, store).run(graph.timeline.context(0))
        store.flush()
        assert [r.getMessage() for r in caplog.records] == ["careful: None"]
        assert outputs["source"]["image"].shape == (40, 40, 3)
    assert store.hits == 1
    small = dataclasses.replace(graph.timeline, max_side=8)
    evaluator = Evaluator(graph, store)
    assert evaluator.run(small.context(0))["source"]["image"].shape == (8, 8, 3)
    assert evaluator.evaluations["source"] == 1


@pytest.mark.parametrize("value", ["inf", "nan", "-5", "lots", "1e400"])
def test_a_bad_size_limit_falls_back_to_the_default(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(SIZE_ENV_VAR, value)
    store = NodeStore.default()
    assert store is not None and store.limit_bytes == DEFAULT_LIMIT_MB * 2**20


def test_the_default_folder_is_the_user_cache_not_the_models_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(ENV_VAR)
    monkeypatch.setenv("FOCUSGRAPH_MODELS", "models")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_folder() == tmp_path / "xdg" / "focusgraph" / "nodes"


def test_the_environment_moves_or_turns_off_the_store(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "here"))
    assert default_folder() == tmp_path / "here"
    monkeypatch.setenv(ENV_VAR, "off")
    assert default_folder() is None and NodeStore.default() is None


FOCUSGRAPH = str(Path(sys.executable).with_name("focusgraph"))


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FOCUSGRAPH, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def test_cli_re_render_no_cache_and_cache_commands(provisioned: Path, tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    image = np.full((96, 128, 3), 90, np.uint8)
    cv2.circle(image, (64, 40), 20, (200, 160, 130), -1)
    cv2.imwrite(str(photo), image)
    store = tmp_path / "store"
    env = {**os.environ, ENV_VAR: str(store)}
    common = ["render", "rack-focus", "-i", str(photo), "--set", "duration=0.3", "-q", "--overwrite"]
    off = cli("--no-cache", *common, "-o", str(tmp_path / "off.mp4"), env=env)
    assert off.returncode == 0, off.stderr
    assert not store.exists()
    first = cli(*common, "-o", str(tmp_path / "first.mp4"), env=env)
    assert first.returncode == 0, first.stderr
    assert len(list(store.glob("*.npz"))) == 2  # segmentation and plate
    kept = len(list(store.glob("*.npy")))  # the background's blur levels
    assert kept > 0
    second = cli(*common, "-o", str(tmp_path / "second.mp4"), env=env)
    assert second.returncode == 0, second.stderr
    clips = [(tmp_path / f"{name}.mp4").read_bytes() for name in ("off", "first", "second")]
    assert clips[0] == clips[1] == clips[2]
    info = cli("cache", "info", env=env)
    assert info.returncode == 0 and f"{2 + kept} entries" in info.stdout
    cleared = cli("cache", "clear", env=env)
    assert cleared.returncode == 0 and f"removed {2 + kept} entries" in cleared.stdout
    assert list(store.iterdir()) == []


def test_batch_workers_use_the_store_unless_told_not_to(
    provisioned: Path, small_photo: Path, tmp_path: Path, node_store: Path
) -> None:
    from focusgraph.graph.batching import batch

    for cache, out in ((False, tmp_path / "off"), (True, tmp_path / "on")):
        out.mkdir()
        report = batch("rack-focus", [small_photo], out, values={"duration": 0.2}, jobs=1, cache=cache)
        assert report.count("done") == 1
        assert len(list(node_store.glob("*.npz"))) == (2 if cache else 0)


def test_a_node_whose_code_cannot_be_found_is_never_reused_across_processes() -> None:
    import types

    module = types.ModuleType("focusgraph_test_nowhere")  # no __file__
    sys.modules[module.__name__] = module
    try:
        token = package_digest(module.__name__)
        assert token.startswith(f"process {os.getpid()} ")
        assert package_digest(module.__name__) == token  # stable within the process
        assert package_digest(__name__) != token and len(package_digest(__name__)) == 32
    finally:
        del sys.modules[module.__name__]
