r"""FA-GNN: a frame-averaged message-passing network for particle systems (n-body position prediction).

From Puny, Atzmon, Ben-Hamu, Misra, Grover, Smith, Lipman, "Frame Averaging for Invariant and
Equivariant Network Design" (ICLR 2022), Sec. 5.3 (n-body): a GNN on the fully connected particle
graph whose input is framed by the PCA frames of the positions, with the latent vectors re-framed
between layers, so that every layer (and hence the network) is exactly E(3)-equivariant.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from .._checks import as_points, check_channels, check_choice, check_dtype, check_int, restore_layout
from ..nn._base import check_particle_model
from ..nn.graph_ops import fold_graph, full_graph
from ..nn.message_passing import AGGRS, aggregate
from .pca import Frames, check_frame_options, frame_pairs, pca_frames

__all__ = ["FAGNN", "FAGNNLayer"]

REFRAME = ("latent", "input")
_LATENT_GROUP = {"E3": "O3", "O3": "O3", "SE3": "SO3", "SO3": "SO3"}


class _Fold(NamedTuple):
    """One graph copy per (cloud, frame) pair with positive weight."""

    R: Tensor  # (K, 3, 3) frame rotations, model dtype
    w: Tensor  # (K,) frame weights, model dtype
    node: Tensor  # (M,) original node of each folded node
    pair: Tensor  # (M,) copy of each folded node
    edge: Tensor  # (E',) original edge of each folded edge
    edge_index: Tensor  # (2, E') folded edges


def _fold(fr: Frames, edge_index: Tensor, batch: Tensor, dtype: torch.dtype, num_samples: int | None) -> _Fold:
    cloud_of, frame_of, w = frame_pairs(fr, num_samples)
    g = fold_graph(edge_index, batch, cloud_of, fr.weights.shape[0])
    R = fr.rotations[cloud_of, frame_of].to(dtype)
    return _Fold(R, w.to(dtype), g.node, g.copy, g.edge, g.edge_index)


def _apply(v: Tensor, R: Tensor) -> Tensor:
    """``v @ R`` for ``(M, C, 3)`` ``v`` and ``(M, 3, 3)`` ``R`` as three broadcast products (a batched
    matmul of 3x3 blocks is several times slower on CPU)."""
    return v[..., 0:1] * R[:, None, 0] + v[..., 1:2] * R[:, None, 1] + v[..., 2:3] * R[:, None, 2]


def _to_frame(v: Tensor, fold: _Fold) -> Tensor:
    """``(N, C, 3)`` world vectors -> ``(M, C, 3)`` coordinates :math:`R^\\top v` in each copy's frame."""
    return _apply(v[fold.node], fold.R[fold.pair])


def _average(v: Tensor, fold: _Fold, num_nodes: int) -> Tensor:
    """``(M, C, 3)`` framed vectors -> ``(N, C, 3)`` weighted average of :math:`R v` over the frames."""
    y = _apply(v, fold.R[fold.pair].mT) * fold.w[fold.pair, None, None]
    return aggregate(y, fold.node, num_nodes, "sum")


