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
        ("foo.bar=1", r"only model_kwargs\.\*, dataset_kwargs\.\*, head_kwargs\.\* and collapse\.\*"),
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


# one wrong-typed value per key kind: every key of DEFAULTS is type-checked
_WRONG = {"choice": "nope", "str": 7, "pos_int": 0, "nonneg_int": 1.5, "nonneg_float": "fast", "pos_float": 0, "bool": "yes",
          "mapping": [1], "irreps": "1x"}


@pytest.mark.parametrize("key", sorted(DEFAULTS))
def test_every_key_is_type_checked(key):
    from equinets.train.config import KEY_KINDS, validate_config

    with pytest.raises(ConfigError, match=f"'{key}'"):
        validate_config({key: _WRONG[KEY_KINDS[key]]})
    validate_config({key: DEFAULTS[key]})  # and its default passes


@pytest.mark.parametrize("text, value", [("1e-3", 1e-3), ("1E-3", 1e-3), ("+1e-3", 1e-3), (".5", 0.5), ("5e-4", 5e-4),
                                         ("1.0e-5", 1e-5), ("2", 2.0), ("1_000.5", 1000.5)])
def test_every_float_form_is_accepted_in_overrides_and_yaml_files(text, value, tmp_path):
    assert resolve_config(None, [f"lr={text}"])["lr"] == value
    p = tmp_path / "c.yaml"
    p.write_text(f"base: shapes-pointnet\nweight_decay: {text}\nmodel_kwargs: {{dropout: {text}}}\n")
    cfg = resolve_config(str(p))
    assert cfg["weight_decay"] == value and isinstance(cfg["weight_decay"], float)
    assert cfg["model_kwargs"]["dropout"] == value  # free-form dicts read floats too


def test_dataset_kwargs_are_checked_against_the_datasets_own_constructor():
    assert resolve_config("nbody-fa-gnn", ["dataset_kwargs.num_val=4"])["dataset_kwargs"]["num_val"] == 4
    with pytest.raises(ConfigError, match=r"unknown config key 'dataset_kwargs.num_val' for dataset 'shapes'"):
        resolve_config("shapes-pointnet", ["dataset_kwargs.num_val=4"])


def test_base_paths_resolve_relative_to_the_including_file(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "base.yaml").write_text("base: shapes-dgcnn\nepochs: 9\n")
    (tmp_path / "sub" / "top.yaml").write_text("base: base.yaml\nlr: 1e-2\n")
    monkeypatch.chdir(tmp_path)
    cfg = resolve_config("sub/top.yaml")
    assert (cfg["model"], cfg["epochs"], cfg["lr"]) == ("dgcnn", 9, 0.01)


def test_collapse_every_has_a_nested_spelling():
    """Issue #10 names the key ``collapse.every``: the mapping ``collapse: {every: N}`` and the override
    ``collapse.every=N`` are ``collapse_every: N``; an override wins over the file's other spelling; a file
    that spells it both ways must agree."""
    from equinets.train.config import ConfigError, resolve_config, validate_config

    assert validate_config({"collapse": {"every": 2}})["collapse_every"] == 2
    assert "collapse" not in validate_config({"collapse": {"every": 2}})
    assert resolve_config(None, ["collapse.every=3"])["collapse_every"] == 3
    assert resolve_config(None, ["collapse_every=4", "collapse.every=3"])["collapse_every"] == 3
    assert resolve_config(None, ["collapse.every=3", "collapse_every=4"])["collapse_every"] == 4
    assert validate_config({"collapse": {"every": 2}, "collapse_every": 2})["collapse_every"] == 2
    with pytest.raises(ConfigError, match=r"config keys collapse.every \(2\) and collapse_every \(4\) are the same"):
        validate_config({"collapse": {"every": 2}, "collapse_every": 4})
    with pytest.raises(ConfigError, match="'collapse_every' must be a non-negative integer, got -1"):
        resolve_config(None, ["collapse.every=-1"])
