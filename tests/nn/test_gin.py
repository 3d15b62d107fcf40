import copy

import pytest
import torch
from torch_geometric.nn import GINConv
from torch_geometric.nn import global_add_pool as pyg_add_pool

from equinets.nn import GIN, create_model, list_models


def _graphs(dtype, gen):
    """Three random *directed* graphs (edge direction matters) of sizes 4, 6, 5, edges in random order."""
    sizes = [4, 6, 5]
    eis, off = [], 0
    for n in sizes:
        a = torch.rand(n, n, generator=gen) < 0.4
        a.fill_diagonal_(False)
        eis.append(a.nonzero().T + off)
        off += n
    ei = torch.cat(eis, 1)
    ei = ei[:, torch.randperm(ei.shape[1], generator=gen)]
    batch = torch.arange(len(sizes)).repeat_interleave(torch.tensor(sizes))
    x = torch.randn(off, 3, generator=gen, dtype=torch.float64).to(dtype)
    return x, ei, batch


def _pyg_reference(gin: GIN, x, ei, batch):
    """The same network from PyG's GINConv (sources ei[0] -> targets ei[1]) with copied weights."""
    hs, h = [x], x
    for mlp in gin.mlps:
        conv = GINConv(copy.deepcopy(mlp), eps=gin.eps)
        conv.nn.load_state_dict(mlp.state_dict())  # GINConv re-initialises its nn: copy the weights after
        h = conv(h, ei).relu()
        hs.append(h)
    z = torch.cat(hs, 1)
    if gin.task == "cls":
        z = pyg_add_pool(z, batch)
    return gin.head(z)


@pytest.mark.parametrize("task", ["cls", "seg"])
def test_gin_equals_pyg_ginconv_with_copied_weights(dtype, task):
    gen = torch.Generator().manual_seed(0)
    x, ei, batch = _graphs(dtype, gen)
    gin = GIN(3, 5, task, hidden_channels=8, num_layers=3, eps=0.25).to(dtype)
    y = gin(x, ei, batch)
    assert y.shape == ((3, 5) if task == "cls" else (15, 5))
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(y, _pyg_reference(gin, x, ei, batch), rtol=tol, atol=tol)
    # the edge order is PyG's: reversing every edge is another function on directed graphs
    assert (gin(x, ei.flip(0), batch) - y).abs().max() > 1e-3 * y.abs().max()


def test_gin_registered_and_permutation_invariant():
    assert "gin" in list_models()
    gin = create_model("gin", in_channels=3, out_channels=2, task="cls", hidden_channels=8).double()
    assert isinstance(gin, GIN)
    assert repr(gin) == "GIN(in_channels=3, out_channels=2, task='cls', hidden_channels=8, num_layers=3)"
    x, ei, batch = _graphs(torch.float64, torch.Generator().manual_seed(1))
    perm = torch.cat([torch.randperm(4), torch.randperm(6) + 4, torch.randperm(5) + 10])  # new j = old perm[j]
    y = gin(x, ei, batch)
    torch.testing.assert_close(gin(x[perm], perm.argsort()[ei], batch), y, rtol=1e-12, atol=1e-12)
