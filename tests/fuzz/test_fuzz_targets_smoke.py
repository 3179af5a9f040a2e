"""Smoke run of the fuzz targets' one-input functions, without atheris.

Each target's ``check`` runs on its seed corpus, on random mutations of the seeds
and on a few hypothesis-generated inputs; anything it raises is a finding (see the
targets' docstrings). The real fuzzing is ``make fuzz``.
"""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

HERE = Path(__file__).resolve().parent


def _target(name: str) -> ModuleType:
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


graph = _target("fuzz_graph_loader")
image = _target("fuzz_image_reader")


def _mutations(seeds: list[bytes], count: int, seed: int) -> list[bytes]:
    """Byte-level mutations like libFuzzer's: flips, overwrites, inserts, cuts, splices."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data) + 1)
            op = rng.randrange(5)
            if op == 0 and data:
                data[min(at, len(data) - 1)] ^= 1 << rng.randrange(8)
            elif op == 1 and data:
                data[min(at, len(data) - 1)] = rng.choice((0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)))
            elif op == 2:
                data[at:at] = rng.randbytes(rng.randint(1, 8))
            elif op == 3:
                del data[at : at + rng.randint(1, 64)]
            else:
                other = rng.choice(seeds)
                data[at:] = other[rng.randrange(len(other) + 1) :]
        out.append(bytes(data))
    return out


GRAPH_SEEDS = graph.seed_inputs()
IMAGE_SEEDS = image.seed_inputs()


@pytest.mark.parametrize("path", ["~nosuchuser_fz/p.png", '"p\\0.png"'])
def test_paths_found_by_fuzzing_are_refused_as_graph_errors(path: str) -> None:
    """``~user`` of nobody and a NUL byte once crashed compile_graph (expanduser, resolve)."""
    minimal = GRAPH_SEEDS["minimal.yaml"].decode()
    graph.check(minimal.replace("{path: $image}", f"{{path: {path}}}").encode())


@pytest.mark.parametrize("name", sorted(GRAPH_SEEDS))
def test_graph_loader_seed(name: str) -> None:
    graph.check(GRAPH_SEEDS[name])


def test_graph_loader_mutated_seeds() -> None:
    for data in _mutations(list(GRAPH_SEEDS.values()), 100, seed=1):
        graph.check(data)


def test_graph_loader_structured_recipes() -> None:
    rng = random.Random(2)
    for _ in range(100):
        graph.check(graph.STRUCTURED + rng.randbytes(rng.randrange(120)))


@settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
def test_graph_loader_hypothesis(data: bytes) -> None:
    graph.check(data)


def test_image_seeds_decode() -> None:
    from focusgraph.nodes._imagefile import read_rgb

    assert {"rgb16.png", "cmyk.jpg", "exif6.jpg", "lossy.webp", "rgb.tif", "still.gif"} <= set(IMAGE_SEEDS)
    for name, data in IMAGE_SEEDS.items():
        path = image._scratch(Path(name).suffix)
        path.write_bytes(data)
        assert read_rgb(path).shape[:2] in ((7, 13), (13, 7)), name


@pytest.mark.parametrize("name", sorted(IMAGE_SEEDS))
def test_image_reader_seed(name: str) -> None:
    image.check(IMAGE_SEEDS[name])


def test_image_reader_mutated_seeds() -> None:
    seeds = [data for name, data in IMAGE_SEEDS.items() if name != "orient6.tif"]
    for data in _mutations(seeds, 200, seed=3):
        image.check(data)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.binary(max_size=200))
def test_image_reader_hypothesis(data: bytes) -> None:
    image.check(data)
