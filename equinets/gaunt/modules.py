r"""Modules on Gaunt products with e3nn ``Irreps``: feature interaction, convolution and many-body products.

Luo, Chen, Krishnapriyan, *Enabling Efficient Equivariant Operations in the Fourier Basis via Gaunt
Tensor Products*, ICLR 2024, section 3-4. Every module reads its features in e3nn's ``mul_ir``
layout, treats channel ``c`` of an input ``u x (l_1, p_1) + u x (l_2, p_2) + ...`` as the
coefficients of one spherical function

.. math::
    f_c(\hat r) = \sum_{l, m} x_{c, lm}\, Y_{lm}(\hat r)

(e3nn's basis and ``normalization``; degrees missing from the irreps have zero coefficients) and
computes the coefficients of products of such functions with :func:`equinets.gaunt.gaunt_product`,
channel by channel (``"uuu"``). Learnable weights are per channel and per degree, so they keep the
product-of-functions structure (research note 1.7): a path :math:`(l_1, l_2 \to l_3)` is weighted by
:math:`a_{l_1} b_{l_2} d_{l_3}`, applied as a reweighting of each input degree before the product and
of each output degree after it. Optional e3nn :class:`~e3nn.o3.Linear` layers mix channels around
the channel-wise product (``channel_mixing=True``).

**Parities.** A signal's irreps must follow one convention: :math:`p = p_\mathrm{val}(-1)^l` for every
irrep, with :math:`p_\mathrm{val} = +1` (``0e + 1o + 2e ...``, functions of a polar vector such as
the spherical harmonics of a direction) or :math:`p_\mathrm{val} = -1` (``0o + 1e + 2o ...``,
pseudo-functions). The product of two signals has :math:`p_\mathrm{val} = p_{\mathrm{val},1}
p_{\mathrm{val},2}`, so its irreps are :math:`(l_3,\ p_{\mathrm{val},1} p_{\mathrm{val},2} (-1)^{l_3})`,
and a :math:`\nu`-fold power has :math:`p_\mathrm{val}^\nu`. Only paths with even :math:`l_1+l_2+l_3`
exist: the antisymmetric couplings (the cross product ``1o x 1o -> 1e``) are absent, and an
``irreps_out`` entry that no Gaunt path of the inputs reaches is an error naming it.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from e3nn import o3
from torch import Tensor, nn
from torch.nn.utils import parametrize

from .._checks import check_choice, check_dtype, check_edge_index, check_finite, check_int, check_real
from .functional import NORMALIZATIONS, ROUTES, gaunt_product
from .tables import MAX_DEGREE

__all__ = ["GauntTensorProduct", "GauntConv", "GauntManyBody"]

#: the largest degree e3nn's ``o3.spherical_harmonics`` evaluates (edge harmonics of :class:`GauntConv`)
E3NN_SH_LMAX = 12


def _product(x1: Tensor, x2: Tensor, lmax_out: int, normalization: str, route: str) -> Tensor:
    """The Gaunt product used by every module: :func:`equinets.gaunt.gaunt_product` (one place)."""
    return gaunt_product(x1, x2, lmax_out, normalization=normalization, route=route)


# ----------------------------------------------------------------------------------------------- layouts


def _as_irreps(value, name: str) -> o3.Irreps:
    if isinstance(value, o3.Irreps):
        irreps = value
    else:
        try:
            irreps = o3.Irreps(value)
        except (ValueError, TypeError, AssertionError, AttributeError) as err:
            raise ValueError(f"{name} must be e3nn Irreps (or a string such as '8x0e + 8x1o'), got {value!r}") from err
    if len(irreps) == 0 or irreps.dim == 0:
        raise ValueError(f"{name} must hold at least one irrep of multiplicity >= 1, got {irreps!r}")
    if any(mul == 0 for mul, _ in irreps):
        raise ValueError(f"{name} must not hold irreps of multiplicity 0, got {irreps}")
    return irreps


def _p_val(irreps: o3.Irreps, name: str) -> int:
    """The one parity convention p_val of a signal's irreps (p = p_val (-1)^l)."""
    conv = {ir.p * (-1) ** ir.l for _, ir in irreps}
    if len(conv) != 1:
        raise ValueError(
            f"{name} mixes parity conventions ({irreps}): a Gaunt signal needs every irrep l with parity p_val*(-1)^l "
            f"for one p_val, either +1 (0e, 1o, 2e, ...) or -1 (0o, 1e, 2o, ...)")
    return conv.pop()


def _check_lmax(L: int, name: str, what: str, cap: int = MAX_DEGREE) -> None:
    if L > cap:
        raise ValueError(f"{name} needs degree {L} ({what}), beyond the supported range l <= {cap}")


class _Signal(NamedTuple):
    """A channel-wise signal: ``mul`` channels, sorted distinct degrees, parity convention, largest degree."""

    irreps: o3.Irreps
    mul: int
    p_val: int
    degrees: tuple[int, ...]
    lmax: int


