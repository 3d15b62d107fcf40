import importlib.util
import os
from pathlib import Path

import pytest
import torch

KERNELS = Path(__file__).resolve().parents[1] / "kernels"

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(params=[torch.float32, torch.float64], ids=["f32", "f64"])
def dtype(request):
    return request.param


@pytest.fixture
def kernel_script():
    """``kernel_script(name)``: the module of ``kernels/<name>.py``, freshly executed (the scripts are not a package)."""

    def load(name: str):
        spec = importlib.util.spec_from_file_location(f"_kernels_{name}", KERNELS / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    return load
