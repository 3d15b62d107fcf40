"""SEGNN on Gaunt and Clebsch-Gordan products (equinets.nn.segnn): symmetry, registry, configs, training."""

import functools

import pytest
import torch
from e3nn import o3

from equinets.nn import create_model, list_models
from equinets.nn.graph_ops import full_graph
from equinets.nn.segnn import SEGNN, SEGNNCG, EquivariantNorm, SteerableProduct

PRODUCTS = ("gaunt", "cg")


def _systems(dtype=torch.float64, n_clouds=3, n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(n_clouds * n, 3, generator=g, dtype=dtype) * 2
    vel = torch.randn(n_clouds * n, 3, generator=g, dtype=dtype)
    q = torch.randint(0, 2, (n_clouds * n, 1), generator=g).to(dtype) * 2 - 1
    batch = torch.arange(n_clouds).repeat_interleave(n)
    return pos, torch.cat([vel, q], dim=1), batch


@functools.lru_cache(maxsize=None)
def _model(product, dtype=torch.float64, lmax=2):
    """One model per (product, dtype, lmax), shared by the tests (e3nn products take ~0.25 s each to build).

    Built under the default dtype ``dtype``: e3nn stores its Clebsch-Gordan coefficients in the default dtype at
    construction (a float32-built product moved to float64 keeps float32-rounded coefficients, 1e-8 errors)."""
    torch.manual_seed(0)
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        return SEGNN(4, 3, product=product, hidden_channels=4, num_layers=1, lmax=lmax)
    finally:
        torch.set_default_dtype(old)


@pytest.mark.parametrize("product", PRODUCTS)
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_segnn_e3_equivariant_with_inversion_and_translation(product, dtype, tol):
    model = _model(product, dtype, 2 if dtype == torch.float64 else 1)
    pos, x, batch = _systems(dtype)
    out = model(pos, x, batch)
    assert out.shape == (15, 3)
    torch.manual_seed(1)
    for improper in (False, True):
        R = o3.rand_matrix(dtype=dtype) * (-1 if improper else 1)
        t = torch.randn(3, dtype=dtype) * 10
        x_g = torch.cat([x[:, :3] @ R.T, x[:, 3:]], dim=1)  # velocity 1o, charge 0e
        got = model(pos @ R.T + t, x_g, batch)
        want = out @ R.T + t
        err = float(((got - want).abs().max() / want.abs().max()).detach())
        assert err < tol, (improper, float(err))


@pytest.mark.parametrize("product", PRODUCTS)
def test_segnn_permutation_equivariant_and_given_graph_equals_full_graph(product):
    model = _model(product)
    pos, x, batch = _systems()
    out = model(pos, x, batch)
    g = torch.Generator().manual_seed(3)
    perm = torch.cat([c * 5 + torch.randperm(5, generator=g) for c in range(3)])  # within clouds: batch stays sorted
    torch.testing.assert_close(model(pos[perm], x[perm], batch), out[perm], rtol=0, atol=1e-12)
    ei = full_graph(batch)
    shuffled = ei[:, torch.randperm(ei.shape[1], generator=g)]
    torch.testing.assert_close(model(pos, x, batch, edge_index=shuffled), out, rtol=0, atol=1e-12)
    # clouds do not talk to each other: moving cloud 2 leaves clouds 0 and 1 untouched
    moved = pos.clone()
    moved[10:] += torch.randn(5, 3, generator=g, dtype=pos.dtype)
    torch.testing.assert_close(model(moved, x, batch)[:10], out[:10], rtol=0, atol=1e-12)


def test_segnn_dense_input_and_position_output():
    model = _model("gaunt")
    pos, x, batch = _systems()
    flat = model(pos, x, batch)
    torch.testing.assert_close(model(pos.reshape(3, 5, 3), x.reshape(3, 5, 4)), flat.reshape(3, 5, 3))
    model.position_output = False
    try:
        torch.testing.assert_close(model(pos, x, batch) + pos, flat, rtol=0, atol=1e-12)
    finally:
        model.position_output = True


@pytest.mark.parametrize("name, product", [("segnn_gaunt", "gaunt"), ("segnn_cg", "cg")])
def test_registry_builds_both_variants_with_the_trainers_keywords(name, product):
    assert name in list_models()
    model = create_model(name, in_channels=4, out_channels=3, task="seg", hidden_channels=4, lmax=1, num_layers=1)
    assert model.product == product and isinstance(model, SEGNNCG if product == "cg" else SEGNN)
    assert model(*_systems(torch.float32)).shape == (15, 3)
    kinds = {type(m.tp).__name__ for m in model.modules() if isinstance(m, SteerableProduct)}
    assert kinds == ({"GauntTensorProduct"} if product == "gaunt" else {"FullyConnectedTensorProduct"})
    with pytest.raises(TypeError, match="takes no argument 'channels'"):
        create_model(name, in_channels=4, out_channels=3, channels=4)


def test_both_products_hold_the_same_irreps_everywhere():
    a, b = _model("gaunt"), _model("cg")
    pa = [(m.irreps_in, m.irreps_attr, m.irreps_out) for m in a.modules() if isinstance(m, SteerableProduct)]
    pb = [(m.irreps_in, m.irreps_attr, m.irreps_out) for m in b.modules() if isinstance(m, SteerableProduct)]
    assert pa == pb and len(pa) == 1 + 4 + 2
    # with spherical-harmonic parities the CG product holds only even l1 + l2 + l3 paths: those of the Gaunt product
    for m in b.modules():
        if isinstance(m, SteerableProduct):
            for ins in m.tp.instructions:
                l1, l2, l3 = (irr[i].ir.l for irr, i in zip((m.tp.irreps_in1, m.tp.irreps_in2, m.tp.irreps_out),
                                                            (ins.i_in1, ins.i_in2, ins.i_out)))
                assert (l1 + l2 + l3) % 2 == 0


def test_equivariant_norm_normalises_and_commutes_with_rotations():
    torch.manual_seed(0)
    irreps = o3.Irreps("6x0e + 6x1o + 6x2e")
    norm = EquivariantNorm(irreps).double()
    h = torch.randn(7, irreps.dim, dtype=torch.float64) * 5 + 1
    out = norm(h)
    s, v, w = out[:, :6], out[:, 6:24].reshape(7, 6, 3), out[:, 24:].reshape(7, 6, 5)
    torch.testing.assert_close(s.mean(1), torch.zeros(7, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(s.square().mean(1), torch.ones(7, dtype=torch.float64), atol=1e-6, rtol=0)
    torch.testing.assert_close(v.square().mean((1, 2)), torch.ones(7, dtype=torch.float64), atol=1e-6, rtol=0)
    torch.testing.assert_close(w.square().mean((1, 2)), torch.ones(7, dtype=torch.float64), atol=1e-6, rtol=0)
    D = irreps.D_from_matrix(-o3.rand_matrix(dtype=torch.float64))
    torch.testing.assert_close(norm(h @ D.T), out @ D.T, atol=1e-12, rtol=0)


@pytest.mark.parametrize("product", PRODUCTS)
def test_gradients_reach_every_parameter(product):
    model = _model(product)
    pos, x, batch = _systems()
    model.zero_grad()
    model(pos, x, batch).square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().max() > 0, name


def test_configs_resolve_and_differ_only_in_the_product():
    from equinets.train.config import resolve_config

    g, c = resolve_config("nbody-segnn-gaunt"), resolve_config("nbody-segnn-cg")
    assert g["model"] == "segnn_gaunt" and c["model"] == "segnn_cg" and g["dataset"] == "nbody"
    assert {k for k in g if g[k] != c[k]} == {"name", "model"}
    assert g["eval_split"] == "val" and g["test_at_best"] and g["use_features"]


def test_comparison_script_trains_both_products_one_epoch_through_the_library_trainer(tmp_path, kernel_script):
    """kernels/nbody_segnn.py on a tiny set: both networks train one epoch through equinets.train.train (finite
    test MSE at the best validation epoch), the step times are measured and the CSV is labelled a smoke run."""
    import csv

    script = kernel_script("nbody_segnn")
    threads = torch.get_num_threads()
    try:
        rows = script.main(["--epochs", "1", "--num-train", "20", "--num-val", "20", "--num-test", "20",
                            "--batch-size", "10", "--hidden", "2", "--layers", "1", "--timing-repeats", "1",
                            "--root", str(tmp_path / "data"), "--run-dir", str(tmp_path / "runs"),
                            "--out", str(tmp_path / "out.csv")])
    finally:
        torch.set_num_threads(threads)
    assert [r["product"] for r in rows] == ["gaunt", "cg"]
    for r in rows:
        assert r["kind"] == "smoke" and r["best_epoch"] == 1
        assert 0 < r["test_mse"] < float("inf") and r["step_ms"] > 0 and r["train_step_ms"] > 0
    assert rows[0]["step_ratio_gaunt_cg"] == round(rows[0]["step_ms"] / rows[1]["step_ms"], 4)
    written = list(csv.DictReader(open(tmp_path / "out.csv")))
    assert [w["model"] for w in written] == ["segnn_gaunt", "segnn_cg"] and float(written[1]["test_mse"]) > 0
    assert (tmp_path / "runs" / "gaunt" / "best.pt").exists() and (tmp_path / "runs" / "cg" / "best.pt").exists()


def test_gaunt_products_start_unit_variance_per_output_degree():
    """The initial output weights of the Gaunt SteerableProduct are (mean over m3 of sum G^2)^(-1/2) per output
    degree, against the independent dense reference tensor c(l1,l2,l3) * wigner_3j."""
    from equinets.gaunt.reference import gaunt_tensor
    from equinets.nn.segnn import _gaunt_variance_weights

    G = gaunt_tensor(2, 1, 2).double()  # (9, 4, 9): input degrees 0..2, attribute 0..1, output 0..2
    var = G.square().sum((0, 1))
    want = torch.stack([var[l * l:(l + 1) ** 2].mean() ** -0.5 for l in range(3)]).float()
    got = _gaunt_variance_weights(o3.Irreps("3x0e + 3x1o + 3x2e"), o3.Irreps("0e + 1o"), o3.Irreps("2x0e + 3x2e + 1o"))
    torch.testing.assert_close(got, want, rtol=1e-6, atol=0)
    tp = SteerableProduct("3x0e + 3x1o + 3x2e", "0e + 1o", "2x0e + 3x2e + 1o", product="gaunt")
    torch.testing.assert_close(tp.tp.weight_out.detach(), want.expand(3, 3))


def test_velocity_attributes_are_linear_in_the_speed_and_equivariant():
    """SEGNN's velocity attributes [1, |v| Y_l(v/|v|)]: equal e3nn's unnormalised harmonics at degree 1
    (sqrt(3) v), linear in the speed at every degree >= 1 (not |v|^l), [1, 0, ...] at rest, summed over the
    vectors of a particle, and O(3)-equivariant with exact Wigner D matrices (an improper rotation)."""
    from equinets.nn.segnn import _velocity_attributes

    g = torch.Generator().manual_seed(3)
    irreps = o3.Irreps.spherical_harmonics(4)
    v = torch.randn(6, 2, 3, dtype=torch.float64, generator=g)
    a = _velocity_attributes(irreps, v)
    ref1 = o3.spherical_harmonics("0e + 1o", v, normalize=False, normalization="component").sum(1)
    assert torch.allclose(a[:, :4], ref1, atol=1e-12)
    assert torch.allclose(a[:, 1:4], 3 ** 0.5 * v.sum(1), atol=1e-12)
    a3 = _velocity_attributes(irreps, 3.0 * v)
    assert torch.allclose(a3[:, 0], a[:, 0]) and torch.allclose(a3[:, 1:], 3.0 * a[:, 1:], atol=1e-12)
    rest = _velocity_attributes(irreps, torch.zeros(2, 1, 3, dtype=torch.float64))
    assert torch.equal(rest, torch.cat([torch.ones(2, 1), torch.zeros(2, irreps.dim - 1)], 1).double())
    from equinets.frames import irreps_D

    R = -o3.rand_matrix(dtype=torch.float64)
    D = irreps_D(irreps, R)  # exact float64 Wigner matrices (e3nn's D_from_matrix is good to ~1e-6 here)
    assert torch.allclose(_velocity_attributes(irreps, v @ R.T), a @ D.T, atol=1e-12)


@pytest.mark.parametrize("product", ["gaunt", "cg"])
def test_untrained_segnn_stays_bounded_at_high_degree(product):
    """With attributes linear in the speed, an untrained SEGNN at lmax 4 moves particles by O(1), not by
    |v|^(4 x layers): measured 38-46 mean squared displacement on n-body batches, 1e5-2e6 with unnormalised
    velocity harmonics. Here: speeds up to 4, the output displacement stays below 1e2 in RMS."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    pos = torch.randn(20, 3, generator=g)
    vel = torch.randn(20, 3, generator=g)
    vel = 4.0 * vel / vel.norm(dim=1, keepdim=True) * torch.rand(20, 1, generator=g)
    x = torch.cat([vel, torch.randint(0, 2, (20, 1), generator=g).float() * 2 - 1], 1)
    model = SEGNN(4, 3, hidden_channels=8, lmax=4, num_layers=4, product=product)
    with torch.no_grad():
        out = model(pos, x, torch.arange(4).repeat_interleave(5))
    assert torch.isfinite(out).all()
    assert float((out - pos).pow(2).mean().sqrt()) < 1e2


#: the original SEGNN n-body code's choices (Brandstetter et al. 2022), all at once
ORIGINAL = dict(norm=False, node_scalars=False, attr_normalization="integral", velocity_attr="direction",
                edge_vector="out", node_attr_scalar="one", edge_distance="norm", weight_init="fan_in")


@pytest.mark.parametrize("product", PRODUCTS)
def test_segnn_original_options_stay_e3_equivariant(product):
    torch.manual_seed(0)
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        model = SEGNN(4, 3, product=product, hidden_channels=4, num_layers=2, lmax=2, **ORIGINAL)
    finally:
        torch.set_default_dtype(old)
    pos, x, batch = _systems()
    out = model(pos, x, batch)
    for improper in (False, True):
        R = o3.rand_matrix(dtype=torch.float64) * (-1 if improper else 1)
        t = torch.randn(3, dtype=torch.float64) * 10
        got = model(pos @ R.T + t, torch.cat([x[:, :3] @ R.T, x[:, 3:]], dim=1), batch)
        want = out @ R.T + t
        assert float(((got - want).abs().max() / want.abs().max()).detach()) < 1e-10, improper


def test_segnn_without_node_scalars_depends_on_charges_only_through_their_products():
    """``node_scalars=False``: flipping every charge (q -> -q) leaves q_i q_j, hence the output, unchanged."""
    torch.manual_seed(0)
    model = SEGNN(4, 3, hidden_channels=4, num_layers=1, node_scalars=False).double()
    assert str(model.irreps_in) == "2x1o+1x0e"
    pos, x, batch = _systems()
    flipped = torch.cat([x[:, :3], -x[:, 3:]], dim=1)
    torch.testing.assert_close(model(pos, flipped, batch), model(pos, x, batch), rtol=0, atol=1e-12)
    with_charges = SEGNN(4, 3, hidden_channels=4, num_layers=1).double()
    assert not torch.allclose(with_charges(pos, flipped, batch), with_charges(pos, x, batch))


def test_fan_in_parametrisation_is_torch_linear_on_scalars():
    """``weight_init="fan_in"`` on a scalar-only product with attribute 1: ``out = x @ theta`` exactly, with
    ``theta ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` (``nn.Linear``'s draw) and effective e3nn weights in [-1, 1]."""
    from equinets.nn.segnn import _fan_in_scales

    torch.manual_seed(0)
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # e3nn keeps its normalisation constants in the default dtype
    try:
        tp = SteerableProduct("6x0e", "0e", "3x0e", product="cg", weight_init="fan_in")
    finally:
        torch.set_default_dtype(old)
    theta = tp.tp.parametrizations.weight.original
    assert float(theta.abs().max()) <= 6 ** -0.5
    assert float(tp.tp.weight.abs().max()) <= 1.0
    x = torch.randn(5, 6, dtype=torch.float64)
    got = tp(x, torch.ones(5, 1, dtype=torch.float64))
    torch.testing.assert_close(got, x @ theta.reshape(6, 3) + tp.bias, rtol=0, atol=1e-12)
    assert 0 < float(tp.bias.abs().max()) <= 6 ** -0.5  # nn.Linear's bias draw
    # fan-in per output irrep: 0e out gets 4*1 (0e x 0e) + 4*1 (1o x 1o) = 8, 1o out 4 + 4 = 8
    fc = o3.FullyConnectedTensorProduct("4x0e + 4x1o", "0e + 1o", "4x0e + 4x1o")
    torch.testing.assert_close(_fan_in_scales(fc), torch.full((64,), 8.0).sqrt())
    lin = o3.Linear("4x0e + 2x0e + 4x1o", "8x0e + 8x1o")  # 0e out: 4 + 2 = 6, 1o out: 4
    want = torch.cat([torch.full((48,), 6.0), torch.full((32,), 4.0)]).sqrt()
    torch.testing.assert_close(_fan_in_scales(lin), want)


def test_configs_build_the_original_segnn_and_both_products_start_at_the_same_scale():
    """The n-body configs' options: every option is applied, and under ``weight_init="fan_in"`` the Gaunt product
    (three mixing Linears, its output weights tripled) starts at the CG product's output variance, 1/3 of e3nn's."""
    from equinets.train.config import resolve_config

    kw = resolve_config("nbody-segnn-gaunt")["model_kwargs"]
    assert {k: kw[k] for k in ORIGINAL} == ORIGINAL
    g = torch.Generator().manual_seed(0)
    h, a = torch.randn(4000, 16 * 4, generator=g), torch.randn(4000, 4, generator=g)
    var = {}
    for product in PRODUCTS:
        v = []
        for seed in range(6):
            torch.manual_seed(seed)
            tp = SteerableProduct("16x0e + 16x1o", "0e + 1o", "16x0e + 16x1o", product=product, weight_init="fan_in")
            with torch.no_grad():
                v.append((tp(h, a) - tp(h, a).mean(0)).square().mean())
        var[product] = float(torch.stack(v).mean())
    assert abs(var["cg"] - 1 / 3) < 0.05 and abs(var["gaunt"] - 1 / 3) < 0.05, var


@pytest.mark.parametrize("product", PRODUCTS)
@pytest.mark.parametrize("weight_init", ["e3nn", "fan_in"])
def test_steerable_product_reset_parameters_redraws_every_weight(product, weight_init):
    """``reset_parameters`` is the one initialisation: after the weights are overwritten it draws them again as
    the constructor did (under ``fan_in`` the underlying theta, not the computed ``weight``, which a plain
    ``weight.normal_()`` would silently leave alone), and the Gaunt output weights return to their start."""
    from equinets.nn.segnn import _gaunt_variance_weights

    torch.manual_seed(0)
    tp = SteerableProduct("4x0e + 4x1o", "0e + 1o", "4x0e + 4x1o", product=product, weight_init=weight_init)
    start = {k: v.clone() for k, v in tp.state_dict().items()}
    with torch.no_grad():
        for p in tp.parameters():
            p.fill_(7.0)
    tp.reset_parameters()
    now = tp.state_dict()
    for k, v in now.items():
        if k.endswith(("weight1", "weight2")):
            assert torch.equal(v, torch.ones_like(v)), k
        elif k.endswith("weight_out"):
            d = _gaunt_variance_weights(tp.irreps_in, tp.irreps_attr, tp.irreps_out)
            torch.testing.assert_close(v, ((3.0 if weight_init == "fan_in" else 1.0) * d).expand_as(v))
        elif k.endswith(".c"):
            assert torch.equal(v, start[k]), k  # the fixed scales stay
        elif v.is_floating_point() and v.numel():
            assert not (v == 7.0).any(), k  # every drawn tensor is drawn again
            if weight_init == "fan_in" and "original" in k:
                c = now[k.replace("original", "0.c")]
                assert float((v * c).abs().max()) <= 1.0, k
    if weight_init == "e3nn" and tp.bias is not None:
        assert torch.equal(tp.bias, torch.zeros_like(tp.bias))


def test_gaunt_module_reset_reaches_fan_in_parametrised_linears():
    """``GauntTensorProduct.reset_parameters`` re-draws its mixing Linears as e3nn does (unit normal weights) even
    when ``weight_init="fan_in"`` has made their ``weight`` a computed tensor, instead of silently doing nothing."""
    torch.manual_seed(0)
    tp = SteerableProduct("8x0e + 8x1o", "0e + 1o", "8x0e + 8x1o", product="gaunt", weight_init="fan_in").tp
    before = [lin.parametrizations.weight.original.clone() for lin in (tp.lin1, tp.lin2, tp.lin_out)]
    tp.reset_parameters()
    for lin, old in zip((tp.lin1, tp.lin2, tp.lin_out), before):
        theta, c = lin.parametrizations.weight.original, lin.parametrizations.weight[0].c
        assert not torch.equal(theta, old)
        torch.testing.assert_close(lin.weight, theta * c)
        assert float(lin.weight.abs().max()) > 1.0  # N(0, 1) effective weights, not U(-1, 1)


@pytest.mark.parametrize("normalization, y0", [("component", 1.0), ("integral", (4 * torch.pi) ** -0.5)])
def test_velocity_direction_attributes_of_a_particle_at_rest_are_finite(normalization, y0):
    """``velocity_attr="direction"``: Y(v/|v|), which has no direction at v = 0: degree 0 only, finite gradients."""
    from equinets.nn.segnn import _velocity_attributes

    vec = torch.tensor([[[0.0, 0.0, 0.0]], [[0.0, 0.0, 2.0]]], dtype=torch.float64, requires_grad=True)
    attr = _velocity_attributes(o3.Irreps("0e + 1o"), vec, "direction", normalization)
    want0 = torch.tensor([y0, 0.0, 0.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(attr[0], want0)
    assert float(attr[1, 0]) == pytest.approx(y0) and float(attr[1, 1:].norm()) == pytest.approx(3**0.5 * y0)
    attr.sum().backward()
    assert torch.isfinite(vec.grad).all()
