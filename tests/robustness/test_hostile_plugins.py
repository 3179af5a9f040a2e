"""Catalogue items 13 and 14: a plugin that breaks on import, and a node that raises mid-render."""

from __future__ import annotations

from pathlib import Path

import pytest
from contract import CLIP_GRAPH, Workspace, run_subprocess
from processes import processes_mentioning

BROKEN_MODULE = 'raise RuntimeError("acme is half-installed")\n'

EXPLODING_MODULE = '''
from typing import Any

from focusgraph.graph import FrameContext, Node, Port, PortType


class Explode(Node):
    """Passes frames through, and fails at frame 3."""

    type_name = "acme.explode"
    inputs = {"image": Port(PortType.IMAGE)}
    outputs = {"image": Port(PortType.IMAGE)}
    varies_per_frame = True

    def evaluate(self, params: Any, inputs: dict[str, Any], ctx: FrameContext) -> dict[str, Any]:
        if ctx.frame == 3:
            raise ZeroDivisionError("the vignette radius is zero")
        return {"image": inputs["image"]}
'''


@pytest.fixture
def plugins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An installed plugin distribution ``acme-plugins 1.0`` with one broken and one exploding node.

    It is installed the way pip leaves a package: a module and a ``.dist-info`` folder
    with ``entry_points.txt`` on ``sys.path`` (here through ``PYTHONPATH``).
    """
    site = tmp_path_factory.mktemp("site-packages")
    package = site / "acme_plugins"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "broken.py").write_text(BROKEN_MODULE)
    (package / "working.py").write_text(EXPLODING_MODULE)
    info = site / "acme_plugins-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-plugins\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[focusgraph.nodes]\n"
        "acme.vignette = acme_plugins.broken:Vignette\n"
        "acme.explode = acme_plugins.working:Explode\n"
    )
    return {"PYTHONPATH": str(site)}


def _graph_with(workspace: Workspace, node_id: str, node_type: str) -> Path:
    """The clip graph with a ``node_type`` node between the grain and the encoder, written out."""
    text = CLIP_GRAPH.replace("{image: textured}", f"{{image: {node_id}}}")
    text += f"  {node_id}: {{type: {node_type}, inputs: {{image: textured}}}}\n"
    path = workspace.root / f"{node_id}.yaml"
    path.write_text(text)
    return path


# 13 ------------------------------------------------------------------------------------------


def test_13_broken_plugin_leaves_every_other_node_working(
    workspace: Workspace, plugins: dict[str, str]
) -> None:
    listing = run_subprocess(["nodes"], env=plugins)
    assert listing.code == 0, listing.err
    assert "core.blur" in listing.out and "acme.explode" in listing.out
    assert "acme.vignette" in listing.err and "acme is half-installed" in listing.err
    photo = workspace.photo()
    out = workspace.outputs / "clip.mp4"
    rendered = run_subprocess(["-q", "render", workspace.clip_graph, "-i", photo, "-o", out], env=plugins)
    assert rendered.code == 0, rendered.err
    assert out.stat().st_size > 0


def test_13_graph_using_the_broken_plugin_names_it_and_its_error(
    workspace: Workspace, plugins: dict[str, str]
) -> None:
    graph = _graph_with(workspace, "framed", "acme.vignette")
    args = ["render", graph, "-i", workspace.photo(), "-o", workspace.outputs / "clip.mp4"]
    before = workspace.snapshot()
    outcome = run_subprocess(args, env=plugins)
    outcome.refused(
        "graph", str(graph), "node framed.type", "acme-plugins 1.0", "RuntimeError: acme is half-installed"
    )
    assert workspace.snapshot() == before
    without = run_subprocess([*args, "--no-plugins"], env=plugins)
    without.refused("graph", "node framed.type", "unknown node type 'acme.vignette'")


# 14 ------------------------------------------------------------------------------------------


def test_14_node_raising_mid_render_is_named_with_type_and_frame(
    workspace: Workspace, plugins: dict[str, str]
) -> None:
    graph = _graph_with(workspace, "bang", "acme.explode")
    photo = workspace.photo()
    before = workspace.snapshot()
    outcome = run_subprocess(
        ["render", graph, "-i", photo, "-o", workspace.previous, "--overwrite"], env=plugins
    )
    line = outcome.refused("node", str(graph))
    assert "node bang: acme.explode failed at frame 3: ZeroDivisionError: the vignette radius is zero" in line
    assert workspace.snapshot() == before
    assert processes_mentioning(str(workspace.outputs)) == []
