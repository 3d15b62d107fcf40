"""Route thresholds of :func:`equinets.gaunt.gaunt_product` (``route="auto"``), keyed by device type.

Measured by ``kernels/bench_gaunt_routes.py`` (one thread, float32, batch 256, one channel, products
``(L, L) -> 2 L`` for L = 1..16); the run is named in ``SOURCE`` and its table is
``kernels/results/gaunt_routes.csv``. ``D = L1 + L2 + L_out`` is the degree the grid integrates.

* ``grid_dense_max_D``: the grid route uses dense GEMMs with precomputed harmonics matrices for
  ``D <= grid_dense_max_D``, and the separable transforms (per-``(sign, |m|)`` Legendre matmuls plus
  two azimuthal GEMMs on the half circle, each way) above;
* ``fourier_D``: the ranges ``(lo, hi)`` of ``D`` where the 2D-Fourier route was measured faster than
  the grid route (empty: the grid won everywhere measured).

Devices without an entry use ``"cpu"``'s.
"""

SOURCE = (
    'kernels/bench_gaunt_routes.py --clock cpu, 2026-12-02 14:30 UTC, AMD EPYC, torch 2.13.0+cpu, 1 threa'
    'd(s), float32, batch 256, load 1.96'
)

THRESHOLDS = {
    "cpu": {'grid_dense_max_D': 12, 'fourier_D': []},
}
