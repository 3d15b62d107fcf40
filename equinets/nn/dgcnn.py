"""DGCNN: dynamic graph CNN with EdgeConv (Wang, Sun, Liu, Sarma, Bronstein, Solomon, TOG 2019)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .._checks import PointInput, check_dtype, check_edge_index, check_int, check_real
from ._base import PointBackbone, check_widths, mlp_layers
from .message_passing import aggregate
from .neighbors import knn_dense, knn_graph
from .pool import global_max_pool, global_mean_pool

__all__ = ["DGCNN", "EdgeConv"]


def _batch_norm_factor(norm: nn.BatchNorm1d) -> tuple[bool, float]:
    """``nn.BatchNorm1d.forward``'s bookkeeping: whether batch statistics are used, and the running
    average factor (``num_batches_tracked`` is advanced here, as ``BatchNorm1d`` does)."""
    factor = 0.0 if norm.momentum is None else norm.momentum
    if norm.training and norm.track_running_stats and norm.num_batches_tracked is not None:
        norm.num_batches_tracked.add_(1)
        factor = 1.0 / float(norm.num_batches_tracked) if norm.momentum is None else norm.momentum
    use_batch = norm.training or (norm.running_mean is None and norm.running_var is None)
    return use_batch, factor


class _GatherMaxSum(torch.autograd.Function):
    """``M_i = max_{j in N(i)} w_j`` and ``S_i = sum_{j in N(i)} w_j`` (per channel) with a lean backward.

    The gathered ``(E, C)`` neighbour features are kept for the backward, which turns them in place
    into the per-edge gradient (ties of the max share its gradient evenly, as ``amax`` does) and sums
    it per neighbour with one ``embedding_bag`` over the edges sorted by neighbour: no further
    ``(E, C)`` allocations. ``k`` given: dense graph, ``col`` ``(P k,)`` centre-major; otherwise
    ``ie`` holds each edge's centre.
    """

    @staticmethod
    def forward(ctx, w: Tensor, col: Tensor, ie: Tensor | None, k: int | None, want_sum: bool):
        P, C = w.shape
        g = w.index_select(0, col)
        if k is not None:
            gv = g.view(P, k, C)
            m = gv.amax(1)
            ssum = gv.sum(1) if want_sum else w.new_zeros(0)
        else:
            at = ie.view(-1, 1).expand_as(g)
            m = w.new_zeros(P, C).scatter_reduce_(0, at, g, "amax", include_self=False)
            ssum = w.new_zeros(P, C).index_add_(0, ie, g) if want_sum else w.new_zeros(0)
        ctx.k = k
        ctx.g = g if ctx.needs_input_grad[0] else None
        ctx.save_for_backward(w, col, ie, m)
        if not want_sum:
            ctx.mark_non_differentiable(ssum)
        return m, ssum

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_m: Tensor | None, grad_s: Tensor | None):
        w, col, ie, m = ctx.saved_tensors
        g, ctx.g = ctx.g, None
        if g is None:  # a second backward (retain_graph): gather again
            g = w.index_select(0, col)
        P, C = w.shape
        if grad_s is not None and grad_s.numel() == 0:
            grad_s = None
        if ctx.k is not None:
            gv = g.view(P, ctx.k, C)
            gv.eq_(m.unsqueeze(1))  # 1 where the edge attains the max
            if grad_m is None:
                gv.zero_()
            elif grad_s is None:
                gv.mul_((grad_m / gv.sum(1)).unsqueeze(1))
            else:  # gv <- grad_s + gv * grad_m / count, in place
                torch.addcmul(grad_s.unsqueeze(1), gv, (grad_m / gv.sum(1)).unsqueeze(1), out=gv)
            if grad_m is None and grad_s is not None:
                gv.add_(grad_s.unsqueeze(1))
        else:
            g.eq_(m.index_select(0, ie))
            if grad_m is None:
                g.zero_()
            else:
                count = torch.zeros_like(m).index_add_(0, ie, g).clamp_min_(1)
                g.mul_((grad_m / count).index_select(0, ie))
            if grad_s is not None:
                g.add_(grad_s.index_select(0, ie))
        # sum the per-edge gradients per neighbour j
        order = torch.argsort(col, stable=True)
        in_deg = torch.bincount(col, minlength=P)
        offsets = torch.cumsum(in_deg, 0) - in_deg
        grad_w = nn.functional.embedding_bag(order, g, offsets, mode="sum")
        return grad_w, None, None, None, None


def _edgeconv_fused(
    h: Tensor,
    weight: Tensor,
    norm: nn.BatchNorm1d,
    negative_slope: float,
    nbr: Tensor | None = None,
    edge_index: Tensor | None = None,
) -> Tensor:
    r""":math:`h'_i = \max_{j \in N(i)} \sigma(\mathrm{BN}(a_i + b_j))` without forming edge features.

    Here :math:`a = (\Theta_a - \Theta_b) h`, :math:`b = \Theta_b h` (``weight`` is
    :math:`[\Theta_a \mid \Theta_b]`). Batch norm is a per-channel affine map and :math:`\sigma`
    (LeakyReLU, slope ``>= 0``) is non-decreasing, so per channel the maximum over ``j`` is attained
    at the largest :math:`b_{jc}` when :math:`\gamma_c > 0` and at the smallest when
    :math:`\gamma_c < 0`: with :math:`s_c = \operatorname{sign} \gamma_c`,

    .. math::
        h'_{ic} = \sigma\big(\mathrm{BN}_c(a_{ic} + M_{ic})\big), \qquad
        M_{ic} = s_c \max_{j \in N(i)} s_c b_{jc}.

    The computation runs on the sign-flipped channels :math:`s_c a_c, s_c b_c` (batch norm with
    :math:`|\gamma_c|` and mean :math:`s_c \mu_c`). For :math:`\gamma_c = 0` every edge gives the
    same value and :math:`M_{ic}` is the neighbour mean, which reproduces the even split of the max's
    gradient. In training the batch statistics over all ``E`` edges come from per-point sums,

    .. math::
        \sum_e x_e = \sum_i d_i a_i + \sum_i S_i, \qquad
        \sum_e x_e^2 = \sum_i d_i a_i^2 + 2 \sum_i a_i S_i + \sum_j c_j b_j^2,

    with :math:`d_i` the out-degree, :math:`c_j` the in-degree and :math:`S_i = \sum_{j \in N(i)} b_j`,
    evaluated on channel-centred ``a`` and ``b`` (shifts do not change the variance) and combined
    in float64. The running statistics are updated with the unbiased variance and ``norm``'s
    momentum, as ``norm`` would on the ``(E, C)`` edge matrix. Only gathers and reductions act on the
    ``(E, C)`` neighbour features (:class:`_GatherMaxSum`).

    ``nbr`` ``(P, k)`` holds global neighbour rows (dense graph); otherwise ``edge_index`` ``(2, E)``
    (PyG's order: row 0 the source ``j``, row 1 the target ``i``; any order of the edges) is used, and
    targets without edges give zeros.
    """
    P, c_in = h.shape
    use_batch, factor = _batch_norm_factor(norm)
    gamma, beta = norm.weight, norm.bias
    w_a, w_b = weight[:, :c_in], weight[:, c_in:]
    sign = zero = None
    if gamma is not None:
        g_det = gamma.detach()
        sign = torch.where(g_det < 0, -1.0, 1.0).to(weight.dtype)
        w_a, w_b = w_a * sign.unsqueeze(1), w_b * sign.unsqueeze(1)
        zero = g_det == 0
        if not bool(zero.any()):
            zero = None
    w_c = w_a - w_b
    if use_batch:  # centred channels (constant shifts: no effect on the gradient) against cancellation
        h_mean = h.detach().mean(0)
        ca, cb = w_c.detach() @ h_mean, w_b.detach() @ h_mean
        a, b = torch.addmm(-ca, h, w_c.t()), torch.addmm(-cb, h, w_b.t())
    else:
        a, b = h @ w_c.t(), h @ w_b.t()
    want_sum = use_batch or zero is not None
    if nbr is not None:
        k = nbr.shape[1]
        col = nbr.reshape(-1)
        m, ssum = _GatherMaxSum.apply(b, col, None, k, want_sum)
        deg = None
        E = P * k
    else:
        col, i = edge_index[0], edge_index[1]  # source j, target i
        m, ssum = _GatherMaxSum.apply(b, col, i, None, want_sum)
        deg = torch.bincount(i, minlength=P)
        k = deg.to(h.dtype).unsqueeze(1)
        E = int(i.shape[0])
    if zero is not None:
        m = torch.where(zero, ssum / (k if deg is None else k.clamp_min(1)), m)
    if use_batch:
        f64 = torch.float64
        cnt = torch.bincount(col, minlength=P).to(h.dtype)
        if deg is None:
            sa, saa = a.sum(0) * k, (a * a).sum(0) * k
        else:
            sa, saa = (k * a).sum(0), (k * a * a).sum(0)
        sb, sbb = ssum.sum(0), cnt @ (b * b)
        sab = (a * ssum).sum(0)
        mean = (sa.to(f64) + sb.to(f64)) / E
        var = ((saa.to(f64) + 2.0 * sab.to(f64) + sbb.to(f64)) / E - mean * mean).clamp_min(0.0)
        if norm.track_running_stats and norm.training and norm.running_mean is not None:
            with torch.no_grad():
                full = mean + ca.to(f64) + cb.to(f64)
                if sign is not None:
                    full = full * sign
                unbiased = var * (E / max(E - 1, 1))
                norm.running_mean.mul_(1.0 - factor).add_(full.to(norm.running_mean.dtype), alpha=factor)
                norm.running_var.mul_(1.0 - factor).add_(unbiased.to(norm.running_var.dtype), alpha=factor)
        mean, invstd = mean.to(h.dtype), torch.rsqrt(var + norm.eps).to(h.dtype)
    else:
        mean = norm.running_mean if sign is None else norm.running_mean * sign
        invstd = torch.rsqrt(norm.running_var + norm.eps)
    scale = invstd if gamma is None else invstd * (gamma if sign is None else gamma * sign)
    shift = -mean * scale if beta is None else beta - mean * scale
    out = nn.functional.leaky_relu(torch.addcmul(shift, a + m, scale), negative_slope)
    if deg is not None and bool((deg == 0).any()):
        out = out.masked_fill((deg == 0).unsqueeze(1), 0.0)
    return out


class EdgeConv(nn.Module):
    r"""EdgeConv with max aggregation, batch norm and LeakyReLU (Wang et al. 2019, eq. 8).

    .. math::
        h'_i = \max_{j \in \mathcal{N}(i)} \sigma\Big(\mathrm{BN}\big(\Theta\,[h_i,\ h_j - h_i]\big)\Big)

    the function :class:`torch_geometric.nn.EdgeConv` computes with
    ``nn = Sequential(Linear(2 C, C', bias=False), BatchNorm1d(C'), LeakyReLU(negative_slope))``.
    :math:`\Theta = [\Theta_a \mid \Theta_b]` is applied per point rather than per edge, using
    :math:`\Theta [h_i, h_j - h_i] = (\Theta_a - \Theta_b) h_i + \Theta_b h_j = a_i + b_j`. With
    ``fused=True`` (default) the batch norm and the activation are moved past the max (exact, see
    :func:`_edgeconv_fused`): only gathers and reductions touch the ``(N k)`` edges, and the batch-norm
    statistics (training) are those of the edge features, computed from per-point sums. With
    ``fused=False`` batch norm and activation act on the materialised edge features before the max
    (:func:`~equinets.nn.message_passing.aggregate`). Both give the same outputs, gradients and running
    statistics (up to rounding, and up to which subgradient is taken where distinct edges round to
    equal activations). The fused path is used for non-negative LeakyReLU slopes and more than one
    edge in training. A target without edges gets zeros.

    Shapes:
        ``h`` ``(N, C)`` and either dense neighbour indices ``idx`` ``(B, n, k)`` (``N = B n``,
        equal-size clouds; ``idx[b, i]`` the neighbours ``j`` of point ``i`` of cloud ``b``) or
        ``edge_index`` ``(2, E)`` in PyG's order (row 0 the source ``j``, row 1 the target ``i``, as
        :func:`~equinets.nn.knn_graph` returns it) -> ``(N, C')``.

    Example:
        >>> conv = EdgeConv(3, 8).eval()
        >>> h = torch.randn(10, 3)
        >>> conv(h, idx=torch.randint(0, 5, (2, 5, 4))).shape
        torch.Size([10, 8])
        >>> from equinets.nn import knn_graph
        >>> conv(h, edge_index=knn_graph(h, k=3)).shape
        torch.Size([10, 8])
    """

    def __init__(self, in_channels: int, out_channels: int, negative_slope: float = 0.2, *, fused: bool = True) -> None:
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels", 1)
        self.out_channels = check_int(out_channels, "out_channels", 1)
        self.fused = bool(fused)
        self.lin = nn.Linear(2 * in_channels, out_channels, bias=False)
        self.norm = nn.BatchNorm1d(out_channels)
        self.act = nn.LeakyReLU(check_real(negative_slope, "negative_slope"))

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()
        self.norm.reset_parameters()

    def _edge(self, e: Tensor) -> Tensor:
        shape = e.shape
        return self.act(self.norm(e.reshape(-1, shape[-1]))).view(shape)

    def _check(self, h, idx, edge_index) -> Tensor | None:
        """Validate the inputs; return the dense neighbour rows ``(N, k)`` (global ids) or ``None``."""
        if not isinstance(h, Tensor) or not h.is_floating_point() or h.dim() != 2 or h.shape[1] != self.in_channels:
            got = tuple(h.shape) if isinstance(h, Tensor) else type(h).__name__
            raise ValueError(f"h must be a floating-point tensor of shape (N, in_channels) = (N, {self.in_channels}), "
                             f"got {got}")
        check_dtype(h, self, "h")
        if (idx is None) == (edge_index is None):
            raise ValueError("pass exactly one of idx (dense (B, n, k) neighbour indices) and edge_index "
                             "((2, E), row 0 source j, row 1 target i)")
        if edge_index is not None:
            check_edge_index(edge_index, h.shape[0])
            return None
        if not isinstance(idx, Tensor) or idx.is_floating_point() or idx.dtype == torch.bool or idx.dim() != 3:
            got = f"dtype {idx.dtype}, shape {tuple(idx.shape)}" if isinstance(idx, Tensor) else type(idx).__name__
            raise ValueError(f"idx must be an integer tensor of shape (B, n, k), got {got}")
        B, n, k = idx.shape
        if B * n != h.shape[0]:
            raise ValueError(f"idx of shape {tuple(idx.shape)} covers B n = {B * n} points, but h has {h.shape[0]} rows")
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
            raise ValueError(f"idx must hold point ids in [0, {n}) of each cloud, got values in "
                             f"[{int(idx.min())}, {int(idx.max())}]")
        return (idx.long() + (torch.arange(B, device=h.device) * n).view(B, 1, 1)).view(B * n, k)

    def forward(self, h: Tensor, idx: Tensor | None = None, edge_index: Tensor | None = None) -> Tensor:
        rows = self._check(h, idx, edge_index)
        n_edges = rows.numel() if rows is not None else edge_index.shape[1]
        if self._fused_applies(n_edges):
            slope = self.act.negative_slope
            if rows is not None:
                return _edgeconv_fused(h, self.lin.weight, self.norm, slope, nbr=rows)
            return _edgeconv_fused(h, self.lin.weight, self.norm, slope, edge_index=edge_index.long())
        w_a, w_b = self.lin.weight[:, : self.in_channels], self.lin.weight[:, self.in_channels :]
        centre = h @ (w_a - w_b).t()
        neigh = h @ w_b.t()
        if rows is not None:
            N, k = rows.shape
            e = centre.view(N, 1, -1) + neigh.index_select(0, rows.view(-1)).view(N, k, -1)
            return self._edge(e).amax(dim=1)
        j, i = edge_index.long()  # source j, target i
        return aggregate(self._edge(centre[i] + neigh[j]), i, h.shape[0], "max")

    def _fused_applies(self, n_edges: int) -> bool:
        return (
            self.fused
            and self.act.negative_slope >= 0
            and type(self.norm) is nn.BatchNorm1d
            and n_edges > (1 if self.norm.training or self.norm.running_mean is None else 0)
        )

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
        hidden_channels: output widths of the EdgeConv layers.
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
        >>> model = DGCNN(0, 4, "seg", k=3, hidden_channels=(8, 8), emb_dims=16, seg_channels=(8,)).eval()
        >>> model
        DGCNN(in_channels=0, out_channels=4, task='seg', k=3, hidden_channels=(8, 8), emb_dims=16)
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
        hidden_channels: Sequence[int] = (64, 64, 128, 256),
        emb_dims: int = 1024,
        head_channels: Sequence[int] = (512, 256),
        seg_channels: Sequence[int] = (256, 256, 128),
        dropout: float = 0.5,
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__(in_channels, out_channels, task, num_categories, dropout)
        self.k = check_int(k, "k", 1)
        self.hidden_channels = check_widths(hidden_channels, "hidden_channels")
        self.emb_dims = check_int(emb_dims, "emb_dims", 1)
        self.head_channels = check_widths(head_channels, "head_channels")
        self.seg_channels = check_widths(seg_channels, "seg_channels")
        widths = [3 + self.in_channels, *self.hidden_channels]
        self.convs = nn.ModuleList(
            EdgeConv(widths[i], widths[i + 1], negative_slope) for i in range(len(self.hidden_channels))
        )
        act = lambda: nn.LeakyReLU(negative_slope)  # noqa: E731
        self.emb = nn.Sequential(*mlp_layers([sum(self.hidden_channels), self.emb_dims], act=act))
        if task == "cls":
            hidden = [2 * self.emb_dims, *self.head_channels]
            self.head = nn.Sequential(
                *mlp_layers(hidden, act=act, dropout=self.dropout), nn.Linear(hidden[-1], out_channels)
            )
        else:
            hidden = [sum(self.hidden_channels) + 2 * self.emb_dims + self.num_categories, *self.seg_channels]
            self.head = nn.Sequential(
                *mlp_layers(hidden, act=act), nn.Dropout(self.dropout), nn.Linear(hidden[-1], out_channels)
            )

    def _cloud_level_modules(self) -> list[nn.Module]:
        return [self.head] if self.task == "cls" else []

    def _forward(self, inp: PointInput, h: Tensor, onehot: Tensor | None) -> Tensor:
        n = self._equal_size(inp)
        B = inp.num_graphs
        feats = []
        for conv in self.convs:
            if n is not None:  # dense fast path
                h = conv(h, idx=knn_dense(h.view(B, n, -1), min(self.k, n), loop=True))
            else:
                edge_index = knn_graph(h, self.k, inp.batch, loop=True, batch_size=B)
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
        return f"k={self.k}, hidden_channels={self.hidden_channels}, emb_dims={self.emb_dims}"