def _signal(irreps: o3.Irreps, name: str, mul: int | None = None, *, of: str = "") -> _Signal:
    """Read ``irreps`` as one spherical function per channel: equal multiplicities, distinct degrees, one p_val."""
    muls = sorted({m for m, _ in irreps})
    if len(muls) != 1:
        raise ValueError(f"{name} must give every irrep the same multiplicity (the channels of the channel-wise "
                         f"product), got {irreps}; use channel_mixing=True to map other irreps onto channels")
    if mul is not None and muls[0] != mul:
        raise ValueError(f"{name} must have multiplicity {mul} ({of}) in channel-wise mode, got {irreps}; "
                         f"use channel_mixing=True to mix channels")
    ls = [ir.l for _, ir in irreps]
    if len(set(ls)) != len(ls):
        dup = sorted({l for l in ls if ls.count(l) > 1})
        raise ValueError(f"{name} lists degree(s) {dup} more than once ({irreps}); a channel-wise signal holds each "
                         f"degree once (irreps.simplify(), or channel_mixing=True)")
    p_val = _p_val(irreps, name)
    _check_lmax(max(ls), name, "its largest degree")
    return _Signal(irreps, muls[0], p_val, tuple(sorted(ls)), max(ls))


def _mid_irreps(irreps: o3.Irreps, channels: int) -> o3.Irreps:
    """``channels x ir`` for every distinct irrep of ``irreps``, sorted by degree (the Linear's target)."""
    seen = sorted({ir for _, ir in irreps}, key=lambda ir: (ir.l, ir.p))
    return o3.Irreps([(channels, ir) for ir in seen])


def _mixing_width(channel_mixing: bool, channels, *irreps: o3.Irreps) -> int | None:
    """The channel count of the e3nn ``Linear`` mixing around the product (``None`` without mixing).

    ``channels=None`` with mixing takes the largest input multiplicity; ``channels`` without mixing is an error.
    """
    if channel_mixing:
        u = check_int(channels, "channels", 1, allow_none=True)
        return u if u is not None else max(m for ir in irreps for m, _ in ir)
    if channels is not None:
        raise ValueError("channels is only used with channel_mixing=True (the channel-wise product keeps the "
                         f"inputs' multiplicity), got channels={channels!r}")
    return None


Blocks = tuple | None  # static layout maps (plain ints: nothing for torch.compile to guard beyond them)


def _to_sh_index(sig: _Signal) -> tuple[Blocks, Tensor]:
    """Layout map mul_ir -> (u, (L+1)^2) and the degree slot of each SH position.

    The map holds, for each degree ``0..L`` in order, the ``(start, stop, l)`` of its block in the mul_ir
    layout (``start = None``: a degree absent from the irreps, zeros); ``None`` when the layouts coincide
    (one channel of degrees ``0..L`` in order). Slices and one concatenation: cheaper than a gather, and so
    is their backward.
    """
    u, L = sig.mul, sig.lmax
    start = dict(zip((ir.l for _, ir in sig.irreps), (s.start for s in sig.irreps.slices())))
    blocks = tuple((start.get(l), None if l not in start else start[l] + u * (2 * l + 1), l) for l in range(L + 1))
    slot_of = {l: i for i, l in enumerate(sig.degrees)}
    slot = torch.tensor([slot_of.get(l, 0) for l in range(L + 1) for _ in range(2 * l + 1)], dtype=torch.long)
    identity = u == 1 and [ir.l for _, ir in sig.irreps] == list(range(L + 1))
    return (None if identity else blocks), slot


def _to_sh(x: Tensor, blocks: Blocks, u: int) -> Tensor:
    """``(..., irreps.dim)`` mul_ir -> ``(..., u, (L+1)**2)`` spherical-harmonic layout per channel."""
    if blocks is None:
        return x.unflatten(-1, (u, -1))
    parts = [x.new_zeros(*x.shape[:-1], u, 2 * l + 1) if a is None else x[..., a:b].unflatten(-1, (u, 2 * l + 1))
             for a, b, l in blocks]
    return torch.cat(parts, -1)


def _from_sh_index(irreps_out: o3.Irreps, lmax: int) -> tuple[Blocks, Tensor]:
    """Layout map (u, (lmax+1)^2) -> irreps_out mul_ir (the SH range of each entry; ``None`` when the layouts
    coincide) and each mul_ir position's weight slot in ``(u, n_entries)`` flattened."""
    blocks = tuple((ir.l * ir.l, (ir.l + 1) ** 2) for _, ir in irreps_out)
    wslot = []
    for e, (mul, ir) in enumerate(irreps_out):
        c = torch.arange(mul).view(mul, 1)
        wslot.append((c * len(irreps_out) + e).expand(mul, ir.dim).reshape(-1))
    identity = irreps_out[0].mul == 1 and [ir.l for _, ir in irreps_out] == list(range(lmax + 1))
    return (None if identity else blocks), torch.cat(wslot)


def _from_sh(z: Tensor, blocks: Blocks) -> Tensor:
    """``(..., u, (lmax+1)**2)`` -> the ``irreps_out`` entries in mul_ir layout."""
    if blocks is None:
        return z.flatten(-2)
    return torch.cat([z[..., a:b].flatten(-2) for a, b in blocks], -1)


