import pytest
import torch
from e3nn import o3
from torch_geometric.data import Batch, Data

from equinets.frames import FAGNN, pca_frames
from equinets.nn import create_model, list_models
from equinets.nn.graph_ops import full_graph
from equinets.testing import assert_equivariant

IRREPS_IN = "1x1o + 1x0e"  # x = [vel (3), charge (1)]


def _systems(sizes=(5, 5, 5), dtype=torch.float64):
    n = sum(sizes)
    pos = torch.randn(n, 3, dtype=torch.float64) * torch.tensor([1.0, 1.5, 2.0], dtype=torch.float64)
    vel = 0.5 * torch.randn(n, 3, dtype=torch.float64)
    q = torch.randint(0, 2, (n, 1)).to(torch.float64) * 2 - 1
    batch = torch.arange(len(sizes)).repeat_interleave(torch.tensor(sizes))
    return pos.to(dtype), torch.cat([vel, q], dim=1).to(dtype), batch


def _model(dtype=torch.float64, **kw):
    kw = {"hidden_channels": 12, "num_layers": 3, **kw}
    return FAGNN(4, 3, **kw).to(dtype)


@pytest.mark.parametrize("reframe", ["latent", "input"])
def test_fagnn_e3_equivariant(dtype, reframe):
    model = _model(dtype, reframe=reframe)  # train mode: no dropout / batch statistics, exact anyway
    pos, x, batch = _systems(dtype=dtype)
    out = model(pos, x, batch)
    assert out.shape == (15, 3) and out.dtype == dtype
    err = assert_equivariant(model, pos, x, batch, group="E3", irreps_in=IRREPS_IN, irreps_out="1o",
                             position_output=True, n_trials=4)
    assert err < (1e-9 if dtype == torch.float64 else 1e-4)


def test_fagnn_se3_group_and_vector_outputs():
    model = FAGNN(4, 6, hidden_channels=12, num_layers=2, group="SE3").double()
    pos, x, batch = _systems()
    assert_equivariant(model, pos, x, batch, group="SE3", irreps_in=IRREPS_IN, irreps_out="2x1o",
                       position_output=True)
    vel_only = FAGNN(3, 3, hidden_channels=9, num_layers=2, position_output=False).double()
    assert_equivariant(vel_only, pos, x[:, :3], batch, group="E3", irreps_in="1o", irreps_out="1o")


def test_fagnn_permutation_equivariant():
    model = _model()
    pos, x, batch = _systems((5, 4, 6))
    perm = torch.cat([torch.randperm(int(c)) + int(s) for s, c in ((0, 5), (5, 4), (9, 6))])
    out = model(pos, x, batch)
    torch.testing.assert_close(model(pos[perm], x[perm], batch), out[perm], rtol=1e-10, atol=1e-10)


def test_fagnn_clouds_are_independent_and_layouts_agree():
    model = _model()
    pos, x, batch = _systems((5, 3, 6))
    out = model(pos, x, batch)
    for lo, hi in ((0, 5), (5, 8), (8, 14)):
        torch.testing.assert_close(model(pos[lo:hi], x[lo:hi]), out[lo:hi], rtol=1e-10, atol=1e-10)
    data = Batch.from_data_list([Data(pos=pos[lo:hi], x=x[lo:hi]) for lo, hi in ((0, 5), (5, 8), (8, 14))])
    torch.testing.assert_close(model(data), out)
    pos, x, batch = _systems((5, 5))
    dense = model(pos.reshape(2, 5, 3), x.reshape(2, 5, 4))
    torch.testing.assert_close(dense.reshape(10, 3), model(pos, x, batch))


