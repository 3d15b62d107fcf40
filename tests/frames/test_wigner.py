import torch
from e3nn import o3

from equinets.frames import irreps_D, rotate_irreps

IRREPS = o3.Irreps("2x0e + 0o + 1o + 1e + 2e + 2o + 3o + 4e")


def test_irreps_D_matches_e3nn_and_is_a_representation():
    R = o3.rand_matrix(20, dtype=torch.float64)
    R[::2] = -R[::2]
    D = irreps_D(IRREPS, R)
    old = torch.get_default_dtype()
    try:  # e3nn builds its generators in the default dtype: compare in float64
        torch.set_default_dtype(torch.float64)
        ref = IRREPS.D_from_matrix(R)
    finally:
        torch.set_default_dtype(old)
    assert (D - ref).abs().max() < 1e-10
    eye = torch.eye(IRREPS.dim, dtype=torch.float64)
    assert (D @ D.mT - eye).abs().max() < 1e-13
    assert (irreps_D(IRREPS, R[:10] @ R[10:]) - D[:10] @ D[10:]).abs().max() < 1e-13
    gen = torch.tensor([[0.0, 1, 0], [-1, 0, 0], [0, 0, 0]], dtype=torch.float64)
    E = torch.linalg.matrix_exp(1e-9 * gen)  # near the identity, where Euler angles lose digits
    DE = irreps_D(IRREPS, E)
    assert (irreps_D(IRREPS, E @ R) - DE @ D).abs().max() < 1e-13
    assert 1e-10 < (DE - eye).abs().max() < 1e-8


def test_rotate_irreps_equals_matrix_product(dtype):
    R = o3.rand_matrix(3, dtype=torch.float64)
    x = torch.randn(7, IRREPS.dim, dtype=dtype)
    index = torch.tensor([0, 1, 2, 2, 1, 0, 0])
    got = rotate_irreps(x, IRREPS, R, index)
    want = (irreps_D(IRREPS, R)[index] @ x.double()[:, :, None])[..., 0]
    assert got.dtype == dtype
    torch.testing.assert_close(got.double(), want, atol=1e-6 if dtype == torch.float32 else 1e-13, rtol=0)
