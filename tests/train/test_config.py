import pytest
import yaml

from equinets.train.config import DEFAULTS, ConfigError, list_configs, load_config, resolve_config


def test_every_builtin_config_resolves():
    names = list_configs()
    assert "shapes-pointnet" in names and "shapes-dgcnn" in names and "parts-pointnet" in names
    for n in names:
        cfg = resolve_config(n)
        assert set(cfg) == set(DEFAULTS)
        assert cfg["name"] == n


def test_no_config_means_quickstart_default():
    assert resolve_config(None) == resolve_config("shapes-fa-pointnet")


def test_yaml_file_overrides_builtin_and_cli_overrides_both(tmp_path):
    p = tmp_path / "my.yaml"
    p.write_text(yaml.safe_dump({"base": "shapes-dgcnn", "epochs": 7, "lr": 0.01}))
    cfg = resolve_config(str(p), ["lr=0.5", "model_kwargs.k=8", "train_rotation=z"])
    assert cfg["model"] == "dgcnn" and cfg["epochs"] == 7
    assert cfg["lr"] == 0.5 and cfg["model_kwargs"] == {"k": 8} and cfg["train_rotation"] == "z"


@pytest.mark.parametrize(
    "override, match",
    [
        ("epoch=3", r"unknown config key 'epoch' \(did you mean 'epochs'\?\)"),
        ("train_rotation=SO4", r"'train_rotation' must be one of \['I', 'z', 'SO3', 'O3'\], got 'SO4'"),
        ("epochs=0", r"'epochs' must be a positive integer, got 0"),
        ("lr=-1", r"'lr' must be a non-negative number, got -1"),
        ("optimizer=lbfgs", r"'optimizer' must be one of"),
        ("task=detect", r"'task' must be one of \['cls', 'seg', 'reg'\]"),
        ("use_features=maybe", r"'use_features' must be true or false"),
        ("foo.bar=1", r"only model_kwargs\.\* and dataset_kwargs\.\*"),
        ("noequals", r"must have the form key=value"),
    ],
)
def test_bad_key_or_value_is_named(override, match):
    with pytest.raises(ConfigError, match=match):
        resolve_config(None, [override])


def test_unknown_config_name_lists_the_known_ones():
    with pytest.raises(ConfigError, match="unknown config 'nope'.*shapes-pointnet"):
        load_config("nope")


def test_unknown_key_in_yaml_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("batchsize: 4\n")
    with pytest.raises(ConfigError, match="unknown config key 'batchsize' \\(did you mean 'batch_size'\\?\\)"):
        resolve_config(str(p))


def test_invalid_yaml_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("epochs: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        resolve_config(str(p))
    p.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        resolve_config(str(p))
