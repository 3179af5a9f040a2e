"""Build docs/presets.md: every bundled preset with a contact sheet, its inputs and its graph.

Run by ``make docs`` (which also regenerates ``presets/focusgraph.schema.json``). The
sheets are rendered from scikit-image's ``astronaut`` photo (a real photograph that
ships with scikit-image, so the repository holds no copy of the shared test photos).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import imageio.v3 as iio
import skimage.data

from focusgraph.graph import load
from focusgraph.graph.preview import write_png
from focusgraph.presets import preset_paths

DOCS = Path(__file__).resolve().parent
IMAGES = DOCS / "images"
SHEET_SIDE = 320


def preset_section(name: str, photo: Path) -> str:
    """The Markdown section of one preset, writing its contact sheet into ``docs/images``."""
    graph = load(name, plugins=False)
    sheet = graph.contact_sheet({"image": photo}, frames=6, tile_side=SHEET_SIDE)
    image = IMAGES / f"preset-{name}.png"
    write_png(sheet, image, overwrite=True)
    rows = [
        f"| `{input_name}` | {spec.type} | {'(required)' if spec.default is None else f'`{spec.default}`'} "
        f"| {spec.help.replace('|', '/')} |"
        for input_name, spec in graph.inputs.items()
    ]
    return "\n".join(
        [
            f"## {name}",
            "",
            graph.document.description,
            "",
            "```sh",
            f"focusgraph render {name} -i photo.jpg -o clip.mp4",
            f"focusgraph preview {name} -i photo.jpg -o sheet.png   # this sheet, in seconds",
            "```",
            "",
            f"![{name} contact sheet: the mask, then six frames from start to end](images/{image.name})",
            "",
            "| input | type | default | meaning |",
            "| --- | --- | --- | --- |",
            *rows,
            "",
            "The graph (`focusgraph graph " + name + "`; grey nodes are computed once per render):",
            "",
            "```mermaid",
            graph.diagram("mermaid").rstrip(),
            "```",
            "",
        ]
    )


def main() -> int:
    """Write ``docs/presets.md`` and the sheets; return the exit code."""
    IMAGES.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        photo = Path(folder) / "astronaut.png"
        iio.imwrite(photo, skimage.data.astronaut())
        sections = [preset_section(name, photo) for name in preset_paths()]
    header = [
        "# Presets",
        "",
        "Bundled graphs, used by name (`focusgraph render rack-focus ...`). Each sheet below shows the",
        "segmentation mask (red) and six frames from the first to the last, rendered by",
        "`focusgraph preview` from scikit-image's `astronaut` photo (512 px). Regenerate this",
        "page with `make docs`. Copy a preset's YAML (`focusgraph presets -v` lists them; the files are",
        "in `presets/`) to start a graph of your own.",
        "",
    ]
    (DOCS / "presets.md").write_text("\n".join(header + sections))
    print(f"wrote {DOCS / 'presets.md'} ({len(sections)} presets)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
