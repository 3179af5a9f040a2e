"""A disk store of the results of slow time-invariant nodes, so a re-render skips them.

Users iterate: change a value in a graph, render again. The slow part of a render
before its first frame (segmentation, inpainting) usually depends only on the photo,
which has not changed. A node type opts in with ``Node.persistent = True``; the
scheduler then looks its outputs up here before evaluating it, under a key made of

* the node's type, ``version`` and parameter values, and the timeline (frame rate,
  length, size limits: everything of the frame context but the frame),
* a digest of the *contents* of every input value (the photo's pixels, not its path),
  and the size and modification time of every file the node reads,
* the pinned sha256 of every model file the node uses (files are verified against it
  before use),
* a digest of the source code of the package that defines the node type (any change to
  a built-in node module, or to a plugin's package, invalidates that package's entries),
  and the versions of the store's format and of numpy,

so a hit returns what evaluating would, including the warnings the node logged (they
are stored and logged again). What it does not see: another version of a compiled
library (OpenCV, onnxruntime) behind the same code; ``focusgraph cache clear`` after
upgrading one is safe. Restored arrays are read-only.

A node may also keep *intermediate* arrays here, work it derives from time-invariant
inputs inside ``evaluate`` (a blur's levels of the unchanging plate): the frame context
of a render with a store carries it (``FrameContext.store``), and :meth:`NodeStore.get_array`
and :meth:`NodeStore.put_array_in_background` read and write one array under a key from
:func:`array_key` (the node's package code, the versions above, and whatever the node
passes, e.g. a :func:`content_digest` of its input). One store (one render) writes at
most :data:`KEPT_SHARE` of the size limit in such arrays, so a very large photo cannot
push the segmentation of every other photo out.

Entries are ``.npz`` files (a node's outputs) and ``.npy`` files (a kept array), written
atomically; the least recently used are deleted (kept arrays first) once the folder
holds more than ``FOCUSGRAPH_CACHE_MB`` megabytes (default 2048). An entry that is not
a valid file is deleted and recomputed; any failure of the store only costs its speed-up.
The folder is ``$FOCUSGRAPH_CACHE`` when set (``off`` turns the store off), else
``nodes`` in focusgraph's user cache folder (``~/.cache/focusgraph/nodes`` on Linux).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import IO, Any, TypeVar

import numpy as np

from focusgraph.graph.models import cache_root

ENV_VAR = "FOCUSGRAPH_CACHE"
"""Environment variable naming the store's folder (``off``: no store)."""
SIZE_ENV_VAR = "FOCUSGRAPH_CACHE_MB"
"""Environment variable: the store's size limit in megabytes."""
DEFAULT_LIMIT_MB = 2048
_OFF = {"off", "0", "no", "false", "none"}
_SUFFIX = ".npz"
_ARRAY_SUFFIX = ".npy"
_SUFFIXES = (_SUFFIX, _ARRAY_SUFFIX)
_PARTIAL = ".partial"
_SCALAR = "__scalar__"  # marks an output stored as a 0-d array that was a Python number
_NUMPY_SCALAR = "__numpy__"  # marks one that was a numpy scalar
_LOG = "__log__"  # the warnings the node logged while it was evaluated
FORMAT = 2
"""Version of the entries' layout (part of every key)."""
KEPT_SHARE = 0.5
"""Share of the size limit one :class:`NodeStore` may fill with kept arrays (``put_array``)."""
# Keys are sha256 digests (2.5x blake2b's speed on a CPU with SHA instructions: a render
# hashes its photo, mask and plate) cut to 160 bits.
_KEY_CHARS = 40
_Found = TypeVar("_Found")


def default_folder() -> Path | None:
    """The store's folder: ``$FOCUSGRAPH_CACHE``, ``None`` if that says off, else in the user cache."""
    override = os.environ.get(ENV_VAR)
    if override is not None and override.strip().lower() in _OFF:
        return None
    if override:
        return Path(override).expanduser()
    return cache_root() / "nodes"


def _limit_bytes() -> int:
    """``$FOCUSGRAPH_CACHE_MB`` in bytes; the default when it is not a finite number >= 0."""
    try:
        megabytes = float(os.environ.get(SIZE_ENV_VAR, DEFAULT_LIMIT_MB))
    except ValueError:
        megabytes = DEFAULT_LIMIT_MB
    if not math.isfinite(megabytes) or megabytes < 0:
        megabytes = DEFAULT_LIMIT_MB
    return int(megabytes * 2**20)


@cache
def package_digest(module_name: str) -> str:
    """Digest of the code files (``.py``, ``.pyc``) beside the module ``module_name``: its package's code.

    A module whose code cannot be found gets a token of this process, so its entries
    are never reused by another process (rather than reused after its code changed).
    """
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None)
    sources = [] if path is None else sorted(Path(path).parent.glob("*.py*"))
    if not sources:
        return f"process {os.getpid()} {uuid.uuid4().hex}"
    digest = hashlib.blake2b(digest_size=16)
    for source in sources:
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
            encoded = str(name).encode()
            digest.update(f"{len(encoded)}:".encode() + encoded)
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
    digest = hashlib.sha256()
    header = {
        "format": FORMAT,
        "numpy": np.__version__,
        "type": type_name,
        "version": version,
        "code": package_digest(module_name),
        "params": params,
        "models": sorted(model_checksums),
    }
    digest.update(json.dumps(header, sort_keys=True).encode())
    value_digest(inputs, digest)
    return digest.hexdigest()[:_KEY_CHARS]


