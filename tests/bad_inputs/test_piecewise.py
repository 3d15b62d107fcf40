"""Bad input to equinets.piecewise: clear errors naming the argument, or documented finite results."""

import pytest
import torch
from torch_geometric.data import Data

from equinets.piecewise import (
    APEN,
    Mixture,
    assign,
    fps_candidates,
    gmm_em,
    init_mixture,
    merge_components,
)

F64 = torch.float64
SMALL = {"num_parts": 4, "num_blocks": 2, "channels": (8,), "num_scalars": 4, "num_vectors": 1, "k": 3,
         "head_channels": (8,)}


def _model(**kw):
    return APEN(out_channels=3, **{**SMALL, **kw}).double().eval()


def _cloud(n=24):
    return torch.randn(n, 3, dtype=F64) * torch.tensor([1.0, 2.0, 3.0], dtype=F64)


# -- constructor -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw, exc, match",
    [
        ({"num_parts": 0}, ValueError, "num_parts"),
        ({"num_parts": 2.5}, TypeError, "num_parts"),
        ({"group": "E2"}, ValueError, "group"),
        ({"task": "reg"}, ValueError, "task"),
        ({"num_blocks": 0}, ValueError, "num_blocks"),
        ({"variances": (0.1,)}, ValueError, "variances"),
        ({"variances": (0.1, -0.2)}, ValueError, "variances"),
        ({"variances": "0.1"}, TypeError, "variances"),
        ({"assignment": "medium"}, ValueError, "assignment"),
        ({"vote_loss": "l3"}, ValueError, "vote_loss"),
        ({"k": 0}, ValueError, "k must"),
        ({"min_weight": 1.5}, ValueError, "min_weight"),
        ({"merge_radius": -1.0}, ValueError, "merge_radius"),
        ({"in_channels": 2, "irreps_in": "1o"}, ValueError, "irreps_in"),
        ({"dropout": 1.0}, ValueError, "dropout"),
        ({"train_sampling": "yes"}, TypeError, "train_sampling"),
        ({"partition_grad": 1}, TypeError, "partition_grad"),
        ({"context": "yes"}, TypeError, "context"),
        ({"task": "cls", "num_categories": 3}, ValueError, "num_categories"),
        ({"degenerate": "random"}, ValueError, "degenerate"),
    ],
)
def test_constructor_rejects(kw, exc, match):
    with pytest.raises(exc, match=match):
        APEN(out_channels=3, **{**SMALL, **kw})


# -- forward -----------------------------------------------------------------------------------
def test_partition_of_the_wrong_length():
    with pytest.raises(ValueError, match="partition must have one part id per point"):
        _model()(_cloud(), partition=torch.zeros(23, dtype=torch.long))


def test_partition_ids_out_of_range():
    with pytest.raises(ValueError, match=r"partition must hold part ids in \[0, 4\) \(num_parts\)"):
        _model()(_cloud(), partition=torch.full((24,), 4))


def test_partition_negative_ids():
    with pytest.raises(ValueError, match="partition"):
        _model()(_cloud(), partition=torch.full((24,), -1))


def test_partition_float_ids():
    with pytest.raises(TypeError, match="partition must be an integer tensor"):
        _model()(_cloud(), partition=torch.zeros(24))


def test_features_for_a_model_without_features():
    with pytest.raises(ValueError, match="x must be None"):
        _model()(_cloud(), torch.randn(24, 2, dtype=F64))


def test_nan_positions():
    pos = _cloud()
    pos[3, 1] = float("nan")
    with pytest.raises(ValueError, match="pos must be finite"):
        _model()(pos)


def test_dtype_mismatch():
    with pytest.raises(TypeError, match="pos has dtype torch.float32"):
        _model()(_cloud().float())


def test_category_without_categories():
    with pytest.raises(ValueError, match="category"):
        _model()(_cloud(), category=torch.zeros(1, dtype=torch.long))


def test_nan_votes_from_diverged_weights():
    m = _model()
    with torch.no_grad():
        m.blocks[0].out_mlp[-1].bias.fill_(float("nan"))
    with pytest.raises(ValueError, match="the votes of block 0"):
        m(_cloud())


