"""The slow Gaunt reference (equinets.gaunt.reference) against independent mathematics.

* the closed-form 3j symbol with zero projections against sympy's ``wigner_3j``;
* the dense Gaunt tensor against Gauss-Legendre quadrature of products of e3nn's spherical harmonics
  (a grid built here from numpy's ``leggauss``, independent of equinets' tables), in all three normalisations;
* selection rule, symmetry, the constant function as the identity, equivariance under O(3);
* the e3nn ``TensorProduct`` on the Gaunt paths equals the reference, and the factor between a Gaunt path
  and e3nn's ``"component"`` Clebsch-Gordan path is sqrt((2l1+1)(2l2+1)/(4 pi)) |(l1 l2 l3; 0 0 0)|.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy
import torch
from e3nn import o3
from sympy.physics.wigner import wigner_3j as sympy_wigner_3j

from equinets.gaunt.reference import (
    e3nn_gaunt_tensor_product,
    gaunt_coefficient,
    gaunt_tensor,
    reference_gaunt_product,
    wigner_3j_zero,
)

F64 = torch.float64


def e3nn_D(irreps, R):
    """e3nn's D matrix in float64 (e3nn builds its generators in the default dtype)."""
    old = torch.get_default_dtype()
    try:
        torch.set_default_dtype(F64)
        return o3.Irreps(irreps).D_from_matrix(R)
    finally:
        torch.set_default_dtype(old)


def _sh_irreps(L, p_val=1):
    return o3.Irreps([(1, (l, p_val * (-1) ** l)) for l in range(L + 1)])


def test_wigner_3j_zero_matches_sympy():
    worst = 0.0
    for l1 in range(9):
        for l2 in range(9):
            for l3 in range(17):
                exact = sympy_wigner_3j(l1, l2, l3, 0, 0, 0)
                mine = wigner_3j_zero(l1, l2, l3)
                if exact == 0:
                    assert mine == 0.0, (l1, l2, l3)
                else:
                    ref = float(sympy.N(exact, 30))
                    worst = max(worst, abs(mine - ref) / abs(ref))
    assert worst < 4e-16
    # high degrees, where factorials overflow float64: still correctly rounded
    for l1, l2, l3 in [(40, 50, 30), (64, 64, 128), (100, 80, 60)]:
        ref = float(sympy.N(sympy_wigner_3j(l1, l2, l3, 0, 0, 0), 40))
        assert abs(wigner_3j_zero(l1, l2, l3) - ref) <= 4e-16 * abs(ref)


def test_gaunt_coefficient_values_and_table():
    # values quoted in the research note and the official const_wigner2gaunt table
    for (l1, l2, l3), v in {(0, 0, 0): 0.28209, (1, 1, 0): 0.48860, (1, 1, 2): 0.69099, (2, 2, 2): 0.75393,
                            (4, 4, 8): 1.56656}.items():
        assert abs(gaunt_coefficient(l1, l2, l3) - v) < 1e-5
    assert gaunt_coefficient(0, 0, 0) == pytest.approx(1 / math.sqrt(4 * math.pi), rel=1e-15)
    assert gaunt_coefficient(1, 1, 1) == 0.0 and gaunt_coefficient(1, 2, 4) == 0.0


def _quadrature_gaunt(L1, L2, Lout, normalization):
    """T[i,j,k] = sum_q w_q Y_i Y_j Y_k / sum_q w_q Y_k^2 on an exact Gauss-Legendre x uniform grid."""
    D = L1 + L2 + Lout
    nb, na = D // 2 + 2, D + 2  # one more ring and meridian than the minimum
    z, wz = np.polynomial.legendre.leggauss(nb)
    alpha = 2 * np.pi * np.arange(na) / na
    zz, aa = np.meshgrid(z, alpha, indexing="ij")
    s = np.sqrt(1 - zz**2)
    pts = torch.tensor(np.stack([s * np.cos(aa), s * np.sin(aa), zz], -1).reshape(-1, 3), dtype=F64)
    w = torch.tensor(np.repeat(wz, na) * 2 * np.pi / na, dtype=F64)
    def sh(L):
        return o3.spherical_harmonics(list(range(L + 1)), pts, normalize=True, normalization=normalization)
    Y1, Y2, Y3 = sh(L1), sh(L2), sh(Lout)
    norm3 = torch.einsum("q,qk,qk->k", w, Y3, Y3)
    return torch.einsum("q,qi,qj,qk->ijk", w, Y1, Y2, Y3) / norm3


