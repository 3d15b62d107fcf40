"""Bad inputs to the metric meters, the distributed helpers and the benchmark timing helper.

Each case asserts the error type and that the message names the argument.
"""

from __future__ import annotations

import pytest
import torch

from equinets import _bench
from equinets.errors import UserError
from equinets.train import distributed as D
from equinets.train.metrics import ClassificationMeter, EmptyMeterError, RegressionMeter, SegmentationMeter

PARTS = [[0, 1], [2, 3, 4]]


def _seg_ok():
    """A valid segmentation batch: 2 shapes (categories 0 and 1) of 3 and 2 points."""
    logits = torch.randn(5, 5)
    return logits, torch.tensor([0, 1, 1, 2, 4]), torch.tensor([0, 1]), torch.tensor([0, 0, 0, 1, 1])


CASES = {
    # ClassificationMeter
    "num_classes zero": (lambda: ClassificationMeter(0), ValueError, "num_classes"),
    "num_classes float": (lambda: ClassificationMeter(2.5), TypeError, "num_classes"),
    "logits 1-d": (lambda: ClassificationMeter(3).update(torch.randn(4), torch.tensor([0, 1, 2, 0])),
                   ValueError, "logits"),
    "logits wrong width": (lambda: ClassificationMeter(3).update(torch.randn(4, 5), torch.tensor([0, 1, 2, 0])),
                           ValueError, "logits"),
    "labels out of range": (lambda: ClassificationMeter(3).update(torch.randn(2, 3), torch.tensor([0, 3])),
                            ValueError, r"\by\b"),
    "negative label": (lambda: ClassificationMeter(3).update(torch.randn(2, 3), torch.tensor([-1, 0])),
                       ValueError, r"\by\b"),
    "float labels": (lambda: ClassificationMeter(3).update(torch.randn(2, 3), torch.tensor([0.0, 1.0])),
                     TypeError, r"\by\b"),
    "mismatched lengths": (lambda: ClassificationMeter(3).update(torch.randn(4, 3), torch.tensor([0, 1, 2])),
                           ValueError, r"\by\b"),
    "labels not a tensor": (lambda: ClassificationMeter(3).update(torch.randn(2, 3), [0, 1]), TypeError, r"\by\b"),
    "loss not scalar": (lambda: ClassificationMeter(3).add_loss(torch.ones(2), 2), ValueError, "loss"),
    "negative n": (lambda: ClassificationMeter(3).add_loss(0.5, -1), ValueError, r"\bn\b"),
    "n float": (lambda: RegressionMeter().add_loss(0.5, 2.0), TypeError, r"\bn\b"),
    # SegmentationMeter
    "category_parts empty": (lambda: SegmentationMeter([]), ValueError, "category_parts"),
    "category with no part": (lambda: SegmentationMeter([[0, 1], []]), ValueError, r"category_parts\[1\]"),
    "negative part id": (lambda: SegmentationMeter([[0, -1]]), ValueError, r"category_parts\[0\]"),
    "seg logits wrong width": (lambda: SegmentationMeter(PARTS).update(torch.randn(5, 4), *_seg_ok()[1:]),
                               ValueError, "logits"),
    "seg labels length": (lambda: SegmentationMeter(PARTS).update(_seg_ok()[0], torch.tensor([0, 1]),
                                                                  *_seg_ok()[2:]), ValueError, r"\by\b"),
    "seg category out of range": (lambda: SegmentationMeter(PARTS).update(*_seg_ok()[:2], torch.tensor([0, 2]),
                                                                          _seg_ok()[3]), ValueError, "category"),
    "seg batch beyond category": (lambda: SegmentationMeter(PARTS).update(*_seg_ok()[:3],
                                                                          torch.tensor([0, 0, 1, 2, 2])),
                                  ValueError, "batch"),
    "seg batch unsorted": (lambda: SegmentationMeter(PARTS).update(*_seg_ok()[:3], torch.tensor([0, 1, 0, 1, 1])),
                           ValueError, "batch"),
    "seg batch length": (lambda: SegmentationMeter(PARTS).update(*_seg_ok()[:3], torch.tensor([0, 1])),
                         ValueError, "batch"),
    "seg part of another category": (lambda: SegmentationMeter(PARTS).update(_seg_ok()[0], torch.tensor([0, 1, 3, 2, 4]),
                                                                             *_seg_ok()[2:]), ValueError, r"\by\b"),
    # RegressionMeter
    "regression shapes differ": (lambda: RegressionMeter().update(torch.zeros(3, 2), torch.zeros(3, 3)),
                                 ValueError, "target"),
    "regression target not a tensor": (lambda: RegressionMeter().update(torch.zeros(3), [0.0, 0.0, 0.0]),
                                       TypeError, "target"),
    # empty meters: an error, never NaN
    "empty classification": (lambda: ClassificationMeter(3).compute(), EmptyMeterError, "ClassificationMeter"),
    "empty segmentation": (lambda: SegmentationMeter(PARTS).compute(), EmptyMeterError, "SegmentationMeter"),
    "empty regression": (lambda: RegressionMeter().compute(), EmptyMeterError, "RegressionMeter"),
    "loss only, no samples": (lambda: _loss_only().compute(), EmptyMeterError, "no samples"),
    # distributed helpers
    "device_kind": (lambda: D.init_distributed("tpu"), ValueError, "device_kind"),
    "backend not a string": (lambda: D.backend_device(3), TypeError, "backend"),
    # benchmark helper
    "negative repeats": (lambda: _bench.compare({"a": lambda: None}, repeats=-1), ValueError, "repeats"),
    "zero repeats": (lambda: _bench.compare({"a": lambda: None}, repeats=0), ValueError, "repeats"),
    "float repeats": (lambda: _bench.compare({"a": lambda: None}, repeats=2.0), TypeError, "repeats"),
    "negative warmup": (lambda: _bench.compare({"a": lambda: None}, repeats=1, warmup=-1), ValueError, "warmup"),
    "no operations": (lambda: _bench.compare({}, repeats=1), ValueError, "fns"),
    "zero number": (lambda: _bench.compare({"a": lambda: None}, repeats=1, number=0), ValueError, "number"),
    "operation not callable": (lambda: _bench.compare({"a": 3}, repeats=1), TypeError, r"fns\['a'\]"),
    "zero threads": (lambda: _bench.pin_threads(0), ValueError, "threads"),
    "unknown allocator": (lambda: _bench.set_allocator("jemalloc"), ValueError, "allocator"),
    "base with other repeats": (lambda: _bench.timing_row(_bench.Timing("b", [1.0, 2.0]), _bench.Timing("a", [1.0])),
                                ValueError, "base"),
    "timing without repeats": (lambda: _bench.Timing("op").median_ms, ValueError, "'op'"),
    "interleaved_order repeats": (lambda: _bench.interleaved_order(["a"], 0), ValueError, "repeats"),
}


def _loss_only():
    m = ClassificationMeter(2)
    m.add_loss(0.5, 4)
    return m


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_raises_naming_the_argument(case):
    fn, exc, match = CASES[case]
    with pytest.raises(exc, match=match):
        fn()


def test_empty_meter_is_a_user_error():
    assert issubclass(EmptyMeterError, UserError) and issubclass(EmptyMeterError, ValueError)


@pytest.mark.parametrize("env, name", [({"WORLD_SIZE": "2"}, "RANK"), ({"WORLD_SIZE": "two"}, "WORLD_SIZE"),
                                       ({"WORLD_SIZE": "2", "RANK": "x"}, "RANK")])
def test_torchrun_environment_errors_name_the_variable(monkeypatch, env, name):
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ValueError, match=name):
        D.init_distributed("cpu")


def test_a_rejected_update_leaves_the_meter_unchanged():
    m = ClassificationMeter(3)
    m.update(torch.eye(3), torch.tensor([0, 1, 2]))
    before = [t.clone() for t in m._stats()]
    with pytest.raises(ValueError, match=r"\by\b"):
        m.update(torch.eye(3), torch.tensor([0, 1, 5]))
    assert all(torch.equal(a, b) for a, b in zip(before, m._stats()))
