"""A message-passing network on a kNN or radius graph of the points (MPNN, Gilmer et al. 2017)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .._checks import PointInput, check_choice, check_edge_index, check_int, check_real
from ._base import PointBackbone, check_widths
from .message_passing import AGGRS, aggregate
from .neighbors import knn_graph, radius_graph
from .pool import global_max_pool, global_mean_pool

__all__ = ["GNN", "PointMessageLayer"]


class PointMessageLayer(nn.Module):
    r"""One residual message-passing layer with geometric edge inputs.

    .. math::
        m_{ij} = \phi_m\big([h_i,\ h_j,\ p_j - p_i,\ \lVert p_j - p_i \rVert]\big), \qquad
        a_i = \underset{j \in \mathcal{N}(i)}{\mathrm{AGG}}\ m_{ij}, \qquad
        h_i \leftarrow \mathrm{LN}\big(h_i + \phi_h([h_i, a_i])\big),

    with two-layer SiLU MLPs :math:`\phi_m, \phi_h`, ``AGG`` the sum, mean or max of
    :func:`~equinets.nn.message_passing.aggregate` (zero for a point without neighbours) and LN a
    layer norm.

    Shapes:
        ``h`` ``(N, H)``, ``pos`` ``(N, 3)``, ``edge_index`` ``(2, E)`` (row 0 source ``j``, row 1
        target ``i``) -> ``(N, H)``.

    Example:
        >>> layer = PointMessageLayer(4)
        >>> layer(torch.randn(3, 4), torch.randn(3, 3), torch.tensor([[1, 2], [0, 0]])).shape
        torch.Size([3, 4])
    """

    def __init__(self, hidden_channels: int, aggr: str = "mean") -> None:
        super().__init__()
        H = check_int(hidden_channels, "hidden_channels", 1)
        check_choice(aggr, "aggr", AGGRS)
        self.hidden_channels, self.aggr = H, aggr
        self.msg_in = nn.Linear(2 * H + 4, H)
        self.msg_out = nn.Linear(H, H)
        self.upd = nn.Sequential(nn.Linear(2 * H, H), nn.SiLU(), nn.Linear(H, H))
        self.norm = nn.LayerNorm(H)
        self.act = nn.SiLU()

    def forward(self, h: Tensor, pos: Tensor, edge_index: Tensor) -> Tensor:
        j, i = check_edge_index(edge_index, h.shape[0])  # source j, target i
        H = self.hidden_channels
        w = self.msg_in.weight  # first message layer split per node: W [h_i, h_j, d, |d|]
        d = pos[j] - pos[i]
        geo = torch.cat([d, d.norm(dim=1, keepdim=True)], dim=1)
        pre = (h @ w[:, :H].t())[i] + (h @ w[:, H : 2 * H].t())[j]
        pre = pre + geo @ w[:, 2 * H :].t() + self.msg_in.bias
        m = self.msg_out(self.act(pre))
        out = aggregate(m, i, h.shape[0], self.aggr)
        return self.norm(h + self.upd(torch.cat([h, out], dim=1)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.hidden_channels}, aggr={self.aggr!r})"


class GNN(PointBackbone):
    r"""Message-passing network on a kNN (or radius) graph built from the positions.

    A neural message-passing network (Gilmer et al., "Neural Message Passing for Quantum Chemistry",
    ICML 2017) with relative-position edge inputs: :math:`h^{(0)}_i = W_0 [\mathrm{pos}_i, x_i]`,
    ``num_layers`` residual :class:`PointMessageLayer` updates

    .. math::
        h^{(l)}_i = \mathrm{LN}\Big(h^{(l-1)}_i + \phi_h\big([h^{(l-1)}_i,\
            \mathrm{AGG}_{j \in \mathcal{N}(i)} \phi_m([h^{(l-1)}_i, h^{(l-1)}_j, p_j - p_i,
            \lVert p_j - p_i \rVert])]\big)\Big),

    then :math:`y_b = \mathrm{MLP}([\max_{i\in b} h_i, \mathrm{mean}_{i \in b} h_i])` (``cls``) or
    :math:`y_i = \mathrm{MLP}([h_i, c_{b(i)}])` (``seg``, :math:`c` the category one-hot). The graph
    :math:`\mathcal{N}(i)` is the ``k`` nearest other points (no self-loop) or, with ``radius``, the
    points closer than ``radius`` (at most ``max_num_neighbors``).

    Args:
        in_channels: per-point feature columns in ``x``.
        out_channels: classes (``cls``) or part labels (``seg``).
        task: ``"cls"`` or ``"seg"``.
        num_categories: object categories whose one-hot joins the point features (``seg`` only).
        hidden_channels: width ``H`` of the node features.
        num_layers: message-passing layers.
        k: neighbours per point of the kNN graph.
        radius: use a radius graph of this radius instead of the kNN graph.
        max_num_neighbors: cap of the radius graph.
        aggr: ``"sum"``, ``"mean"`` or ``"max"``.
        head_channels: hidden widths of the head.
        dropout: dropout of the head.

    Shapes:
        - **input:** ``pos`` ``(N, 3)`` / ``(B, N, 3)`` / ``Data``; ``x`` ``(N, in_channels)``;
          ``batch`` ``(N,)``; ``category`` ``(B,)``.
        - **output:** ``(B, out_channels)`` (``cls``); ``(N, out_channels)`` or
          ``(B, N, out_channels)`` (``seg``).

    Example:
        >>> model = GNN(0, 3, hidden_channels=8, num_layers=2, k=4).eval()
        >>> model
        GNN(in_channels=0, out_channels=3, task='cls', hidden_channels=8, num_layers=2, k=4, aggr='mean')
        >>> model(torch.randn(12, 3), batch=torch.tensor([0] * 5 + [1] * 7)).shape
        torch.Size([2, 3])
    """

    def __init__(
        self,
        in_channels: int = 0,
        out_channels: int = 40,
        task: str = "cls",
        *,
        num_categories: int = 0,
        hidden_channels: int = 64,
        num_layers: int = 3,
        k: int = 16,
        radius: float | None = None,
        max_num_neighbors: int = 32,
        aggr: str = "mean",
        head_channels: Sequence[int] = (256,),
        dropout: float = 0.5,
    ) -> None:
        super().__init__(in_channels, out_channels, task, num_categories, dropout)
        self.hidden_channels = check_int(hidden_channels, "hidden_channels", 1)
        self.num_layers = check_int(num_layers, "num_layers", 1)
        self.k = check_int(k, "k", 1)
        self.max_num_neighbors = check_int(max_num_neighbors, "max_num_neighbors", 1)
        if radius is not None and not check_real(radius, "radius", 0.0) > 0:
            raise ValueError(f"radius must be > 0 or None, got {radius!r}")
        self.radius = radius
        self.aggr = check_choice(aggr, "aggr", AGGRS)
        self.head_channels = check_widths(head_channels, "head_channels")
        H = hidden_channels
        self.embed = nn.Linear(3 + self.in_channels, H)
        self.layers = nn.ModuleList(PointMessageLayer(H, aggr) for _ in range(num_layers))
        c_in = 2 * H if task == "cls" else H + self.num_categories
        widths = [c_in, *self.head_channels]
        head: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            head += [nn.Linear(a, b), nn.ReLU(), nn.Dropout(self.dropout)]
        self.head = nn.Sequential(*head, nn.Linear(widths[-1], out_channels))

    def _forward(self, inp: PointInput, h: Tensor, onehot: Tensor | None) -> Tensor:
        pos, batch, B = inp.pos, inp.batch, inp.num_graphs
        if self.radius is None:
            edge_index = knn_graph(pos, self.k, batch, loop=False, batch_size=B)
        else:
            edge_index = radius_graph(pos, self.radius, batch, loop=False, max_num_neighbors=self.max_num_neighbors,
                                      batch_size=B)
        h = self.embed(h)
        for layer in self.layers:
            h = layer(h, pos, edge_index)
        if self.task == "cls":
            return self.head(torch.cat([global_max_pool(h, batch, B), global_mean_pool(h, batch, B)], dim=1))
        if onehot is not None:
            h = torch.cat([h, onehot[batch]], dim=1)
        return self.head(h)

    def _repr_extra(self) -> str:
        g = f"radius={self.radius}" if self.radius is not None else f"k={self.k}"
        s = f"hidden_channels={self.hidden_channels}, num_layers={self.num_layers}"
        return f"{s}, {g}, aggr={self.aggr!r}"
