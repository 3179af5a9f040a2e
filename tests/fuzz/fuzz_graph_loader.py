"""Atheris fuzz target: graph document text -> ``load_document`` -> ``compile_graph``.

Run (libFuzzer flags pass through; a missing or empty corpus directory is seeded)::

    .venv/bin/pip install 'atheris>=2.3'
    .venv/bin/python tests/fuzz/fuzz_graph_loader.py -max_total_time=600 /tmp/focusgraph-fuzz/graph-corpus

Extra options (taken out before libFuzzer sees the arguments):

``--make-corpus DIR``
    Write the seed corpus into ``DIR`` and exit.
``--allow NAME:TEXT``
    Also accept exceptions of class ``NAME`` whose message, or innermost
    ``file.py:function``, contains ``TEXT`` (repeatable), to keep fuzzing past a
    finding that is already reported.

An input is either YAML text (any bytes, decoded as UTF-8 with replacement) or,
when it starts with a NUL byte (never valid YAML), a recipe of structured
mutations of the bundled ``rack_focus`` preset, optionally with command-line
``--set`` bindings. Only :class:`GraphValidationError` and :class:`PluginError`
may come out; any other exception, or an input that takes longer than
``TIME_BUDGET`` seconds, is a finding and crashes the fuzzer (an artifact is
written under ``/tmp/focusgraph-fuzz/`` unless ``-artifact_prefix`` says otherwise).
:func:`check` runs one input without atheris (see ``test_fuzz_targets_smoke.py``).
"""

from __future__ import annotations

import copy
import datetime
import functools
import math
import sys
import time
from collections.abc import Sequence
from importlib import resources
from typing import Any, TypeVar

from harness import allowed, check_time, fuzz

TIME_BUDGET = 5.0
"""Seconds one input may take (soft limit, checked afterwards; libFuzzer's -timeout is the hard one)."""

STRUCTURED = b"\x00"
"""First byte of an input that is a structured-mutation recipe rather than YAML text."""

MAX_LEN = 16384
"""Default libFuzzer ``-max_len``, in bytes."""

_T = TypeVar("_T")


