"""Find the classifier of any equinets model and capture the features that reach it.

Neural-collapse metrics (:func:`equinets.collapse.nc_metrics`) are about the *penultimate* features
:math:`h` and the last linear layer :math:`z = W h + b` (Papyan, Han & Donoho, PNAS 2020). This module

* locates that last layer in any equinets classification model (:func:`find_classifier`), through
  wrappers (:class:`~equinets.frames.FrameAveraging`, ``DistributedDataParallel``, ``torch.compile``);
* captures its input with a forward pre-hook (:class:`FeatureCapture`, :func:`capture_features`).

**Frame averaging.** Inside ``FrameAveraging`` the classifier runs once per (cloud, frame) pair and the
model's logits are the weighted frame average :math:`\\sum_g w_g (W h_g + b) = W \\bar h + b` with
:math:`\\bar h = \\sum_g w_g h_g` (the frame weights of a cloud sum to 1). The feature that the model
actually classifies is therefore the frame mean :math:`\\bar h`, and that is what is captured, so that
``captured @ W.T + b`` equals the logits (tested to 1e-10 in float64).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn

from ..nn._base import unwrap_model

__all__ = ["find_classifier", "FeatureCapture", "capture_features", "is_classifier_layer", "default_forward"]


def is_classifier_layer(module: nn.Module) -> bool:
    """Whether ``module`` counts as a final classifier: an ``nn.Linear``, or any module with a 2-D ``weight``
    ``(num_classes, dim)`` tensor (parameter or buffer), as the fixed heads of :mod:`equinets.collapse.heads` have.

    >>> is_classifier_layer(nn.Linear(4, 3)), is_classifier_layer(nn.BatchNorm1d(4))
    (True, False)
    """
    if isinstance(module, nn.Linear):
        return True
    w = getattr(module, "weight", None)
    return isinstance(w, Tensor) and w.dim() == 2 and not isinstance(module, (nn.Embedding, nn.Bilinear))


def _has_state(m: nn.Module) -> bool:
    return any(True for _ in m.parameters()) or any(True for _ in m.buffers())


def _last_layer(module: nn.Module, path: str) -> tuple[nn.Module, str, str]:
    """The last stateful leaf of ``module`` (children in registration order); returns (parent, name, path)."""
    for name, child in reversed(list(module.named_children())):
        if not _has_state(child):  # dropout, activations, identity: they come after nothing that matters
            continue
        sub = f"{path}.{name}" if path else name
        if is_classifier_layer(child):
            return module, name, sub
        if not any(True for _ in child.children()):
            raise ValueError(f"the last layer with parameters of the model is {sub} ({type(child).__name__}), "
                             f"not an nn.Linear classifier")
        return _last_layer(child, sub)
    raise ValueError(f"{path or 'the model'} has no layer with parameters, so no classifier to find")


def _wrapper_child(model: nn.Module) -> tuple[str, nn.Module] | None:
    """The wrapped model of an equinets wrapper (frame averaging), as (attribute, module)."""
    from ..frames import FrameAveraging
    from ..frames.graph import GraphFrameAveraging

    if isinstance(model, FrameAveraging):
        return "backbone", model.backbone
    if isinstance(model, GraphFrameAveraging):
        return "gnn", model.gnn
    return None


def _chain(model: nn.Module) -> list[nn.Module]:
    """The wrappers from ``model`` down to the innermost backbone (both ends included)."""
    out = [unwrap_model(model)]
    while (w := _wrapper_child(out[-1])) is not None:
        out.append(unwrap_model(w[1]))
    return out


def find_classifier(model: nn.Module) -> tuple[nn.Module, str]:
    """The final classifier of ``model``: ``(parent, name)`` with ``getattr(parent, name)`` the last layer.

    Works for every equinets classification model (``task="cls"``: PointNet, DGCNN, GNN, GIN, ...), through
    ``FrameAveraging`` / ``GraphFrameAveraging`` wrappers and DDP / ``torch.compile`` wrappers. The rule: the
    model's ``head`` attribute when it has one (else the model itself), then its last child with parameters
    or buffers, recursively, must be an ``nn.Linear`` (or a head with a 2-D ``weight``, see
    :func:`is_classifier_layer`) whose ``out_features`` is the model's ``out_channels``.
    ``setattr(parent, name, new_head)`` replaces the classifier in place (what ``attach_head`` does).

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
        ValueError: the model is not a classifier (``task`` other than ``"cls"``, scalar frame-averaging
            outputs required), or its last layer is not linear, or its width differs from ``out_channels``.

    Example:
        >>> from equinets.nn import PointNet
        >>> from equinets.frames import FrameAveraging
        >>> net = FrameAveraging(PointNet(0, 5, hidden_channels=(8,), emb_dims=16, head_channels=(8,)))
        >>> parent, name = find_classifier(net)
        >>> name, getattr(parent, name)
        ('4', Linear(in_features=8, out_features=5, bias=True))
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    chain = _chain(model)
    for m in chain:
        task = getattr(m, "task", None)
        if task is not None and task != "cls":
            raise ValueError(f"model must be a classification model (task='cls', one row of logits per cloud), but "
                             f"{type(m).__name__} has task={task!r}")
        irreps_out = getattr(m, "irreps_out", None)
        if _wrapper_child(m) is not None and irreps_out is not None and any(ir.l > 0 or ir.p != 1 for _, ir in irreps_out):
            raise ValueError(f"model must output invariant logits, but {type(m).__name__} has irreps_out "
                             f"{irreps_out} (classification needs None or scalars 0e)")
    inner = chain[-1]
    root, prefix = inner, ""
    head = getattr(inner, "head", None)
    if isinstance(head, nn.Module):
        if is_classifier_layer(head):
            parent, name = inner, "head"
            layer = head
        else:
            root, prefix = head, "head"
            parent, name, _ = _last_layer(root, prefix)
            layer = getattr(parent, name)
    else:
        parent, name, _ = _last_layer(root, prefix)
        layer = getattr(parent, name)
    out_channels = getattr(inner, "out_channels", None)
    k = layer.weight.shape[0] if not isinstance(layer, nn.Linear) else layer.out_features
    if isinstance(out_channels, int) and k != out_channels:
        raise ValueError(f"the last layer of {type(inner).__name__} ({type(layer).__name__}, {k} outputs) does not "
                         f"produce its out_channels = {out_channels} logits")
    return parent, name


