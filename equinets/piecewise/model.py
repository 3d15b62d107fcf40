r"""APEN: approximately piecewise-E(3) equivariant point networks (Atzmon, Huang, Williams, Litany, ICLR 2024)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from .._checks import (
    as_points,
    check_batchnorm_batch,
    check_channels,
    check_choice,
    check_dtype,
    check_finite,
    check_int,
    check_labels,
    check_real,
    restore_layout,
)
from ..frames.averaging import check_irreps
from ..frames.pca import check_frame_options
from ..nn._base import TASKS, check_widths, mlp_layers
from ..nn.pool import global_max_pool
from .blocks import APENBlock, part_neighbors
from .frames import part_frames
from .partition import (
    ASSIGNMENTS,
    Mixture,
    Partition,
    assign,
    check_labels_partition,
    fit_mixture,
    init_mixture,
    mean_per_component,
    partition_from_labels,
)

__all__ = ["APEN", "APENOutput", "default_variances", "per_cloud_ids", "VOTE_LOSSES"]

VOTE_LOSSES = ("l2", "l1")


class APENOutput(NamedTuple):
    """Everything one APEN forward computes (:meth:`APEN.forward_all`).

    Attributes:
        out: the task output (``(B, out_channels)`` for ``cls``, ``(N, out_channels)`` for ``seg``; dense input
            gives dense point outputs).
        votes: per block, ``(N, 3)`` vote displacements :math:`d_i` (the predicted offset from the point to
            the centre of its part; piecewise equivariant), flat layout.
        partitions: per block, the :class:`~equinets.piecewise.Partition` that block ran on.
    """

    out: Tensor
    votes: list[Tensor]
    partitions: list[Partition]


def per_cloud_ids(labels: Tensor, batch: Tensor, num_parts: int) -> Tensor:
    """Per-point part ids renumbered ``0, 1, ...`` within each cloud (in the order of the ids), e.g. global part
    labels of several categories turned into a ``partition`` for :meth:`APEN.forward`; raises ``ValueError`` when a
    cloud has more than ``num_parts`` parts.

    >>> per_cloud_ids(torch.tensor([15, 17, 15, 0, 4]), torch.tensor([0, 0, 0, 1, 1]), 2).tolist()
    [0, 1, 0, 0, 1]
    """
    if not isinstance(labels, Tensor) or labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        got = labels.dtype if isinstance(labels, Tensor) else type(labels).__name__
        raise TypeError(f"teacher must be an integer tensor of per-point part ids, got {got}")
    labels = labels.reshape(-1).long().to(batch.device)
    if labels.shape[0] != batch.shape[0]:
        raise ValueError(f"teacher must hold one part id per point ({batch.shape[0]}), got {labels.shape[0]}")
    lo = labels.min()
    key = batch.long() * (int(labels.max() - lo) + 1) + (labels - lo)
    _, inv = torch.unique(key, return_inverse=True)  # sorted: each cloud's parts are a contiguous range
    first = torch.full((int(batch.max()) + 1,), inv.numel(), dtype=inv.dtype, device=inv.device)
    first = first.scatter_reduce(0, batch.long(), inv, "amin")
    ids = inv - first[batch.long()]
    if int(ids.max()) >= num_parts:
        raise ValueError(f"teacher has a cloud with {int(ids.max()) + 1} parts, more than num_parts = {num_parts}")
    return ids


def default_variances(num_blocks: int) -> tuple[float, ...]:
    """The default variance schedule: :math:`\\sigma_0^2 = 0.01` for the first partition (of the points),
    then :math:`0.002 \\cdot 2^{l-1}` for the partition of block ``l``'s input votes (fine to coarse).

    Meant for clouds of unit scale (about unit radius), like the paper's :math:`0.2 \\to 0.001 \\dots 0.005`.

    >>> default_variances(4)
    (0.01, 0.002, 0.004, 0.008)
    """
    return (0.01, *(0.002 * 2 ** (i - 1) for i in range(1, num_blocks)))


class APEN(nn.Module):
    r"""APEN: piecewise frame averaging of a shared PointNet-style backbone on predicted partitions.

    From Atzmon, Huang, Williams, Litany, "Approximately Piecewise E(3) Equivariant Point Networks" (ICLR
    2024). A function equivariant to every rigid motion of each part of a partition :math:`Z` that refines
    the true one is equivariant to the true one (the subpartition lemma), and with a predicted distribution
    :math:`Q` over partitions its error is bounded by :math:`(\lambda(Q) + \delta(Q)) M` (Thm. 1), where
    :math:`\lambda` is the probability of a partition that is not a refinement and :math:`\delta` the
    assignment uncertainty. The forward:

    1. **First partition** (the paper's :math:`Q_{\mathrm{simple}}`): ``num_parts`` farthest-point candidates
       on the points, an isotropic GMM fitted by EM at :math:`\sigma_0^2` (``variances[0]``), merged and
       assigned (:mod:`equinets.piecewise.partition`).
    2. **Blocks** :math:`l = 0 \dots L-1` (:class:`~equinets.piecewise.APENBlock`): per-part PCA frames
       (:func:`~equinets.piecewise.part_frames`), inputs framed per part (position, the ``k`` within-part
       neighbour offsets, the previous block's vectors and scalars), the shared MLP, part pooling, rotate back,
       combine (:math:`\phi_{III}`: hard assignments). Each block outputs ``num_scalars`` invariants,
       ``num_vectors`` vectors and the vote displacement :math:`d_i` (vector 0): votes
       :math:`y_i = x_i + d_i` for the part centres.
    3. **Next partition** from the votes: the previous mixture's components moved to the mean vote of their
       points, EM at :math:`\sigma_{l+1}^2`, merging within ``merge_radius`` :math:`\sigma_{l+1}`, pruning of
       components lighter than ``min_weight``: fine to coarse as the variance grows.
    4. **Head**: per point (``seg``: the last block's invariants, every block's invariants and the cloud's
       max-pooled invariants) or per cloud (``cls``: max pool), an MLP ending in the logits ``Linear``
       (``model.head[-1]``).

    A known partition (``forward(..., partition=ids)``: instance masks, ground-truth parts) replaces the
    predicted one in every block; then the invariant outputs are exactly invariant, and the votes exactly
    equivariant, under independent motions of the parts (to float rounding, for parts with a simple PCA
    spectrum; see :func:`~equinets.piecewise.part_frames` for small or flat parts).

    **Group.** ``"SE3"`` (the paper's released model: 4 proper sign frames per part, translations), ``"E3"``
    (8 frames, reflections too), ``"SO3"`` / ``"O3"`` (every part rotates about the common origin, no
    translation).

    **Evaluation is deterministic**: hard assignments are the argmax of :math:`Q` (lowest slot on ties), the
    frames are deterministic, and no noise is drawn; ``train_sampling=True`` draws hard assignments from
    :math:`Q` (Gumbel-max, as the official code does) in training only.

    **Gradients of the partition.** By default (``partition_grad=False``) the EM runs on detached votes: the
    votes learn from :meth:`auxiliary_loss` (the paper's vote loss) and the task loss does not reach them through
    the partition. ``partition_grad=True`` differentiates the partition too: hard pair weights carry the
    straight-through gradient of :math:`Q` (value 1, gradient of :math:`Q_{ij}`) and the unrolled EM passes it on
    to the votes. That gradient scales like :math:`1/\sigma^2`; on the generated articulated bodies (3 blocks,
    :math:`\sigma^2` 0.002-0.004, vote_weight 1, 64 bodies of 256 points, AdamW 1e-3) it outweighed the vote
    loss: the vote error grew from 0.085 to 0.19 in 6 epochs, while with the partition detached it fell from 0.063
    to 0.026 (and the cross-entropy from 3.01 to 1.64 instead of 3.06 to 2.03), hence the default.

    Args:
        in_channels: feature columns of ``x`` (0: positions only).
        out_channels: classes (``cls``) or part labels (``seg``).
        task: ``"seg"`` (one row per point) or ``"cls"`` (one row per cloud).
        group: ``"SE3"``, ``"E3"``, ``"SO3"`` or ``"O3"``, applied per part.
        num_parts: candidate parts of the first partition (per cloud); a given ``partition`` holds ids in
            ``[0, num_parts)``.
        num_blocks: piecewise-equivariant blocks :math:`L` (one partition each).
        channels: widths of every block's shared point MLP.
        num_scalars, num_vectors: invariant and vector features passed from block to block.
        k: within-part neighbours whose framed offsets enter each block.
        variances: :math:`\sigma_l^2` per block (``num_blocks`` values; :func:`default_variances`).
        em_iters: EM iterations per partition.
        merge_radius: components closer than ``merge_radius`` :math:`\sigma_l` merge.
        min_weight: components with :math:`\pi \le` ``min_weight`` are pruned.
        assignment: ``"hard"`` (the paper's :math:`\phi_{III}`, exact per part) or ``"soft"`` (each point in
            its ``soft_topk`` most likely parts, weighted by :math:`Q`; differentiable, approximate).
        soft_topk: parts per point for ``assignment="soft"``.
        train_sampling: in training, sample hard assignments from :math:`Q` instead of the argmax.
        partition_grad: differentiate the partitions of blocks 2.. with respect to the votes (straight-through
            hard weights, unrolled EM); default off (see above).
        context: every block gives each part the cloud context (the max and mean over the cloud's parts of
            their frame-averaged pooled features and shapes; :class:`~equinets.piecewise.APENBlock`), exactly
            piecewise invariant.
        irreps_in: e3nn irreps of ``x`` (e.g. ``"1o"`` for normals), rotated into every part frame;
            ``None``: ``x`` holds invariant scalars.
        num_categories: object categories whose one-hot joins the segmentation head.
        head_channels: hidden widths of the head (cls or seg).
        dropout: dropout before the logits layer.
        vote_loss: ``"l2"`` (squared distance, the official code's) or ``"l1"`` (the paper's) for
            :meth:`auxiliary_loss`.
        vote_weight: factor of the vote loss.
        teacher_partition: partition teacher forcing, in ``[0, 1]`` (default 0: off). In training mode only, each
            forward that is given ``teacher`` (the ground-truth per-point part ids; the training loop passes
            ``data.part`` through :meth:`train_inputs`) runs, with this probability, on that partition in every
            block instead of the predicted ones, as ``forward(..., partition=...)`` would; the votes are still
            computed and trained by :meth:`auxiliary_loss`. Not in the paper, which trains the backbone only on its
            own predicted partitions: an experiment on the gap between the two (on the articulated bodies a
            backbone trained only on the ground truth fails on predicted partitions: 13.4 instance mIoU vs 61.3 on
            the ground truth, ``kernels/README.md``); ``1`` trains on the ground truth only. Measured there
            (``articulated-apen``, test instance mIoU on unseen poses, predicted partitions): it does not help, 0.5
            gives 27.2 vs 35.7 without in 8 epochs (51.1 vs 26.1 when tested on the ground truth), and 0.2, 0.5 and
            a decay from 1 to 0 gave 22.4, 21.1 and 23.7 vs 25.4 / 23.6 (two seeds) in 3 epochs: the backbone
            learns clean parts, which test-time partitions do not give it (and on a true part the vote is just
            the negated part-centred position, which teaches the votes nothing for mixed parts). Ignored in eval
            mode: evaluation stays deterministic and always runs on predicted partitions (or an explicit
            ``partition``).
        tol, degenerate, num_angles: the degenerate-spectrum policy of the part frames
            (:func:`~equinets.frames.pca_frames`).

    Shapes:
        - **input:** ``pos`` ``(N, 3)`` / ``(B, N, 3)`` / ``Data``; ``x`` ``(N, in_channels)``; ``batch``
          ``(N,)``; ``partition`` ``(N,)`` (or ``(B, N)``) long part ids; ``category`` ``(B,)``.
        - **output:** ``(B, out_channels)`` (cls) or ``(N, out_channels)`` / ``(B, N, out_channels)`` (seg).

    Example:
        >>> model = APEN(out_channels=4, num_parts=4, num_blocks=2, channels=(16,), num_scalars=8,
        ...              num_vectors=2, k=4, head_channels=(16,)).eval()
        >>> model
        APEN(in_channels=0, out_channels=4, task='seg', group='SE3', num_parts=4, num_blocks=2, assignment='hard')
        >>> pos = torch.randn(2, 32, 3)
        >>> model(pos).shape
        torch.Size([2, 32, 4])
        >>> parts = (pos[..., 0] > 0).long()  # a known partition: two halves per cloud
        >>> model(pos, partition=parts).shape
        torch.Size([2, 32, 4])
    """

    def __init__(
        self,
        in_channels: int = 0,
        out_channels: int = 24,
        task: str = "seg",
        group: str = "SE3",
        *,
        num_parts: int = 16,
        num_blocks: int = 3,
        channels: Sequence[int] = (64, 128),
        num_scalars: int = 32,
        num_vectors: int = 8,
        k: int = 8,
        variances: Sequence[float] | None = None,
        em_iters: int = 10,
        merge_radius: float = 1.0,
        min_weight: float = 1e-3,
        assignment: str = "hard",
        soft_topk: int = 3,
        train_sampling: bool = False,
        partition_grad: bool = False,
        context: bool = False,
        irreps_in=None,
        num_categories: int = 0,
        head_channels: Sequence[int] = (256, 128),
        dropout: float = 0.5,
        vote_loss: str = "l2",
        vote_weight: float = 1.0,
        teacher_partition: float = 0.0,
        tol: float | None = None,
        degenerate: str = "blend",
        num_angles: int = 4,
    ) -> None:
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels", 0)
        self.out_channels = check_int(out_channels, "out_channels", 1)
        self.task = check_choice(task, "task", TASKS)
        check_frame_options(group, tol, degenerate, num_angles)
        self.group = group
        self.num_parts = check_int(num_parts, "num_parts", 1)
        self.num_blocks = check_int(num_blocks, "num_blocks", 1)
        self.channels = check_widths(channels, "channels")
        self.num_scalars = check_int(num_scalars, "num_scalars", 1)
        self.num_vectors = check_int(num_vectors, "num_vectors", 0)
        self.k = check_int(k, "k", 1)
        if variances is None:
            variances = default_variances(self.num_blocks)
        if isinstance(variances, (str, bytes)) or not hasattr(variances, "__len__"):
            raise TypeError(f"variances must be a sequence of num_blocks = {self.num_blocks} positive numbers, got "
                            f"{type(variances).__name__} {variances!r}")
        if len(variances) != self.num_blocks:
            raise ValueError(f"variances must hold one variance per block (num_blocks = {self.num_blocks}), got "
                             f"{len(variances)}: {list(variances)}")
        self.variances = tuple(check_real(v, "every entry of variances") for v in variances)
        if not all(v > 0 for v in self.variances):
            raise ValueError(f"variances must be > 0, got {list(self.variances)}")
        self.em_iters = check_int(em_iters, "em_iters", 0)
        self.merge_radius = check_real(merge_radius, "merge_radius", 0.0)
        self.min_weight = check_real(min_weight, "min_weight", 0.0)
        if not self.min_weight < 1:
            raise ValueError(f"min_weight must be in [0, 1), got {min_weight!r}")
        self.assignment = check_choice(assignment, "assignment", ASSIGNMENTS)
        self.soft_topk = check_int(soft_topk, "soft_topk", 1)
        if not isinstance(train_sampling, bool):
            raise TypeError(f"train_sampling must be a bool, got {type(train_sampling).__name__} {train_sampling!r}")
        self.train_sampling = train_sampling
        if not isinstance(partition_grad, bool):
            raise TypeError(f"partition_grad must be a bool, got {type(partition_grad).__name__} {partition_grad!r}")
        self.partition_grad = partition_grad
        if not isinstance(context, bool):
            raise TypeError(f"context must be a bool, got {type(context).__name__} {context!r}")
        self.context = context
        self.irreps_in = check_irreps(irreps_in, "irreps_in")
        if self.irreps_in is not None and self.irreps_in.dim != self.in_channels:
            raise ValueError(f"irreps_in {self.irreps_in} has dim {self.irreps_in.dim} but in_channels is "
                             f"{self.in_channels}; they must agree")
        self.num_categories = check_int(num_categories, "num_categories", 0)
        if self.num_categories and self.task != "seg":
            raise ValueError(f"num_categories is used by task='seg' only, got num_categories={num_categories} with "
                             f"task={task!r}")
        self.head_channels = check_widths(head_channels, "head_channels")
        if not check_real(dropout, "dropout", 0.0) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.dropout = float(dropout)
        self.vote_loss = check_choice(vote_loss, "vote_loss", VOTE_LOSSES)
        self.vote_weight = check_real(vote_weight, "vote_weight", 0.0)
        self.teacher_partition = check_real(teacher_partition, "teacher_partition", 0.0)
        if not self.teacher_partition <= 1.0:
            raise ValueError(f"teacher_partition must be a probability in [0, 1], got {teacher_partition!r}")
        self.tol, self.degenerate, self.num_angles = tol, degenerate, num_angles

        a, b = self.num_scalars, self.num_vectors
        scalars0 = self.in_channels if self.irreps_in is None else 0
        self.blocks = nn.ModuleList(
            APENBlock(scalars0 if i == 0 else a, self.k + (0 if i == 0 else b), a, b + 1, self.channels,
                      self.irreps_in if i == 0 else None, context=self.context)
            for i in range(self.num_blocks)
        )
        feat = a * self.num_blocks
        if self.task == "cls":
            hidden = [feat, *self.head_channels]
        else:
            hidden = [feat + a + self.num_categories, *self.head_channels]
        self.head = nn.Sequential(*mlp_layers(hidden), nn.Dropout(self.dropout), nn.Linear(hidden[-1], out_channels))
        self._votes: list[Tensor] | None = None

    # -- partitions -----------------------------------------------------------------------------
    def _first_mixture(self, pos: Tensor, batch: Tensor) -> Mixture:
        mix = init_mixture(pos.detach(), batch, self.num_parts, self.variances[0])
        return fit_mixture(pos.detach(), batch, mix, self.variances[0], num_iters=self.em_iters,
                           merge_radius=self.merge_radius, min_weight=self.min_weight, check=False)

    def _next_mixture(self, votes: Tensor, batch: Tensor, prev: Mixture, variance: float) -> Mixture:
        mix = mean_per_component(votes, batch, prev)  # every component moves to the mean vote of its points
        return fit_mixture(votes, batch, mix, variance, num_iters=self.em_iters, merge_radius=self.merge_radius,
                           min_weight=self.min_weight, check=False)

    def _assign(self, mix: Mixture, batch: Tensor) -> Partition:
        sample = self.training and self.train_sampling
        return assign(mix, batch, self.assignment, topk=self.soft_topk, sample=sample)

    # -- forward --------------------------------------------------------------------------------
    def forward_all(self, pos, x: Tensor | None = None, batch: Tensor | None = None, partition: Tensor | None = None,
                    *, category: Tensor | None = None) -> APENOutput:
        """The forward of :meth:`forward`, returning the votes and partitions of every block as well."""
        inp = as_points(pos, x, batch)
        N, B = inp.pos.shape[0], inp.num_graphs
        check_channels(inp.x, self.in_channels)
        check_dtype(inp.pos, self, "pos")
        if inp.x is not None:
            check_dtype(inp.x, self, "x")
        check_batchnorm_batch(self, N, "points")
        if self.task == "cls":
            check_batchnorm_batch(self.head, B, "clouds")
        onehot = self._category(category, B, inp.pos.dtype)
        if partition is not None:
            labels = check_labels_partition(partition, N, self.num_parts)
            given = partition_from_labels(labels, inp.batch, self.num_parts, dtype=inp.pos.dtype)
        pos, bt = inp.pos, inp.batch
        mix = None if partition is not None else self._first_mixture(pos, bt)
        scalars = inp.x if (inp.x is not None and self.irreps_in is None) else None
        xt = inp.x if self.irreps_in is not None else None
        vectors = None
        votes, parts, feats = [], [], []
        nbr = nbr_label = None
        for i, block in enumerate(self.blocks):
            if partition is not None:
                part = given
            else:
                if i > 0:  # diverged weights give NaN votes: say so instead of partitioning garbage
                    check_finite(votes[-1], f"the votes of block {i - 1} (vote displacements d_i)")
                    y = pos + votes[-1]
                    mix = self._next_mixture(y if self.partition_grad else y.detach(), bt, mix, self.variances[i])
                part = self._assign(mix, bt)
            fr = part_frames(pos, part, self.group, tol=self.tol, degenerate=self.degenerate,
                             num_angles=self.num_angles)
            if nbr is None or not torch.equal(part.label, nbr_label):  # same parts as the last block: same kNN
                nbr, nbr_label = part_neighbors(pos, part.label, self.k), part.label  # (N, k, 3)
            vin = nbr if vectors is None else torch.cat([nbr, vectors], dim=1)
            scalars, v = block(pos, part, fr, scalars, vin, xt if i == 0 else None)
            votes.append(v[:, 0])
            vectors = v[:, 1:]
            parts.append(part)
            feats.append(scalars)
        h = torch.cat(feats, dim=1)
        if self.task == "cls":
            out = self.head(global_max_pool(h, bt, B))
        else:
            g = global_max_pool(scalars, bt, B)
            cols = [h, g[bt]] + ([onehot[bt]] if onehot is not None else [])
            out = self.head(torch.cat(cols, dim=1))
        return APENOutput(restore_layout(out, inp, per_point=self.task == "seg"), votes, parts)

    def forward(self, pos, x: Tensor | None = None, batch: Tensor | None = None, partition: Tensor | None = None,
                *, category: Tensor | None = None, teacher: Tensor | None = None) -> Tensor:
        """Logits; ``partition`` (per-point part ids in ``[0, num_parts)``) replaces the predicted partitions.

        ``teacher``: ground-truth per-point part ids (any integers; ids are per cloud and are renumbered
        ``0, 1, ...`` within each cloud) for partition teacher forcing (``teacher_partition``): in training mode,
        with probability ``teacher_partition``, they serve as ``partition``. Ignored in eval mode, when
        ``teacher_partition`` is 0 and when ``partition`` is given.

        The vote displacements of the blocks are kept for :meth:`auxiliary_loss` (see :meth:`forward_all`).
        """
        if teacher is not None and partition is None and self.training and self.teacher_partition > 0:
            if self.teacher_partition >= 1 or float(torch.rand(())) < self.teacher_partition:
                inp = as_points(pos, x, batch)
                partition = per_cloud_ids(teacher, inp.batch, self.num_parts)
        res = self.forward_all(pos, x, batch, partition, category=category)
        self._votes = res.votes
        return res.out

    def train_inputs(self, data) -> dict:
        """Extra keyword arguments of the training forward, read from the batch ``data`` (the training loop
        calls this in training steps only): ``{"teacher": data.part}`` when ``teacher_partition > 0`` (a
        ``ValueError`` when the data has no ground-truth partition ``part``), else ``{}``.

        Example:
            >>> from torch_geometric.data import Data
            >>> d = Data(pos=torch.randn(4, 3), part=torch.tensor([3, 3, 5, 5]))
            >>> APEN(out_channels=2, num_parts=2, teacher_partition=0.5).train_inputs(d)["teacher"].tolist()
            [3, 3, 5, 5]
            >>> APEN(out_channels=2, num_parts=2).train_inputs(d)
            {}
        """
        if self.teacher_partition <= 0:
            return {}
        part = getattr(data, "part", None)
        if part is None:
            raise ValueError(f"teacher_partition={self.teacher_partition:g} needs the ground-truth partition data.part "
                             f"(e.g. dataset 'articulated'), but the training batch has no 'part'")
        return {"teacher": part}

    def _category(self, category, B: int, dtype) -> Tensor | None:
        if not self.num_categories:
            if category is not None:
                raise ValueError("category was given but the model was built with num_categories=0")
            return None
        if category is None:
            raise ValueError(f"category is required: the model was built with num_categories={self.num_categories}")
        if not isinstance(category, Tensor) or category.reshape(-1).shape[0] != B:
            got = tuple(category.shape) if isinstance(category, Tensor) else type(category).__name__
            raise ValueError(f"category must be a long tensor of shape (B,) = ({B},), got {got}")
        category = category.reshape(-1)
        check_labels(category, self.num_categories, "category")
        return torch.nn.functional.one_hot(category.long(), self.num_categories).to(dtype)

    # -- losses ---------------------------------------------------------------------------------
    def auxiliary_loss(self, data) -> Tensor | None:
        r"""The vote loss of the last forward: ``vote_weight`` times the mean over blocks of
        :math:`\frac1N \sum_i \lVert d_i - o_i \rVert^2` (``l2``) or :math:`\lVert d_i - o_i \rVert_1` (``l1``),
        with :math:`o_i` = ``data.part_offset`` (the offset from point :math:`i` to its part's centre).

        ``None`` when ``data`` has no ``part_offset`` (the training loop then adds nothing).

        Example:
            >>> from torch_geometric.data import Data
            >>> model = APEN(out_channels=2, num_parts=2, num_blocks=1, channels=(8,), num_scalars=4,
            ...              num_vectors=1, k=2, head_channels=(8,)).eval()
            >>> pos = torch.randn(10, 3)
            >>> _ = model(pos)
            >>> model.auxiliary_loss(Data(pos=pos)) is None
            True
            >>> model.auxiliary_loss(Data(pos=pos, part_offset=torch.zeros(10, 3))).shape
            torch.Size([])
        """
        off = getattr(data, "part_offset", None)
        if off is None:
            return None
        if self._votes is None:
            raise RuntimeError("auxiliary_loss needs the votes of a forward pass: call the model on the batch first")
        n = self._votes[0].shape[0]
        if not isinstance(off, Tensor) or off.numel() != 3 * n:
            got = tuple(off.shape) if isinstance(off, Tensor) else type(off).__name__
            raise ValueError(f"data.part_offset must have shape (N, 3) = ({n}, 3) to match the last forward, got {got}")
        off = off.reshape(n, 3).to(self._votes[0].dtype)
        terms = []
        for d in self._votes:
            diff = d - off
            terms.append(diff.pow(2).sum(1).mean() if self.vote_loss == "l2" else diff.abs().sum(1).mean())
        return self.vote_weight * torch.stack(terms).mean()

    def __repr__(self) -> str:
        s = (f"in_channels={self.in_channels}, out_channels={self.out_channels}, task={self.task!r}, "
             f"group={self.group!r}, num_parts={self.num_parts}, num_blocks={self.num_blocks}, "
             f"assignment={self.assignment!r}")
        return f"{type(self).__name__}({s})"

