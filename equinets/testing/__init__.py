"""Testing helpers for equivariant models, public so users can test their own.

* :func:`assert_equivariant`: random O(3)/SO(3)/E(3)/SE(3) elements, dtype-aware tolerances, worst error;
* :func:`random_group_elements`: the random elements it uses.
"""

from __future__ import annotations

from .equivariance import assert_equivariant, random_group_elements

__all__ = ["assert_equivariant", "random_group_elements"]
