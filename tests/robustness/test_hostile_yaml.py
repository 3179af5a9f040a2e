"""Catalogue items 6 and 7: mistaken and hostile graph documents, through the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from contract import CLIP_GRAPH, PEAK_MB_SOURCE, Outcome, Workspace

Refuses = Callable[..., tuple[Outcome, dict[str, str]]]


def _render(workspace: Workspace, graph: str, *extra: str) -> tuple[str | Path, ...]:
    path = workspace.root / "mistake.yaml"
    path.write_text(graph)
    photo = workspace.photo()
    return ("render", path, "-i", photo, "-o", workspace.outputs / "clip.mp4", *extra)


def _graph_line(workspace: Workspace, refuses: Refuses, graph: str, *fragments: str) -> str:
    outcome, _ = refuses(*_render(workspace, graph))
    return outcome.refused("graph", str(workspace.root / "mistake.yaml"), *fragments)


# 6 -------------------------------------------------------------------------------------------


def test_06_cycle_names_the_cycle_path(workspace: Workspace, refuses: Refuses) -> None:
    graph = CLIP_GRAPH.replace("inputs: {image: photo}", "inputs: {image: textured}")
    line = _graph_line(workspace, refuses, graph, "cycle")
    path = line.split("cycle: ", 1)[1].split(" -> ")
    assert path[0] == path[-1] and set(path) == {"soft", "textured"}, line


def test_06_unknown_node_type_suggests_the_closest(workspace: Workspace, refuses: Refuses) -> None:
    graph = CLIP_GRAPH.replace("type: blur", "type: blurr")
    _graph_line(workspace, refuses, graph, "node soft.type", "'blurr'", "did you mean 'blur'")


@pytest.mark.parametrize(
    ("replacement", "fragments"),
    [
        ('radius: "big"', ("node soft.params.radius", "'big'")),
        ('radius: "5"', ("node soft.params.radius", "'5'")),
        ("raduis: 5", ("node soft.params.raduis", "unknown field")),
        ("radius: -3", ("node soft.params.radius", "greater than or equal to 0", "-3")),
    ],
    ids=["wrong-type", "numeric-string", "unknown-field", "out-of-range"],
)
def test_06_bad_params_name_the_field(
    workspace: Workspace, refuses: Refuses, replacement: str, fragments: tuple[str, ...]
) -> None:
    graph = CLIP_GRAPH.replace("radius: {link: focus}", replacement)
    _graph_line(workspace, refuses, graph, *fragments)


def test_06_missing_required_input_port(workspace: Workspace, refuses: Refuses) -> None:
    graph = CLIP_GRAPH.replace("soft: {type: blur, inputs: {image: photo}, ", "soft: {type: blur, ")
    _graph_line(workspace, refuses, graph, "node soft.inputs.image", "required")


def test_06_missing_required_graph_input(workspace: Workspace, refuses: Refuses) -> None:
    outcome, _ = refuses("render", workspace.clip_graph, "-o", workspace.outputs / "clip.mp4")
    outcome.refused("graph", "inputs.image", "required input is not set")


def test_06_reference_to_a_missing_node(workspace: Workspace, refuses: Refuses) -> None:
    graph = CLIP_GRAPH.replace("inputs: {image: soft}", "inputs: {image: sofft}")
    _graph_line(workspace, refuses, graph, "node textured.inputs.image", "'sofft'")


# 7 -------------------------------------------------------------------------------------------


def _bomb_levels() -> list[str]:
    """The nine anchored lists of the classic alias bomb: each holds nine aliases of the one before."""
    levels = ["&a [" + ", ".join(['"lol"'] * 9) + "]"]
    pairs = zip("abcdefgh", "bcdefghi", strict=True)
    levels += [f"&{name} [{', '.join([f'*{previous}'] * 9)}]" for previous, name in pairs]
    return levels


ALIAS_BOMB = "\n".join(f"{level[1]}: {level}" for level in _bomb_levels())  # 9**9 leaves
FLOW_BOMB = f"[{', '.join(_bomb_levels())}]"


_MEASURED = (
    PEAK_MB_SOURCE
    + """