class FeatureCapture:
    """Context manager collecting the classifier's input (the penultimate features) of every forward.

    On exit (or at any time) :attr:`features` holds the captured rows concatenated, one per cloud, in
    float64 for frame-averaged models (the weighted frame mean, see the module docstring) and in the
    model's dtype otherwise. :meth:`clear` empties it, e.g. between epochs.

    Frame-averaged models must run in ``eval()`` mode or with ``num_samples=None`` (the captured frame mean
    must use the frames the forward used; sampled frames are drawn afresh at each forward). The frame weights
    are recomputed by a pre-hook on the wrapper (one more :func:`~equinets.frames.pca_frames` per forward,
    small next to the backbone).

    Example:
        >>> from equinets.nn import PointNet
        >>> net = PointNet(0, 3, hidden_channels=(8,), emb_dims=16, head_channels=(8,)).eval()
        >>> with FeatureCapture(net) as cap:
        ...     logits = net(torch.randn(4, 10, 3))
        >>> cap.features.shape
        torch.Size([4, 8])
    """

    def __init__(self, model: nn.Module, *, detach: bool = True) -> None:
        parent, name = find_classifier(model)
        self.model = model
        self.classifier: nn.Module = getattr(parent, name)
        self.detach = bool(detach)
        self._rows: list[Tensor] = []
        self._handles: list = []
        self._fa_pending: list[tuple[Tensor, Tensor, int]] = []
        self._fa = [m for m in _chain(model) if _wrapper_child(m) is not None]

    # -- hooks -------------------------------------------------------------------------------------
    def _fa_hook(self, module, args, kwargs):
        from .._checks import as_points
        from ..frames.pca import frame_pairs

        if module.training and module.num_samples is not None:
            raise RuntimeError("capturing the features of a FrameAveraging model with num_samples needs model.eval() "
                               "(sampled frames differ between forwards)")
        pos = args[0] if args else kwargs.get("pos")
        x = args[1] if len(args) > 1 else kwargs.get("x")
        batch = args[2] if len(args) > 2 else kwargs.get("batch")
        inp = as_points(pos, x, batch, check=False)
        cloud_of, _, w = frame_pairs(module.frames(inp.pos, inp.batch), None)
        self._fa_pending.append((cloud_of, w, inp.num_graphs))

    def _classifier_hook(self, module, args):
        h = args[0]
        if self.detach:
            h = h.detach()
        if self._fa_pending:
            cloud_of, w, B = self._fa_pending.pop()
            if h.shape[0] != cloud_of.shape[0]:
                raise RuntimeError(f"the classifier saw {h.shape[0]} rows for {cloud_of.shape[0]} framed clouds")
            h = torch.zeros(B, h.shape[1], dtype=torch.float64, device=h.device).index_add_(
                0, cloud_of.to(h.device), h.to(torch.float64) * w.to(h.device, torch.float64)[:, None])
        self._rows.append(h)

    # -- context -----------------------------------------------------------------------------------
    def __enter__(self) -> FeatureCapture:
        from ..frames.graph import GraphFrameAveraging

        if any(isinstance(m, GraphFrameAveraging) for m in self._fa):
            raise NotImplementedError("feature capture through GraphFrameAveraging is not supported: capture the "
                                      "features of the wrapped GNN per framed graph instead")
        for m in self._fa:
            self._handles.append(m.register_forward_pre_hook(self._fa_hook, with_kwargs=True))
        self._handles.append(self.classifier.register_forward_pre_hook(self._classifier_hook))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._fa_pending.clear()

    def clear(self) -> None:
        """Forget the rows captured so far."""
        self._rows.clear()

    def pop(self) -> Tensor:
        """The rows captured since the last :meth:`pop` / :meth:`clear` (then forgotten)."""
        out = self.features
        self._rows.clear()
        return out

    @property
    def features(self) -> Tensor:
        """``(n, d)`` captured features (rows of every forward since the last :meth:`clear`)."""
        if not self._rows:
            d = self.classifier.weight.shape[1]
            return torch.zeros(0, d, dtype=self.classifier.weight.dtype)
        return torch.cat(self._rows, 0)