def _slow_fagnn(model: FAGNN, pos, x, batch):
    """Reference: one cloud and one frame at a time, explicit loops, same weights."""
    outs = []
    C = model.hidden_channels // 3
    for b in range(int(batch.max()) + 1):
        p, xb = pos[batch == b], x[batch == b]
        n = p.shape[0]
        v, q = xb[:, :3], xb[:, 3:]
        ei = torch.tensor([[j for i in range(n) for j in range(n) if i != j],
                           [i for i in range(n) for j in range(n) if i != j]], dtype=torch.long)
        d = p[ei[1]] - p[ei[0]]
        ea = torch.cat([q[ei[1]] * q[ei[0]], (d * d).sum(1, keepdim=True)], dim=1)
        fr = pca_frames(p, group="E3")
        t = fr.translation[0].to(p.dtype)
        Z = None
        for layer_idx, layer in enumerate(model.layers):
            if layer_idx > 0:
                fr = pca_frames(Z.reshape(-1, 3), group="O3") if model.reframe == "latent" else fr
            acc = torch.zeros(n, C, 3, dtype=p.dtype)
            last = []
            for f in range(fr.rotations.shape[1]):
                w = float(fr.weights[0, f])
                if w == 0:
                    continue
                R = fr.rotations[0, f].to(p.dtype)
                if layer_idx == 0:
                    h = model.embed(torch.cat([(p - t) @ R, v @ R, q], dim=1))
                else:
                    h = (Z @ R).reshape(n, -1)
                h = layer(h, ei, ea)
                if layer_idx < len(model.layers) - 1:
                    acc = acc + w * h.reshape(n, C, 3) @ R.T
                else:
                    last.append(w * model.decoder(h) @ R.T)
            Z = acc
        outs.append(sum(last) + t)
    return torch.cat(outs)


@pytest.mark.parametrize("reframe", ["latent", "input"])
def test_fagnn_matches_slow_per_frame_loop(reframe):
    model = _model(reframe=reframe)
    pos, x, batch = _systems((5, 4, 6))
    torch.testing.assert_close(model(pos, x, batch), _slow_fagnn(model, pos, x, batch), rtol=1e-10, atol=1e-10)


def test_fagnn_degenerate_clouds_finite_outputs_and_gradients():
    model = _model()
    pos = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 0, 0], [1, 1, 1], [2, 2, 2], [0, 1, 0], [0, -1, 0]],
                       dtype=torch.float64, requires_grad=True)  # a pair, a line, a symmetric pair
    x = torch.cat([torch.zeros(7, 3, dtype=torch.float64), torch.ones(7, 1, dtype=torch.float64)], dim=1)
    batch = torch.tensor([0, 0, 1, 1, 1, 2, 2])
    out = model(pos, x, batch)
    out.square().sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(pos.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_fagnn_single_particle_and_no_features():
    model = FAGNN(0, 3, hidden_channels=6, num_layers=2).double()
    pos = torch.randn(7, 3, dtype=torch.float64)
    batch = torch.tensor([0, 1, 1, 1, 2, 2, 2])
    out = model(pos, None, batch)
    assert out.shape == (7, 3) and torch.isfinite(out).all()
    assert_equivariant(model, pos[1:], None, batch[1:] - 1, group="E3", irreps_out="1o", position_output=True)


def test_full_graph_edges():
    ei = full_graph(torch.tensor([0, 0, 0, 1, 1]))
    assert ei.shape == (2, 8)
    assert sorted(map(tuple, ei.t().tolist())) == sorted(
        [(j, i) for i in range(3) for j in range(3) if i != j] + [(4, 3), (3, 4)])


def test_fagnn_argument_errors():
    with pytest.raises(ValueError, match="multiple of 3"):
        FAGNN(4, 3, hidden_channels=10)
    with pytest.raises(ValueError, match="multiple of 3"):
        FAGNN(4, 4)
    with pytest.raises(ValueError, match="task must be 'seg'"):
        FAGNN(4, 3, task="cls")
    with pytest.raises(ValueError, match="reframe"):
        FAGNN(4, 3, reframe="new")
    with pytest.raises(ValueError, match="num_vectors"):
        FAGNN(4, 3, num_vectors=2)
    model = FAGNN(4, 3, hidden_channels=6, num_layers=1)
    with pytest.raises(ValueError, match="x is required"):
        model(torch.randn(5, 3))
    with pytest.raises(ValueError, match="in_channels = 4"):
        model(torch.randn(5, 3), torch.randn(5, 3))


def test_fagnn_registered_and_trains_one_step():
    assert "fa_gnn" in list_models()
    model = create_model("fa_gnn", in_channels=4, out_channels=3, task="seg", hidden_channels=12, num_layers=2)
    assert isinstance(model, FAGNN)
    pos, x, batch = _systems(dtype=torch.float32)
    y = pos + x[:, :3]
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    losses = []
    for _ in range(5):
        loss = (model(pos, x, batch) - y).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]