@pytest.mark.parametrize("normalization", ["component", "integral", "norm"])
@pytest.mark.parametrize("L1,L2,Lout", [(4, 4, 8), (3, 5, 8), (6, 6, 12), (2, 6, 5), (5, 1, 3)])
def test_gaunt_tensor_equals_quadrature_of_e3nn_harmonics(L1, L2, Lout, normalization):
    T = gaunt_tensor(L1, L2, Lout, normalization)
    Q = _quadrature_gaunt(L1, L2, Lout, normalization)
    assert T.shape == Q.shape == ((L1 + 1) ** 2, (L2 + 1) ** 2, (Lout + 1) ** 2)
    assert (T - Q).abs().max() < 1e-12


def test_selection_rule_odd_paths_absent_even_paths_present():
    T = gaunt_tensor(4, 4, 8, "integral")
    for l1 in range(5):
        for l2 in range(5):
            for l3 in range(9):
                block = T[l1 * l1:(l1 + 1) ** 2, l2 * l2:(l2 + 1) ** 2, l3 * l3:(l3 + 1) ** 2]
                allowed = (l1 + l2 + l3) % 2 == 0 and abs(l1 - l2) <= l3 <= l1 + l2
                if allowed:
                    assert block.norm() == pytest.approx(gaunt_coefficient(l1, l2, l3), rel=1e-13)
                    assert block.norm() > 0
                else:
                    assert bool((block == 0).all()), (l1, l2, l3)
    # the classic case: two vectors have no vector (cross-product) output
    x, y = torch.randn(2, 7, 4, dtype=F64)
    x[:, 0] = y[:, 0] = 0
    assert reference_gaunt_product(x, y)[:, 1:4].abs().max() == 0


def test_integral_tensor_is_fully_symmetric_and_product_commutes():
    T = gaunt_tensor(3, 3, 3, "integral")
    for perm in [(1, 0, 2), (2, 1, 0), (0, 2, 1), (1, 2, 0)]:
        assert (T - T.permute(*perm)).abs().max() < 1e-15
    x1, x2 = torch.randn(5, 16, dtype=F64), torch.randn(5, 36, dtype=F64)
    for norm in ("component", "integral", "norm"):
        a, b = reference_gaunt_product(x1, x2, 7, norm), reference_gaunt_product(x2, x1, 7, norm)
        assert (a - b).abs().max() < 1e-13


def test_constant_function_is_the_identity():
    x = torch.randn(3, 25, dtype=F64)
    one = torch.ones(3, 1, dtype=F64)  # the function 1 in "component" normalisation
    assert (reference_gaunt_product(x, one) - x).abs().max() < 1e-14
    assert (reference_gaunt_product(one, x, 2) - x[:, :9]).abs().max() < 1e-14  # truncated output
    y0 = torch.randn(3, 1, dtype=F64)  # "integral": the function y0 Y00 = y0 / sqrt(4 pi)
    out = reference_gaunt_product(x, y0, normalization="integral")
    assert (out - y0 * x / math.sqrt(4 * math.pi)).abs().max() < 1e-14


def test_broadcasting_of_leading_axes():
    x1, x2 = torch.randn(4, 1, 9, dtype=F64), torch.randn(3, 16, dtype=F64)
    out = reference_gaunt_product(x1, x2, 4)
    assert out.shape == (4, 3, 25)
    assert (out[2, 1] - reference_gaunt_product(x1[2, 0], x2[1], 4)).abs().max() < 1e-14


