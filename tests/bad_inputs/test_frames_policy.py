"""Bad frame-policy options (signs, sign_tol, tie_tol, degenerate), fa_* config keys and shapes-hard options."""

from __future__ import annotations

import pytest
import torch

from equinets.data import ShapesHardDataset, create_dataset
from equinets.frames import FrameAveraging, pca_frames
from equinets.nn import PointNet
from equinets.train.config import ConfigError, resolve_config

POS = torch.randn(10, 3, dtype=torch.float64)

BAD_OPTIONS = {
    "signs unknown": (dict(signs="some"), ValueError,
                      "signs must be one of 'all', 'shrink', 'extent', 'detail', 'faces', got 'some'"),
    "signs not a string": (dict(signs=1), TypeError, "signs must be a string"),
    "sign_tol zero": (dict(sign_tol=0.0), ValueError, "sign_tol must be > 0, got 0.0"),
    "sign_tol string": (dict(sign_tol="0.1"), TypeError, "sign_tol must be a real number"),
    "sign_tol nan": (dict(sign_tol=float("nan")), ValueError, "sign_tol must be a finite number"),
    "tie_tol negative": (dict(tie_tol=-0.1), ValueError, "tie_tol must be > 0, got -0.1"),
    "degenerate unknown": (dict(degenerate="harmonics"), ValueError, "degenerate must be one of 'blend', 'none', "
                           "'harmonic', got 'harmonics'"),
}


@pytest.mark.parametrize("case", list(BAD_OPTIONS))
def test_pca_frames_refuses_bad_policy_options(case):
    kwargs, exc, msg = BAD_OPTIONS[case]
    with pytest.raises(exc, match=msg):
        pca_frames(POS, **kwargs)


@pytest.mark.parametrize("case", list(BAD_OPTIONS))
def test_frame_averaging_refuses_them_at_construction(case):
    kwargs, exc, msg = BAD_OPTIONS[case]
    with pytest.raises(exc, match=msg):
        FrameAveraging(PointNet(0, 2, emb_dims=8), "E3", **kwargs)


@pytest.mark.parametrize("override,expected", [
    ("fa_signs=shrunk", "fa_signs"),
    ("fa_degenerate=grid", "fa_degenerate"),
])
def test_bad_fa_config_keys_are_named(override, expected):
    with pytest.raises(ConfigError, match=expected):
        resolve_config("shapes-fa-pointnet", [override])


@pytest.mark.parametrize("kwargs,exc,msg", [
    (dict(mirror_pairs="drop"), ValueError, "mirror_pairs must be one of 'keep', 'merge', 'exclude', got 'drop'"),
    (dict(mirror_pairs=None), TypeError, "mirror_pairs must be a string"),
    (dict(num_points=0), ValueError, "num_points"),
    (dict(noise=-1.0), ValueError, "noise"),
])
def test_shapes_hard_refuses_bad_options_before_generating(kwargs, exc, msg, tmp_path):
    with pytest.raises(exc, match=msg):
        ShapesHardDataset(tmp_path, **kwargs)
    assert not (tmp_path / "shapes-hard").exists()


def test_shapes_hard_unknown_option_through_the_registry(tmp_path):
    with pytest.raises(TypeError, match="mirror_pair"):
        create_dataset("shapes-hard", tmp_path, mirror_pair="merge")


def test_frame_sign_stats_refuses_an_unknown_statistic():
    from equinets.frames import frame_sign_stats

    with pytest.raises(ValueError, match="statistic must be one of 'skewness', 'extent', 'edges', 'faces', got 'face'"):
        frame_sign_stats(POS, statistic="face")
