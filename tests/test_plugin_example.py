"""The example plugin (``examples/plugin-vignette``) installed with pip and used through the CLI.

A session fixture makes a virtual environment under the temporary folder that sees this
project's environment (a ``.pth`` file adds its site-packages, so focusgraph and its
heavy dependencies are not installed again), gives it the ``focusgraph`` console script,
and installs a copy of the example into it with ``pip install --no-deps
--no-build-isolation --no-index``: a real, non-editable install with a ``.dist-info``
and an entry point, without the package index (the ``dev`` extra brings setuptools >= 70.1,
which builds wheels without the ``wheel`` package).
The test venv's own site-packages come first, so the plugin is visible there and
nowhere else (this project's environment is untouched).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import distribution
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from videoprobe import read_frames

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "plugin-vignette"

# A clip that needs no model: the subject's mask is a file (segment.mask). The vignette is
# inserted before the encoder by `_graph`; its strength fades in from 0 over half a second.
GRAPH_HEAD = """\
version: 1
name: vignette-clip
inputs:
  image: {type: path}
  output: {type: path}
  mask: {type: path}
timeline: {fps: 10, duration: 1}
nodes:
  photo: {type: load, params: {path: $image}}
  subject: {type: segment, inputs: {image: photo}, params: {mask: $mask}}
  matte: {type: feather, inputs: {mask: subject}, params: {radius: 2, units: px}}
  soft: {type: blur, inputs: {image: photo, mask: matte}, params: {radius: 3, units: px}}
  final: {type: composite, inputs: {foreground: photo, background: soft, mask: matte}}
"""
VIGNETTE_NODES = """\
  fade: {type: keyframe, params: {keys: [{time: 0, value: 0}, {time: 0.5, value: STRENGTH}]}}
  framed:
    type: acme.vignette
    inputs: {image: final}
    params: {strength: {link: fade}, radius: 0.2, softness: 0.4}
"""
STRENGTH = 0.7
ENCODE = "  clip: {type: encode, inputs: {image: SOURCE}, params: {path: $output, crf: 10}}\n"

RIVAL_MODULE = '''
from focusgraph.graph import Node, Port, PortType


class Vignette(Node):
    """Another package's idea of acme.vignette."""

    type_name = "acme.vignette"
    inputs = {"image": Port(PortType.IMAGE)}
    outputs = {"image": Port(PortType.IMAGE)}
