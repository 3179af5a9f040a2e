"""What the atheris fuzz targets in this folder share: options, allow-list, seed corpus, time budget, run.

A target supplies ``check(data)`` (one input; raises on a finding) and ``seed_inputs()``
and calls :func:`fuzz` from its ``main``. Its command line is libFuzzer's, plus two
options taken out before libFuzzer sees the arguments (see :func:`libfuzzer_args`)::

    python tests/fuzz/fuzz_X.py [--make-corpus DIR] [--allow NAME:TEXT] -max_total_time=N [corpus]

Nothing here imports atheris or the code under test at import time: a target must
import those inside :func:`fuzz`'s instrumentation, and :func:`fuzz` imports atheris
itself, so the one-input functions run without it (``test_fuzz_targets_smoke.py``).
"""

from __future__ import annotations

import tempfile
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

WORK_DIR = Path(tempfile.gettempdir()) / "focusgraph-fuzz"
"""Default home of corpora, dictionaries, crash artifacts and scratch files."""

ALLOWED: list[tuple[str, str]] = []
"""Extra (exception class name, text) pairs a finding may match to be let through, from ``--allow``."""


class SlowInputError(Exception):
    """An input took longer than the target's time budget."""


def allowed(exc: BaseException) -> bool:
    """Whether an ``--allow NAME:TEXT`` covers an exception.

    Parameters
    ----------
    exc
        The exception a target's ``check`` caught (or is about to raise).

    Returns
    -------
    bool
        True if some entry of :data:`ALLOWED` names the class of ``exc`` and its
        text is part of the message or of the innermost ``file.py:function``.
    """
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{Path(frames[-1].filename).name}:{frames[-1].name}" if frames else ""
    return any(type(exc).__name__ == name and (text in str(exc) or text in where) for name, text in ALLOWED)


def check_time(started: float, budget: float) -> None:
    """Raise if more than ``budget`` seconds passed since ``started``.

    Parameters
    ----------
    started
        A :func:`time.perf_counter` reading taken before the input ran.
    budget
        Seconds one input may take (a soft limit, checked afterwards; libFuzzer's
        ``-timeout`` is the hard one).

    Raises
    ------
    SlowInputError
        If the input took longer than ``budget``.
    """
    elapsed = time.perf_counter() - started
    if elapsed > budget:
        raise SlowInputError(f"one input took {elapsed:.1f} s (budget {budget} s)")


def make_corpus(directory: Path, seed_inputs: Callable[[], Mapping[str, bytes]]) -> int:
    """Write a target's seed inputs into a corpus directory, as ``seed-NAME`` files.

    Parameters
    ----------
    directory
        The corpus directory; created if missing.
    seed_inputs
        The target's ``seed_inputs``: file name -> contents.

    Returns
    -------
    int
        How many files were written.
    """
    directory.mkdir(parents=True, exist_ok=True)
    seeds = seed_inputs()
    for name, data in seeds.items():
        (directory / f"seed-{name}").write_bytes(data)
    return len(seeds)


def dictionary_entry(token: str) -> str:
    """A token as a libFuzzer dictionary line: a quoted string with ``\\xNN`` escapes.

    Parameters
    ----------
    token
        The text to offer the mutator; written as UTF-8.

    Returns
    -------
    str
        The line, without its newline.
    """
    data = token.encode()
    return '"' + "".join(chr(b) if 32 <= b < 127 and b not in b'"\\' else f"\\x{b:02x}" for b in data) + '"'


def libfuzzer_args(
    argv: Sequence[str],
    name: str,
    *,
    seed_inputs: Callable[[], Mapping[str, bytes]],
    max_len: int,
    dictionary_tokens: Sequence[str] | None = None,
) -> tuple[list[str], Path]:
    """Take out the harness's options and add its defaults to a libFuzzer command line.

    ``--make-corpus DIR`` writes the seed corpus into ``DIR`` and exits;
    ``--allow NAME:TEXT`` (repeatable) adds to :data:`ALLOWED`. Without a corpus
    directory, ``WORK_DIR/NAME-corpus`` is used. ``-timeout=30``, ``-max_len`` and
    ``-artifact_prefix=WORK_DIR/NAME-`` (and ``-dict``, with ``dictionary_tokens``)
    are added unless given.

    Parameters
    ----------
    argv
        The script's ``sys.argv``.
    name
        The target's short name, for the default corpus, artifact and dictionary paths.
    seed_inputs
        The target's ``seed_inputs``, for ``--make-corpus``.
    max_len
        The default ``-max_len``, in bytes.
    dictionary_tokens
        Tokens to write to ``WORK_DIR/NAME.dict`` and pass as ``-dict``; None for no dictionary.

    Returns
    -------
    tuple[list[str], Path]
        libFuzzer's argv and the corpus directory.

    Raises
    ------
    SystemExit
        After ``--make-corpus``.
    """
    args: list[str] = []
    rest = iter(argv[1:])
    for arg in rest:
        if arg == "--make-corpus":
            directory = Path(next(rest))
            print(f"wrote {make_corpus(directory, seed_inputs)} seeds to {directory}")
            raise SystemExit(0)
        if arg == "--allow":
            kind, _, text = next(rest).partition(":")
            ALLOWED.append((kind, text))
        else:
            args.append(arg)
    dirs = [Path(arg) for arg in args if not arg.startswith("-")]
    if not dirs:
        dirs = [WORK_DIR / f"{name}-corpus"]
        args.append(str(dirs[0]))
    flags = {arg.split("=", 1)[0] for arg in args if arg.startswith("-")}
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    defaults = {"-timeout": "30", "-max_len": str(max_len), "-artifact_prefix": f"{WORK_DIR / name}-"}
    if dictionary_tokens is not None:
        dictionary = WORK_DIR / f"{name}.dict"
        lines = "".join(f"{dictionary_entry(token)}\n" for token in dictionary_tokens)
        dictionary.write_text(lines, encoding="ascii")
        defaults["-dict"] = str(dictionary)
    return [argv[0], *(f"{k}={v}" for k, v in defaults.items() if k not in flags), *args], dirs[0]


def fuzz(
    argv: Sequence[str],
    name: str,
    check: Callable[[bytes], None],
    seed_inputs: Callable[[], Mapping[str, bytes]],
    *,
    load: Callable[[], object],
    include: Sequence[str],
    exclude: Sequence[str] = (),
    max_len: int,
    dictionary_tokens: Sequence[str] | None = None,
) -> None:
    """Run a target under atheris with libFuzzer's command line; does not return.

    The corpus directory is seeded when it is missing or empty, after instrumenting,
    since building the seeds imports the libraries under test.

    Parameters
    ----------
    argv
        The script's ``sys.argv`` (see :func:`libfuzzer_args`).
    name
        The target's short name (see :func:`libfuzzer_args`).
    check
        Runs one input; raises on a finding.
    seed_inputs
        The target's seed corpus: file name -> contents.
    load
        Imports the code under test; called inside the instrumentation.
    include, exclude
        Top-level packages and modules to instrument, and modules among them not to.
    max_len, dictionary_tokens
        See :func:`libfuzzer_args`.
    """
    import atheris

    args, corpus = libfuzzer_args(
        argv, name, seed_inputs=seed_inputs, max_len=max_len, dictionary_tokens=dictionary_tokens
    )
    with atheris.instrument_imports(include=list(include), exclude=list(exclude)):
        load()
    if not corpus.exists() or not any(corpus.iterdir()):
        make_corpus(corpus, seed_inputs)
    atheris.Setup(args, check)
    atheris.Fuzz()
