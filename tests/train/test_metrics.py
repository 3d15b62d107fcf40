import itertools

import pytest
import torch

from equinets.train.metrics import ClassificationMeter, RegressionMeter, SegmentationMeter


def test_classification_matches_loops():
    g = torch.Generator().manual_seed(1)
    C, n = 5, 200
    logits = torch.randn(n, C, generator=g)
    y = torch.randint(0, C, (n,), generator=g)
    m = ClassificationMeter(C)
    for chunk in range(0, n, 37):  # streaming over batches equals one pass
        m.update(logits[chunk:chunk + 37], y[chunk:chunk + 37])
    out = m.compute()
    pred = logits.argmax(1)
    acc = sum(int(p == t) for p, t in zip(pred.tolist(), y.tolist())) / n
    recalls = []
    for c in range(C):
        idx = [i for i in range(n) if y[i] == c]
        recalls.append(sum(int(pred[i] == c) for i in idx) / len(idx))
    assert out["acc"] == pytest.approx(acc, abs=1e-12)
    assert out["balanced_acc"] == pytest.approx(sum(recalls) / C, abs=1e-12)
    assert m.per_class_recall().tolist() == pytest.approx(recalls, abs=1e-12)


def test_per_class_recall_is_nan_for_an_absent_class():
    m = ClassificationMeter(3)
    m.update(torch.tensor([[0.0, 1, 0], [1.0, 0, 0]]), torch.tensor([1, 1]))
    r = m.per_class_recall()
    assert r[1] == 0.5 and torch.isnan(r[0]) and torch.isnan(r[2])


def _slow_shape_iou(logits, y, parts):
    restricted = logits[:, parts]
    pred = [parts[i] for i in restricted.argmax(1).tolist()]
    ious = []
    for p in parts:
        inter = sum(1 for a, b in zip(pred, y.tolist()) if a == p and b == p)
        union = sum(1 for a, b in zip(pred, y.tolist()) if a == p or b == p)
        ious.append(1.0 if union == 0 else inter / union)
    return sum(ious) / len(ious)


def test_segmentation_matches_shapenetpart_reference():
    g = torch.Generator().manual_seed(2)
    category_parts = [[0, 1, 2], [3, 4], [5, 6, 7, 8]]
    P = 9
    shapes = []
    for s in range(12):
        cat = s % 3
        parts = category_parts[cat]
        n = 30 + s
        y = torch.tensor(parts)[torch.randint(0, len(parts) - (1 if s % 4 == 0 else 0), (n,), generator=g)]
        logits = torch.randn(n, P, generator=g)
        logits[torch.arange(n), y] += 1.0
        shapes.append((cat, y, logits))
    m = SegmentationMeter(category_parts)
    for i in range(0, 12, 5):  # batches of up to 5 shapes
        chunk = shapes[i:i + 5]
        batch = torch.cat([torch.full((len(s[1]),), j) for j, s in enumerate(chunk)])
        m.update(torch.cat([s[2] for s in chunk]), torch.cat([s[1] for s in chunk]),
                 torch.tensor([s[0] for s in chunk]), batch)
    out = m.compute()
    per_shape = [(_slow_shape_iou(lg, y, category_parts[c]), c) for c, y, lg in shapes]
    inst = sum(v for v, _ in per_shape) / len(per_shape)
    cls = sum(sum(v for v, c in per_shape if c == k) / sum(1 for _, c in per_shape if c == k) for k in range(3)) / 3
    assert out["instance_miou"] == pytest.approx(inst, abs=1e-12)
    assert out["class_miou"] == pytest.approx(cls, abs=1e-12)


def test_absent_part_counts_as_iou_one():
    m = SegmentationMeter([[0, 1]])
    logits = torch.tensor([[5.0, 0.0], [5.0, 0.0]])
    m.update(logits, torch.tensor([0, 0]), torch.tensor([0]), torch.tensor([0, 0]))
    assert m.compute()["instance_miou"] == 1.0


def test_regression_mse():
    m = RegressionMeter()
    a, b = torch.randn(7, 3), torch.randn(7, 3)
    m.update(a[:3], b[:3])
    m.update(a[3:], b[3:])
    assert m.compute()["mse"] == pytest.approx(float(((a.double() - b.double()) ** 2).mean()), abs=1e-12)


def test_meter_stats_are_additive_like_an_all_reduce():
    # two "ranks" summed statistic by statistic equal one meter over all the data
    C = 4
    g = torch.Generator().manual_seed(3)
    logits, y = torch.randn(50, C, generator=g), torch.randint(0, C, (50,), generator=g)
    one, r0, r1 = ClassificationMeter(C), ClassificationMeter(C), ClassificationMeter(C)
    one.update(logits, y)
    r0.update(logits[:20], y[:20])
    r1.update(logits[20:], y[20:])
    for a, b in itertools.zip_longest(r0._stats(), r1._stats()):
        a += b
    assert r0.compute() == one.compute()
