"""Batch rendering: worker processes, resumable manifest, report, interrupts, and a real Dask cluster."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from processes import processes_mentioning
from videoprobe import probe

from focusgraph.graph import GraphValidationError, batch
from focusgraph.graph.batching import MANIFEST_NAME, REPORT_NAME, collect_photos, output_names

FOCUSGRAPH = str(Path(sys.executable).with_name("focusgraph"))


def make_photos(folder: Path, count: int, size: tuple[int, int] = (96, 64)) -> list[Path]:
    """``count`` small, different photo-like PNGs (gradient, bright disc)."""
    folder.mkdir(parents=True, exist_ok=True)
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    paths = []
    for index in range(count):
        image = np.dstack([(x * 2 + 40 * index) % 256, y * 3 % 256, (x + y + 17 * index) % 256]).astype(
            np.uint8
        )
        path = folder / f"photo-{index}.png"
        Image.fromarray(image).save(path)
        paths.append(path)
    return paths


def run(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FOCUSGRAPH, *map(str, args)], capture_output=True, text=True, timeout=timeout, check=False
    )


def read_report(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / REPORT_NAME).read_text())
    return data


def test_local_batch_is_resumable_and_reports_every_photo(tmp_path: Path) -> None:
    photos = make_photos(tmp_path / "in", 5)
    corrupt = tmp_path / "in" / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(3000))
    out = tmp_path / "out"
    out.mkdir()
    command = ["batch", "rack-focus", tmp_path / "in", "--out", out, "--jobs", "2", "--set", "duration=0.4"]

    first = run(*command)
    assert first.returncode == 3, first.stderr  # the one failure is a bad input image
    assert (
        first.stderr.strip().splitlines()[-1]
        == "focusgraph: error: 1 of 6 photos failed (see the table above)"
    )
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{p.stem}.mp4" for p in photos] + [MANIFEST_NAME, REPORT_NAME]
    )
    report = read_report(out)
    assert report["totals"] == {"done": 5, "skipped": 0, "failed": 1}
    assert report["exit_code"] == 3 and "2 worker processes" in report["scheduler"]
    by_photo = {Path(entry["photo"]).name: entry for entry in report["photos"]}
    assert by_photo["corrupt.jpg"]["status"] == "failed" and by_photo["corrupt.jpg"]["exit_code"] == 3
    assert "corrupt.jpg" in by_photo["corrupt.jpg"]["error"]
    for photo in photos:
        entry = by_photo[photo.name]
        assert entry["status"] == "done" and entry["seconds"] > 0 and entry["worker"]
        assert entry["output_size"] == (out / f"{photo.stem}.mp4").stat().st_size
        info = probe(out / f"{photo.stem}.mp4")
        assert (info["codec"], info["width"], info["height"]) == ("h264", 96, 64)
    assert "done 5, skipped 0, failed 1" in first.stdout
    workers = {by_photo[p.name]["worker"] for p in photos}
    assert len(workers) == 2  # both worker processes took photos

    mtimes = {p: (out / f"{p.stem}.mp4").stat().st_mtime_ns for p in photos}
    second = run(*command)
    assert second.returncode == 3
    assert read_report(out)["totals"] == {"done": 0, "skipped": 5, "failed": 1}
    assert all((out / f"{p.stem}.mp4").stat().st_mtime_ns == mtimes[p] for p in photos)

    changed = run(*command[:-1], "duration=0.5")
    assert read_report(out)["totals"] == {"done": 5, "skipped": 0, "failed": 1}, changed.stderr
    assert probe(out / "photo-0.mp4")["frames"] == 15


def test_an_edited_or_replaced_output_is_rendered_again(tmp_path: Path) -> None:
    (photo,) = make_photos(tmp_path / "in", 1)
    out = tmp_path / "out"
    out.mkdir()
    command = ["batch", "rack-focus", photo, "--out", out, "--jobs", "1", "--set", "duration=0.2", "-q"]
    assert run(*command).returncode == 0
    clip = out / "photo-0.mp4"
    for damage in ("same size, one byte changed", "truncated"):
        data = bytearray(clip.read_bytes())
        if damage == "truncated":
            data = data[: len(data) // 2]
        else:
            data[len(data) // 2] ^= 0xFF
        clip.write_bytes(bytes(data))
        assert run(*command).returncode == 0
        assert read_report(out)["totals"]["done"] == 1, damage
        assert probe(clip)["codec"] == "h264"


def test_outputs_not_made_by_the_batch_are_kept_unless_overwrite(tmp_path: Path) -> None:
    (photo,) = make_photos(tmp_path / "in", 1)
    out = tmp_path / "out"
    out.mkdir()
    mine = out / "photo-0.mp4"
    mine.write_bytes(b"the user's own file")
    command = ["batch", "rack-focus", photo, "--out", out, "--set", "duration=0.2", "-q"]
    refused = run(*command)
    assert refused.returncode == 5 and mine.read_bytes() == b"the user's own file"
    assert "--overwrite" in read_report(out)["photos"][0]["error"]
    assert run(*command, "--overwrite").returncode == 0
    assert probe(mine)["codec"] == "h264"


def test_interrupt_keeps_finished_outputs_and_removes_partial_ones(tmp_path: Path) -> None:
    photos = make_photos(tmp_path / "in", 3, size=(320, 240))
    out = tmp_path / "out"
    out.mkdir()
    command = [FOCUSGRAPH, "batch", "rack-focus", *map(str, photos), "--out", str(out), "--jobs", "2"]
    process = subprocess.Popen([*command, "--set", "duration=600"], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any("focusgraph-tmp" in p.name for p in out.iterdir()):
        time.sleep(0.1)
    assert any("focusgraph-tmp" in p.name for p in out.iterdir()), "no render started"
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr.strip().splitlines()[-1]
    leftovers = [p.name for p in out.iterdir() if p.name not in {REPORT_NAME, MANIFEST_NAME}]
    assert leftovers == []
    report = read_report(out)
    assert report["totals"]["failed"] == 3 and {p["error"] for p in report["photos"]} == {"interrupted"}
    time.sleep(0.5)
    assert processes_mentioning(str(out)) == []


def test_photo_sources_and_patterns(tmp_path: Path) -> None:
    photos = make_photos(tmp_path / "in", 3)
    (tmp_path / "in" / "notes.txt").write_text("not a photo")
    assert collect_photos([tmp_path / "in"]) == photos
    assert collect_photos([str(tmp_path / "in" / "photo-[01].png"), photos[0]]) == photos[:2]
    with pytest.raises(GraphValidationError, match="matches no file"):
        collect_photos([str(tmp_path / "in" / "*.webp")])
    assert output_names(photos, "{index:03d}-{stem}.mp4")[2] == "003-photo-2.mp4"
    for bad, message in (("{nope}.mp4", "not a valid pattern"), ("x/{stem}.mp4", "not a file name")):
        with pytest.raises(GraphValidationError, match=message):
            output_names(photos, bad)
    twins = [tmp_path / "a" / "x.png", tmp_path / "b" / "x.png"]
    with pytest.raises(GraphValidationError, match=r"would both be written to 'x\.mp4'"):
        output_names(twins, "{stem}.mp4")
    bad_graph = run("batch", "rack-focus", *photos, "--out", tmp_path / "missing")
    assert bad_graph.returncode == 2 and "does not exist" in bad_graph.stderr


@pytest.fixture(scope="module")
def cluster() -> Any:
    """A real Dask cluster: a scheduler and two worker processes on this machine."""
    distributed = pytest.importorskip("distributed")
    import logging

    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.ERROR
    ) as local:
        yield local


def test_dask_scheduler_renders_every_photo(tmp_path: Path, cluster: Any) -> None:
    photos = make_photos(tmp_path / "in", 4)
    out = tmp_path / "out"
    out.mkdir()
    result = run("batch", "rack-focus", *photos, "--out", out, "--scheduler", cluster.scheduler_address,
                 "--set", "duration=0.3")  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = read_report(out)
    assert report["totals"] == {"done": 4, "skipped": 0, "failed": 0}
    assert report["scheduler"] == f"dask {cluster.scheduler_address}"
    workers = {entry["worker"] for entry in report["photos"]}
    assert workers <= set(cluster.scheduler_info["workers"]) and len(workers) >= 1
    assert all(probe(out / f"{p.stem}.mp4")["codec"] == "h264" for p in photos)


def test_dask_worker_without_models_fails_naming_the_worker(
    tmp_path: Path, cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    distributed = pytest.importorskip("distributed")
    (photo,) = make_photos(tmp_path / "in", 1)
    out = tmp_path / "out"
    out.mkdir()
    empty = tmp_path / "no-models"

    def forget_models() -> None:
        os.environ["FOCUSGRAPH_MODELS"] = str(empty)

    with distributed.Client(cluster) as client:
        client.run(forget_models)
        try:
            report = batch("rack-focus", [photo], out, client, values={"duration": 0.2})
        finally:
            client.run(lambda: os.environ.pop("FOCUSGRAPH_MODELS", None))
    (result,) = report.results
    assert result.status == "failed" and result.exit_code == 4
    assert f"missing on worker {result.worker}" in (result.error or "")
    assert result.worker in cluster.scheduler_info["workers"]
    assert "focusgraph models fetch" in (result.error or "") and not empty.exists()
    assert report.exit_code == 4
