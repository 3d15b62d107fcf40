"""Strict JSON for everything equinets prints or writes: no bare ``NaN`` or ``Infinity``.

Python's :func:`json.dumps` writes ``float("nan")`` as ``NaN``, which is not JSON: ``jq``,
JavaScript and most parsers reject the whole document. :func:`json_safe` turns every non-finite
float (also NumPy floats and 0-d tensors) into ``None`` (JSON ``null``, "no value") and NumPy / torch
scalars and arrays into plain Python numbers and lists; :func:`dumps` serialises the result with
``allow_nan=False``, so a non-finite value that slipped through is an error, never a bare ``NaN``.

>>> dumps({"acc": float("nan"), "loss": 0.5, "n": 3})
'{"acc": null, "loss": 0.5, "n": 3}'
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["json_safe", "dumps"]


def json_safe(obj: Any) -> Any:
    """A copy of ``obj`` that strict JSON can hold: non-finite floats become ``None``.

    Dicts (keys made strings), lists and tuples are converted recursively; NumPy scalars and arrays
    and torch tensors become Python numbers or (nested) lists; a ``pathlib.Path`` its string.

    >>> import numpy as np, torch
    >>> json_safe({"a": np.float32(1.5), "b": [float("inf"), torch.tensor(2)], 3: (np.nan,)})
    {'a': 1.5, 'b': [None, 2], '3': [None]}
    """
    import os

    if isinstance(obj, bool) or obj is None or isinstance(obj, (str, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy scalar / array, torch tensor
        return json_safe(obj.tolist())
    if hasattr(obj, "item") and callable(obj.item):
        return json_safe(obj.item())
    raise TypeError(f"cannot write a {type(obj).__name__} as JSON: {obj!r}")


def dumps(obj: Any, **kwargs) -> str:
    """``json.dumps(json_safe(obj), allow_nan=False, **kwargs)``: strict JSON, non-finite floats as ``null``.

    >>> dumps([1.0, float("-inf")])
    '[1.0, null]'
    """
    return json.dumps(json_safe(obj), allow_nan=False, **kwargs)