def default_forward(model: nn.Module, batch) -> Tensor:
    """``model(batch.pos, x, batch.batch)`` with ``x = batch.x`` only when the innermost model takes features
    (``in_channels > 0``), as the trainer does with ``use_features``."""
    takes_x = (getattr(_chain(model)[-1], "in_channels", 0) or 0) > 0
    return model(batch.pos, getattr(batch, "x", None) if takes_x else None, batch.batch)


@torch.no_grad()
def capture_features(model: nn.Module, batches: Iterable, *, forward: Callable | None = None,
                     device=None, labels: str = "y") -> tuple[Tensor, Tensor, Tensor]:
    """Run ``model`` (in ``eval()`` mode) over ``batches`` and return ``(features, labels, logits)``.

    Args:
        model: any model :func:`find_classifier` accepts.
        batches: an iterable of PyG ``Batch``/``Data`` (a ``DataLoader``) carrying ``pos``, ``batch`` and the
            labels attribute.
        forward: ``forward(model, batch) -> logits``; default :func:`default_forward` (pass the training
            loop's own call to feed features or categories the way the run did).
        device: where the batches go (default: the model's device).
        labels: the attribute of the batch holding the class labels.

    Returns:
        ``features`` ``(n, d)``, ``labels`` ``(n,)`` long, ``logits`` ``(n, K)``, all on the CPU; the model's
        training mode is restored afterwards.

    Example:
        >>> from torch_geometric.data import Batch, Data
        >>> from equinets.nn import PointNet
        >>> _ = torch.manual_seed(0)
        >>> net = PointNet(0, 3, hidden_channels=(8,), emb_dims=16, head_channels=(8,))
        >>> clouds = [Data(pos=torch.randn(10, 3), y=torch.tensor([k % 3])) for k in range(6)]
        >>> h, y, logits = capture_features(net, [Batch.from_data_list(clouds[:4]), Batch.from_data_list(clouds[4:])])
        >>> tuple(h.shape), y.tolist(), tuple(logits.shape), net.training
        ((6, 8), [0, 1, 2, 0, 1, 2], (6, 3), True)
    """
    forward = forward or default_forward
    was_training = model.training
    device = device or next(model.parameters()).device
    feats, ys, outs = [], [], []
    model.eval()
    try:
        with FeatureCapture(model) as cap:
            for batch in batches:
                batch = batch.to(device)
                out = forward(model, batch)
                h = cap.pop()
                y = getattr(batch, labels, None)
                if y is None:
                    raise ValueError(f"labels: the batches carry no attribute {labels!r} with the class labels")
                y = y.reshape(-1)
                if h.shape[0] != y.shape[0] or out.shape[0] != y.shape[0]:
                    raise RuntimeError(f"captured {h.shape[0]} feature rows and {out.shape[0]} logit rows for "
                                       f"{y.shape[0]} labels")
                feats.append(h.cpu())
                ys.append(y.long().cpu())
                outs.append(out.detach().cpu())
    finally:
        model.train(was_training)
    if not feats:
        raise ValueError("batches: no batch to capture features from (empty loader)")
    return torch.cat(feats), torch.cat(ys), torch.cat(outs)
