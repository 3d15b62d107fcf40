"""CollapseTracker: streaming = nc_metrics on the concatenated data, merges, NC4 second pass, near collapse."""

from __future__ import annotations

import pytest
import torch

from equinets.collapse import CollapseTracker, nc_metrics


def _data(K=7, d=12, n=900, seed=0, scale=1.0, spread=1.0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, K, (n,), generator=g)
    mu = scale * torch.randn(K, d, dtype=torch.float64, generator=g)
    h = mu[y] + spread * torch.randn(n, d, dtype=torch.float64, generator=g)
    W = mu + 0.3 * torch.randn(K, d, dtype=torch.float64, generator=g)
    b = torch.randn(K, dtype=torch.float64, generator=g)
    return h.to(dtype), y, W, b


def _stream(tr, h, y, sizes):
    i = 0
    for s in sizes:
        tr.update(h[i:i + s], y[i:i + s])
        i += s
    assert i == h.shape[0]


def _close(got, ref, rel):
    assert set(got) == set(ref)
    for k, v in ref.items():
        assert got[k] == pytest.approx(v, rel=rel, abs=1e-15), k


@pytest.mark.parametrize("global_mean", ["class", "sample"])
def test_stream_equals_nc_metrics(global_mean):
    h, y, W, b = _data()
    tr = CollapseTracker(7, 12, global_mean=global_mean)
    _stream(tr, h, y, [1, 2, 100, 3, 500, 294])  # tiny batches: classes missing from batches
    i = 0
    for s in (450, 450):
        tr.update_nc4(h[i:i + s], y[i:i + s], W, b)
        i += s
    _close(tr.compute(W, b), nc_metrics(h, y, W, b, global_mean=global_mean), 1e-8)
    ref_no_w = nc_metrics(h, y, global_mean=global_mean)
    _close(tr.compute(), ref_no_w, 1e-8)


def test_merge_equals_one_tracker_and_order_free():
    h, y, W, b = _data(seed=1)
    a, c = CollapseTracker(7, 12), CollapseTracker(7, 12)
    _stream(a, h[:300], y[:300], [300])
    _stream(c, h[300:], y[300:], [250, 350])
    a.merge(c)
    _close(a.compute(), nc_metrics(h, y), 1e-9)


def test_near_collapse_float32_stays_accurate():
    """Means ~100, spread 1e-2, float32 input: NC1 within 1e-4 relative of the float64 answer on the same numbers."""
    h, y, _, _ = _data(K=10, d=32, n=6000, seed=2, scale=100.0, spread=1e-2, dtype=torch.float32)
    tr = CollapseTracker(10, 32)
    _stream(tr, h, y, [1000] * 6)
    ref = nc_metrics(h.double(), y)
    got = tr.compute()
    assert got["nc1"] == pytest.approx(ref["nc1"], rel=1e-4)
    assert got["nc1_quotient"] == pytest.approx(ref["nc1_quotient"], rel=1e-4)
    # the one-pass E[hh^T] - mu mu^T in float32 (what the tracker avoids) is wrong by orders of magnitude here
    X = h[y == 0]
    naive = (X.T @ X / X.shape[0] - torch.outer(X.mean(0), X.mean(0))).trace()
    exact = X.double().var(0, correction=0).sum()
    assert abs(float(naive) - float(exact)) / float(exact) > 1e-2


def test_half_precision_batches_are_upcast():
    h, y, _, _ = _data(seed=3)
    tr = CollapseTracker(7, 12)
    tr.update(h.to(torch.bfloat16), y)
    _close(tr.compute(), nc_metrics(h.to(torch.bfloat16).double(), y), 1e-5)


