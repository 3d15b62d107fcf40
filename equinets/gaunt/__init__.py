"""Gaunt tensor products (Luo, Chen, Krishnapriyan, ICLR 2024): exact float64 tables and the functional product.

* :func:`gaunt_product` -- the coefficients of the pointwise product of two spherical functions in
  e3nn's basis and layout, by the grid route (Gauss-Legendre x azimuthal FFT) or the paper's 2D-Fourier
  route; :func:`gaunt_product_all_parities` for signals holding both parity values; :func:`sh_irreps`.
* :mod:`equinets.gaunt.tables` -- the one table builder: Gauss-Legendre grids, real spherical harmonics
  of any degree by a stable recurrence, the sparse change of basis to 2D Fourier (sh2f) and back (f2sh).
* Modules with e3nn ``Irreps``: :class:`GauntTensorProduct` (channel-wise, per-degree weights),
  :class:`GauntConv` (edge harmonics times node features), :class:`GauntManyBody` (MACE-style powers).
* :mod:`equinets.gaunt.reference` -- the slow, independent reference (c(l1,l2,l3) times ``o3.wigner_3j``)
  and e3nn's ``TensorProduct`` restricted to the Gaunt paths, the benchmark baseline.
"""

from . import tables
from .functional import NORMALIZATIONS, ROUTES, gaunt_product, gaunt_product_all_parities, sh_irreps
from .modules import GauntConv, GauntManyBody, GauntTensorProduct
from .reference import e3nn_gaunt_tensor_product, gaunt_tensor, reference_gaunt_product

__all__ = ["gaunt_product", "gaunt_product_all_parities", "sh_irreps", "tables", "NORMALIZATIONS", "ROUTES",
           "GauntTensorProduct", "GauntConv", "GauntManyBody", "reference_gaunt_product", "gaunt_tensor",
           "e3nn_gaunt_tensor_product"]
