"""Bad inputs to the rotation protocols: each is refused with an error that names the argument."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch, Data

from equinets.data import NBody, ShapesDataset
from equinets.data.transforms import RandomRotate, parse_vector_keys, random_rotation_matrices


def _nbody_item(n=5):
    return Data(pos=torch.randn(n, 3), vel=torch.randn(n, 3), x=torch.randn(n, 4), y=torch.randn(n, 3),
                charges=torch.ones(n, 1), label=torch.zeros(1, dtype=torch.long))


@pytest.mark.parametrize("protocol", ["SO2", "so3", "", None, 3])
def test_unknown_protocol(protocol):
    with pytest.raises(ValueError, match=r"protocol must be one of \('I', 'z', 'SO3', 'O3'\)"):
        RandomRotate(protocol)
    with pytest.raises(ValueError, match="protocol"):
        random_rotation_matrices(2, protocol)


@pytest.mark.parametrize("old", ["x", "y", "up"])
def test_literal_axis_protocols_point_to_up_axis(old):
    with pytest.raises(ValueError, match="protocol.*pass protocol='z' and up_axis"):
        RandomRotate(old)


@pytest.mark.parametrize("up_axis", ["w", "Y", "", None, 1, "-z"])
def test_bad_up_axis(up_axis):
    with pytest.raises(ValueError, match="up_axis must be 'x', 'y' or 'z'"):
        RandomRotate("z", up_axis=up_axis)
    with pytest.raises(ValueError, match="up_axis"):
        random_rotation_matrices(2, "z", up_axis)


def test_bad_number_of_matrices():
    with pytest.raises(ValueError, match="num must be an integer >= 0"):
        random_rotation_matrices(-1)
    with pytest.raises(TypeError, match="num must be an integer"):
        random_rotation_matrices(2.5)


def test_vector_keys_as_one_string():
    with pytest.raises(TypeError, match=r"vector_keys must be a list or tuple.*write \('pos',\)"):
        RandomRotate("SO3", vector_keys="pos")


@pytest.mark.parametrize("entry", [3, ("x",), ("x", slice(0, 3), 1), (slice(0, 3), "x"), ("x", (0, 3))])
def test_malformed_vector_key_entries(entry):
    with pytest.raises(TypeError, match="vector_keys entry"):
        RandomRotate("SO3", vector_keys=["pos", entry])


@pytest.mark.parametrize(
    "cols,why",
    [(slice(0, 2), "exactly 3 columns, got 2"), (slice(1, 5), "exactly 3 columns, got 4"),
     (slice(-3, None), "slice\\(a, a \\+ 3\\)"), (slice(0, 6, 2), "step 1"), (slice(0, None), "slice\\(a, a \\+ 3\\)"),
     (slice(0.0, 3.0), "integers")],
)
def test_bad_column_slices(cols, why):
    with pytest.raises(ValueError, match=f"vector_keys entry .*{why}"):
        parse_vector_keys([("x", cols)])


def test_empty_key_and_keys_declared_twice():
    with pytest.raises(ValueError, match="vector_keys entry '': the key is empty"):
        RandomRotate("SO3", vector_keys=[""])
    with pytest.raises(ValueError, match="vector_keys: key 'x' is declared more than once"):
        RandomRotate("SO3", vector_keys=["x", ("x", slice(0, 3))])
    with pytest.raises(ValueError, match="vector_keys: key 'x' is declared more than once"):
        RandomRotate("SO3", vector_keys=[("x", slice(0, 3)), ("x", slice(2, 5))])


def test_declared_key_missing_from_the_item():
    t = RandomRotate("SO3", vector_keys=("pos", "normal"))
    with pytest.raises(ValueError, match=r"vector_keys: the item has no tensor 'normal'.*'pos'"):
        t(Data(pos=torch.randn(4, 3)))
    with pytest.raises(ValueError, match="vector_keys: the item has no tensor 'normal'"):
        RandomRotate("I", vector_keys=("pos", "normal"))(Data(pos=torch.randn(4, 3)))  # checked under I too


def test_declared_key_of_the_wrong_shape_or_dtype():
    d = _nbody_item()
    with pytest.raises(ValueError, match=r"vector_keys: 'x' must have 3 columns.*\(5, 4\).*slice"):
        RandomRotate("SO3", vector_keys=("pos", "x"))(d)
    with pytest.raises(ValueError, match=r"vector_keys: label must be a floating-point tensor"):
        RandomRotate("SO3", vector_keys=("pos", "label"))(d)
    d.w = torch.randn(5, 2, 3)
    with pytest.raises(ValueError, match=r"vector_keys: w must be a 2-D \(rows, columns\) tensor, got shape \(5, 2, 3\)"):
        RandomRotate("SO3", vector_keys=("pos", "w"))(d)


def test_default_declaration_refuses_an_x_that_is_not_normals():
    # n-body items carry x = [vel, charge]: the default (pos + normals x) must not rotate pos alone silently
    with pytest.raises(ValueError, match=r"vector_keys: 'x' must have 3 columns.*default vector_keys=None.*for_dataset"):
        RandomRotate("SO3")(_nbody_item())


def test_declaration_without_pos():
    with pytest.raises(ValueError, match=r"vector_keys must declare 'pos'.*\('vel', 'y'\)"):
        RandomRotate("SO3", vector_keys=("vel", "y"))  # the old "in addition to pos" reading
    with pytest.raises(ValueError, match="vector_keys must declare 'pos'"):
        RandomRotate("SO3", vector_keys=())


def test_column_slice_out_of_range():
    with pytest.raises(ValueError, match=r"vector_keys: column slice x\[:, 3:6\] is out of range for 'x' of shape"):
        RandomRotate("SO3", vector_keys=("pos", ("x", slice(3, 6))))(_nbody_item())


def test_rows_that_belong_to_no_cloud():
    b = Batch(pos=torch.randn(6, 3), v=torch.randn(4, 3), batch=torch.tensor([0, 0, 0, 1, 1, 2]))
    with pytest.raises(ValueError, match="vector_keys: 'v' has 4 rows, neither one per point .6. nor one per cloud .3."):
        RandomRotate("SO3", vector_keys=("pos", "v"))(b)


def test_dataset_without_a_declaration(tmp_path):
    class Plain(torch.utils.data.Dataset):
        up_axis = "z"

    with pytest.raises(ValueError, match="dataset Plain declares no vector_keys"):
        RandomRotate.for_dataset("SO3", Plain())

    class NoUp(torch.utils.data.Dataset):
        vector_keys = ("pos",)

    with pytest.raises(ValueError, match="dataset NoUp declares no up_axis"):
        RandomRotate.for_dataset("z", NoUp())
    assert RandomRotate.for_dataset("z", NoUp(), up_axis="y").up_axis == "y"  # an explicit axis suffices

    class Sideways(NBody):
        up_axis = "sideways"

    with pytest.raises(ValueError, match="Sideways.up_axis must be 'x', 'y' or 'z', got 'sideways'"):
        RandomRotate.for_dataset("z", Sideways)
    with pytest.raises(ValueError, match="up_axis must be 'x', 'y' or 'z', got 'q'"):
        RandomRotate.for_dataset("z", NBody, up_axis="q")
    with pytest.raises(TypeError, match="dataset ShapesDataset's vector_keys depend on its files .*pass a dataset instance"):
        RandomRotate.for_dataset("z", ShapesDataset)  # the class: its keys depend on the files (normals or not)


def test_trainer_rejects_a_dataset_declaring_a_key_its_items_lack(tmp_path):
    from equinets.train.config import resolve_config
    from equinets.train.loop import _transforms

    ds = NBody(tmp_path, "val", num_train=1, num_val=2, num_test=1, frame_in=0, frame_out=1)
    ds.vector_keys = ("pos", "acc")
    tf = _transforms(resolve_config(None, ["test_rotation=SO3"]), ds, train=False)
    with pytest.raises(ValueError, match="vector_keys: the item has no tensor 'acc'"):
        tf(ds[0])