class FAGNNLayer(nn.Module):
    r"""One residual message-passing layer (the GNN / EGNN "GCL" form), run inside a frame.

    .. math::
        m_{ij} = \phi_e\big([h_i,\ h_j,\ e_{ij}]\big), \qquad
        h_i \leftarrow h_i + \phi_h\Big(\Big[h_i,\ \mathrm{AGG}_{j \ne i}\, m_{ij}\Big]\Big),

    with :math:`\phi_e` = Linear-SiLU-Linear-SiLU, :math:`\phi_h` = Linear-SiLU-Linear and ``AGG``
    the sum (or mean, max) over the sources :math:`j` of the edges into :math:`i`
    (:func:`~equinets.nn.message_passing.aggregate`).

    Args:
        hidden_channels: width :math:`H` of the node state.
        edge_dim: columns of ``edge_attr``.
        aggr: ``"sum"``, ``"mean"`` or ``"max"``.

    Shapes:
        ``h`` ``(N, H)``, ``edge_index`` ``(2, E)`` (row 0 source ``j``, row 1 target ``i``),
        ``edge_attr`` ``(E, edge_dim)`` -> ``(N, H)``.

    Example:
        >>> layer = FAGNNLayer(6, 2)
        >>> layer(torch.randn(3, 6), torch.tensor([[1, 2], [0, 0]]), torch.randn(2, 2)).shape
        torch.Size([3, 6])
    """

    def __init__(self, hidden_channels: int, edge_dim: int, aggr: str = "sum") -> None:
        super().__init__()
        H = check_int(hidden_channels, "hidden_channels", 1)
        self.hidden_channels, self.edge_dim = H, check_int(edge_dim, "edge_dim", 0)
        self.aggr = check_choice(aggr, "aggr", AGGRS)
        self.edge_in = nn.Linear(2 * H + edge_dim, H)
        self.edge_out = nn.Linear(H, H)
        self.node_mlp = nn.Sequential(nn.Linear(2 * H, H), nn.SiLU(), nn.Linear(H, H))
        self.act = nn.SiLU()

    def forward(self, h: Tensor, edge_index: Tensor, edge_attr: Tensor) -> Tensor:
        j, i = edge_index
        H = self.hidden_channels
        W = self.edge_in.weight  # W [h_i, h_j, e_ij] split per node: two (N, H) products, then gathers
        pre = (h @ W[:, :H].t())[i] + (h @ W[:, H : 2 * H].t())[j] + edge_attr @ W[:, 2 * H :].t()
        m = self.act(self.edge_out(self.act(pre + self.edge_in.bias)))
        agg = aggregate(m, i, h.shape[0], self.aggr)
        return h + self.node_mlp(torch.cat([h, agg], dim=1))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.hidden_channels}, edge_dim={self.edge_dim}, aggr={self.aggr!r})"


