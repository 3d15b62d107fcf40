r"""GIN: the Graph Isomorphism Network (Xu, Hu, Leskovec, Jegelka, "How Powerful are Graph Neural Networks?", ICLR 2019)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._checks import as_graph, check_channels, check_dtype, check_int
from ._base import TASKS
from .message_passing import aggregate
from .pool import global_add_pool

__all__ = ["GIN"]


class GIN(nn.Module):
    r"""Graph Isomorphism Network (Xu et al., ICLR 2019), sum aggregation and sum readout.

    Layer (Eq. 4.1), messages from the sources :math:`j` to the targets :math:`i` of ``edge_index``
    (PyG's order, the same as :class:`torch_geometric.nn.GINConv`):

    .. math::
        h_i^{(l+1)} = \mathrm{ReLU}\Big(\mathrm{MLP}^{(l)}\big((1 + \epsilon)\, h_i^{(l)}
        + \sum_{j \to i} h_j^{(l)}\big)\Big),

    with a two-layer ReLU MLP (Linear-ReLU-Linear). Readout (Eq. 4.2): the concatenation of all layers
    :math:`[h^{(0)}, \dots, h^{(L)}]`, summed over the nodes of each graph (``task="cls"``, one row per
    graph) or kept per node (``task="seg"``), then a linear head. Exactly as powerful as the 1-WL
    test, so it cannot tell 1-WL-equivalent graphs apart (regular graphs with constant input);
    :class:`~equinets.frames.GraphFrameAveraging` with node identifiers can.

    Args:
        in_channels: node feature columns of ``x`` (``>= 1``).
        out_channels: output columns.
        task: ``"cls"`` (one row per graph) or ``"seg"`` (one row per node).
        hidden_channels: width of every layer.
        num_layers: GIN layers :math:`L`.
        eps: :math:`\epsilon` of Eq. 4.1 (fixed).

    Shapes:
        - **input:** ``x`` ``(N, in_channels)``, ``edge_index`` ``(2, E)`` (row 0 source ``j``, row 1
          target ``i``; pass both directions of an undirected edge), ``batch`` ``(N,)`` sorted graph ids.
        - **output:** ``(B, out_channels)`` (``"cls"``) or ``(N, out_channels)`` (``"seg"``).

    Example:
        >>> gin = GIN(1, 2, hidden_channels=8)
        >>> gin
        GIN(in_channels=1, out_channels=2, task='cls', hidden_channels=8, num_layers=3)
        >>> gin(torch.ones(3, 1), torch.tensor([[0, 1], [1, 0]]), torch.tensor([0, 0, 1])).shape
        torch.Size([2, 2])
    """

    def __init__(self, in_channels: int, out_channels: int, task: str = "cls", *, hidden_channels: int = 32,
                 num_layers: int = 3, eps: float = 0.0) -> None:
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels", 1)
        self.out_channels = check_int(out_channels, "out_channels", 1)
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        self.task = task
        self.hidden_channels = check_int(hidden_channels, "hidden_channels", 1)
        self.num_layers = check_int(num_layers, "num_layers", 1)
        self.eps = float(eps)
        H = self.hidden_channels
        dims = [self.in_channels] + [H] * self.num_layers
        self.mlps = nn.ModuleList(nn.Sequential(nn.Linear(a, H), nn.ReLU(), nn.Linear(H, H)) for a in dims[:-1])
        self.head = nn.Linear(sum(dims), self.out_channels)

    def reset_parameters(self) -> None:
        """Re-initialise every linear layer."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                m.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor, batch: Tensor | None = None) -> Tensor:
        g = as_graph(x, edge_index, batch)
        check_channels(g.x, self.in_channels)
        check_dtype(g.x, self, "x")
        j, i = g.edge_index
        h = g.x
        hs = [h]
        for mlp in self.mlps:
            h = mlp((1 + self.eps) * h + aggregate(h[j], i, g.num_nodes, "sum")).relu()
            hs.append(h)
        z = torch.cat(hs, 1)
        if self.task == "cls":
            z = global_add_pool(z, g.batch, g.num_graphs)
        return self.head(z)

    def __repr__(self) -> str:
        s = f"in_channels={self.in_channels}, out_channels={self.out_channels}, task={self.task!r}, "
        s += f"hidden_channels={self.hidden_channels}, num_layers={self.num_layers}"
        if self.eps:
            s += f", eps={self.eps}"
        return f"{type(self).__name__}({s})"

