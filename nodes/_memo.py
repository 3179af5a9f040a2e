"""Reuse work derived from time-invariant inputs across frames.

The scheduler hands a node the very same array object every frame when the input is
time-invariant (the photo, the mask). Work that depends only on such inputs (the
photo's noise level, a premultiplied image) can then be done once: :func:`last_for`
remembers one result per function, keyed by the identity of its array arguments,
and holds only weak references to them, so nothing is kept alive by the memo.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import numpy as np

P = ParamSpec("P")
R = TypeVar("R")


def last_for(function: Callable[P, R]) -> Callable[P, R]:
    """Decorator: return the previous result when called again with the same arrays.

    Non-array arguments are compared by value; arrays by identity (arrays flowing
    through a render are never modified in place).
    """
    memo: list[tuple[tuple[Any, ...], R]] = []

    def signature(args: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(weakref.ref(arg) if isinstance(arg, np.ndarray) else arg for arg in args)

    def same(stored: tuple[Any, ...], args: tuple[Any, ...]) -> bool:
        for kept, arg in zip(stored, args, strict=True):
            if isinstance(kept, weakref.ref):
                if kept() is not arg:
                    return False
            elif kept != arg:
                return False
        return True

    @wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if kwargs:
            return function(*args, **kwargs)
        if memo and len(memo[0][0]) == len(args) and same(memo[0][0], args):
            return memo[0][1]
        result = function(*args, **kwargs)
        memo[:] = [(signature(args), result)]
        return result

    return wrapper