def content_digest(value: Any) -> str:
    """Digest of ``value``'s contents (an array's dtype, shape and bytes; see :func:`value_digest`)."""
    digest = hashlib.sha256()
    value_digest(value, digest)
    return digest.hexdigest()[:_KEY_CHARS]


def array_key(module_name: str, parts: dict[str, Any]) -> str:
    """The store key of an array a node keeps (:meth:`NodeStore.put_array_in_background`).

    Parameters
    ----------
    module_name : str
        The module computing the array: a change to its package's code changes the key.
    parts : dict
        Everything else the array depends on, JSON-serialisable (parameter values, a
        :func:`content_digest` of each input).
    """
    header = {"format": FORMAT, "numpy": np.__version__, "code": package_digest(module_name), "kept": parts}
    return hashlib.sha256(json.dumps(header, sort_keys=True).encode()).hexdigest()[:_KEY_CHARS]


def _storable(outputs: dict[str, Any], log: list[str]) -> dict[str, np.ndarray] | None:
    """The outputs (and ``log``) as arrays for ``np.savez``, or ``None`` if one cannot be stored.

    Arrays of numbers, numpy scalars and Python numbers can (each comes back as the same
    type); anything else (objects, huge integers) makes the node's results unstorable.
    """
    arrays: dict[str, np.ndarray] = {}
    for name, value in outputs.items():
        if isinstance(value, np.ndarray) and value.dtype.kind in "biufc":
            arrays[name] = value
        elif isinstance(value, np.generic) and value.dtype.kind in "biufc":
            arrays[_NUMPY_SCALAR + name] = np.asarray(value)
        elif isinstance(value, bool | int | float):
            stored = np.asarray(value)
            if stored.dtype.kind not in "biuf":
                return None
            arrays[_SCALAR + name] = stored
        else:
            return None
    if log:
        arrays[_LOG] = np.array(log, dtype=np.str_)
    return arrays


def _archive_writer(arrays: dict[str, np.ndarray]) -> Callable[[IO[bytes]], None]:
    """Writes ``arrays`` as one ``.npz`` archive to a file."""
    return lambda file: np.savez(file, **arrays)  # type: ignore[arg-type]


def _read_archive(path: Path) -> tuple[dict[str, Any], list[str]]:
    """The outputs and logged warnings in the ``.npz`` entry at ``path``."""
    with np.load(path, allow_pickle=False) as archive:
        return _restored(archive)


def _read_array(path: Path) -> np.ndarray:
    """The kept array in the ``.npy`` entry at ``path``, read-only (nothing else than an array)."""
    with open(path, "rb") as file:
        found: np.ndarray = np.lib.format.read_array(file, allow_pickle=False)
    found.flags.writeable = False
    return found


