r"""Unconstrained-feature models (UFM) of neural collapse, made runnable: solvers, closed forms, central path.

In a UFM the penultimate features are free variables: one column :math:`h_i \in \mathbb{R}^d` per training
sample, classified by :math:`M \ge 1` linear layers :math:`P = W_M \cdots W_1` (Mixon et al. 2020; Zhu et
al. 2021; Dang et al. 2023). With :math:`N = \sum_k n_k` samples, one-hot targets :math:`Y` and weight
decays :math:`\lambda_W` (every layer) and :math:`\lambda_H`, the objective is

.. math::
    \mathcal{L} = \frac{1}{N}\sum_i \ell(P h_i + b,\ y_i) + \frac{\lambda_W}{2}\sum_m \|W_m\|_F^2
                  + \frac{\lambda_H}{2}\|H\|_F^2,

with :math:`\ell` the squared error :math:`\tfrac12\|z - e_y\|^2` (``loss="mse"``) or the cross-entropy
(``loss="ce"``), and an optional unregularised bias :math:`b`.

* :func:`solve_ufm` -- minimise it (L-BFGS with a strong-Wolfe line search, or plain gradient descent) in
  float64 from a seeded random start or from a given one; balanced or imbalanced, any depth.
* :func:`dang_closed_form` -- Dang et al.'s global minimiser for imbalanced, bias-free MSE, with the
  minority-collapse thresholds (:func:`minority_collapse_threshold`), and :func:`dang_point`, that
  minimiser as layer weights and features (a start "near the prediction").
* :func:`ce_balanced_closed_form` -- the balanced cross-entropy minimiser (Zhu et al. 2021): a simplex ETF
  whose scale solves a one-dimensional convex problem.
* :func:`mixup_ufm_features` -- Fisher, Meng & Papyan's mixup UFM with a fixed simplex-ETF classifier.
* :func:`central_path` -- Tirer, Huang & Niles-Weed's central path, along which
  :math:`\mathrm{Tr}\,\Sigma_W / \mathrm{Tr}\,\Sigma_B` strictly decreases.

Collapse metrics of the solutions come from :func:`equinets.collapse.nc_metrics` (features as rows).

**Warning (depth >= 2).** For :math:`M \ge 2` the zero solution of every class is a *local* minimum of the
objective, so gradient methods from a random start can "kill" a minority class that the global minimum
keeps alive (see :func:`dang_closed_form`): compare objective values (:attr:`UFMResult.objective`,
:func:`ufm_objective`), or start near the prediction.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from .._checks import check_choice, check_int, check_labels, check_real

__all__ = ["UFMResult", "DangSolution", "CEBalancedSolution", "CentralPath", "solve_ufm", "ufm_objective",
           "dang_closed_form", "dang_point", "minority_collapse_threshold", "ce_balanced_closed_form",
           "mixup_ufm_features", "central_path", "labels_from_sizes"]

F64 = torch.float64


def _sizes(class_sizes) -> list[int]:
    if isinstance(class_sizes, Tensor):
        class_sizes = class_sizes.tolist()
    if not isinstance(class_sizes, (list, tuple)) or len(class_sizes) < 2:
        raise ValueError(f"class_sizes must be a sequence of at least 2 class sizes, got {class_sizes!r}")
    return [check_int(n, "class_sizes", 1) for n in class_sizes]


def _lam(value, name: str) -> float:
    return check_real(value, name, 0.0)


def labels_from_sizes(class_sizes) -> Tensor:
    """The labels ``(N,)`` of ``n_k`` samples of each class ``k``, class by class.

    >>> labels_from_sizes([2, 1]).tolist()
    [0, 0, 1]
    """
    n = _sizes(class_sizes)
    return torch.arange(len(n)).repeat_interleave(torch.tensor(n))


# -- the objective and its solver ------------------------------------------------------------------------
def ufm_objective(weights, features: Tensor, labels: Tensor, *, lambda_W: float, lambda_H: float, loss: str = "mse",
                  bias: Tensor | None = None) -> Tensor:
    r"""The UFM objective :math:`\mathcal{L}` of the module docstring (a differentiable scalar).

    Args:
        weights: the layers ``[W_1, ..., W_M]``, ``W_1`` ``(d_1, d)`` ... ``W_M`` ``(K, d_{M-1})``.
        features: ``H`` as rows, ``(N, d)``.
        labels: ``(N,)`` class ids.
        lambda_W, lambda_H: weight decays.
        loss: ``"mse"`` or ``"ce"``.
        bias: optional ``(K,)`` (not regularised).

    >>> W = [torch.eye(2, dtype=torch.float64)]
    >>> float(ufm_objective(W, torch.eye(2, dtype=torch.float64), torch.tensor([0, 1]), lambda_W=0.0, lambda_H=0.0))
    0.0
    """
    z = features
    for W in weights:
        z = z @ W.T
    if bias is not None:
        z = z + bias
    K = z.shape[1]
    if loss == "mse":
        data = 0.5 * (z - torch.nn.functional.one_hot(labels, K).to(z.dtype)).pow(2).sum(1).mean()
    else:
        data = torch.nn.functional.cross_entropy(z, labels)
    reg = 0.5 * lambda_W * sum(W.pow(2).sum() for W in weights) + 0.5 * lambda_H * features.pow(2).sum()
    return data + reg


class UFMResult(NamedTuple):
    """A solution of :func:`solve_ufm`.

    Attributes:
        weights: ``[W_1, ..., W_M]`` (float64, detached).
        features: ``H`` as rows ``(N, d)``.
        labels: ``(N,)``.
        bias: ``(K,)`` or ``None``.
        objective: :math:`\\mathcal{L}` at the solution.
        grad_norm: norm of the full gradient there.
        iterations: optimiser iterations used.
    """

    weights: list
    features: Tensor
    labels: Tensor
    bias: Tensor | None
    objective: float
    grad_norm: float
    iterations: int

    @property
    def product(self) -> Tensor:
        """:math:`P = W_M \\cdots W_1` ``(K, d)``."""
        P = self.weights[0]
        for W in self.weights[1:]:
            P = W @ P
        return P

    def class_means(self) -> Tensor:
        """``(K, d)`` class means of the features."""
        K = self.weights[-1].shape[0]
        oh = torch.nn.functional.one_hot(self.labels, K).to(F64)
        return (oh.T @ self.features) / oh.sum(0)[:, None]


def solve_ufm(class_sizes, dim: int, *, num_layers: int = 1, loss: str = "mse", lambda_W: float = 5e-3,
              lambda_H: float = 5e-3, bias: bool = False, method: str = "lbfgs", init=None, init_scale: float = 0.1,
              seed: int = 0, max_iter: int = 20000, lr: float = 0.1, tol: float = 1e-9) -> UFMResult:
    r"""Minimise the UFM objective (module docstring) in float64.

    Args:
        class_sizes: samples per class :math:`n_1, \dots, n_K` (imbalanced allowed); the labels are
            :func:`labels_from_sizes`.
        dim: feature and hidden width :math:`d` (every hidden layer is :math:`d \times d`).
        num_layers: depth :math:`M` of the linear classifier.
        loss: ``"mse"`` or ``"ce"``.
        lambda_W, lambda_H: weight decays (>= 0).
        bias: add an unregularised last-layer bias.
        method: ``"lbfgs"`` (``torch.optim.LBFGS``, strong Wolfe, history 50) or ``"gd"`` (gradient descent with step
            ``lr`` for ``max_iter`` steps). L-BFGS runs in chunks of 200 iterations and stops when the
            gradient norm is below ``tol`` or a chunk no longer lowers the objective (the float64 floor).
        init: optional start ``(weights, features[, bias])`` (e.g. :func:`dang_point` plus noise); default
            Gaussian entries of standard deviation ``init_scale`` drawn with ``seed``.
        max_iter, lr, tol: optimiser budget, GD step and gradient-norm tolerance.

    Returns:
        :class:`UFMResult`.

    Example:
        >>> r = solve_ufm([20, 10], 3, lambda_W=1e-2, lambda_H=1e-2)
        >>> d = dang_closed_form([20, 10], lambda_W=1e-2, lambda_H=1e-2)
        >>> bool(torch.allclose(torch.diag(r.product @ r.product.T), d.pp_diag, atol=1e-8))
        True
    """
    n = _sizes(class_sizes)
    K = len(n)
    d = check_int(dim, "dim", 1)
    M = check_int(num_layers, "num_layers", 1)
    check_choice(loss, "loss", ("mse", "ce"))
    lw, lh = _lam(lambda_W, "lambda_W"), _lam(lambda_H, "lambda_H")
    check_choice(method, "method", ("lbfgs", "gd"))
    init_scale = check_real(init_scale, "init_scale", 0.0)
    max_iter = check_int(max_iter, "max_iter", 1)
    lr = check_real(lr, "lr", 0.0)
    tol = check_real(tol, "tol", 0.0)
    labels = labels_from_sizes(n)
    N = labels.numel()
    shapes = [(d, d)] * (M - 1) + [(K, d)]
    if init is None:
        g = torch.Generator().manual_seed(check_int(seed, "seed"))
        Ws = [init_scale * torch.randn(*s, generator=g, dtype=F64) for s in shapes]
        H = init_scale * torch.randn(N, d, generator=g, dtype=F64)
        b = torch.zeros(K, dtype=F64) if bias else None
    else:
        if not isinstance(init, (tuple, list)) or len(init) not in (2, 3):
            raise ValueError("init must be a tuple (weights, features) or (weights, features, bias)")
        Ws = [torch.as_tensor(W, dtype=F64).clone() for W in init[0]]
        H = torch.as_tensor(init[1], dtype=F64).clone()
        if [tuple(W.shape) for W in Ws] != shapes or tuple(H.shape) != (N, d):
            raise ValueError(f"init must hold weights of shapes {shapes} and features of shape {(N, d)}, got "
                             f"{[tuple(W.shape) for W in Ws]} and {tuple(H.shape)}")
        b = (torch.as_tensor(init[2], dtype=F64).clone() if len(init) == 3 and init[2] is not None
             else torch.zeros(K, dtype=F64)) if bias else None
    params = [*Ws, H] + ([b] if b is not None else [])
    for p in params:
        p.requires_grad_(True)

    def objective():
        return ufm_objective(Ws, H, labels, lambda_W=lw, lambda_H=lh, loss=loss, bias=b)

    def grad_norm() -> float:
        gs = torch.autograd.grad(objective(), params)
        return float(torch.sqrt(sum(g.pow(2).sum() for g in gs)))

    it = 0
    if method == "lbfgs":
        opt = torch.optim.LBFGS(params, lr=1.0, max_iter=min(200, max_iter), history_size=50, tolerance_grad=tol,
                                tolerance_change=1e-16, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            f = objective()
            f.backward()
            return f

        prev = math.inf
        while it < max_iter:
            opt.step(closure)
            done = opt.state[opt._params[0]]["n_iter"]
            with torch.no_grad():
                f = float(objective())
            stalled = prev - f <= 1e-15 * max(1.0, abs(f))  # float64 floor: no progress over a whole chunk
            it, prev = done, f
            if stalled or grad_norm() <= tol:
                break
    else:
        opt = torch.optim.SGD(params, lr=lr)
        for _ in range(max_iter):
            opt.zero_grad()
            objective().backward()
            opt.step()
        it = max_iter
    gn = grad_norm()
    with torch.no_grad():
        f = float(objective())
    return UFMResult([W.detach() for W in Ws], H.detach(), labels, None if b is None else b.detach(), f, gn, it)


# -- Dang et al.: imbalanced bias-free MSE ------------------------------------------------------------------
class DangSolution(NamedTuple):
    r"""Dang et al.'s global minimiser, per class :math:`k` (all ``(K,)`` float64 tensors but the scalars).

    Attributes:
        x: :math:`x_k = \arg\min_{x \ge 0} \psi_k(x)`.
        pp_diag: :math:`(P P^\top)_{kk} = \|p_k\|^2 = s_k^{2M} = N\lambda_H x_k^M` (rows of :math:`P` orthogonal).
        feature_sq_norm: :math:`\|\bar h_k\|^2 = s_k^{2M} / (s_k^{2M} + N\lambda_H)^2` (means orthogonal).
        logit: own-class logit :math:`(P\bar h_k)_k = s_k^{2M}/(s_k^{2M} + N\lambda_H)` (others 0).
        alive: :math:`x_k > 0` (class not collapsed to zero).
        threshold: the class size at or below which a class is collapsed: :math:`N^2\lambda_W\lambda_H`
            (:math:`M = 1`) or :math:`M b/(M-1)^{(M-1)/M}` (:math:`M \ge 2`).
        b: :math:`b = M N \lambda_W (N\lambda_H)^{1/M}`.
    """

    x: Tensor
    pp_diag: Tensor
    feature_sq_norm: Tensor
    logit: Tensor
    alive: Tensor
    threshold: float
    b: float


def minority_collapse_threshold(num_samples: int, lambda_W: float, lambda_H: float, num_layers: int = 1) -> float:
    r"""Largest class size whose class mean and classifier row are exactly 0 at the global minimum.

    Dang et al. (ICML 2023), imbalanced bias-free MSE with :math:`N` samples: with
    :math:`b = M N \lambda_W (N\lambda_H)^{1/M}`,

    .. math::
        n^\star = N^2 \lambda_W \lambda_H \;(M = 1), \qquad n^\star = \frac{M\, b}{(M-1)^{(M-1)/M}} \;(M \ge 2),

    from :math:`\psi(x^\star) = \psi(0)` and :math:`\psi'(x^\star) = 0` (so :math:`x^{\star M} = M - 1`). For
    :math:`M = 1` the solution goes to 0 continuously at :math:`n^\star`; for :math:`M \ge 2` it jumps from
    :math:`x = (M-1)^{1/M}` to 0.

    >>> round(minority_collapse_threshold(360, 5e-3, 5e-3, 2), 3)
    9.66
    """
    N = check_int(num_samples, "num_samples", 1)
    lw, lh = _lam(lambda_W, "lambda_W"), _lam(lambda_H, "lambda_H")
    M = check_int(num_layers, "num_layers", 1)
    b = M * N * lw * (N * lh) ** (1.0 / M)
    return N * N * lw * lh if M == 1 else M * b / (M - 1) ** ((M - 1) / M)


def _psi_argmin(n: float, b: float, M: int) -> float:
    r"""argmin over x >= 0 of psi(x) = n/(x^M + 1) + b x (ties go to 0)."""
    if b == 0:
        raise ValueError("lambda_W and lambda_H must be > 0 for Dang et al.'s closed form (b = 0 has no minimiser)")
    if M == 1:
        return max(0.0, math.sqrt(n / b) - 1.0)
    g = lambda x: M * x ** (M - 1) / (x**M + 1) ** 2  # noqa: E731  psi'(x) = b - n g(x)
    x_peak = ((M - 1) / (M + 1)) ** (1.0 / M)
    if b / n > g(x_peak):
        return 0.0  # psi increasing: 0 is the only minimum
    lo, hi = x_peak, (M * n / b) ** (1.0 / (M + 1)) + 1.0  # g(hi) < M/hi^(M+1) <= b/n
    for _ in range(200):  # g decreasing on [x_peak, inf): bisection for the largest root of g = b/n
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if g(mid) > b / n else (lo, mid)
    x = 0.5 * (lo + hi)
    return x if n / (x**M + 1) + b * x < n else 0.0  # compare with the local minimum at 0


def dang_closed_form(class_sizes, *, lambda_W: float, lambda_H: float, num_layers: int = 1) -> DangSolution:
    r"""Global minimiser of the imbalanced bias-free MSE deep-linear UFM (Dang et al., ICML 2023).

    Dang, Tran, Osher, Tran-The, Ho, Nguyen, "Neural collapse in deep linear networks: from balanced to
    imbalanced data" (ICML 2023, Thm. 4.1 and its proof, as in the paper's code): the objective of
    :func:`solve_ufm` with ``loss="mse"``, no bias and :math:`M` layers decouples into one orthogonal
    direction per class. With :math:`b = M N \lambda_W (N\lambda_H)^{1/M}` and

    .. math::
        x_k = \arg\min_{x \ge 0}\ \psi_k(x), \qquad \psi_k(x) = \frac{n_k}{x^M + 1} + b\,x, \qquad
        s_k^{2M} = N\lambda_H\, x_k^M,

    the features collapse to pairwise orthogonal class means with :math:`\|\bar h_k\|^2 =
    s_k^{2M}/(s_k^{2M} + N\lambda_H)^2`, the rows of :math:`P` are orthogonal with :math:`\|p_k\|^2 =
    s_k^{2M}`, :math:`p_k = (s_k^{2M} + N\lambda_H)\bar h_k`, and :math:`(P\bar h_k)_k = s_k^{2M}/(s_k^{2M} +
    N\lambda_H)`. For :math:`M = 1`: :math:`s_k^2 = \sqrt{n_k\lambda_H/\lambda_W} - N\lambda_H`.

    For :math:`M \ge 2`, :math:`x = 0` is always a local minimum of :math:`\psi_k` (:math:`\psi_k'(0) = b > 0`);
    the nonzero candidate (the largest root of :math:`b/n_k = M x^{M-1}/(x^M+1)^2`, found by bisection) is
    kept only when :math:`\psi_k` is lower there than at 0 (the paper's code takes the root without this
    comparison). Class :math:`k` is collapsed iff :math:`n_k \le` :func:`minority_collapse_threshold`.

    Args:
        class_sizes: :math:`n_1, \dots, n_K`.
        lambda_W, lambda_H: weight decays (> 0).
        num_layers: :math:`M`.

    Returns:
        :class:`DangSolution`.

    Example:
        >>> s = dang_closed_form([200, 100, 50, 10], lambda_W=5e-3, lambda_H=5e-3, num_layers=2)
        >>> [round(v, 2) for v in s.pp_diag.tolist()], s.alive.tolist()
        ([31.78, 19.11, 11.11, 1.92], [True, True, True, True])
    """
    n = _sizes(class_sizes)
    lw, lh = _lam(lambda_W, "lambda_W"), _lam(lambda_H, "lambda_H")
    M = check_int(num_layers, "num_layers", 1)
    if lw == 0 or lh == 0:
        raise ValueError(f"lambda_W and lambda_H must be > 0 for the closed form, got lambda_W={lambda_W}, "
                         f"lambda_H={lambda_H}")
    N = sum(n)
    b = M * N * lw * (N * lh) ** (1.0 / M)
    x = torch.tensor([_psi_argmin(float(nk), b, M) for nk in n], dtype=F64)
    s2m = N * lh * x**M
    return DangSolution(x, s2m, s2m / (s2m + N * lh) ** 2, s2m / (s2m + N * lh), x > 0,
                        minority_collapse_threshold(N, lw, lh, M), b)


def dang_point(class_sizes, dim: int, *, lambda_W: float, lambda_H: float, num_layers: int = 1):
    r"""Dang et al.'s minimiser as a point of :func:`solve_ufm`'s variables: ``(weights, features)``.

    Every layer is :math:`\mathrm{diag}(s_k)` on the first :math:`K` coordinates (the last one
    :math:`K \times d`), so :math:`P = [\mathrm{diag}(s_k^M), 0]`, and every sample of class :math:`k` is
    :math:`\|\bar h_k\|\, e_k`. Needs :math:`d \ge K`. Use it (plus noise) as ``init`` of :func:`solve_ufm`.

    >>> Ws, H = dang_point([3, 2], 2, lambda_W=1e-2, lambda_H=1e-2)
    >>> [tuple(W.shape) for W in Ws], tuple(H.shape)
    ([(2, 2)], (5, 2))
    """
    sol = dang_closed_form(class_sizes, lambda_W=lambda_W, lambda_H=lambda_H, num_layers=num_layers)
    K = len(sol.x)
    d = check_int(dim, "dim", 1)
    if d < K:
        raise ValueError(f"dim must be >= the number of classes {K} for the orthogonal solution, got {d}")
    M = check_int(num_layers, "num_layers", 1)
    s = sol.pp_diag ** (1.0 / (2 * M))
    layer = torch.zeros(d, d, dtype=F64)
    layer[range(K), range(K)] = s
    Ws = [layer.clone() for _ in range(M - 1)] + [layer[:K].clone()]
    labels = labels_from_sizes(class_sizes)
    H = torch.zeros(labels.numel(), d, dtype=F64)
    H[torch.arange(labels.numel()), labels] = sol.feature_sq_norm.sqrt()[labels]
    return Ws, H


# -- balanced cross-entropy (Zhu et al. 2021) ------------------------------------------------------------------
class CEBalancedSolution(NamedTuple):
    r"""Balanced CE minimiser: ETF classifier rows of norm ``weight_norm``, ETF class means of norm
    ``feature_norm``, product :math:`\rho = \|w\|\|\bar h\|` and the objective value."""

    rho: float
    weight_norm: float
    feature_norm: float
    objective: float


def ce_balanced_closed_form(num_classes: int, per_class: int, *, lambda_W: float, lambda_H: float) -> CEBalancedSolution:
    r"""Global minimiser of the balanced cross-entropy UFM (:math:`M = 1`, :math:`d \ge K - 1`).

    Zhu et al., "A geometric analysis of neural collapse with unconstrained features" (NeurIPS 2021,
    Thm. 3.1): every global minimiser has simplex-ETF classifier rows and collapsed, ETF class means with
    :math:`w_k \propto \bar h_k` (and a zero bias when there is one). Writing :math:`w_k = a\,e_k`,
    :math:`\bar h_k = c\,e_k` (:math:`e_k` unit ETF rows, :math:`e_j^\top e_k = -1/(K-1)`) the objective
    of :func:`solve_ufm` becomes
    :math:`\log(1 + (K-1)e^{-\rho K/(K-1)}) + \tfrac{K\lambda_W}{2}a^2 + \tfrac{N\lambda_H}{2}c^2` with
    :math:`\rho = ac`; minimising the regulariser at fixed :math:`\rho` gives
    :math:`a^2 = \rho\sqrt{N\lambda_H/(K\lambda_W)}` and leaves the convex scalar problem

    .. math:: \min_{\rho \ge 0}\ \log\big(1 + (K-1)e^{-\rho K/(K-1)}\big) + \rho\sqrt{K N \lambda_W \lambda_H},

    solved by bisection; :math:`\rho = 0` (everything collapses to zero) iff
    :math:`\sqrt{K N\lambda_W\lambda_H} \ge 1`.

    >>> s = ce_balanced_closed_form(4, 10, lambda_W=1e-3, lambda_H=1e-3)
    >>> round(s.rho, 4), round(s.weight_norm / s.feature_norm, 4)
    (4.3102, 3.1623)
    """
    K = check_int(num_classes, "num_classes", 2)
    n = check_int(per_class, "per_class", 1)
    lw, lh = _lam(lambda_W, "lambda_W"), _lam(lambda_H, "lambda_H")
    if lw == 0 or lh == 0:
        raise ValueError(f"lambda_W and lambda_H must be > 0, got lambda_W={lambda_W}, lambda_H={lambda_H}")
    N = K * n
    c = math.sqrt(K * N * lw * lh)
    q = K / (K - 1)

    def dphi(r):  # derivative of the scalar objective
        e = (K - 1) * math.exp(-r * q)
        return -q * e / (1 + e) + c

    rho = 0.0
    if c < 1:
        lo, hi = 0.0, 1.0
        while dphi(hi) < 0:
            hi *= 2
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if dphi(mid) < 0 else (lo, mid)
        rho = 0.5 * (lo + hi)
    a = math.sqrt(rho * math.sqrt(N * lh / (K * lw)))
    h = rho / a if a > 0 else 0.0
    obj = math.log(1 + (K - 1) * math.exp(-rho * q)) + rho * c
    return CEBalancedSolution(rho, a, h, obj)


# -- mixup UFM (Fisher, Meng, Papyan 2024) -------------------------------------------------------------------
def mixup_ufm_features(weight: Tensor, pairs, lambdas, *, lambda_H: float, max_iter: int = 100,
                       tol: float = 1e-12) -> Tensor:
    r"""Optimal UFM features of mixed samples with a fixed classifier (Fisher, Meng & Papyan, ICLR 2024).

    With the classifier :math:`W` fixed (e.g. a simplex ETF, :func:`~equinets.collapse.heads.simplex_etf`),
    the mixup UFM decouples per mixed sample: a sample mixing classes :math:`c` and :math:`c'` with weight
    :math:`\lambda` has the soft target :math:`y_\lambda = \lambda e_c + (1-\lambda) e_{c'}` and the optimal
    feature

    .. math:: h^\star = \arg\min_h\ \mathrm{CE}(W h,\ y_\lambda) + \frac{\lambda_H}{2}\|h\|^2,

    stationary where :math:`W^\top(\mathrm{softmax}(Wh) - y_\lambda) + \lambda_H h = 0`. For a simplex-ETF
    :math:`W` the solution lies in :math:`\mathrm{span}\{w_c, w_{c'}\}` and, as :math:`\lambda_H \to 0`, the
    logit gap :math:`z_c - z_{c'}` tends to :math:`\log(\lambda/(1-\lambda))` (the two-class posterior equals
    :math:`\lambda`). At a fixed :math:`\lambda_H > 0` the agreement degrades towards :math:`\lambda \to 0, 1`,
    where the log-odds diverge while the decay keeps :math:`\|h\|` bounded: for :math:`K = 10`, the unit ETF
    in :math:`d = 9` and :math:`\lambda_H = 10^{-4}`, :math:`|z_c - z_{c'} - \log\frac{\lambda}{1-\lambda}|`
    is 0.0018 at :math:`\lambda = 0.8`, 0.0038 at 0.9, 0.0089 at 0.96, 0.0100 at 0.965, 0.011 at 0.97,
    0.027 at 0.99 and 0.044 at 0.995 (symmetric in :math:`\lambda \leftrightarrow 1-\lambda`): within
    1e-2 for :math:`\lambda \in [0.035, 0.965]` only. Same-class mixtures (:math:`c = c'`) give
    :math:`h^\star \propto w_c` for every :math:`\lambda`. Solved by Newton's method with backtracking (the
    problem is strictly convex for :math:`\lambda_H > 0`) in float64.

    Args:
        weight: ``(K, d)`` fixed classifier.
        pairs: ``(S, 2)`` long ``(c, c')`` per mixed sample.
        lambdas: ``(S,)`` mixing weights of ``c`` in ``[0, 1]``.
        lambda_H: feature weight decay (> 0).
        max_iter, tol: Newton iterations and gradient-norm tolerance (it also stops once no objective
            decreases any more: the float64 floor, about 1e-11 in the gradient).

    Returns:
        ``(S, d)`` optimal features (float64).

    Example:
        >>> from equinets.collapse.heads import simplex_etf
        >>> W = simplex_etf(10, 9)
        >>> h = mixup_ufm_features(W, torch.tensor([[0, 1]]), torch.tensor([0.9]), lambda_H=1e-4)
        >>> z = h @ W.T
        >>> round(float(z[0, 0] - z[0, 1]), 3), round(math.log(9), 3)
        (2.201, 2.197)
    """
    W = torch.as_tensor(weight, dtype=F64)
    if W.dim() != 2:
        raise ValueError(f"weight must have shape (K, d), got {tuple(W.shape)}")
    K, d = W.shape
    pairs = torch.as_tensor(pairs)
    if pairs.dim() != 2 or pairs.shape[1] != 2:
        raise ValueError(f"pairs must have shape (S, 2), got {tuple(pairs.shape)}")
    check_labels(pairs, K, "pairs")
    lam = torch.as_tensor(lambdas, dtype=F64).reshape(-1)
    if lam.shape[0] != pairs.shape[0]:
        raise ValueError(f"lambdas must have one weight per pair ({pairs.shape[0]}), got {lam.shape[0]}")
    if bool(((lam < 0) | (lam > 1) | ~torch.isfinite(lam)).any()):
        raise ValueError("lambdas must lie in [0, 1]")
    lh = _lam(lambda_H, "lambda_H")
    if lh == 0:
        raise ValueError("lambda_H must be > 0 (without feature decay the mixup UFM has no minimiser)")
    S = pairs.shape[0]
    Y = torch.zeros(S, K, dtype=F64)
    Y[torch.arange(S), pairs[:, 0]] += lam
    Y[torch.arange(S), pairs[:, 1]] += 1 - lam
    h = torch.zeros(S, d, dtype=F64)

    def f(h):
        z = h @ W.T
        return -(Y * torch.log_softmax(z, 1)).sum(1) + 0.5 * lh * h.pow(2).sum(1)

    eye = torch.eye(d, dtype=F64)

    def newton(h):
        p = torch.softmax(h @ W.T, 1)
        g = (p - Y) @ W + lh * h
        v = p @ W  # Hessian W^T (diag p - p p^T) W + lambda_H I
        Hs = torch.einsum("ki,sk,kj->sij", W, p, W) - v[:, :, None] * v[:, None, :] + lh * eye
        return g, torch.linalg.solve(Hs, g.unsqueeze(-1)).squeeze(-1)

    for _ in range(max_iter):
        g, step = newton(h)
        if float(g.norm(dim=1).max()) <= tol:
            break
        t = torch.ones(S, dtype=F64)
        f0, slope = f(h), (g * step).sum(1)
        for _ in range(30):  # backtracking (Armijo) per sample
            bad = f(h - t[:, None] * step) > f0 - 1e-4 * t * slope
            if not bool(bad.any()):
                break
            t = torch.where(bad, 0.5 * t, t)
        h = h - t[:, None] * step
        if float((f0 - f(h)).max()) <= 1e-15 * (1.0 + float(f0.abs().max())):
            break  # no sample's objective moves any more: the float64 floor of the line search
    # Polish: near the minimiser the objective cannot resolve the last digits (along the flat direction of
    # curvature lambda_H a gradient of 1e-9 changes f by ~1e-14), so finish with full Newton steps kept per
    # sample only while they shrink the gradient (the quadratic-convergence phase needs no line search).
    g, step = newton(h)
    for _ in range(max_iter):
        gn = g.norm(dim=1)
        if float(gn.max()) <= tol:
            break
        h_new = h - step
        g_new, step_new = newton(h_new)
        better = g_new.norm(dim=1) < gn
        if not bool(better.any()):
            break
        h = torch.where(better[:, None], h_new, h)
        g = torch.where(better[:, None], g_new, g)
        step = torch.where(better[:, None], step_new, step)
    return h


# -- Tirer et al.: the central path ------------------------------------------------------------------------
class CentralPath(NamedTuple):
    r"""A trajectory of :func:`central_path` (recorded points).

    Attributes:
        times: ``(T,)`` flow times :math:`t`.
        ratio: ``(T,)`` :math:`\mathrm{Tr}\,\Sigma_W/\mathrm{Tr}\,\Sigma_B` (``nc1_quotient`` of :func:`nc_metrics`).
        trace_within: ``(T,)`` :math:`\mathrm{Tr}\,\Sigma_W`.
        trace_between: ``(T,)`` :math:`\mathrm{Tr}\,\Sigma_B`.
        nc1: ``(T,)`` :math:`\mathrm{Tr}(\Sigma_W\Sigma_B^\dagger)/K`.
        features: ``(N, d)`` features at the last time.
    """

    times: Tensor
    ratio: Tensor
    trace_within: Tensor
    trace_between: Tensor
    nc1: Tensor
    features: Tensor


def central_path(features: Tensor, labels: Tensor, *, lambda_W: float, lambda_H: float, t_end: float = 10.0,
                 num_steps: int = 1000, record_every: int = 10) -> CentralPath:
    r"""Integrate Tirer, Huang & Niles-Weed's central path from the features ``H_0`` and record collapse.

    Tirer, Huang, Niles-Weed, "Perturbation analysis of neural collapse" (ICML 2023, Sec. 3): for
    :math:`f(W, H) = \frac{1}{2N}\|W H - Y\|_F^2 + \frac{\lambda_W}{2K}\|W\|_F^2 + \frac{\lambda_H}{2N}\|H\|_F^2`
    (their Eq. 2 without the :math:`\beta` term, :math:`N = Kn`) the classifier is eliminated by
    :math:`W^\star(H) = Y H^\top (H H^\top + n\lambda_W I_d)^{-1}` and the features follow
    :math:`\dot H = -N\nabla_H f(W^\star(H), H) = -\big(W^{\star\top}(W^\star H - Y) + \lambda_H H\big)`
    (envelope theorem), the :math:`\beta \to \infty` limit of a strongly regularised link to :math:`H_0`.
    Their Thm. 3.1: for :math:`\lambda_W > 0`, :math:`\lambda_H \ge 0` and :math:`\Sigma_W(H_0) \ne 0`,
    :math:`\mathrm{Tr}\,\Sigma_W/\mathrm{Tr}\,\Sigma_B` strictly decreases along the path (and
    :math:`e^{2\lambda_H t}\mathrm{Tr}\,\Sigma_W` decreases). Integrated with classical fourth-order
    Runge-Kutta in float64 (features as rows here: :math:`H^\top`); balanced classes (:math:`n = N/K`).

    Args:
        features: ``(N, d)`` initial features :math:`H_0^\top`.
        labels: ``(N,)`` class ids, every class with the same number of samples.
        lambda_W: classifier decay (> 0); lambda_H: feature decay (>= 0).
        t_end, num_steps: integrate over :math:`[0, t_{\mathrm{end}}]` in ``num_steps`` RK4 steps.
        record_every: record the metrics every this many steps (and at both ends).

    Returns:
        :class:`CentralPath`.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> y = torch.arange(3).repeat(5)
        >>> path = central_path(torch.randn(15, 4, generator=g, dtype=torch.float64), y, lambda_W=0.1,
        ...                     lambda_H=0.1, t_end=2.0, num_steps=40)
        >>> bool((path.ratio[1:] < path.ratio[:-1]).all())
        True
    """
    from .metrics import centred_means, collapse_stats, metrics_from_stats

    F = torch.as_tensor(features)
    if not isinstance(F, Tensor) or not F.is_floating_point() or F.dim() != 2:
        raise ValueError(f"features must be a floating-point (N, d) tensor, got {getattr(F, 'shape', F)!r}")
    F = F.to(F64).clone()
    y = torch.as_tensor(labels)
    if y.dim() != 1 or y.shape[0] != F.shape[0]:
        raise ValueError(f"labels must have shape (N,) = ({F.shape[0]},), got {tuple(y.shape)}")
    K = int(y.max()) + 1 if y.numel() else 0
    check_labels(y, max(K, 1), "labels")
    counts = torch.bincount(y, minlength=K)
    if K < 2 or bool((counts != counts[0]).any()):
        raise ValueError(f"labels must hold >= 2 classes with equal counts (the central path is balanced), got "
                         f"counts {counts.tolist()}")
    lw = _lam(lambda_W, "lambda_W")
    if lw == 0:
        raise ValueError("lambda_W must be > 0 (Tirer et al.'s Thm. 3.1 needs it; W* is undefined otherwise)")
    lh = _lam(lambda_H, "lambda_H")
    t_end = check_real(t_end, "t_end", 0.0)
    num_steps = check_int(num_steps, "num_steps", 1)
    record_every = check_int(record_every, "record_every", 1)
    N, d = F.shape
    n = N // K
    Y = torch.nn.functional.one_hot(y, K).to(F64)
    eye = torch.eye(d, dtype=F64)

    def velocity(F):
        W = torch.linalg.solve(F.T @ F + n * lw * eye, F.T @ Y).T  # (K, d): W (F^T F + n lw I) = Y^T F
        return -((F @ W.T - Y) @ W + lh * F)

    dt = t_end / num_steps
    rows = []

    def record(t):  # one set of statistics per record
        stats = collapse_stats(F, y, K)
        m = metrics_from_stats(stats)
        sw = float(stats.scatter.trace()) / N
        sb = float(centred_means(stats.counts, stats.means).pow(2).sum()) / K
        rows.append((t, m["nc1_quotient"], sw, sb, m["nc1"]))

    record(0.0)
    for step in range(1, num_steps + 1):
        k1 = velocity(F)
        k2 = velocity(F + 0.5 * dt * k1)
        k3 = velocity(F + 0.5 * dt * k2)
        k4 = velocity(F + dt * k3)
        F = F + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        if step % record_every == 0 or step == num_steps:
            record(step * dt)
    cols = torch.tensor(rows, dtype=F64).T
    return CentralPath(cols[0], cols[1], cols[2], cols[3], cols[4], F)