def _reach(degrees1, degrees2, lmax: int) -> set[int]:
    """Output degrees <= lmax that a Gaunt path (triangle, even l1+l2+l3) reaches from the two degree sets."""
    return {l3 for l1 in degrees1 for l2 in degrees2 for l3 in range(abs(l1 - l2), min(l1 + l2, lmax) + 1)
            if (l1 + l2 + l3) % 2 == 0}


def _plan_out(irreps_out: o3.Irreps, allowed: set, name: str, why: str, channel_mixing: bool, mul: int) -> o3.Irreps:
    """The irreps the product itself must give for ``irreps_out`` (``mul x ir`` per irrep with mixing, else
    ``irreps_out``); refuses entries no Gaunt path produces (naming them), and in channel-wise mode bad
    multiplicities."""
    bad = [str(ir) for _, ir in irreps_out if ir not in allowed]
    if bad:
        ok = " + ".join(str(ir) for ir in sorted(allowed, key=lambda ir: (ir.l, ir.p))) or "nothing"
        raise ValueError(f"{name} has entries that no Gaunt product of these inputs produces: {', '.join(bad)} "
                         f"({why}; reachable: {ok}). Gaunt products hold only paths with even l1+l2+l3")
    if channel_mixing:
        return _mid_irreps(irreps_out, mul)
    muls = sorted({m for m, _ in irreps_out})
    if muls != [mul]:
        raise ValueError(f"{name} must have multiplicity {mul} (the channels of the inputs) on every irrep in "
                         f"channel-wise mode, got {irreps_out}; use channel_mixing=True to mix channels")
    irs = [ir for _, ir in irreps_out]
    if len(set(irs)) != len(irs):
        dup = sorted({str(ir) for ir in irs if irs.count(ir) > 1})
        raise ValueError(f"{name} lists {', '.join(dup)} more than once ({irreps_out}); in channel-wise mode each "
                         f"irrep of the product appears once (irreps_out.simplify(), or channel_mixing=True)")
    return irreps_out


def _check_input(module: nn.Module, x, name: str, spec: tuple[int, str]) -> None:
    """Type, last-axis size, device and dtype of one input, against ``spec = (irreps.dim, str(irreps))`` and the
    module's parameters (plain int and str: ``torch.compile`` does not trace into e3nn's Irreps)."""
    dim, irreps = spec
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.dim() == 0 or x.shape[-1] != dim:
        raise ValueError(f"{name} must have irreps {irreps} (dim {dim}) on its last axis, "
                         f"got shape {tuple(x.shape)}")
    param = next(module.parameters(), None)
    if param is not None and x.device != param.device:
        raise ValueError(f"{name} is on device {x.device} but the module's parameters are on {param.device}; "
                         f"move one of them ({name}.to({str(param.device)!r}) or module.to({str(x.device)!r}))")
    check_dtype(x, module, name)


def _check_finite(*named: tuple[Tensor, str]) -> None:
    """NaN/Inf check of the inputs with one reduction and one sync; the exact per-tensor check names the culprit."""
    total = sum(t.sum() for t, _ in named)
    if not bool(torch.isfinite(total)):
        for t, name in named:
            check_finite(t, name)


def _checking(module: nn.Module) -> bool:
    """Value checks (finite inputs, edge ids) are device syncs: skipped under torch.compile."""
    return module.check_inputs and not torch.compiler.is_compiling()


def _reset_linear(lin) -> None:
    """e3nn Linear's own initialisation: unit normal weights (normalised in forward), zero biases."""
    if lin is None:
        return
    with torch.no_grad():
        if lin.weight.numel():
            if parametrize.is_parametrized(lin, "weight"):  # weight is computed: assign it (stored via right_inverse)
                lin.weight = torch.randn_like(lin.weight)
            else:
                lin.weight.normal_()
        if getattr(lin, "bias", None) is not None and lin.bias.numel():
            lin.bias.zero_()


def _aggregate(src: Tensor, index: Tensor, num_nodes: int, aggr: str) -> Tensor:
    """:func:`equinets.nn.message_passing.aggregate`, imported on use: ``equinets.nn`` may import this module."""
    from ..nn.message_passing import aggregate

    return aggregate(src, index, num_nodes, aggr)


def _route(route) -> str:
    return check_choice(route, "route", ROUTES)


# ---------------------------------------------------------------------------------------- tensor product