def test_nc4_needs_second_pass_and_consistent_classifier():
    h, y, W, b = _data(seed=4)
    tr = CollapseTracker(7, 12)
    tr.update(h, y)
    assert "nc4" not in tr.compute(W, b)  # no second pass yet
    tr.update_nc4(h[:100], y[:100], W, b)
    with pytest.raises(ValueError, match="NC4 pass saw 100"):
        tr.compute(W, b)
    with pytest.raises(RuntimeError, match="first pass is closed"):
        tr.update(h, y)
    with pytest.raises(ValueError, match="changed"):
        tr.update_nc4(h[100:], y[100:], W * 2, b)
    tr.update_nc4(h[100:], y[100:], W, b)
    assert tr.compute(W, b)["nc4"] == nc_metrics(h, y, W, b)["nc4"]
    with pytest.raises(ValueError, match="differ"):
        tr.compute(W, None)


def test_absent_class_in_tracker():
    h, y, W, b = _data(K=5, d=4, seed=5)
    keep = y != 4
    tr = CollapseTracker(5, 4)
    tr.update(h[keep], y[keep])
    with pytest.raises(ValueError, match="class 4"):
        tr.compute()
    _close(tr.compute(absent="drop"), nc_metrics(h[keep], y[keep], num_classes=5, absent="drop"), 1e-9)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_tracker_equals_cpu_with_tf32_allowed_elsewhere():
    """On CUDA the scatter product runs with TF32 off even when the process allows it (near collapse TF32's
    10-bit mantissa would ruin NC1); the numbers equal the CPU tracker's."""
    h, y, W, b = _data(K=10, d=32, n=4000, seed=6, scale=100.0, spread=1e-2, dtype=torch.float32)
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        gpu = CollapseTracker(10, 32, device="cuda")
        _stream(gpu, h.cuda(), y.cuda(), [1000] * 4)
        assert torch.backends.cuda.matmul.allow_tf32  # restored after each product
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old
    cpu = CollapseTracker(10, 32)
    _stream(cpu, h, y, [1000] * 4)
    ref = nc_metrics(h.double(), y)
    assert gpu.compute()["nc1"] == pytest.approx(ref["nc1"], rel=1e-4)
    assert gpu.compute()["nc1"] == pytest.approx(cpu.compute()["nc1"], rel=1e-4)


def test_new_fp32_precision_api_does_not_break_updates(monkeypatch):
    """torch >= 2.9: after torch.backends.fp32_precision = 'tf32' (the new API), reading the legacy
    torch.backends.cuda.matmul.allow_tf32 raises; the TF32 guard must use the new attribute and restore it.
    CUDA availability is faked so the guard runs on CPU (the flags exist on CPU builds)."""
    matmul = torch.backends.cuda.matmul
    if not hasattr(matmul, "fp32_precision"):
        pytest.skip("torch without the fp32_precision API")
    old_global, old_matmul = torch.backends.fp32_precision, matmul.fp32_precision
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    h, y, W, b = _data(seed=8)
    try:
        torch.backends.fp32_precision = "tf32"
        tr = CollapseTracker(7, 12)
        _stream(tr, h, y, [400, 500])
        tr.update_nc4(h, y, W, b)
        assert tr.compute(W, b)["nc1"] == pytest.approx(nc_metrics(h, y)["nc1"], rel=1e-10)
        assert matmul.fp32_precision == "tf32" and torch.backends.fp32_precision == "tf32"  # restored
    finally:
        torch.backends.fp32_precision = old_global
        matmul.fp32_precision = old_matmul


