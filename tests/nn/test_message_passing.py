import pytest
import torch
from torch_geometric.utils import scatter

from equinets.nn.message_passing import aggregate


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("aggr", ["sum", "mean", "max"])
def test_aggregate_matches_pyg_scatter_and_empty_targets_give_zero(aggr, dtype):
    g = torch.Generator().manual_seed(0)
    E, N, C = 50, 12, 5
    src = torch.randn(E, C, generator=g, dtype=dtype, requires_grad=True)
    index = torch.randint(0, N - 3, (E,), generator=g)  # targets N-3.. have no edges
    out = aggregate(src, index, N, aggr)
    ref = scatter(src, index, dim=0, dim_size=N, reduce=aggr)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(out, ref, atol=tol, rtol=tol)
    assert out[N - 3 :].abs().max() == 0
    w = torch.randn(N, C, generator=g, dtype=dtype)
    (gs,) = torch.autograd.grad((out * w).sum(), src)
    (gr,) = torch.autograd.grad((ref * w).sum(), src)
    torch.testing.assert_close(gs, gr, atol=tol, rtol=tol)


def test_aggregate_refuses_unknown_aggr_and_misshaped_index():
    with pytest.raises(ValueError, match="aggr"):
        aggregate(torch.zeros(3, 2), torch.zeros(3, dtype=torch.long), 2, "min")
    with pytest.raises(ValueError, match="index"):
        aggregate(torch.zeros(3, 2), torch.zeros(4, dtype=torch.long), 2)