class GauntTensorProduct(nn.Module):
    r"""Channel-wise Gaunt tensor product of two e3nn features (feature interaction, Luo et al. 2024).

    For each channel :math:`c` the two inputs are spherical functions :math:`f_{1,c}, f_{2,c}` (module
    docstring); the output holds the coefficients of their product with per-degree weights,

    .. math::
        z_{c, l_3 m_3} = d_{c, l_3} \sum_{l_1 m_1 l_2 m_2} G^{\,l_3 m_3}_{l_1 m_1, l_2 m_2}\,
        a_{c, l_1} x_{1, c, l_1 m_1}\; b_{c, l_2} x_{2, c, l_2 m_2},

    i.e. each Gaunt path :math:`(l_1, l_2 \to l_3)` carries the weight :math:`a_{l_1} b_{l_2} d_{l_3}`
    (initialised to 1: the plain product). The output keeps the entries of ``irreps_out`` (other degrees
    of the product are dropped). With ``channel_mixing=True``, e3nn ``o3.Linear`` layers map each input to
    ``channels x`` its distinct irreps before the product and the product to ``irreps_out`` after it.

    Args:
        irreps_in1, irreps_in2: irreps of the inputs. Channel-wise (default): ``u x l`` for distinct degrees
            with the same ``u`` in both inputs, one parity convention per input (module docstring).
        irreps_out: irreps of the output; each entry ``(l, p)`` must be reachable: ``l = |l_1 - l_2|, ...,
            l_1 + l_2`` with even sum for some input degrees, and :math:`p = p_{\mathrm{val},1}
            p_{\mathrm{val},2}(-1)^l`. Channel-wise: multiplicity ``u``, distinct degrees.
        channel_mixing: put e3nn ``Linear`` layers around the product (any multiplicities then).
        channels: channels of the product with mixing (default: the largest input multiplicity).
        normalization: ``"component"`` (default), ``"integral"`` or ``"norm"``, as ``o3.spherical_harmonics``.
        route: :func:`equinets.gaunt.gaunt_product`'s route (``"auto"`` default).
        check_inputs: check that inputs are finite (a device sync; skipped under ``torch.compile``).

    Shapes:
        ``x1`` ``(..., irreps_in1.dim)``, ``x2`` ``(..., irreps_in2.dim)`` (leading axes broadcast)
        -> ``(..., irreps_out.dim)``.

    Example:
        >>> tp = GauntTensorProduct("4x0e + 4x1o", "4x0e + 4x1o", "4x0e + 4x1o + 4x2e")
        >>> tp(torch.randn(10, 16), torch.randn(10, 16)).shape
        torch.Size([10, 36])
        >>> GauntTensorProduct("1o", "1o", "1e")
        Traceback (most recent call last):
        ...
        ValueError: irreps_out has entries that no Gaunt product of these inputs produces: 1e ...
    """

    def __init__(self, irreps_in1, irreps_in2, irreps_out, *, channel_mixing: bool = False,
                 channels: int | None = None, normalization: str = "component", route: str = "auto",
                 check_inputs: bool = True) -> None:
        super().__init__()
        self.irreps_in1 = _as_irreps(irreps_in1, "irreps_in1")
        self.irreps_in2 = _as_irreps(irreps_in2, "irreps_in2")
        self.irreps_out = _as_irreps(irreps_out, "irreps_out")
        if not isinstance(channel_mixing, bool):
            raise TypeError(f"channel_mixing must be a bool, got {type(channel_mixing).__name__}")
        self.channel_mixing = channel_mixing
        self.normalization = check_choice(normalization, "normalization", NORMALIZATIONS)
        self.route = _route(route)
        self.check_inputs = bool(check_inputs)
        u = _mixing_width(channel_mixing, channels, self.irreps_in1, self.irreps_in2)
        mid1, mid2 = (_mid_irreps(self.irreps_in1, u), _mid_irreps(self.irreps_in2, u)) if u else \
            (self.irreps_in1, self.irreps_in2)
        s1 = _signal(mid1, "irreps_in1")
        s2 = _signal(mid2, "irreps_in2", s1.mul, of="the multiplicity of irreps_in1")
        u = self.channels = s1.mul
        p_out = s1.p_val * s2.p_val
        reach = _reach(s1.degrees, s2.degrees, s1.lmax + s2.lmax)
        allowed = {o3.Irrep(l, p_out * (-1) ** l) for l in reach}
        why = (f"inputs of degrees {list(s1.degrees)} (p_val={s1.p_val:+d}) and {list(s2.degrees)} "
               f"(p_val={s2.p_val:+d}) give irreps l with parity {p_out:+d}*(-1)^l")
        mid_out = _plan_out(self.irreps_out, allowed, "irreps_out", why, channel_mixing, u)
        self.lmax_out = max(ir.l for _, ir in mid_out)
        self.p_val1, self.p_val2, self.p_val_out = s1.p_val, s2.p_val, p_out
        self.lin1 = o3.Linear(self.irreps_in1, mid1) if channel_mixing else None
        self.lin2 = o3.Linear(self.irreps_in2, mid2) if channel_mixing else None
        self.lin_out = o3.Linear(mid_out, self.irreps_out) if channel_mixing else None
        for key, sig in (("1", s1), ("2", s2)):
            blocks, slot = _to_sh_index(sig)
            self.register_buffer(f"_slot{key}", slot, persistent=False)
            setattr(self, f"_blocks{key}", blocks)
        self._blocks_out, wslot = _from_sh_index(mid_out, self.lmax_out)
        self.register_buffer("_wslot_out", wslot, persistent=False)
        #: per-channel, per-degree weights a (input 1), b (input 2), d (output entries)
        self.weight1 = nn.Parameter(torch.ones(u, len(s1.degrees)))
        self.weight2 = nn.Parameter(torch.ones(u, len(s2.degrees)))
        self.weight_out = nn.Parameter(torch.ones(u, len(mid_out)))
        self._mid_out = mid_out
        self._spec1 = (self.irreps_in1.dim, str(self.irreps_in1))
        self._spec2 = (self.irreps_in2.dim, str(self.irreps_in2))

    def reset_parameters(self) -> None:
        """Per-degree weights back to 1 (the plain product); the mixing Linears re-drawn as e3nn draws them."""
        with torch.no_grad():
            for w in (self.weight1, self.weight2, self.weight_out):
                w.fill_(1.0)
        for lin in (self.lin1, self.lin2, self.lin_out):
            _reset_linear(lin)

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        _check_input(self, x1, "x1", self._spec1)
        _check_input(self, x2, "x2", self._spec2)
        if _checking(self):
            _check_finite((x1, "x1"), (x2, "x2"))
        if self.lin1 is not None:
            x1, x2 = self.lin1(x1), self.lin2(x2)
        u = self.channels
        a = _to_sh(x1, self._blocks1, u) * self.weight1[:, self._slot1]
        b = _to_sh(x2, self._blocks2, u) * self.weight2[:, self._slot2]
        z = _product(a, b, self.lmax_out, self.normalization, self.route)
        out = _from_sh(z, self._blocks_out) * self.weight_out.reshape(-1)[self._wslot_out]
        return out if self.lin_out is None else self.lin_out(out)

    def __repr__(self) -> str:
        mix = f", channel_mixing via {self._mid_out}" if self.channel_mixing else ""
        return (f"{type(self).__name__}({self.irreps_in1} x {self.irreps_in2} -> {self.irreps_out} | "
                f"{self.channels} channels, {sum(p.numel() for p in self.parameters())} weights, "
                f"normalization={self.normalization!r}, route={self.route!r}{mix})")


