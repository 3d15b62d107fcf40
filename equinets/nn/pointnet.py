"""PointNet (Qi, Su, Mo, Guibas, CVPR 2017)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .._checks import PointInput, check_int
from ._base import PointBackbone, check_widths, mlp_layers
from .pool import global_max_pool

__all__ = ["PointNet"]


class _TNet(nn.Module):
    """Input transform network of PointNet: a small PointNet predicting one 3x3 matrix per cloud.

    Initialised to the identity (the last layer starts at zero).
    """

    def __init__(self, dim: int = 3) -> None:
        super().__init__()
        self.dim = dim
        self.point = nn.Sequential(*mlp_layers([dim, 64, 128, 1024]))
        self.head = nn.Sequential(*mlp_layers([1024, 512, 256]), nn.Linear(256, dim * dim))
        self._post_reset()

    def _post_reset(self) -> None:
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, pos: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
        g = global_max_pool(self.point(pos), batch, num_graphs)
        eye = torch.eye(self.dim, dtype=pos.dtype, device=pos.device)
        return self.head(g).view(-1, self.dim, self.dim) + eye


class PointNet(PointBackbone):
    r"""PointNet: a shared per-point MLP and a symmetric max pooling.

    From Qi et al., "PointNet: Deep Learning on Point Sets for 3D Classification and Segmentation"
    (CVPR 2017). With per-point inputs :math:`p_i = [\mathrm{pos}_i, x_i]`,

    .. math::
        h_i = \mathrm{MLP}(p_i), \qquad g_b = \max_{i \in b} h_i, \qquad
        y_b = \mathrm{MLP}_{\mathrm{cls}}(g_b), \qquad
        y_i = \mathrm{MLP}_{\mathrm{seg}}\big([h^{(1)}_i, \dots, h^{(L)}_i, g_{b(i)}, c_{b(i)}]\big),

    where :math:`h^{(l)}` are the shared-MLP layer outputs and :math:`c_b` the category one-hot
    (part segmentation). With ``input_transform=True`` a T-Net predicts :math:`T_b \in \mathbb{R}^{3
    \times 3}` per cloud (initialised to the identity) and positions become :math:`\mathrm{pos}_i T_b`.
    Max pooling makes the cloud output invariant to point order, and the per-point output equivariant.

    Args:
        in_channels: per-point feature columns in ``x`` (0: positions only).
        out_channels: classes (``cls``) or part labels (``seg``).
        task: ``"cls"`` (one row per cloud) or ``"seg"`` (one row per point).
        num_categories: object categories whose one-hot joins the global feature (``seg`` only).
        hidden_channels: widths of the shared MLP layers before the embedding layer.
        emb_dims: width of the last shared layer (the global feature).
        head_channels: hidden widths of the classification head.
        seg_channels: hidden widths of the segmentation head.
        input_transform: use the input T-Net on positions.
        dropout: dropout of the heads.

    Shapes:
        - **input:** ``pos`` ``(N, 3)`` / ``(B, N, 3)`` / ``Data``; ``x`` ``(N, in_channels)`` or
          ``(B, N, in_channels)``; ``batch`` ``(N,)``; ``category`` ``(B,)``.
        - **output:** ``(B, out_channels)`` for ``cls``; ``(N, out_channels)`` or
          ``(B, N, out_channels)`` for ``seg``.

    Example:
        >>> model = PointNet(0, 5, hidden_channels=(8,), emb_dims=16, head_channels=(8,)).eval()
        >>> model
        PointNet(in_channels=0, out_channels=5, task='cls', hidden_channels=(8,), emb_dims=16)
        >>> model(torch.randn(2, 10, 3)).shape
        torch.Size([2, 5])
    """

    def __init__(
        self,
        in_channels: int = 0,
        out_channels: int = 40,
        task: str = "cls",
        *,
        num_categories: int = 0,
        hidden_channels: Sequence[int] = (64, 64, 64, 128),
        emb_dims: int = 1024,
        head_channels: Sequence[int] = (512, 256),
        seg_channels: Sequence[int] = (256, 256, 128),
        input_transform: bool = False,
        dropout: float = 0.5,
    ) -> None:
        super().__init__(in_channels, out_channels, task, num_categories, dropout)
        self.hidden_channels = check_widths(hidden_channels, "hidden_channels")
        self.emb_dims = check_int(emb_dims, "emb_dims", 1)
        self.head_channels = check_widths(head_channels, "head_channels")
        self.seg_channels = check_widths(seg_channels, "seg_channels")
        self.input_transform = bool(input_transform)
        self.tnet = _TNet(3) if self.input_transform else None
        widths = [3 + self.in_channels, *self.hidden_channels, self.emb_dims]
        self.layers = nn.ModuleList(
            nn.Sequential(*mlp_layers(widths[i : i + 2])) for i in range(len(widths) - 1)
        )
        if task == "cls":
            hidden = [self.emb_dims, *self.head_channels]
            self.head = nn.Sequential(
                *mlp_layers(hidden, dropout=self.dropout), nn.Linear(hidden[-1], out_channels)
            )
        else:
            c_in = sum(widths[1:]) + self.emb_dims + self.num_categories
            hidden = [c_in, *self.seg_channels]
            self.head = nn.Sequential(
                *mlp_layers(hidden), nn.Dropout(self.dropout), nn.Linear(hidden[-1], out_channels)
            )

    def _cloud_level_modules(self) -> list[nn.Module]:
        mods = [self.tnet.head] if self.tnet is not None else []
        return mods + ([self.head] if self.task == "cls" else [])

    def _forward(self, inp: PointInput, h: Tensor, onehot: Tensor | None) -> Tensor:
        if self.tnet is not None:
            t = self.tnet(inp.pos, inp.batch, inp.num_graphs)  # (B, 3, 3)
            pos = torch.bmm(inp.pos.unsqueeze(1), t[inp.batch]).squeeze(1)
            h = torch.cat([pos, h[:, 3:]], dim=1)
        feats = []
        for layer in self.layers:
            h = layer(h)
            feats.append(h)
        g = global_max_pool(h, inp.batch, inp.num_graphs)
        if self.task == "cls":
            return self.head(g)
        parts = [*feats, g[inp.batch]]
        if onehot is not None:
            parts.append(onehot[inp.batch])
        return self.head(torch.cat(parts, dim=1))

    def _repr_extra(self) -> str:
        s = f"hidden_channels={self.hidden_channels}, emb_dims={self.emb_dims}"
        return s + (", input_transform=True" if self.input_transform else "")
