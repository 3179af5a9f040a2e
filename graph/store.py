"""A disk store of the results of slow time-invariant nodes, so a re-render skips them.

Users iterate: change a value in a graph, render again. The slow part of a render
before its first frame (segmentation, inpainting) usually depends only on the photo,
which has not changed. A node type opts in with ``Node.persistent = True``; the
scheduler then looks its outputs up here before evaluating it, under a key made of

* the node's type, ``version`` and parameter values,
* a digest of the *contents* of every input value (the photo's pixels, not its path),
* the sha256 of every model file the node uses, and
* a digest of the source code of the package that defines the node type (any change to
  a built-in node module, or to a plugin's package, invalidates that package's entries),

so a hit returns exactly what evaluating would. Entries are ``.npz`` files written
atomically; the least recently used are deleted once the folder holds more than
``FOCUSGRAPH_CACHE_MB`` megabytes (default 2048). An unreadable entry is deleted and
recomputed. The folder is ``$FOCUSGRAPH_CACHE`` when set (``off`` turns the store off),
else ``nodes/`` in the platform's focusgraph cache beside the models.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from focusgraph.graph.models import models_dir

ENV_VAR = "FOCUSGRAPH_CACHE"
"""Environment variable naming the store's folder (``off``: no store)."""
SIZE_ENV_VAR = "FOCUSGRAPH_CACHE_MB"
"""Environment variable: the store's size limit in megabytes."""
DEFAULT_LIMIT_MB = 2048
_OFF = {"off", "0", "no", "false", "none"}
_SUFFIX = ".npz"
_SCALAR = "__scalar__"  # marks an output stored as a 0-d array that was a Python float or int


def default_folder() -> Path | None:
    """The store's folder: ``$FOCUSGRAPH_CACHE``, ``None`` if that says off, else beside the models."""
    override = os.environ.get(ENV_VAR)
    if override is not None and override.strip().lower() in _OFF:
        return None
    if override:
        return Path(override).expanduser()
    return models_dir().parent / "nodes"


def _limit_bytes() -> int:
    try:
        megabytes = float(os.environ.get(SIZE_ENV_VAR, DEFAULT_LIMIT_MB))
    except ValueError:
        megabytes = DEFAULT_LIMIT_MB
    return int(max(megabytes, 0.0) * 2**20)