@pytest.mark.parametrize("p1,p2", [(1, 1), (-1, 1), (-1, -1)])
def test_reference_is_o3_equivariant_with_derived_parities(p1, p2):
    L1, L2, Lout = 3, 2, 4
    i1, i2, io = _sh_irreps(L1, p1), _sh_irreps(L2, p2), _sh_irreps(Lout, p1 * p2)
    x1, x2 = torch.randn(6, i1.dim, dtype=F64), torch.randn(6, i2.dim, dtype=F64)
    for R in [o3.rand_matrix(dtype=F64), -o3.rand_matrix(dtype=F64), -torch.eye(3, dtype=F64)]:
        D1, D2, Do = (e3nn_D(i, R) for i in (i1, i2, io))
        lhs = reference_gaunt_product(x1 @ D1.T, x2 @ D2.T, Lout)
        rhs = reference_gaunt_product(x1, x2, Lout) @ Do.T
        assert (lhs - rhs).abs().max() < 1e-12


@pytest.mark.parametrize("normalization", ["component", "integral", "norm"])
def test_e3nn_gaunt_tensor_product_equals_reference(normalization):
    for L1, L2, Lout in [(2, 2, 4), (3, 1, 2)]:
        tp = e3nn_gaunt_tensor_product(L1, L2, Lout, normalization=normalization, dtype=F64)
        x1, x2 = torch.randn(5, (L1 + 1) ** 2, dtype=F64), torch.randn(5, (L2 + 1) ** 2, dtype=F64)
        assert (tp(x1, x2) - reference_gaunt_product(x1, x2, Lout, normalization)).abs().max() < 1e-13


def test_e3nn_gaunt_tensor_product_channelwise_layout_and_parities():
    u, L1, L2 = 3, 2, 1
    tp = e3nn_gaunt_tensor_product(L1, L2, channels=u, p_val1=-1, p_val2=1, learnable=True, dtype=F64)
    assert tp.irreps_in1 == o3.Irreps("3x0o+3x1e+3x2o") and tp.irreps_out == o3.Irreps("3x0o+3x1e+3x2o+3x3e")
    x1, x2 = torch.randn(4, tp.irreps_in1.dim, dtype=F64), torch.randn(4, tp.irreps_in2.dim, dtype=F64)

    def to_sh(x, irreps):  # mul_ir layout -> (batch, u, (L+1)**2)
        return torch.cat([x[:, s].reshape(-1, mul, ir.dim) for s, (mul, ir) in zip(irreps.slices(), irreps)], -1)

    ref = reference_gaunt_product(to_sh(x1, tp.irreps_in1), to_sh(x2, tp.irreps_in2))
    assert (to_sh(tp(x1, x2), tp.irreps_out) - ref).abs().max() < 1e-13


def test_gaunt_path_is_e3nn_component_path_times_degree_factor():
    """Research note 1.1: Gaunt = e3nn 'component' path x sqrt((2l1+1)(2l2+1)/4pi) |(l1 l2 l3; 0 0 0)|."""
    T = gaunt_tensor(2, 2, 4, "integral")
    for l1, l2, l3 in [(1, 1, 2), (2, 2, 2), (2, 1, 1), (2, 2, 4), (1, 1, 0)]:
        old = torch.get_default_dtype()
        try:
            torch.set_default_dtype(F64)
            tp = o3.TensorProduct(f"{l1}e", f"{l2}e", f"{l3}e", [(0, 0, 0, "uuu", False)],
                                  irrep_normalization="component", path_normalization="none")
        finally:
            torch.set_default_dtype(old)
        # the path as a tensor: feed the basis vectors
        e1, e2 = torch.eye(2 * l1 + 1, dtype=F64), torch.eye(2 * l2 + 1, dtype=F64)
        cg = tp(e1[:, None, :].expand(-1, 2 * l2 + 1, -1).reshape(-1, 2 * l1 + 1),
                e2[None, :, :].expand(2 * l1 + 1, -1, -1).reshape(-1, 2 * l2 + 1)).reshape(2 * l1 + 1, 2 * l2 + 1, -1)
        factor = math.sqrt((2 * l1 + 1) * (2 * l2 + 1) / (4 * math.pi)) * abs(wigner_3j_zero(l1, l2, l3))
        block = T[l1 * l1:(l1 + 1) ** 2, l2 * l2:(l2 + 1) ** 2, l3 * l3:(l3 + 1) ** 2]
        assert (block - factor * cg).abs().max() < 1e-14
