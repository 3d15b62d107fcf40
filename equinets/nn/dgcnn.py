"""DGCNN: dynamic graph CNN with EdgeConv (Wang, Sun, Liu, Sarma, Bronstein, Solomon, TOG 2019)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .._checks import PointInput
from ._base import PointBackbone, mlp_layers
from .neighbors import _knn_core, _knn_flat
from .pool import global_max_pool, global_mean_pool

__all__ = ["DGCNN", "EdgeConv"]


class EdgeConv(nn.Module):
    r"""EdgeConv with max aggregation, batch norm and LeakyReLU (Wang et al. 2019, eq. 8).

    .. math::
        h'_i = \max_{j \in \mathcal{N}(i)} \sigma\Big(\mathrm{BN}\big(\Theta\,[h_i,\ h_j - h_i]\big)\Big)

    :math:`\Theta = [\Theta_a \mid \Theta_b]` is applied per point rather than per edge, using
    :math:`\Theta [h_i, h_j - h_i] = (\Theta_a - \Theta_b) h_i + \Theta_b h_j`; batch norm and the
    activation then act on the ``(N k)`` edge features before the max.

    Shapes:
        ``h`` ``(N, C)`` and either dense neighbour indices ``(B, n, k)`` (``N = B n``, equal-size
        clouds) or ``edge_index`` ``(2, E)`` (row 0: centre ``i``, row 1: neighbour ``j``) -> ``(N, C')``.

    Example:
        >>> conv = EdgeConv(3, 8).eval()
        >>> conv(torch.randn(10, 3), idx=torch.randint(0, 5, (2, 5, 4))).shape
        torch.Size([10, 8])
    """

    def __init__(self, in_channels: int, out_channels: int, negative_slope: float = 0.2) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.lin = nn.Linear(2 * in_channels, out_channels, bias=False)
        self.norm = nn.BatchNorm1d(out_channels)
        self.act = nn.LeakyReLU(negative_slope)

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()
        self.norm.reset_parameters()

    def _edge(self, e: Tensor) -> Tensor:
        shape = e.shape
        return self.act(self.norm(e.reshape(-1, shape[-1]))).view(shape)

    def forward(self, h: Tensor, idx: Tensor | None = None, edge_index: Tensor | None = None) -> Tensor:
        w_a, w_b = self.lin.weight[:, : self.in_channels], self.lin.weight[:, self.in_channels :]
        centre = h @ (w_a - w_b).t()
        neigh = h @ w_b.t()
        if idx is not None:  # dense (B, n, k)
            B, n, k = idx.shape
            offset = (torch.arange(B, device=h.device) * n).view(B, 1, 1)
            e = centre.view(B, n, 1, -1) + neigh[(idx + offset).view(-1)].view(B, n, k, -1)
            return self._edge(e).amax(dim=2).reshape(B * n, -1)
        i, j = edge_index
        e = self._edge(centre[i] + neigh[j])
        out = e.new_zeros(h.shape[0], e.shape[1])
        return out.scatter_reduce(0, i.unsqueeze(1).expand_as(e), e, reduce="amax", include_self=False)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.in_channels}, {self.out_channels})"


class DGCNN(PointBackbone):
    r"""Dynamic Graph CNN: EdgeConv layers on a kNN graph recomputed in each layer's feature space.

    From Wang et al., "Dynamic Graph CNN for Learning on Point Clouds" (ACM TOG 2019). Starting from
    :math:`h^{(0)}_i = [\mathrm{pos}_i, x_i]`,

    .. math::
        h^{(l)}_i = \max_{j \in \mathrm{kNN}_{h^{(l-1)}}(i)}
            \mathrm{LReLU}\Big(\mathrm{BN}\big(\Theta_l [h^{(l-1)}_i,\ h^{(l-1)}_j - h^{(l-1)}_i]\big)\Big),

    then :math:`e_i = \mathrm{LReLU}(\mathrm{BN}(W [h^{(1)}_i, \dots, h^{(L)}_i]))`, the global feature
    :math:`g_b = [\max_{i \in b} e_i,\ \mathrm{mean}_{i \in b} e_i]` and the heads
    :math:`y_b = \mathrm{MLP}(g_b)` (``cls``) or :math:`y_i = \mathrm{MLP}([h^{(1)}_i, \dots,
    h^{(L)}_i, g_{b(i)}, c_{b(i)}])` (``seg``, :math:`c` the category one-hot). The kNN includes the
    point itself (as in the reference implementation); clouds smaller than ``k`` use all their points.
    Batches of equal-size clouds use dense ``(B, n, k)`` neighbour indices; ragged batches use a flat
    edge list, with the same result.

    Args:
        in_channels: per-point feature columns in ``x``.
        out_channels: classes (``cls``) or part labels (``seg``).
        task: ``"cls"`` or ``"seg"``.
        num_categories: object categories whose one-hot joins the global feature (``seg`` only).
        k: neighbours per point (self included).
        channels: output widths of the EdgeConv layers.
        emb_dims: width of the embedding before pooling.
        head_channels: hidden widths of the classification head.
        seg_channels: hidden widths of the segmentation head.
        dropout: dropout of the heads.
        negative_slope: LeakyReLU slope.

    Shapes:
        - **input:** ``pos`` ``(N, 3)`` / ``(B, N, 3)`` / ``Data``; ``x`` ``(N, in_channels)``;
          ``batch`` ``(N,)``; ``category`` ``(B,)``.
        - **output:** ``(B, out_channels)`` (``cls``); ``(N, out_channels)`` or
          ``(B, N, out_channels)`` (``seg``).

    Example:
        >>> model = DGCNN(0, 4, "seg", k=3, channels=(8, 8), emb_dims=16, seg_channels=(8,)).eval()
        >>> model
        DGCNN(in_channels=0, out_channels=4, task='seg', k=3, channels=(8, 8), emb_dims=16)
        >>> model(torch.randn(2, 6, 3)).shape
        torch.Size([2, 6, 4])
    """

    def __init__(
        self,
        in_channels: int = 0,
        out_channels: int = 40,
        task: str = "cls",
        *,
        num_categories: int = 0,
        k: int = 20,
        channels: Sequence[int] = (64, 64, 128, 256),
        emb_dims: int = 1024,
        head_channels: Sequence[int] = (512, 256),
        seg_channels: Sequence[int] = (256, 256, 128),
        dropout: float = 0.5,
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__(in_channels, out_channels, task, num_categories, dropout)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be an integer >= 1, got {k!r}")
        self.k = k
        self.channels, self.emb_dims = tuple(channels), int(emb_dims)
        self.head_channels, self.seg_channels = tuple(head_channels), tuple(seg_channels)
        widths = [3 + self.in_channels, *self.channels]
        self.convs = nn.ModuleList(
            EdgeConv(widths[i], widths[i + 1], negative_slope) for i in range(len(self.channels))
        )
        act = lambda: nn.LeakyReLU(negative_slope)  # noqa: E731
        self.emb = nn.Sequential(*mlp_layers([sum(self.channels), self.emb_dims], act=act))
        if task == "cls":
            hidden = [2 * self.emb_dims, *self.head_channels]
            self.head = nn.Sequential(
                *mlp_layers(hidden, act=act, dropout=self.dropout), nn.Linear(hidden[-1], out_channels)
            )
        else:
            hidden = [sum(self.channels) + 2 * self.emb_dims + self.num_categories, *self.seg_channels]
            self.head = nn.Sequential(
                *mlp_layers(hidden, act=act), nn.Dropout(self.dropout), nn.Linear(hidden[-1], out_channels)
            )

    def _forward(self, inp: PointInput, h: Tensor, onehot: Tensor | None) -> Tensor:
        n = self._equal_size(inp)
        B = inp.num_graphs
        feats = []
        for conv in self.convs:
            if n is not None:  # dense fast path
                hb = h.view(B, n, -1)
                idx = _knn_core(hb, hb, min(self.k, n))[0]
                h = conv(h, idx=idx)
            else:
                edge_index = _knn_flat(h, h, self.k, inp.batch, inp.batch, batch_size=B)
                h = conv(h, edge_index=edge_index)
            feats.append(h)
        cat = torch.cat(feats, dim=1)
        e = self.emb(cat)
        g = torch.cat([global_max_pool(e, inp.batch, B), global_mean_pool(e, inp.batch, B)], dim=1)
        if self.task == "cls":
            return self.head(g)
        parts = [cat, g[inp.batch]]
        if onehot is not None:
            parts.append(onehot[inp.batch])
        return self.head(torch.cat(parts, dim=1))

    def _repr_extra(self) -> str:
        return f"k={self.k}, channels={self.channels}, emb_dims={self.emb_dims}"