def _large_outputs(fn, min_numel):
    """The new (non-view, non-in-place) tensors of at least ``min_numel`` elements that ``fn`` creates."""
    from torch.utils._python_dispatch import TorchDispatchMode

    seen = []

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            inputs = {a.untyped_storage().data_ptr() for a in torch.utils._pytree.tree_leaves((args, kwargs))
                      if isinstance(a, torch.Tensor)}
            for o in torch.utils._pytree.tree_leaves(out):
                if isinstance(o, torch.Tensor) and o.numel() >= min_numel and o.untyped_storage().data_ptr() not in inputs:
                    seen.append((str(func), o.dtype, tuple(o.shape)))
            return out

    with Record():
        fn()
    return seen


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_update_allocates_at_most_one_d_by_d_temporary(dtype):
    """Memory bound K d + d^2 plus a batch: a warm update creates no float64 d x d temporary (in-place addmm_ into
    the scatter); float32 input makes exactly one float32 d x d (the GEMM), float64 input none; compute() none."""
    K, d = 4, 48
    h, y, _, _ = _data(K=K, d=d, n=400, seed=9, dtype=dtype)
    tr = CollapseTracker(K, d)
    tr.update(h[:200], y[:200])  # warm: workspace allocated, every class seen
    big = _large_outputs(lambda: tr.update(h[200:], y[200:]), d * d)
    assert [(t, s) for _, t, s in big] == ([(torch.float32, (d, d))] if dtype == torch.float32 else [])
    assert _large_outputs(tr.compute, d * d) == []


@pytest.mark.parametrize("case", [(7, 12, 900, 1.0, 1.0), (10, 64, 5000, 1.0, 0.1), (10, 32, 6000, 100.0, 1e-2)])
def test_float32_batches_agree_to_float32_round_off(case):
    """The module docstring's figure: float32 batches (float32 centred products) against nc_metrics of the same
    numbers in float64 differ by at most ~1.1e-7 relative (measured over 6 seeds; here seed 5, the worst)."""
    K, d, n, scale, spread = case
    h, y, _, _ = _data(K=K, d=d, n=n, seed=5, scale=scale, spread=spread, dtype=torch.float32)
    tr = CollapseTracker(K, d)
    _stream(tr, h, y, [n // 3, n - 2 * (n // 3), n // 3])
    ref, got = nc_metrics(h.double(), y), tr.compute()
    for k in ("nc1", "nc1_quotient", "cdnv"):
        assert got[k] == pytest.approx(ref[k], rel=2e-7), k


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_tracker_with_tf32_allowed_through_the_new_api():
    """torch >= 2.9: TF32 allowed with torch.backends.cuda.matmul.fp32_precision = 'tf32' (the new API, after which
    the legacy flag cannot be read): the tracker still multiplies in IEEE float32 and restores the setting."""
    matmul = torch.backends.cuda.matmul
    if not hasattr(matmul, "fp32_precision"):
        pytest.skip("torch without the fp32_precision API")
    h, y, _, _ = _data(K=10, d=32, n=4000, seed=6, scale=100.0, spread=1e-2, dtype=torch.float32)
    old = matmul.fp32_precision
    matmul.fp32_precision = "tf32"
    try:
        gpu = CollapseTracker(10, 32, device="cuda")
        _stream(gpu, h.cuda(), y.cuda(), [1000] * 4)
        assert matmul.fp32_precision == "tf32"
    finally:
        matmul.fp32_precision = old
    assert gpu.compute()["nc1"] == pytest.approx(nc_metrics(h.double(), y)["nc1"], rel=1e-4)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_chunked_centring_equals_one_chunk_and_bounds_the_workspace(monkeypatch, dtype):
    """accumulate_ centres and multiplies at most CHUNK_ELEMENTS elements at a time: with chunks of 5 rows plus
    a remainder (37 elements at d = 7) every metric equals the one-chunk run, and the tracker's reused workspace
    holds one chunk, not one batch."""
    from equinets.collapse import metrics as M

    h, y, W, b = _data(K=5, d=7, n=600, seed=11, dtype=dtype)
    one = CollapseTracker(5, 7)
    _stream(one, h, y, [250, 350])
    monkeypatch.setattr(M, "CHUNK_ELEMENTS", 37)
    assert M.chunk_rows(7) == 5
    many = CollapseTracker(5, 7)
    _stream(many, h, y, [250, 350])
    assert many._workspace.numel() == 5 * 7
    _close(many.compute(), one.compute(), 1e-12 if dtype == torch.float64 else 1e-6)
    _close(many.compute(), nc_metrics(h.double(), y), 1e-10 if dtype == torch.float64 else 2e-7)