# ---------------------------------------------------------------------------------------- convolution


class GauntConv(nn.Module):
    r"""Equivariant convolution with Gaunt products (TFN/NequIP-style; Luo et al. 2024, "equivariant convolution").

    For every edge :math:`j \to i` (PyG order: ``edge_index[0]`` is the source :math:`j`,
    ``edge_index[1]`` the target :math:`i`) with :math:`\vec r_{ij} = \mathrm{pos}_j - \mathrm{pos}_i`
    and :math:`r = |\vec r_{ij}|`, the message is the channel-wise Gaunt product of the source's features
    with the spherical harmonics of the edge direction, with per-degree weights from a radial MLP,

    .. math::
        m_{ij, c, l_3} = u(r)\, d_{c, l_3}(r) \Big[\big(a_{c, l_1}(r)\, x_{j, c, l_1}\big)
        \circledast_G \big(b_{c, l_2}(r)\, Y_{l_2}(\hat r_{ij})\big)\Big]_{l_3},
        \qquad
        h_i = \mathop{\square}_{j \to i} m_{ij},

    where :math:`(a, b, d)(r) = \mathrm{MLP}(\mathrm{RBF}(r))`, the RBF are ``num_basis`` Gaussians on
    ``[0, max_radius]``, :math:`u(r) = \tfrac12(1 + \cos(\pi r / r_\mathrm{max}))` for
    :math:`r < r_\mathrm{max}` and 0 beyond (a smooth cutoff: forces stay continuous), and
    :math:`\square` is ``aggr`` (:func:`equinets.nn.message_passing.aggregate`). The harmonics are
    ``o3.spherical_harmonics(irreps_sh, r_ij, normalize=True, normalization=normalization)``, a signal of
    parity convention +1 (:math:`Y_l(-\hat r) = (-1)^l Y_l(\hat r)`), broadcast to every channel.
    E(3)-equivariant: rotations and inversion act on ``x`` and the output through their irreps,
    translations do nothing.

    Args:
        irreps_node: irreps of the node features ``x`` (channel-wise: ``u x l``, distinct degrees, one
            parity convention; any irreps with ``channel_mixing=True``).
        irreps_sh: the edge harmonics, ``1x0e + 1x1o + ...`` (multiplicity 1, parity :math:`(-1)^l`,
            degrees <= 12 as e3nn evaluates them; a subset of degrees is allowed).
        irreps_out: irreps of the output (reachable entries only, as in :class:`GauntTensorProduct`).
        num_basis: radial basis functions; radial_hidden: width of the radial MLP's hidden layer.
        max_radius: cutoff radius :math:`r_\mathrm{max}`.
        aggr: ``"sum"`` (default), ``"mean"`` or ``"max"``.
        channel_mixing: e3nn ``Linear`` on the node features before and on the aggregated output after.
        channels: channels of the product with mixing (default: the largest multiplicity of ``irreps_node``).
        normalization, route, check_inputs: as :class:`GauntTensorProduct`; the checks also refuse edges of
            zero length (their direction is undefined).

    Shapes:
        ``x`` ``(N, irreps_node.dim)``, ``pos`` ``(N, 3)``, ``edge_index`` ``(2, E)`` -> ``(N, irreps_out.dim)``.

    Example:
        >>> conv = GauntConv("4x0e + 4x1o", "0e + 1o + 2e", "4x0e + 4x1o + 4x2e", max_radius=2.0)
        >>> pos = torch.randn(5, 3)
        >>> edge_index = torch.tensor([[0, 1, 2, 3, 4], [1, 2, 3, 4, 0]])
        >>> conv(torch.randn(5, 16), pos, edge_index).shape
        torch.Size([5, 36])
    """

    def __init__(self, irreps_node, irreps_sh, irreps_out, *, num_basis: int = 8, radial_hidden: int = 16,
                 max_radius: float = 1.0, aggr: str = "sum", channel_mixing: bool = False, channels: int | None = None,
                 normalization: str = "component", route: str = "auto", check_inputs: bool = True) -> None:
        super().__init__()
        self.irreps_node = self.irreps_in = _as_irreps(irreps_node, "irreps_node")
        self.irreps_sh = _as_irreps(irreps_sh, "irreps_sh")
        self.irreps_out = _as_irreps(irreps_out, "irreps_out")
        if not isinstance(channel_mixing, bool):
            raise TypeError(f"channel_mixing must be a bool, got {type(channel_mixing).__name__}")
        self.channel_mixing = channel_mixing
        self.num_basis = check_int(num_basis, "num_basis", 2)
        self.radial_hidden = check_int(radial_hidden, "radial_hidden", 1)
        self.max_radius = check_real(max_radius, "max_radius", 0.0)
        if self.max_radius == 0:
            raise ValueError("max_radius must be > 0, got 0")
        from ..nn.message_passing import AGGRS  # on use: equinets.nn may import this module

        self.aggr = check_choice(aggr, "aggr", AGGRS)
        self.normalization = check_choice(normalization, "normalization", NORMALIZATIONS)
        self.route = _route(route)
        self.check_inputs = bool(check_inputs)
        sh = _signal(self.irreps_sh, "irreps_sh")
        if sh.mul != 1 or sh.p_val != 1:
            raise ValueError(f"irreps_sh must be spherical harmonics of the edge direction: multiplicity 1 and parity "
                             f"(-1)^l (0e + 1o + 2e + ...), got {self.irreps_sh}")
        _check_lmax(sh.lmax, "irreps_sh", "e3nn's o3.spherical_harmonics", E3NN_SH_LMAX)
        u = _mixing_width(channel_mixing, channels, self.irreps_node)
        mid_in = _mid_irreps(self.irreps_node, u) if u else self.irreps_node
        sx = _signal(mid_in, "irreps_node")
        u = self.channels = sx.mul
        p_out = sx.p_val
        reach = _reach(sx.degrees, sh.degrees, sx.lmax + sh.lmax)
        allowed = {o3.Irrep(l, p_out * (-1) ** l) for l in reach}
        why = (f"node features of degrees {list(sx.degrees)} (p_val={sx.p_val:+d}) times harmonics of degrees "
               f"{list(sh.degrees)} give irreps l with parity {p_out:+d}*(-1)^l")
        mid_out = _plan_out(self.irreps_out, allowed, "irreps_out", why, channel_mixing, u)
        self.lmax_out = max(ir.l for _, ir in mid_out)
        self.lin_in = o3.Linear(self.irreps_node, mid_in) if channel_mixing else None
        self.lin_out = o3.Linear(mid_out, self.irreps_out) if channel_mixing else None
        self._blocks, slot = _to_sh_index(sx)
        self.register_buffer("_slot", slot, persistent=False)
        self._sh_ls = list(range(sh.lmax + 1))
        sh_slot = {l: i for i, l in enumerate(sh.degrees)}
        self.register_buffer("_slot_sh", torch.tensor([sh_slot.get(l, 0) for l in self._sh_ls for _ in range(2 * l + 1)]),
                             persistent=False)
        self.register_buffer("_mask_sh", torch.tensor([float(l in sh_slot) for l in self._sh_ls for _ in range(2 * l + 1)]),
                             persistent=False)
        self._blocks_out, wslot = _from_sh_index(mid_out, self.lmax_out)
        self.register_buffer("_wslot_out", wslot, persistent=False)
        self._n = (len(sx.degrees), len(sh.degrees), len(mid_out))
        self.radial = nn.Sequential(nn.Linear(self.num_basis, self.radial_hidden), nn.SiLU(),
                                    nn.Linear(self.radial_hidden, u * sum(self._n)))
        self.register_buffer("_centers", torch.linspace(0.0, self.max_radius, self.num_basis), persistent=False)
        self._mid_out = mid_out
        self._spec = (self.irreps_node.dim, str(self.irreps_node))

    def reset_parameters(self) -> None:
        """Re-draw the radial MLP (PyTorch's default) and the mixing Linears (e3nn's default)."""
        for layer in self.radial:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()
        _reset_linear(self.lin_in)
        _reset_linear(self.lin_out)

    def radial_weights(self, r: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Per-edge, per-channel, per-degree weights ``(a, b, d)``, each ``(E, u, n_degrees)``, and the cutoff in ``d``."""
        width = self.max_radius / (self.num_basis - 1)
        basis = torch.exp(-(((r[:, None] - self._centers) / width) ** 2))
        w = self.radial(basis).unflatten(-1, (self.channels, -1))
        n1, n2, _ = self._n
        envelope = torch.where(r < self.max_radius, 0.5 * (1 + torch.cos(math.pi * r / self.max_radius)),
                               torch.zeros_like(r))
        return w[..., :n1], w[..., n1:n1 + n2], w[..., n1 + n2:] * envelope[:, None, None]

    def forward(self, x: Tensor, pos: Tensor, edge_index: Tensor) -> Tensor:
        _check_input(self, x, "x", self._spec)
        if x.dim() != 2:
            raise ValueError(f"x must have shape (N, {self._spec[0]}), got {tuple(x.shape)}")
        if not isinstance(pos, Tensor) or not pos.is_floating_point():
            raise TypeError(f"pos must be a floating-point torch.Tensor of shape (N, 3), got "
                            f"{pos.dtype if isinstance(pos, Tensor) else type(pos).__name__}")
        if pos.shape != (x.shape[0], 3):
            raise ValueError(f"pos must have shape (N, 3) = ({x.shape[0]}, 3) to match x, got {tuple(pos.shape)}")
        if pos.device != x.device:
            raise ValueError(f"pos must be on the device of x ({x.device}), got {pos.device}")
        if pos.dtype != x.dtype:
            raise TypeError(f"pos must have the dtype of x ({x.dtype}), got {pos.dtype}")
        if _checking(self):
            edge_index = check_edge_index(edge_index, x.shape[0])
            _check_finite((x, "x"), (pos, "pos"))
        elif not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.shape[0] != 2:
            raise ValueError(f"edge_index must be a tensor of shape (2, E), got {getattr(edge_index, 'shape', edge_index)}")
        if edge_index.device != x.device:
            raise ValueError(f"edge_index must be on the device of x ({x.device}), got {edge_index.device}")
        src, dst = edge_index[0], edge_index[1]
        vec = pos[src] - pos[dst]
        r = vec.norm(dim=-1)
        if _checking(self) and r.numel() and bool((r == 0).any()):
            e = int((r == 0).nonzero()[0])
            raise ValueError(f"edge_index holds an edge of zero length (edge {e} from node {int(src[e])} to node "
                             f"{int(dst[e])}: a self-loop or coincident points); its direction is undefined")
        if self.lin_in is not None:
            x = self.lin_in(x)
        u = self.channels
        a, b, d = self.radial_weights(r)
        xj = _to_sh(x, self._blocks, u)[src] * a[..., self._slot]
        Y = o3.spherical_harmonics(self._sh_ls, vec, normalize=True, normalization=self.normalization) * self._mask_sh
        y = Y[:, None, :] * b[..., self._slot_sh]
        z = _product(xj, y, self.lmax_out, self.normalization, self.route)
        msg = _from_sh(z, self._blocks_out) * d.flatten(-2)[..., self._wslot_out]
        out = _aggregate(msg, dst, x.shape[0], self.aggr)
        return out if self.lin_out is None else self.lin_out(out)

    def __repr__(self) -> str:
        mix = f", channel_mixing via {self._mid_out}" if self.channel_mixing else ""
        return (f"{type(self).__name__}({self.irreps_node} x Y({self.irreps_sh}) -> {self.irreps_out} | "
                f"{self.channels} channels, radial MLP {self.num_basis}-{self.radial_hidden}-"
                f"{self.radial[-1].out_features}, max_radius={self.max_radius}, aggr={self.aggr!r}, "
                f"normalization={self.normalization!r}, route={self.route!r}{mix})")


# ---------------------------------------------------------------------------------------- many-body


class GauntManyBody(nn.Module):
    r"""MACE-style many-body product of one feature with itself by Gaunt products (Luo et al. 2024, "many-body interaction").

    With :math:`f_c` the spherical function of channel :math:`c` of ``x`` (module docstring), the output is
    a weighted sum of its truncated powers,

    .. math::
        z_{c, l m} = \sum_{\nu'=1}^{\nu} w_{\nu', c, l}\, \big[f_c^{\,\nu'}\big]_{l m},

    each :math:`f^{\nu'}` computed by repeated :func:`equinets.gaunt.gaunt_product` with ``f``, truncated
    at every step to the degree the rest of the chain can still bring down to ``irreps_out``
    (:math:`\min(\nu' L, L_\mathrm{out} + (\nu - \nu') L)`), which is exact. The weights
    :math:`w_{\nu', c, l}` are per order, channel and output entry (initialised to 1); an order whose
    parity :math:`p_\mathrm{val}^{\nu'}(-1)^l` differs from an output entry's does not contribute to it.
    As in MACE-Gaunt (Luo et al., 3BPA), but without element-dependent weights: put the element
    embedding into ``x`` or mix channels with ``channel_mixing=True`` (e3nn ``Linear`` before and after).

    Args:
        irreps_in: irreps of ``x`` (channel-wise signal, as :class:`GauntTensorProduct`'s inputs).
        irreps_out: irreps of the output (entries reachable by some order :math:`\nu' \le \nu`).
        correlation: the largest order :math:`\nu \ge 1`.
        channel_mixing, channels, normalization, route, check_inputs: as :class:`GauntTensorProduct`.

    Shapes:
        ``x`` ``(..., irreps_in.dim)`` -> ``(..., irreps_out.dim)``.

    Example:
        >>> mb = GauntManyBody("8x0e + 8x1o + 8x2e", "8x0e + 8x1o", correlation=3)
        >>> mb(torch.randn(4, 72)).shape
        torch.Size([4, 32])
    """

    def __init__(self, irreps_in, irreps_out, correlation: int = 3, *, channel_mixing: bool = False,
                 channels: int | None = None, normalization: str = "component", route: str = "auto",
                 check_inputs: bool = True) -> None:
        super().__init__()
        self.irreps_in = _as_irreps(irreps_in, "irreps_in")
        self.irreps_out = _as_irreps(irreps_out, "irreps_out")
        self.correlation = nu = check_int(correlation, "correlation", 1)
        if not isinstance(channel_mixing, bool):
            raise TypeError(f"channel_mixing must be a bool, got {type(channel_mixing).__name__}")
        self.channel_mixing = channel_mixing
        self.normalization = check_choice(normalization, "normalization", NORMALIZATIONS)
        self.route = _route(route)
        self.check_inputs = bool(check_inputs)
        u = _mixing_width(channel_mixing, channels, self.irreps_in)
        mid_in = _mid_irreps(self.irreps_in, u) if u else self.irreps_in
        s = _signal(mid_in, "irreps_in")
        u = self.channels = s.mul
        Lout_req = max(ir.l for _, ir in self.irreps_out)
        _check_lmax(Lout_req, "irreps_out", "its largest degree")
        # truncation of each power and the degrees it reaches
        L = s.lmax
        self._lmax_k = [min(k * L, Lout_req + (nu - k) * L) for k in range(1, nu + 1)]
        for k, t in enumerate(self._lmax_k, 1):
            _check_lmax(t, "irreps_in", f"the power {k} of correlation={nu}")
        reach = [set(s.degrees)]
        for k in range(2, nu + 1):
            reach.append(_reach(reach[-1], s.degrees, self._lmax_k[k - 1]))
        allowed = {o3.Irrep(l, s.p_val ** k * (-1) ** l) for k, R in enumerate(reach, 1) for l in R}
        why = (f"powers 1..{nu} of a signal of degrees {list(s.degrees)} (p_val={s.p_val:+d}) give irreps l with "
               f"parity p_val^k*(-1)^l")
        mid_out = _plan_out(self.irreps_out, allowed, "irreps_out", why, channel_mixing, u)
        self.lmax_out = max(ir.l for _, ir in mid_out)
        self.p_val = s.p_val
        mask = torch.tensor([[float(ir.l in reach[k - 1] and ir.p == s.p_val ** k * (-1) ** ir.l) for _, ir in mid_out]
                             for k in range(1, nu + 1)])
        self.register_buffer("_mask", mask, persistent=False)
        self.lin_in = o3.Linear(self.irreps_in, mid_in) if channel_mixing else None
        self.lin_out = o3.Linear(mid_out, self.irreps_out) if channel_mixing else None
        self._blocks, _ = _to_sh_index(s)
        self._blocks_out, wslot = _from_sh_index(mid_out, self.lmax_out)
        self.register_buffer("_wslot_out", wslot, persistent=False)
        #: weights w[nu' - 1, channel, output entry]
        self.weight = nn.Parameter(torch.ones(nu, u, len(mid_out)))
        self._mid_out = mid_out
        self._spec = (self.irreps_in.dim, str(self.irreps_in))

    def reset_parameters(self) -> None:
        """Weights back to 1 (the plain sum of powers); the mixing Linears re-drawn as e3nn draws them."""
        with torch.no_grad():
            self.weight.fill_(1.0)
        _reset_linear(self.lin_in)
        _reset_linear(self.lin_out)

    def forward(self, x: Tensor) -> Tensor:
        _check_input(self, x, "x", self._spec)
        if _checking(self):
            _check_finite((x, "x"))
        if self.lin_in is not None:
            x = self.lin_in(x)
        f = _to_sh(x, self._blocks, self.channels)
        n_out = (self.lmax_out + 1) ** 2
        w = (self.weight * self._mask[:, None, :]).flatten(-2)[..., self._wslot_out]  # (nu, irreps_out.dim)
        power, out = f, None
        for k in range(self.correlation):
            if k:
                power = _product(power, f, self._lmax_k[k], self.normalization, self.route)
            p = power[..., :n_out]
            if p.shape[-1] < n_out:
                p = torch.nn.functional.pad(p, (0, n_out - p.shape[-1]))
            term = _from_sh(p, self._blocks_out) * w[k]
            out = term if out is None else out + term
        return out if self.lin_out is None else self.lin_out(out)

    def __repr__(self) -> str:
        mix = f", channel_mixing via {self._mid_out}" if self.channel_mixing else ""
        return (f"{type(self).__name__}({self.irreps_in} -> {self.irreps_out} | correlation={self.correlation}, "
                f"{self.channels} channels, {sum(p.numel() for p in self.parameters())} weights, "
                f"normalization={self.normalization!r}, route={self.route!r}{mix})")