class _Choices:
    """Deterministic decisions drawn from the fuzz input; zeros once it runs out."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def byte(self) -> int:
        if self._pos >= len(self._data):
            return 0
        self._pos += 1
        return self._data[self._pos - 1]

    def below(self, n: int) -> int:
        if n <= 1:
            return 0
        value = self.byte() if n <= 256 else self.byte() << 8 | self.byte()
        return value % n

    def chance(self, one_in: int) -> bool:
        return self.below(one_in) == 0

    def pick(self, options: Sequence[_T]) -> _T:
        return options[self.below(len(options))]

    def text(self, max_len: int) -> str:
        size = self.below(max_len + 1)
        chunk = self._data[self._pos : self._pos + size]
        self._pos += len(chunk)
        return chunk.decode("utf-8", errors="replace")


def preset_text() -> str:
    """The bundled rack-focus preset, the base of structured mutations and of the corpus."""
    return resources.files("focusgraph.presets").joinpath("rack_focus.yaml").read_text(encoding="utf-8")


@functools.cache
def _preset_tree() -> dict[str, Any]:
    import yaml

    tree = yaml.safe_load(preset_text())
    assert isinstance(tree, dict)
    return tree


@functools.cache
def _vocabulary() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(keys, strings): field names, node ids, type names, ports and hostile strings."""
    from focusgraph.graph.registry import default_registry

    tree = _preset_tree()
    keys: set[str] = set()
    stack: list[Any] = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            keys.update(str(key) for key in item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    node_ids = sorted(tree["nodes"])
    inputs = sorted(tree["inputs"])
    strings = {"", " ", "$", "$$", "$$x", "$nope", "$1x", "~", "~/x.png", "~nosuchuser_fz/x.png"}
    strings |= {"a\x00b.png", "\ud800.png", "/", ".", "..", "/dev/null", "/proc/self/fd/0", "x" * 300}
    strings |= {"x.mp4", "x.png", "x.jpg", "x.gif", "acme.thing", "core.", ".blur", "core.core.blur"}
    strings |= {"lens", "gaussian", "fraction", "seconds", "clarity", "ease-in", "linear", "person"}
    strings |= {f"${name}" for name in inputs} | {f"$${name}" for name in inputs}
    strings |= set(node_ids) | {f"{node}.image" for node in node_ids} | {"photo.", ".image", "a.b.c"}
    for name, cls in default_registry().types.items():
        strings |= {name, name.split(".", 1)[1]}
        keys |= set(cls.Params.model_fields) | set(cls.inputs)
        strings |= set(cls.outputs) | {f"{node}.{port}" for node in node_ids for port in cls.outputs}
    keys |= {"link", "version", "name", "default", "choices", "min", "max", "size", "fps", "duration"}
    return tuple(sorted(keys)), tuple(sorted(strings))


_TAGS = ("int", "float", "bool", "null", "str", "binary", "timestamp", "set", "omap", "pairs", "map", "seq")
_TAG_VALUES = ("x", "1", "2001-13-01", "2001-01-01 25:00:00", "0x1f", ".nan", "", "{a: 1}", "[1]")

# libFuzzer dictionary for the text inputs: YAML syntax, tags and scalars, and $-references.
_TOKENS = (
    *(f"!!{tag}" for tag in _TAGS),
    *("? ", ": ", "- ", "<<: ", "---", "...", "%YAML 1.1", "%TAG ! tag:x,2000:", "&a ", "*a", "!x "),
    *("{", "}", "[", "]", "|", ">-", '"', "'", "\\u", "\\x00", "#", "\t", "\r\n"),
    *("~", "null", "yes", "off", ".nan", "-.inf", "0x1f", "0o17", "0b101", "1_000", "1e400", "190:20:30"),
    *("2001-12-14", "2001-13-01", "2001-12-14t21:59:43.10-05:00", "$", "$$", "{link: ", "core."),
)

_PATHS = (
    "~nosuchuser_fz/x.png",
    "~",
    "~/",
    "a\x00b.png",
    "/dev/null",
    "/dev/zero",
    "/proc/self/fd/0",
    ".",
    "/",
)
_PATHS += ("x" * 5000 + ".png", "<image>", "rack-focus.mp4", "$image", "$output", "out.png\n", " ")

_INTS = (0, 1, -1, 2, 3, 18, 30, 51, 52, 240, 241, 600, 601, 16384, 16385, 2**31, 2**63, -(2**63), 10**40)
_FLOATS = (0.0, -0.0, 0.5, 1.5, 0.03, 1e-9, 1e308, -1e308, 5e-324, math.inf, -math.inf, math.nan)


def _scalar(c: _Choices) -> Any:
    kind = c.below(8)
    if kind == 0:
        return None
    if kind == 1:
        return c.chance(2)
    if kind == 2:
        return c.pick(_INTS) if c.chance(2) else c.pick(_FLOATS)
    if kind == 3:
        return c.text(24)
    if kind == 4:
        return datetime.date(2001, 1 + c.below(12), 1 + c.below(28))
    if kind == 5:
        return c.text(8).encode()
    return c.pick(_vocabulary()[1])


def _value(c: _Choices, depth: int = 0) -> Any:
    kind = c.below(10) if depth < 3 else 0
    if kind == 7:
        return [_value(c, depth + 1) for _ in range(c.below(4))]
    if kind == 8:
        return {_key(c): _value(c, depth + 1) for _ in range(c.below(4))}
    if kind == 9:
        return {"link": c.pick(_vocabulary()[1])}
    return _scalar(c)


def _key(c: _Choices) -> Any:
    kind = c.below(8)
    if kind == 0:
        return c.pick(_INTS)
    if kind == 1:
        return c.pick((None, True, False, 0.5))
    if kind == 2:
        return c.text(12)
    return c.pick(_vocabulary()[0] + tuple(_preset_tree()["nodes"]))


def _slots(tree: dict[str, Any]) -> list[tuple[Any, Any]]:
    """Every (container, key or index) in ``tree``."""
    slots: list[tuple[Any, Any]] = []
    stack: list[Any] = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            slots += [(item, key) for key in item]
            stack.extend(item.values())
        elif isinstance(item, list):
            slots += [(item, index) for index in range(len(item))]
            stack.extend(item)
    return slots


def _mutate(tree: dict[str, Any], c: _Choices) -> None:
    for _ in range(1 + c.below(6)):
        slots = _slots(tree)
        if not slots:
            tree[_key(c)] = _value(c)
            continue
        container, key = c.pick(slots)
        op = c.below(9)
        paths = [s[0] for s in slots if s[1] == "path" and isinstance(s[0], dict)]
        if op == 0:
            container[key] = _value(c)
        elif op == 1:
            del container[key]
        elif op == 2:
            dicts = [tree] + [s[0] for s in slots if isinstance(s[0], dict)]
            c.pick(dicts)[_key(c)] = _value(c)
        elif op == 3:
            lists = [s[0] for s in slots if isinstance(s[0], list)]
            if lists:
                c.pick(lists).insert(0, _value(c))
        elif op == 4:
            other, other_key = c.pick(slots)
            mine, theirs = copy.deepcopy(container[key]), copy.deepcopy(other[other_key])
            container[key] = theirs
            if other is not container or other_key != key:
                other[other_key] = mine
        elif op == 5 and isinstance(container, dict):
            container[_key(c)] = container.pop(key)  # rename
        elif op == 6:
            container[key] = c.pick(_vocabulary()[1])
        elif op == 7 and paths:  # file paths reach the filesystem: worth a direct hit
            c.pick(paths)["path"] = c.pick(_PATHS)
        else:
            container[key] = _scalar(c)


def _dump(tree: dict[str, Any], c: _Choices) -> str | None:
    import yaml

    try:
        text = yaml.safe_dump(
            tree,
            default_flow_style=c.pick((False, True, None)),
            sort_keys=c.chance(4),
            allow_unicode=c.chance(2),
            width=c.pick((80, 20, 1000)),
        )
    except (yaml.YAMLError, ValueError, RecursionError):
        return None  # the harness cannot write this tree; not a focusgraph finding
    if c.chance(4):  # splice raw text in: nesting, tags, anchors, broken indentation
        at = c.below(len(text) + 1)
        depth = c.pick((1, 10, 200, 400, 1500))
        fragment = c.pick(
            (
                "[" * depth + "1" + "]" * depth,
                "{a: " * depth + "1" + "}" * depth,
                "- " * depth + "x",
                c.text(64),
                "!!binary aGk=",
                "&a x",
                "*a",
                "? [1, 2]\n: x\n",
                f"!!{c.pick(_TAGS)} {c.pick(_TAG_VALUES)}",
                "\t",
                "1" + "0" * c.pick((20, 400, 5000)),
            )
        )
        text = text[:at] + fragment + text[at:]
    return text


def _structured(c: _Choices) -> tuple[str | None, list[str]]:
    """A mutated preset as YAML text, plus ``--set`` items for the command-line path."""
    tree = copy.deepcopy(_preset_tree())
    _mutate(tree, c)
    keys, strings = _vocabulary()
    sets: list[str] = []
    for _ in range(c.below(4) if c.chance(3) else 0):
        if c.chance(2):
            name = c.pick(tuple(_preset_tree()["inputs"]))
        else:
            name = f"{c.pick(tuple(_preset_tree()['nodes']))}.{c.pick(keys)}"
        sets.append(f"{name}={c.text(32) if c.chance(2) else c.pick(strings)}")
    return _dump(tree, c), sets


def check(data: bytes) -> None:
    """Load and compile one fuzz input; raise if focusgraph fails other than by design.

    Raises
    ------
    Exception
        Anything but :class:`GraphValidationError` / :class:`PluginError` (those are
        caught and rendered to text here), or :class:`harness.SlowInputError`.
    """
    # Imported here, not at the top, so that main() can instrument them first.
    from focusgraph.graph.api import stand_ins as _stand_ins
    from focusgraph.graph.cli import parse_bindings
    from focusgraph.graph.compile import compile_graph
    from focusgraph.graph.document import load_document
    from focusgraph.graph.errors import GraphValidationError, PluginError
    from focusgraph.graph.registry import default_registry

    registry = default_registry()  # built once, before the clock starts
    _vocabulary()
    started = time.perf_counter()
    sets: list[str] = []
    if data.startswith(STRUCTURED):
        text, sets = _structured(_Choices(data[1:]))
        if text is None:
            return
    else:
        text = data.decode("utf-8", errors="replace")
    try:
        try:
            values, overrides = parse_bindings(sets, None, None)
            doc = load_document(text, source="<fuzz>")
            bound = {**_stand_ins(doc), **values}
            compile_graph(doc, bound, overrides=overrides, registry=registry, source="<fuzz>")
        except (GraphValidationError, PluginError) as exc:
            str(exc)  # the CLI prints it: formatting must not fail either
    except Exception as exc:
        if not allowed(exc):
            raise
    check_time(started, TIME_BUDGET)


def seed_inputs() -> dict[str, bytes]:
    """Seed corpus: the preset, small valid and invalid documents, structured recipes."""
    import yaml

    preset = preset_text()
    minimal = (
        "version: 1\nname: still\ninputs:\n  image: {type: path}\n  output: {type: path, default: o.png}\n"
        "timeline: {fps: 1, duration: 0}\nnodes:\n  photo: {type: load, params: {path: $image}}\n"
        "  out: {type: encode, inputs: {image: photo}, params: {path: $output}}\n"
    )
    seeds = {
        "preset.yaml": preset,
        "minimal.yaml": minimal,
        "flow.yaml": yaml.safe_dump(_preset_tree(), default_flow_style=True, width=10_000),
        "sized.yaml": minimal.replace("duration: 0}", "duration: 0, size: [64, 48]}"),
        "linked.yaml": minimal.replace("{path: $output}", "{path: $output, crf: {link: photo}}"),
        "cycle.yaml": minimal.replace("{type: load, params", "{type: load, inputs: {image: out}, params"),
        "dollar.yaml": minimal.replace("o.png", "$$o.png"),
        "empty.yaml": "",
        "list.yaml": "- 1\n- 2\n",
        "version2.yaml": minimal.replace("version: 1", "version: 2"),
    }
    out = {name: text.encode() for name, text in seeds.items()}
    for index in range(16):
        out[f"structured-{index:02d}"] = STRUCTURED + bytes((index * 37 + k * 11) % 256 for k in range(48))
    return out


def _load() -> None:
    """Import what is fuzzed (inside atheris's instrumentation)."""
    import yaml  # noqa: F401

    from focusgraph.graph import cli, document  # noqa: F401
    from focusgraph.graph.registry import default_registry

    default_registry()  # imports every node module inside the instrumentation


def main() -> None:
    """Run the fuzzer with libFuzzer's command line (see the module docstring)."""
    # Not instrumented: the harness's own YAML writing (not what is fuzzed) and PyYAML's
    # character-level reader/scanner/parser, whose per-character branches made every run
    # ~8x slower while the findings are in what is built from the events (composer onwards).
    skip = ["yaml.emitter", "yaml.serializer", "yaml.representer", "yaml.dumper", "yaml.reader"]
    skip += ["yaml.scanner", "yaml.parser"]
    fuzz(
        sys.argv,
        "graph",
        check,
        seed_inputs,
        load=_load,
        include=["focusgraph", "yaml"],
        exclude=skip,
        max_len=MAX_LEN,
        dictionary_tokens=_TOKENS,
    )


if __name__ == "__main__":
    main()
