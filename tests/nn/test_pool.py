import pytest
import torch
import torch_geometric.nn as pyg_nn

from equinets.nn import global_add_pool, global_max_pool, global_mean_pool

POOLS = {"max": (global_max_pool, pyg_nn.global_max_pool), "mean": (global_mean_pool, pyg_nn.global_mean_pool),
         "add": (global_add_pool, pyg_nn.global_add_pool)}


@pytest.mark.parametrize("layout", ["equal", "ragged", "unsorted_with_empty"])
@pytest.mark.parametrize("op", list(POOLS))
def test_global_pools_match_pyg(op, layout, dtype):
    g = torch.Generator().manual_seed(0)
    if layout == "equal":
        batch = torch.arange(3).repeat_interleave(5)
    elif layout == "ragged":
        batch = torch.tensor([0] * 4 + [1] * 7 + [2] * 2)
    else:  # cloud 2 of 4 has no point
        batch = torch.tensor([3, 0, 1, 3, 0, 1, 1, 3])
    x = torch.randn(len(batch), 4, generator=g, dtype=dtype, requires_grad=True)
    ours, ref = POOLS[op]
    size = 4 if layout == "unsorted_with_empty" else None
    a, b = ours(x, batch, size), ref(x, batch, size)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(a, b, **tol)
    w = torch.randn(a.shape, generator=g, dtype=dtype)
    torch.testing.assert_close(torch.autograd.grad((a * w).sum(), x)[0], torch.autograd.grad((b * w).sum(), x)[0], **tol)