'''


@dataclass(frozen=True)
class Result:
    """What one command printed and returned."""

    code: int
    out: str
    err: str

    def error_line(self) -> str:
        """The single line on stderr of a failed command (no traceback, nothing else)."""
        lines = [line for line in self.err.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in self.err, self.err
        assert lines[0].startswith("focusgraph: error: "), lines[0]
        return lines[0]


@dataclass(frozen=True)
class PluginVenv:
    """A virtual environment with focusgraph (this checkout) and the example plugin installed."""

    root: Path
    python: Path
    site: Path
    source: Path

    def run(
        self, args: Sequence[str | Path], *, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> Result:
        """Run ``args`` with ``bin/`` of this venv first on ``PATH`` (``focusgraph`` is its script)."""
        base = {key: value for key, value in os.environ.items() if key not in {"PYTHONPATH", "VIRTUAL_ENV"}}
        base["PATH"] = f"{self.python.parent}{os.pathsep}{base.get('PATH', '')}"
        base["VIRTUAL_ENV"] = str(self.root)
        base["FOCUSGRAPH_MODELS"] = str(self.root / "no-models")  # nothing here may need a model
        command = [str(args[0] if Path(args[0]).is_absolute() else self.python.parent / args[0])]
        result = subprocess.run(
            [*command, *map(str, args[1:])],
            capture_output=True,
            text=True,
            timeout=180,
            env={**base, **(env or {})},
            cwd=cwd,
            check=False,
        )
        return Result(result.returncode, result.stdout, result.stderr)


def _checked(command: Sequence[str | Path]) -> str:
    """Run a set-up command; its stdout, or a failure showing everything it printed."""
    result = subprocess.run(list(map(str, command)), capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _console_script(python: Path) -> str:
    """The ``focusgraph`` script as pip writes it, from focusgraph's own console_scripts entry."""
    (script,) = [
        ep
        for ep in distribution("focusgraph").entry_points
        if ep.group == "console_scripts" and ep.name == "focusgraph"
    ]
    return (
        f"#!{python}\nimport sys\nfrom {script.module} import {script.attr}\n"
        f'if __name__ == "__main__":\n    sys.exit({script.attr}())\n'
    )


@pytest.fixture(scope="session")
def plugin_venv(tmp_path_factory: pytest.TempPathFactory) -> PluginVenv:
    """Build the test venv and install (a copy of) the example plugin into it; about 5 s.

    The copy keeps setuptools' ``build/`` and ``*.egg-info`` out of the source tree.
    """
    root = tmp_path_factory.mktemp("plugin-venv")
    venv = root / "venv"
    _checked([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    site = Path(_checked([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip())
    project_site = sysconfig.get_paths()["purelib"]
    # addsitedir (not a bare path) so the .pth files there run too: focusgraph's editable finder.
    (site / "_focusgraph_project.pth").write_text(f"import site; site.addsitedir({project_site!r})\n")
    script = venv / "bin" / "focusgraph"
    script.write_text(_console_script(python))
    script.chmod(0o755)
    source = root / "plugin-vignette"
    shutil.copytree(
        EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache")
    )
    _checked(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index", source]
    )
    return PluginVenv(venv, python, site, source)


@pytest.fixture(scope="session")
def clip_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A synthetic 128x96 photo (smooth gradient, a disc for a subject) and the disc's mask."""
    folder = tmp_path_factory.mktemp("vignette-clip")
    y, x = np.mgrid[0:96, 0:128]
    photo = np.dstack([90 + x * 0.6, 110 + y * 0.5, 140 - (x + y) * 0.2])
    subject = np.hypot(x - 64, y - 48) < 20
    photo[subject] = (200, 170, 150)
    paths = {"image": folder / "photo.png", "mask": folder / "mask.png"}
    Image.fromarray(photo.astype(np.uint8)).save(paths["image"])
    Image.fromarray((subject * 255).astype(np.uint8)).save(paths["mask"])
    return paths


def _graph(folder: Path, vignette: bool) -> Path:
    """The clip graph, with or without the vignette between the composite and the encoder."""
    text = GRAPH_HEAD
    if vignette:
        text += VIGNETTE_NODES.replace("STRENGTH", str(STRENGTH))
    text += ENCODE.replace("SOURCE", "framed" if vignette else "final")
    path = folder / ("vignette.yaml" if vignette else "plain.yaml")
    path.write_text(text)
    return path


def _render_args(graph: Path, inputs: dict[str, Path], out: Path) -> list[str | Path]:
    return [
        "focusgraph",
        "-q",
        "render",
        graph,
        "-i",
        inputs["image"],
        "-o",
        out,
        "--set",
        f"mask={inputs['mask']}",
    ]


def srgb_to_linear(levels: np.ndarray) -> np.ndarray:
    values = levels / 255.0
    return np.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(light: np.ndarray) -> np.ndarray:
    return 255.0 * np.where(light <= 0.0031308, light * 12.92, 1.055 * light ** (1 / 2.4) - 0.055)


def _table(text: str) -> list[list[str]]:
    """Rows of ``focusgraph plugins`` (columns are separated by two or more spaces)."""
    return [re.split(r"\s{2,}", line.strip()) for line in text.splitlines() if line.strip()]


# the CLI sees the plugin ---------------------------------------------------------------------


def test_installed_as_a_package_not_from_the_source_tree(plugin_venv: PluginVenv) -> None:
    where = plugin_venv.run(["python", "-c", "import focusgraph_vignette as m; print(m.__file__)"])
    assert where.code == 0, where.err
    assert Path(where.out.strip()).is_relative_to(plugin_venv.site)
    assert list(plugin_venv.site.glob("focusgraph_vignette-0.1.0.dist-info"))
    # ... and only there: pip did not write into this project's environment
    project_site = Path(sysconfig.get_paths()["purelib"])
    assert not list(project_site.glob("focusgraph_vignette*")), f"the example is installed in {project_site}"


def test_nodes_lists_and_documents_the_plugin(plugin_venv: PluginVenv) -> None:
    listing = plugin_venv.run(["focusgraph", "nodes"])
    assert listing.code == 0 and listing.err == "", listing.err
    names = [line.split()[0] for line in listing.out.splitlines() if line.strip()]
    assert "acme.vignette" in names and "core.blur" in names
    full = plugin_venv.run(["focusgraph", "nodes", "acme.vignette"])
    assert full.code == 0, full.err
    assert full.out.startswith("acme.vignette (version 1)")
    for fragment in ("strength", "number | {link: node}", "radius", "softness", "center", "image"):
        assert fragment in full.out


def test_plugins_lists_it_with_its_package(plugin_venv: PluginVenv) -> None:
    listing = plugin_venv.run(["focusgraph", "plugins"])
    assert listing.code == 0, listing.err
    header, *rows = _table(listing.out)
    assert header == ["type", "package", "status"]
    assert ["acme.vignette", "focusgraph-vignette 0.1.0", "ok"] in rows
    statuses = [row[2] for row in rows]
    assert statuses.count("ok") == 1 and statuses.index("ok") == len(statuses) - 1  # built-ins first
    assert all(row[1].startswith("focusgraph ") for row in rows if row[2] == "built-in")
    without = plugin_venv.run(["focusgraph", "plugins", "--no-plugins"])
    assert without.code == 0, without.err
    assert "acme.vignette" not in without.out
    assert without.out.strip().splitlines()[-1] == "(plugins disabled by --no-plugins)"


# a render with the plugin ----------------------------------------------------------------------


def test_render_darkens_the_corners_not_the_centre(
    plugin_venv: PluginVenv, clip_inputs: dict[str, Path], tmp_path: Path
) -> None:
    plain, framed = tmp_path / "plain.mp4", tmp_path / "framed.mp4"
    for graph, out in ((_graph(tmp_path, False), plain), (_graph(tmp_path, True), framed)):
        rendered = plugin_venv.run(_render_args(graph, clip_inputs, out))
        assert rendered.code == 0, rendered.err
    assert not (plugin_venv.root / "no-models").exists()  # no model was needed, or fetched
    before = [frame.astype(float) for frame in read_frames(plain)]
    after = [frame.astype(float) for frame in read_frames(framed)]
    assert len(before) == len(after) == 10
    corners = [(slice(0, 8), slice(0, 8)), (slice(0, 8), slice(-8, None))]
    corners += [(slice(-8, None), slice(0, 8)), (slice(-8, None), slice(-8, None))]
    centre = (slice(40, 56), slice(56, 72))
    # frame 0: strength 0, the same picture
    assert np.abs(after[0] - before[0]).mean() < 0.5
    # frames 5-9: full strength, the corners keep 1 - STRENGTH of their light, the centre all of it
    for index in (5, 9):
        assert abs(after[index][centre].mean() - before[index][centre].mean()) < 1.0
        for corner in corners:
            expected = linear_to_srgb((1 - STRENGTH) * srgb_to_linear(before[index][corner])).mean()
            assert abs(after[index][corner].mean() - expected) < 3.0, (index, corner)
            assert after[index][corner].mean() < before[index][corner].mean() - 30
    # and the darkening grows with the linked strength in between
    darkening = [float((b[:8, :8] - a[:8, :8]).mean()) for a, b in zip(after, before, strict=True)]
    assert all(later >= earlier - 1.0 for earlier, later in pairwise(darkening))
    assert darkening[2] > 5 and darkening[5] > darkening[2] + 10


def test_no_plugins_makes_the_graph_an_error_naming_the_node(
    plugin_venv: PluginVenv, clip_inputs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "clip.mp4"
    graph = _graph(tmp_path, True)
    refused = plugin_venv.run([*_render_args(graph, clip_inputs, out), "--no-plugins"])
    assert refused.code == 2, refused.err
    line = refused.error_line()
    assert str(graph) in line and "framed" in line and "acme.vignette" in line
    assert not out.exists()


# the plugin's own tests ------------------------------------------------------------------------


def test_the_plugins_own_tests_pass_in_the_venv(plugin_venv: PluginVenv) -> None:
    result = plugin_venv.run(
        ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=plugin_venv.source
    )
    assert result.code == 0, result.out + result.err
    summary = result.out.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ passed in [\d.]+s", summary), summary


# two packages claiming one name ---------------------------------------------------------------


@pytest.fixture
def rival(tmp_path: Path) -> dict[str, str]:
    """A second installed distribution, ``acme-rival 2.0``, that also provides ``acme.vignette``."""
    site = tmp_path / "site-packages"
    (site / "acme_rival").mkdir(parents=True)
    (site / "acme_rival" / "__init__.py").write_text("")
    (site / "acme_rival" / "vignette.py").write_text(RIVAL_MODULE)
    info = site / "acme_rival-2.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-rival\nVersion: 2.0\n")
    (info / "entry_points.txt").write_text(
        "[focusgraph.nodes]\nacme.vignette = acme_rival.vignette:Vignette\n"
    )
    return {"PYTHONPATH": str(site)}


def test_two_packages_claiming_a_name_is_an_error_naming_both(
    plugin_venv: PluginVenv, rival: dict[str, str]
) -> None:
    for command in (["nodes"], ["plugins"]):
        clash = plugin_venv.run(["focusgraph", *command], env=rival)
        assert clash.code == 2, clash.out + clash.err
        line = clash.error_line()
        assert "'acme.vignette'" in line, line
        assert "focusgraph-vignette 0.1.0" in line and "acme-rival 2.0" in line, line
    # --no-plugins is the way out
    builtins = plugin_venv.run(["focusgraph", "--no-plugins", "nodes"], env=rival)
    assert builtins.code == 0, builtins.err
    assert "core.blur" in builtins.out and "acme.vignette" not in builtins.out
