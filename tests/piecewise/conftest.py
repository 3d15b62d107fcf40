"""Shared builders of the piecewise tests: well-separated anisotropic parts and independent per-part motions."""

import pytest
import torch
from e3nn import o3

from equinets.piecewise import APEN

F64 = torch.float64


def small_apen(out=5, task="seg", group="SE3", dtype=F64, **kw):
    kw = {"num_parts": 8, "num_blocks": 2, "channels": (16, 24), "num_scalars": 8, "num_vectors": 3, "k": 4,
          "head_channels": (16,), **kw}
    return APEN(out_channels=out, task=task, group=group, **kw).to(dtype).eval()


def separated_parts(num_parts=3, n=24, clouds=1, spacing=3.0, generator=None):
    """``clouds`` clouds of ``num_parts`` anisotropic Gaussian blobs ``spacing`` apart (simple spectra, float64).

    Returns ``pos`` ``(clouds * num_parts * n, 3)``, per-cloud part ids, ``batch``.
    """
    g = generator or torch.Generator().manual_seed(1)
    pos, lab, bt = [], [], []
    for c in range(clouds):
        for p in range(num_parts):
            R = o3.rand_matrix(1, dtype=F64)[0]
            blob = torch.randn(n, 3, dtype=F64, generator=g) * torch.tensor([0.35, 0.22, 0.1], dtype=F64)
            pos.append(blob @ R.T + torch.tensor([spacing * p, 0.3 * c, 0.0], dtype=F64))
            lab.append(torch.full((n,), p))
            bt.append(torch.full((n,), c))
    return torch.cat(pos), torch.cat(lab), torch.cat(bt)


def part_motions(labels, batch, group, num_parts, clouds=1, improper=True, scale=5.0):
    """Independent random motions per (cloud, part): rotation ``Q`` (``o3.rand_matrix``; every other part
    reflected for O3/E3 when ``improper``) and translation ``t`` (E3/SE3). Returns per-point ``(Q, t)``."""
    P = num_parts * clouds
    Q = o3.rand_matrix(P, dtype=F64)
    if improper and group in ("O3", "E3"):
        Q[1::2] = -Q[1::2]
    t = torch.randn(P, 3, dtype=F64) * scale if group in ("E3", "SE3") else torch.zeros(P, 3, dtype=F64)
    gid = batch * num_parts + labels
    return Q[gid], t[gid]


def move(pos, Q, t):
    return torch.einsum("nij,nj->ni", Q, pos) + t


def rel_err(a, b):
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


@pytest.fixture
def tol(dtype):
    return 1e-9 if dtype == torch.float64 else 1e-4


@pytest.fixture
def pw():
    """The builders above, for the test modules (``--import-mode=importlib`` cannot import a sibling module)."""
    from types import SimpleNamespace

    return SimpleNamespace(small_apen=small_apen, separated_parts=separated_parts, part_motions=part_motions,
                           move=move, rel_err=rel_err)


@pytest.fixture(autouse=True)
def _one_thread():
    """These tests run many tiny ops, which a 2-thread team only slows down (by 10x or more when another process
    holds a core); restore the suite's thread count afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