def _restored(archive: Any) -> tuple[dict[str, Any], list[str]]:
    """The outputs and logged warnings held in an open ``np.load`` archive (arrays read-only)."""
    outputs: dict[str, Any] = {}
    log: list[str] = []
    for name in archive.files:
        value = archive[name]
        if name == _LOG:
            log = [str(line) for line in value.tolist()]
        elif name.startswith(_SCALAR):
            outputs[name.removeprefix(_SCALAR)] = value.item()
        elif name.startswith(_NUMPY_SCALAR):
            outputs[name.removeprefix(_NUMPY_SCALAR)] = value[()]
        else:
            value.flags.writeable = False
            outputs[name] = value
    return outputs, log


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
    kept_bytes : int
        Bytes of the arrays this store has been given to keep (``put_array``).
    """

    folder: Path
    limit_bytes: int = DEFAULT_LIMIT_MB * 2**20
    hits: int = 0
    misses: int = 0
    kept_bytes: int = 0
    _writers: list[threading.Thread] = field(default_factory=list, repr=False)

    @classmethod
    def default(cls) -> NodeStore | None:
        """The store at :func:`default_folder` with the configured limit, or ``None`` if off."""
        folder = default_folder()
        return None if folder is None else cls(folder, _limit_bytes())

    def _path(self, key: str, suffix: str = _SUFFIX) -> Path:
        return self.folder / f"{key}{suffix}"

    def get(self, key: str) -> tuple[dict[str, Any], list[str]] | None:
        """The outputs and logged warnings stored under ``key``, or ``None``.

        An entry that is not a valid archive is deleted; one that cannot be read (a
        permission, a transient error) is left alone.
        """
        return self._read(self._path(key), _read_archive)

    def get_array(self, key: str) -> np.ndarray | None:
        """The array kept under ``key`` (read-only), or ``None`` (handled as :meth:`get` does)."""
        return self._read(self._path(key, _ARRAY_SUFFIX), _read_array)

    def _read(self, path: Path, load: Callable[[Path], _Found]) -> _Found | None:
        """``load(path)``, counted as a hit (and the entry marked most recently used) or a miss."""
        try:
            found = load(path)
        except OSError:
            self.misses += 1
            return None
        except Exception:  # a damaged or foreign file: numpy and zipfile raise many kinds
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
            self.misses += 1
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # most recently used
        self.hits += 1
        return found

    def put_array_in_background(self, key: str, array: np.ndarray) -> bool:
        """Keep ``array`` under ``key``, written by a thread as :meth:`put_in_background` does.

        Returns whether it will be written: not once this store has been given
        :data:`KEPT_SHARE` of its limit in kept arrays. ``array`` must not be modified
        afterwards.
        """
        if self.kept_bytes + array.nbytes > KEPT_SHARE * self.limit_bytes:
            return False
        self.kept_bytes += array.nbytes
        path = self._path(key, _ARRAY_SUFFIX)
        self._start_writer(path, lambda file: np.save(file, array, allow_pickle=False))
        return True

    def put(self, key: str, outputs: dict[str, Any], log: list[str] | None = None) -> bool:
        """Store ``outputs`` (and the warnings in ``log``) under ``key``, atomically.

        Returns whether they were stored. A full disk, a read-only folder or anything
        else going wrong only costs the re-render its speed-up: never an exception.
        """
        arrays = _storable(outputs, log or [])
        return arrays is not None and self._write(self._path(key), _archive_writer(arrays))

    def put_in_background(self, key: str, outputs: dict[str, Any], log: list[str] | None = None) -> None:
        """:meth:`put` in a thread, so the render goes on meanwhile; :meth:`flush` waits for it.

        The outputs are never modified afterwards (nodes treat their inputs as read-only),
        so the thread can write them as they are. The thread is not a daemon: an ending
        process finishes the write rather than leave half a file.
        """
        arrays = _storable(outputs, log or [])
        if arrays is not None:
            self._start_writer(self._path(key), _archive_writer(arrays))

    def _start_writer(self, path: Path, save: Callable[[IO[bytes]], None]) -> None:
        writer = threading.Thread(target=self._write, args=(path, save), name="focusgraph-store")
        try:
            writer.start()
        except RuntimeError:  # no thread to be had: write now
            self._write(path, save)
            return
        self._writers.append(writer)

    def _write(self, path: Path, save: Callable[[IO[bytes]], None]) -> bool:
        """Write the entry at ``path`` with ``save`` (via a partial file renamed into place), then evict."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(prefix=".", suffix=_PARTIAL, dir=self.folder)
            try:
                os.fchmod(handle, 0o644)
                with os.fdopen(handle, "wb") as file:
                    save(file)
                os.replace(temporary, path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
            self.evict()
        except Exception:
            return False
        return True

    def flush(self) -> None:
        """Wait for the writes :meth:`put_in_background` started."""
        while self._writers:
            self._writers.pop().join()

    def _entry_sizes(self) -> list[tuple[Path, int]]:
        """Each entry and its size in bytes, least recently used first."""
        if not self.folder.is_dir():
            return []
        found = []
        for path in (path for suffix in _SUFFIXES for path in self.folder.glob(f"*{suffix}")):
            with contextlib.suppress(OSError):
                stat = path.stat()
                found.append((stat.st_mtime, path, stat.st_size))
        return [(path, size) for _, path, size in sorted(found)]

    def _partials(self) -> list[Path]:
        """Partial files: writes in progress, or killed mid-way."""
        return list(self.folder.glob(f".*{_PARTIAL}")) if self.folder.is_dir() else []

    def entries(self) -> list[Path]:
        """The entries, least recently used first."""
        return [path for path, _ in self._entry_sizes()]

    def size_bytes(self) -> int:
        """Bytes held by the entries."""
        return sum(size for _, size in self._entry_sizes())

    def evict(self) -> None:
        """Delete least recently used entries until the store is within ``limit_bytes``.

        Kept arrays go before any node's outputs: they are quicker to compute again (a
        blur level against a segmentation), so a batch of many photos pushes out their
        levels, not their segmentations. Also deletes partial files over an hour old (a
        write killed mid-way).
        """
        stale = time.time() - 3600
        for partial in self._partials():
            with contextlib.suppress(OSError):
                if partial.stat().st_mtime < stale:
                    partial.unlink()
        entries = self._entry_sizes()
        total = sum(size for _, size in entries)
        for path, size in sorted(entries, key=lambda entry: entry[0].suffix != _ARRAY_SUFFIX):
            if total <= self.limit_bytes:
                break
            with contextlib.suppress(OSError):
                path.unlink()
                total -= size

    def clear(self) -> int:
        """Delete every entry (and any partial file); return how many entries there were."""
        entries = self.entries()
        for path in [*entries, *self._partials()]:
            with contextlib.suppress(OSError):
                path.unlink()
        return len(entries)
