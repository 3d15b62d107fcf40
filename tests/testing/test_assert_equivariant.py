import pytest
import torch
from e3nn import o3

from equinets.nn import PointNet
from equinets.testing import assert_equivariant, random_group_elements


def _centre(pos, batch):
    b = torch.zeros(pos.shape[0], dtype=torch.long) if batch is None else batch
    n = int(b.max()) + 1
    c = pos.new_zeros(n, 3).index_add(0, b, pos) / torch.bincount(b, minlength=n)[:, None]
    return c, b


def test_passes_for_exactly_equivariant_functions(dtype):
    pos = torch.randn(12, 3, dtype=dtype)
    batch = torch.tensor([0] * 5 + [1] * 7)

    def fn(p, x, b):  # per point: |x - c| (0e), x - c (1o), cross product with the cloud's first point (1e)
        c, b = _centre(p, b)
        d = p - c[b]
        first = d[torch.tensor([0, 5])][b]
        return torch.cat([d.norm(dim=1, keepdim=True), d, torch.linalg.cross(d, first)], dim=1)

    err = assert_equivariant(fn, pos, None, batch, group="E3", irreps_out="0e + 1o + 1e")
    assert err < (1e-9 if dtype == torch.float64 else 1e-4)
    with pytest.raises(AssertionError, match="improper"):  # a pseudo-vector declared as a vector
        assert_equivariant(fn, pos, None, batch, group="E3", irreps_out="0e + 1o + 1o")
    centroid = lambda p, x, b: _centre(p, b)[0]  # noqa: E731
    assert_equivariant(centroid, pos, None, batch, irreps_out="1o", position_output=True)


def test_catches_a_non_equivariant_backbone():
    net = PointNet(0, 4, hidden_channels=(8,), emb_dims=16, head_channels=(8,)).double().eval()
    with pytest.raises(AssertionError, match=r"not E3-equivariant: worst relative error \d"):
        assert_equivariant(net, torch.randn(2, 10, 3, dtype=torch.float64), group="E3")


def test_features_are_rotated_with_irreps_in_and_dense_outputs_kept():
    irreps = o3.Irreps("0e + 0o + 1o + 1e + 2e")
    pos = torch.randn(2, 6, 3, dtype=torch.float64)
    x = torch.randn(2, 6, irreps.dim, dtype=torch.float64)
    ident = lambda p, xx, b: xx  # noqa: E731  (equivariant exactly when input and output types agree)
    assert assert_equivariant(ident, pos, x, group="O3", irreps_in=irreps, irreps_out=irreps) < 1e-12
    with pytest.raises(AssertionError):
        assert_equivariant(ident, pos, x, group="O3", irreps_in=irreps, irreps_out="0e + 0e + 1o + 1e + 2e")


def test_tolerances_are_dtype_aware():
    pos = torch.randn(8, 3)
    noisy = lambda p, x, b: p.norm(dim=1, keepdim=True) * (1 + 1e-6 * torch.randn(1))  # noqa: E731
    assert assert_equivariant(noisy, pos, group="SO3") < 1e-4  # float32: rtol 1e-4
    with pytest.raises(AssertionError):
        assert_equivariant(noisy, pos.double(), group="SO3")  # float64: rtol 1e-9
    assert_equivariant(noisy, pos.double(), group="SO3", rtol=1e-3)


def test_random_group_elements():
    Q, t = random_group_elements(6, "E3", improper=True)
    assert torch.allclose(torch.linalg.det(Q), -torch.ones(6, dtype=torch.float64))
    assert torch.allclose(Q @ Q.mT, torch.eye(3, dtype=torch.float64).expand(6, 3, 3))
    Q, t = random_group_elements(6, "SO3")
    assert torch.equal(t, torch.zeros(6, 3, dtype=torch.float64))
    assert torch.allclose(torch.linalg.det(Q), torch.ones(6, dtype=torch.float64))
    with pytest.raises(ValueError, match="group"):
        random_group_elements(1, "E2")