def test_fagnn_output_rotates_with_a_fixed_rotation_float32():
    model = _model(torch.float32)
    pos, x, batch = _systems(dtype=torch.float64)
    Q = o3.rand_matrix(dtype=torch.float64)
    a = model(pos.float(), x.float(), batch).double() @ Q.T
    b = model((pos @ Q.T).float(), torch.cat([x[:, :3] @ Q.T, x[:, 3:]], 1).float(), batch).double()
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_nbody_fa_gnn_config_trains_through_the_loop(tmp_path, monkeypatch):
    from equinets.data import NBody
    from equinets.train import resolve_config
    from equinets.train.loop import train

    get = NBody.get  # items need data.x = [vel, charge]; added here in case NBody does not set it (idempotent)

    def get_with_x(self, idx):
        d = get(self, idx)
        d.x = torch.cat([d.vel, d.charges], dim=1)
        return d

    monkeypatch.setattr(NBody, "get", get_with_x)
    sizes = "{num_train: 16, num_val: 8, num_test: 8, frame_in: 1, frame_out: 2}"
    cfg = resolve_config("nbody-fa-gnn", ["epochs=1", "batch_size=8", "model_kwargs={hidden_channels: 6, num_layers: 2}",
                                          f"data_root={tmp_path}", f"dataset_kwargs={sizes}"])
    metrics = train(cfg, tmp_path / "run", progress=False)
    assert set(metrics) >= {"mse"} and metrics["mse"] == metrics["mse"]


def test_fagnn_stochastic_frames_in_training_full_frames_in_eval():
    torch.manual_seed(0)
    pos, x, batch = _systems()
    full = _model(num_layers=1, reframe="input")
    sampled = _model(num_layers=1, reframe="input", num_samples=1)
    sampled.load_state_dict(full.state_dict())
    assert "num_samples=1" in repr(sampled)
    exact = full(pos, x, batch)
    torch.testing.assert_close(sampled.eval()(pos, x, batch), exact, rtol=0, atol=1e-12)  # eval: every frame
    sampled.train()
    R = 500  # independent draws: the systems repeated R times in one batch (frames are drawn per cloud)
    rep = sampled(pos.repeat(R, 1), x.repeat(R, 1), (batch + 3 * torch.arange(R)[:, None]).reshape(-1))
    draws = rep.reshape(R, *exact.shape)
    assert (draws - exact).abs().amax() > 1e-3  # single frames really differ from the average
    # one layer, one frame set: the sampled output is an unbiased estimate of the frame average
    se = draws.std(0) / R**0.5
    assert ((draws.mean(0) - exact).abs() < 5 * se + 1e-9).all()
    # evaluation of a model built for stochastic training is the exact frame average
    err = assert_equivariant(sampled.eval(), pos, x, batch, irreps_in=IRREPS_IN, irreps_out="1o", position_output=True)
    assert err < 1e-9


def test_fagnn_rejects_bad_num_samples():
    with pytest.raises(ValueError, match="num_samples must be an integer >= 1, got 0"):
        _model(num_samples=0)