import sys, time
from focusgraph.graph.cli import main
main(["validate", sys.argv[1]])  # a valid graph first: imports and registry are not the input's cost
baseline = peak_mb()
start = time.perf_counter()
code = main(sys.argv[2:])
seconds = time.perf_counter() - start
print(f"{seconds:.3f} {peak_mb() - baseline}")
sys.exit(code)
"""
)


def _measured(workspace: Workspace, *args: str | Path) -> tuple[Outcome, float, int]:
    """Run the CLI in a fresh interpreter; return its outcome, seconds in ``main`` and peak RSS growth (MB).

    The growth is measured against a run on a valid graph in the same process.
    """
    result = subprocess.run(
        [sys.executable, "-c", _MEASURED, str(workspace.clip_graph), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    seconds, grown = result.stdout.split()[-2:]
    return Outcome(result.returncode, result.stdout, result.stderr), float(seconds), int(grown)


def test_07_alias_bomb_is_refused_fast_and_small(workspace: Workspace) -> None:
    assert len(ALIAS_BOMB) < 450  # expands to 387 million leaves when walked
    graph = workspace.root / "bomb.yaml"
    graph.write_text(ALIAS_BOMB)
    outcome, seconds, peak_mb = _measured(workspace, "validate", graph)
    outcome.refused("graph", str(graph), "line 1", "anchors and aliases are not supported")
    assert seconds < 1.0 and peak_mb < 100, (seconds, peak_mb)
    # the same bomb as a --set value on the command line
    outcome, seconds, peak_mb = _measured(
        workspace, "validate", workspace.clip_graph, "--set", f"soft.radius={FLOW_BOMB}"
    )
    outcome.refused("graph", "--set soft.radius", "anchors and aliases are not supported")
    assert seconds < 1.0 and peak_mb < 100, (seconds, peak_mb)


def test_07_python_tags_are_refused_and_never_run(workspace: Workspace, refuses: Refuses) -> None:
    sentinel = workspace.root / "pwned"
    graph = CLIP_GRAPH.replace("name: clip", f"name: !!python/object/apply:os.system ['touch {sentinel}']")
    _graph_line(workspace, refuses, graph, "line 2", "python/object/apply")
    assert not sentinel.exists()


def test_07_duplicate_keys_are_refused_with_the_line(workspace: Workspace, refuses: Refuses) -> None:
    graph = CLIP_GRAPH.replace(
        "  clip: {type: encode", "  soft: {type: grain, inputs: {image: photo}}\n  clip: {type: encode"
    )
    line_number = graph.splitlines().index("  soft: {type: grain, inputs: {image: photo}}") + 1
    _graph_line(workspace, refuses, graph, f"line {line_number}", "duplicate key 'soft'")


@pytest.mark.parametrize("opening", ["[", "{a: "], ids=["lists", "mappings"])
def test_07_ten_thousand_deep_nesting_is_refused(workspace: Workspace, opening: str) -> None:
    closing = "]" if opening == "[" else "}"
    graph = workspace.root / "deep.yaml"
    graph.write_text(CLIP_GRAPH + "extra: " + opening * 10_000 + "1" + closing * 10_000 + "\n")
    outcome, seconds, _ = _measured(workspace, "validate", graph)
    outcome.refused("graph", str(graph), "nested deeper than 64 levels")
    assert "RecursionError" not in outcome.err and seconds < 2.0


def test_07_fifty_megabyte_file_is_refused_unread(workspace: Workspace) -> None:
    graph = workspace.root / "huge.yaml"
    with graph.open("w") as handle:
        handle.write(CLIP_GRAPH + "description: |\n")
        line = "  " + "x" * 77 + "\n"
        handle.writelines(line for _ in range(50 * 2**20 // len(line)))
    assert graph.stat().st_size >= 50 * 2**20
    outcome, seconds, peak_mb = _measured(workspace, "validate", graph)
    outcome.refused("graph", str(graph), "too large for a graph document")
    assert seconds < 1.0 and peak_mb < 100, (seconds, peak_mb)


def test_07_special_files_as_graph_never_block(workspace: Workspace, refuses: Refuses) -> None:
    fifo = workspace.root / "graph.yaml"
    os.mkfifo(fifo)  # reading it would wait for a writer forever
    for graph, message in ((fifo, "not a regular file"), (Path("/dev/zero"), "not a regular file")):
        outcome, _ = refuses("validate", graph)
        outcome.refused("graph", str(graph), message)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("name: !!int 2001-13-01version", "YAML tags such as '!!int'"),
        ("name: !!map [a]", "YAML tags such as '!!map'"),
        ("? [1, 2]\n: x", "a mapping key must be a single value"),
        ("description: " + "1" * 5000, "cannot read a value"),
    ],
    ids=["bad-tagged-int", "tag-on-wrong-node", "list-as-key", "huge-integer"],
)
def test_07_values_pyyaml_cannot_build_are_refused(
    workspace: Workspace, refuses: Refuses, line: str, message: str
) -> None:
    """Fuzzing found each of these escaping PyYAML as ValueError, TypeError or KeyError."""
    graph = CLIP_GRAPH.replace("name: clip", line) if line.startswith("name") else CLIP_GRAPH + line + "\n"
    _graph_line(workspace, refuses, graph, message)


def test_07_dates_are_read_as_text(workspace: Workspace, cli: Callable[..., Outcome]) -> None:
    graph = workspace.root / "dated.yaml"
    graph.write_text(CLIP_GRAPH.replace("name: clip", "name: 2001-13-01"))  # not a date: month 13
    outcome = cli("validate", graph)
    assert outcome.code == 0, outcome.err


@pytest.mark.parametrize(
    ("photo", "message"),
    [("~nobody-here-at-all/photo.png", "cannot expand"), ("photo\0.png", "cannot contain a NUL")],
    ids=["unknown-user", "nul-byte"],
)
def test_06_unusable_paths_are_graph_errors(
    workspace: Workspace, refuses: Refuses, photo: str, message: str
) -> None:
    """Fuzzing found both crashing the compiler (expanduser, resolve) instead of being reported."""
    outcome, _ = refuses("render", workspace.clip_graph, "-i", photo, "-o", workspace.outputs / "c.mp4")
    outcome.refused("graph", "node photo.params.path", message)