class FAGNN(nn.Module):
    r"""FA-GNN (Puny et al., ICLR 2022, Sec. 5.3): frame-averaged GNN with latent vectors re-framed per layer.

    Positions :math:`x_i`, ``num_vectors`` vector features :math:`v_i` (velocities) and scalar
    features :math:`s_i` (charges) per particle; fully connected graph per cloud. Let
    :math:`\mathcal{F}_0 = \mathcal{F}(X)` be the PCA frames of the positions
    (:func:`~equinets.frames.pca_frames`, E3: 8 sign frames :math:`(R, t)`, :math:`t` the
    centroid). For each frame the backbone sees

    .. math::
        h^{(0)}_i = W_0\big[R^\top(x_i - t),\ R^\top v_i,\ s_i\big], \qquad
        e_{ij} = \big[s_i \odot s_j,\ \lVert x_i - x_j \rVert^2\big]

    (:math:`s_i s_j = q_i q_j` for charges; edge attributes are invariant; the scalars also enter
    the node embedding, where the paper's code feeds only the 6 framed position and velocity
    coordinates). Layer :math:`l` is a
    :class:`FAGNNLayer` :math:`\psi_l` run in every frame of :math:`\mathcal{F}_l`; between layers
    the ``hidden_channels``-dim state is read as ``hidden_channels / 3`` latent 3-vectors, un-framed and averaged
    (FA, Eq. (4)),

    .. math::
        Z^{(l+1)}_i = \sum_{R \in \mathcal{F}_l} w_R\, R\, \psi_l\big(h^{(l)}\big)_i
        \in \mathbb{R}^{(H/3) \times 3},

    an E(3)-equivariant (rotation-equivariant, translation-invariant) latent per particle, then
    re-framed, :math:`h^{(l+1)} = R^\top Z^{(l+1)}` for :math:`R \in \mathcal{F}_{l+1}`. With
    ``reframe="latent"`` (the paper's code) :math:`\mathcal{F}_{l+1}` is a new PCA frame of all
    :math:`n H/3` latent vectors of the system (group O3 about the origin: latents do not
    translate); with ``"input"`` it is :math:`\mathcal{F}_0` again. After the last layer a decoder
    gives ``out_channels / 3`` vectors per particle in each frame, which are un-framed, averaged
    and, for ``position_output``, shifted by :math:`t`:
    :math:`\hat x_i = t + \sum_{R \in \mathcal{F}_{L-1}} w_R\, R\, \mathrm{dec}(h^{(L)})_i`.

    Each layer is a frame average of an arbitrary function of framed inputs and invariants, so the
    whole network is exactly E(3)-equivariant (for ``group="SE3"``, SE(3)) and, being a
    message-passing network, permutation-equivariant, in train and eval mode alike (no batch
    statistics, no dropout). All (cloud, frame) pairs are folded into one batch of graphs, so each
    layer runs once per forward. Frames are detached (as in :class:`FrameAveraging`); near a
    degenerate spectrum the frames are blended as :func:`pca_frames` describes.

    Args:
        in_channels: columns of ``x``: ``3 * num_vectors`` vector columns first, then scalars
            (n-body: ``[vel (3), charge (1)]``, 4).
        out_channels: output columns, a multiple of 3 (``out_channels / 3`` vectors per particle).
        task: ``"seg"`` (one output row per particle, the only level supported).
        hidden_channels: width :math:`H` of the node state, a multiple of 3 (paper: 60 = 20 vectors).
        num_layers: message-passing layers (paper: 4).
        num_vectors: vector (``1o``) features at the start of ``x``; default 1 when
            ``in_channels >= 3``, else 0.
        reframe: ``"latent"`` or ``"input"`` (see above).
        group: ``"E3"``, ``"SE3"``, ``"O3"`` or ``"SO3"`` (O3/SO3: about the origin, no centring).
        position_output: add the frame translation :math:`t` to the outputs (positions).
        aggr: ``"sum"``, ``"mean"`` or ``"max"`` message aggregation.
        num_samples: a sample count: in training mode, run each layer in ``num_samples`` frames per cloud drawn from
            the frame weights (stochastic FA, :func:`frame_pairs`): the layers run on
            ``num_samples`` copies per cloud instead of 8 (n-body, batch 100, 2 samples: 72 ms
            against 210 ms per training step on one CPU core). ``eval()`` always averages over the
            full frames, so evaluation stays exact; training optimises the sampled network, which is
            equivariant in distribution.
        tol, degenerate, num_angles: degenerate-spectrum policy of the frames, see :func:`pca_frames`.

    Shapes:
        - **input:** ``pos`` ``(N, 3)`` / ``(B, N, 3)`` / ``Data``; ``x`` ``(N, in_channels)``
          (or ``(B, N, in_channels)``); ``batch`` ``(N,)`` sorted cloud ids.
        - **output:** ``(N, out_channels)`` (``(B, N, out_channels)`` for dense input).

    Example:
        >>> from equinets.testing import assert_equivariant
        >>> model = FAGNN(4, 3, hidden_channels=12, num_layers=2).double()
        >>> model
        FAGNN(in_channels=4, out_channels=3, task='seg', hidden_channels=12, num_layers=2, group='E3', reframe='latent')
        >>> pos, vel = torch.randn(10, 3, dtype=torch.float64), torch.randn(10, 3, dtype=torch.float64)
        >>> x = torch.cat([vel, torch.randint(0, 2, (10, 1)).double() * 2 - 1], dim=1)
        >>> batch = torch.arange(2).repeat_interleave(5)
        >>> model(pos, x, batch).shape
        torch.Size([10, 3])
        >>> assert_equivariant(model, pos, x, batch, irreps_in="1x1o + 1x0e", irreps_out="1o",
        ...                    position_output=True) < 1e-9
        True
    """

    def __init__(
        self,
        in_channels: int = 4,
        out_channels: int = 3,
        task: str = "seg",
        *,
        hidden_channels: int = 60,
        num_layers: int = 4,
        num_vectors: int | None = None,
        reframe: str = "latent",
        group: str = "E3",
        position_output: bool = True,
        aggr: str = "sum",
        num_samples: int | None = None,
        tol: float | None = None,
        degenerate: str = "blend",
        num_angles: int = 4,
    ) -> None:
        super().__init__()
        in_channels, out_channels, num_vectors = check_particle_model("FAGNN", in_channels, out_channels, task,
                                                                      num_vectors)
        hidden_channels = check_int(hidden_channels, "hidden_channels", 3)
        num_layers = check_int(num_layers, "num_layers", 1)
        if hidden_channels % 3:
            raise ValueError(f"hidden_channels must be a multiple of 3 (read as hidden_channels / 3 latent vectors), "
                             f"got {hidden_channels}")
        check_choice(reframe, "reframe", REFRAME)
        check_choice(aggr, "aggr", AGGRS)
        check_frame_options(group, tol, degenerate, num_angles)
        self.in_channels, self.out_channels, self.task = in_channels, out_channels, task
        self.hidden_channels, self.num_layers, self.num_vectors = hidden_channels, num_layers, num_vectors
        self.num_scalars = in_channels - 3 * num_vectors
        self.reframe, self.group, self.position_output = reframe, group, bool(position_output)
        self.tol, self.degenerate, self.num_angles = tol, degenerate, num_angles
        self.num_samples = check_int(num_samples, "num_samples", 1, allow_none=True)
        H = hidden_channels
        self.embed = nn.Linear(3 * (1 + num_vectors) + self.num_scalars, H)
        self.layers = nn.ModuleList(FAGNNLayer(H, self.num_scalars + 1, aggr) for _ in range(num_layers))
        self.decoder = nn.Sequential(nn.Linear(H, H), nn.SiLU(), nn.Linear(H, out_channels))

    def frames(self, pos, batch: Tensor | None = None) -> Frames:
        """PCA frames :math:`\\mathcal{F}_0` of the positions (see :func:`pca_frames`)."""
        return pca_frames(pos, batch, self.group, tol=self.tol, degenerate=self.degenerate, num_angles=self.num_angles)

    def latent_frames(self, latents: Tensor, batch: Tensor) -> Frames:
        """PCA frames of the latent vectors ``(N, C, 3)`` of each cloud, about the origin (O3 / SO3)."""
        C = latents.shape[1]
        return pca_frames(latents.reshape(-1, 3), batch.repeat_interleave(C), _LATENT_GROUP[self.group],
                          tol=self.tol, degenerate=self.degenerate, num_angles=self.num_angles)

    def forward(self, pos, x: Tensor | None = None, batch: Tensor | None = None) -> Tensor:
        inp = as_points(pos, x, batch)
        check_channels(inp.x, self.in_channels)
        check_dtype(inp.pos, self, "pos")
        check_dtype(inp.x, self, "x")
        p, b, B, N = inp.pos, inp.batch, inp.num_graphs, inp.pos.shape[0]
        dtype = p.dtype
        feats = p.new_zeros(N, 0) if inp.x is None else inp.x
        V = self.num_vectors
        vec, sca = feats[:, : 3 * V].reshape(N, V, 3), feats[:, 3 * V :]
        edge_index = full_graph(b, B)
        j, i = edge_index
        d = p[i] - p[j]
        edge_attr = torch.cat([sca[i] * sca[j], (d * d).sum(1, keepdim=True)], dim=1)  # invariants
        fr = self.frames(p, b)
        t = fr.translation.to(dtype)
        k = self.num_samples if self.training else None
        fold = _fold(fr, edge_index, b, dtype, k)
        framed = _to_frame(torch.cat([(p - t[b]).unsqueeze(1), vec], dim=1), fold)  # R^T (x - t), R^T v
        h = self.embed(torch.cat([framed.flatten(1), sca[fold.node]], dim=1))
        C = self.hidden_channels // 3
        for l, layer in enumerate(self.layers):
            if l > 0:
                Z = _average(h.reshape(-1, C, 3), fold, N)  # (N, C, 3): un-framed, averaged, equivariant
                if self.reframe == "latent":
                    fold = _fold(self.latent_frames(Z, b), edge_index, b, dtype, k)
                h = _to_frame(Z, fold).flatten(1)
            h = layer(h, fold.edge_index, edge_attr[fold.edge])
        out = _average(self.decoder(h).reshape(h.shape[0], -1, 3), fold, N)
        if self.position_output:
            out = out + t[b].unsqueeze(1)
        return restore_layout(out.reshape(N, self.out_channels), inp, per_point=True)

    def __repr__(self) -> str:
        s = f"in_channels={self.in_channels}, out_channels={self.out_channels}, task={self.task!r}, "
        s += f"hidden_channels={self.hidden_channels}, num_layers={self.num_layers}, group={self.group!r}, "
        s += f"reframe={self.reframe!r}"
        if self.num_vectors != (1 if self.in_channels >= 3 else 0):
            s += f", num_vectors={self.num_vectors}"
        if not self.position_output:
            s += ", position_output=False"
        if self.num_samples is not None:
            s += f", num_samples={self.num_samples}"
        return f"{type(self).__name__}({s})"