def test_auxiliary_loss_offsets_of_the_wrong_shape():
    m = _model()
    m(_cloud())
    with pytest.raises(ValueError, match="part_offset must have shape"):
        m.auxiliary_loss(Data(part_offset=torch.zeros(23, 3, dtype=F64)))


def test_auxiliary_loss_before_any_forward():
    with pytest.raises(RuntimeError, match="auxiliary_loss needs the votes"):
        _model().auxiliary_loss(Data(part_offset=torch.zeros(24, 3, dtype=F64)))


# -- partition functions -----------------------------------------------------------------------
def test_em_nan_votes():
    y = _cloud()
    mix = init_mixture(y, None, 3, 0.1)
    y[0, 0] = float("nan")
    with pytest.raises(ValueError, match="votes must be finite"):
        gmm_em(y, None, mix)


def test_em_means_of_the_wrong_shape():
    y = _cloud()
    mix = init_mixture(y, None, 3, 0.1)
    with pytest.raises(ValueError, match="mixture.means"):
        gmm_em(y, None, mix._replace(means=mix.means[0]))


def test_zero_variance():
    with pytest.raises(ValueError, match="variance must be > 0"):
        init_mixture(_cloud(), None, 3, 0.0)


def test_negative_merge_radius():
    mix = init_mixture(_cloud(), None, 3, 0.1)
    with pytest.raises(ValueError, match="merge_radius"):
        merge_components(mix, -0.1)


def test_assign_without_e_step():
    mix = init_mixture(_cloud(), None, 3, 0.1)
    with pytest.raises(ValueError, match="log_resp is None"):
        assign(mix, torch.zeros(24, dtype=torch.long))


def test_assign_unknown_mode():
    y = _cloud()
    mix = gmm_em(y, None, init_mixture(y, None, 3, 0.1), 1)
    with pytest.raises(ValueError, match="assignment"):
        assign(mix, torch.zeros(24, dtype=torch.long), "medium")


def test_zero_candidates():
    with pytest.raises(ValueError, match="num_candidates"):
        fps_candidates(_cloud(), None, 0)


def test_votes_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"y must be a floating-point tensor of shape \(N, 3\)"):
        init_mixture(torch.randn(5, 2), None, 2, 0.1)


# -- documented finite results -------------------------------------------------------------------
def test_parts_of_one_point_are_finite():
    """A part of one point gets the octahedral frame set of pca_frames' degenerate policy: finite output."""
    pos = _cloud()
    lab = torch.zeros(24, dtype=torch.long)
    lab[5] = 1
    lab[17] = 2
    out = _model()(pos, partition=lab)
    assert torch.isfinite(out).all()


def test_empty_parts_are_skipped():
    """Ids no point uses are empty parts: they are dropped, so any unused ids give the same output."""
    pos = _cloud()
    lab = (pos[:, 0] > 0).long()
    m = _model()
    assert torch.equal(m(pos, partition=lab), m(pos, partition=3 * lab))  # ids {0, 1} vs {0, 3}


def test_a_cloud_of_one_point_and_more_candidates_than_points():
    m = _model(num_parts=4)
    out = m(torch.tensor([[1.0, 2.0, 3.0]], dtype=F64))
    assert out.shape == (1, 3) and torch.isfinite(out).all()
    out = m(_cloud(3))  # 3 points, 4 candidate slots: one slot stays dead
    assert torch.isfinite(out).all()


def test_all_points_in_one_part_is_global_frame_averaging_and_finite():
    out = _model()(_cloud(), partition=torch.zeros(24, dtype=torch.long))
    assert torch.isfinite(out).all()


def test_merge_of_components_without_weight_is_the_plain_mean():
    means = torch.tensor([[[0.0, 0, 0], [0.01, 0, 0]]], dtype=F64)
    mix = Mixture(means, torch.zeros(1, 2, dtype=F64), torch.ones(1, 2, dtype=torch.bool), None, 1.0)
    out = merge_components(mix, 0.1)
    assert torch.allclose(out.means[0, 0], torch.tensor([0.005, 0, 0], dtype=F64)) and out.pi.tolist() == [[1.0, 0.0]]