@cache
def package_digest(module_name: str) -> str:
    """Digest of the ``.py`` files beside the module ``module_name`` (its package's code)."""
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None)
    if path is None:
        return "unknown"
    digest = hashlib.blake2b(digest_size=16)
    for source in sorted(Path(path).parent.glob("*.py")):
        digest.update(source.name.encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()


def value_digest(value: Any, digest: Any) -> None:
    """Feed ``value`` (an array, a number, a string, or a list/dict of them) into ``digest``."""
    if isinstance(value, np.ndarray):
        digest.update(f"array {value.dtype.str} {value.shape}".encode())
        digest.update(np.ascontiguousarray(value).data)
    elif isinstance(value, dict):
        digest.update(f"dict {len(value)}".encode())
        for name in sorted(value):
            digest.update(str(name).encode())
            value_digest(value[name], digest)
    elif isinstance(value, list | tuple):
        digest.update(f"list {len(value)}".encode())
        for item in value:
            value_digest(item, digest)
    else:
        digest.update(f"{type(value).__name__} {value!r}".encode())


def node_key(
    type_name: str,
    version: int,
    module_name: str,
    params: dict[str, Any],
    inputs: dict[str, Any],
    model_checksums: list[str],
) -> str:
    """The store key of a node evaluation (see the module docstring for what goes in)."""
    digest = hashlib.blake2b(digest_size=20)
    header = {
        "type": type_name,
        "version": version,
        "code": package_digest(module_name),
        "params": params,
        "models": sorted(model_checksums),
    }
    digest.update(json.dumps(header, sort_keys=True).encode())
    value_digest(inputs, digest)
    return digest.hexdigest()


def _storable(outputs: dict[str, Any]) -> dict[str, np.ndarray] | None:
    """The outputs as arrays for ``np.savez``, or ``None`` if one is neither an array nor a number."""
    arrays: dict[str, np.ndarray] = {}
    for name, value in outputs.items():
        if isinstance(value, np.ndarray) and value.dtype != object:
            arrays[name] = value
        elif isinstance(value, bool | int | float):
            arrays[_SCALAR + name] = np.asarray(value)
        else:
            return None
    return arrays


@dataclass
class NodeStore:
    """Outputs of persistent nodes on disk, keyed by :func:`node_key`.

    Attributes
    ----------
    folder : Path
        Where the entries live (created on the first write).
    limit_bytes : int
        Size above which the least recently used entries are deleted.
    hits, misses : int
        Lookups that found, or did not find, an entry (for diagnostics and tests).
    """

    folder: Path
    limit_bytes: int = DEFAULT_LIMIT_MB * 2**20
    hits: int = 0
    misses: int = 0
    _writers: list[threading.Thread] = field(default_factory=list, repr=False)

    @classmethod
    def default(cls) -> NodeStore | None:
        """The store at :func:`default_folder` with the configured limit, or ``None`` if off."""
        folder = default_folder()
        return None if folder is None else cls(folder, _limit_bytes())

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}{_SUFFIX}"

    def get(self, key: str) -> dict[str, Any] | None:
        """The outputs stored under ``key``, or ``None`` (an unreadable entry is deleted)."""
        path = self._path(key)
        try:
            with np.load(path, allow_pickle=False) as archive:
                outputs: dict[str, Any] = {}
                for name in archive.files:
                    if name.startswith(_SCALAR):
                        outputs[name.removeprefix(_SCALAR)] = archive[name].item()
                    else:
                        outputs[name] = archive[name]
        except FileNotFoundError:
            self.misses += 1
            return None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError):
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
            self.misses += 1
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # most recently used
        self.hits += 1
        return outputs

    def put(self, key: str, outputs: dict[str, Any]) -> bool:
        """Store ``outputs`` under ``key`` (atomically); return whether they were storable.

        A full disk or a read-only folder only costs the re-render its speed-up: the
        render itself never fails because of the store.
        """
        arrays = _storable(outputs)
        if arrays is None:
            return False
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(prefix=".", suffix=".partial", dir=self.folder)
            try:
                with os.fdopen(handle, "wb") as file:
                    np.savez(file, **arrays)  # type: ignore[arg-type]
                os.replace(temporary, self._path(key))
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        except OSError:
            return False
        self.evict()
        return True

    def put_in_background(self, key: str, outputs: dict[str, Any]) -> None:
        """:meth:`put` in a thread, so the render goes on meanwhile; :meth:`flush` waits for it.

        The outputs are never modified afterwards (nodes treat their inputs as read-only),
        so the thread can write them as they are. The thread is not a daemon: an ending
        process finishes the write rather than leave half a file.
        """
        if _storable(outputs) is None:
            return
        writer = threading.Thread(target=self.put, args=(key, outputs), name="focusgraph-store")
        writer.start()
        self._writers.append(writer)

    def flush(self) -> None:
        """Wait for the writes :meth:`put_in_background` started."""
        while self._writers:
            self._writers.pop().join()

    def entries(self) -> list[Path]:
        """The entries, least recently used first."""
        if not self.folder.is_dir():
            return []
        found = []
        for path in self.folder.glob(f"*{_SUFFIX}"):
            with contextlib.suppress(OSError):
                found.append((path.stat().st_mtime, path))
        return [path for _, path in sorted(found)]

    def size_bytes(self) -> int:
        """Bytes held by the entries."""
        total = 0
        for path in self.entries():
            with contextlib.suppress(OSError):
                total += path.stat().st_size
        return total

    def evict(self) -> None:
        """Delete least recently used entries until the store is within ``limit_bytes``.

        Also deletes partial files over an hour old (a write killed mid-way).
        """
        stale = time.time() - 3600
        for partial in self.folder.glob(".*.partial"):
            with contextlib.suppress(OSError):
                if partial.stat().st_mtime < stale:
                    partial.unlink()
        entries = self.entries()
        sizes = {}
        for path in entries:
            with contextlib.suppress(OSError):
                sizes[path] = path.stat().st_size
        total = sum(sizes.values())
        for path in entries:
            if total <= self.limit_bytes:
                break
            with contextlib.suppress(OSError):
                path.unlink()
                total -= sizes.get(path, 0)

    def clear(self) -> int:
        """Delete every entry; return how many there were."""
        entries = self.entries()
        for path in entries:
            with contextlib.suppress(OSError):
                path.unlink()
        return len(entries)
