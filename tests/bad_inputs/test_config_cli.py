"""Bad configs and command lines: each is a ConfigError / one-line CLI error (exit 2) naming the key or argument,
raised before any dataset is read or generated (the dataset constructor is replaced by one that fails)."""

import re

import pytest
import yaml

from equinets.errors import UserError
from equinets.train.cli import main
from equinets.train.config import ConfigError, resolve_config

pytestmark = pytest.mark.usefixtures("no_dataset")

# (override, the text the error must contain: the key and what was expected)
BAD_OVERRIDES = [
    ("epoch=3", "unknown config key 'epoch' (did you mean 'epochs'?)"),
    ("name=123", "'name' must be a non-empty string, got 123"),
    ("name=a/b", "'name' names a run folder"),
    ("data_root=", "'data_root' must be a non-empty string, got None"),
    ("epochs=two", "'epochs' must be a positive integer, got 'two'"),
    ("epochs=1e3", "'epochs' must be a positive integer, got 1000.0"),
    ("batch_size=true", "'batch_size' must be a positive integer, got True"),
    ("seed=-1", "'seed' must be a non-negative integer, got -1"),
    ("lr=abc", "'lr' must be a non-negative number, got 'abc'"),
    ("lr=-1e-3", "'lr' must be a non-negative number, got -0.001"),
    ("lr=.nan", "'lr' must be a finite non-negative number, got nan"),
    ("lr=nan", "'lr' must be a finite non-negative number, got 'nan'"),
    ("weight_decay=.inf", "'weight_decay' must be a finite non-negative number, got inf"),
    ("weight_decay=inf", "'weight_decay' must be a finite non-negative number, got 'inf'"),
    ("model_kwargs.dropout=.nan", "'model_kwargs.dropout' must be finite"),
    ("use_features=maybe", "'use_features' must be true or false, got 'maybe'"),
    ("use_features=1", "'use_features' must be true or false, got 1"),
    ("task=detect", "'task' must be one of ['cls', 'seg', 'reg'], got 'detect'"),
    ("train_rotation=true", "'train_rotation' must be one of"),
    ("model_kwargs=5", "'model_kwargs' must be a mapping, got 5"),
    ("fa_irreps_in=2q", "'fa_irreps_in' must be e3nn irreps"),
    ("fa_irreps_out=3", "'fa_irreps_out' must be e3nn irreps"),
    ("model=pointnett", "config key 'model': unknown model 'pointnett' (did you mean 'pointnet'?)"),
    ("dataset=shapez", "config key 'dataset': unknown dataset 'shapez' (did you mean 'shapes'?)"),
    ("dataset_kwargs.num_trian=3", "unknown config key 'dataset_kwargs.num_trian' for dataset 'shapes' (did you mean "
                                   "'num_train'?"),
    ("dataset_kwargs.num_train=abc", "'dataset_kwargs.num_train' of dataset 'shapes' must be int, got 'abc'"),
    ("dataset_kwargs.num_points=64", "'dataset_kwargs.num_points' is set by the trainer; use the top-level key "
                                     "num_points"),
    ("model_kwargs.emb_dim=64", "unknown config key 'model_kwargs.emb_dim' for model 'pointnet' (did you mean "
                                "'emb_dims'?"),
    ("model_kwargs.in_channels=3", "'model_kwargs.in_channels' is set by the trainer"),
    ("test_at_best=true", "'test_at_best' reports the test split at the best validation epoch and needs eval_split: val"),
    ("min_lr=0.5", "'min_lr' (0.5) must not exceed 'lr' (0.001) under the cosine scheduler"),
    ("task=seg", "config key 'task' is 'seg' but dataset 'shapes' is a 'cls' dataset"),
    ("label_smoothing=1", "'label_smoothing' must be in [0, 1)"),
    ("scale_low=0", "'scale_low' must be a positive number, got 0"),
    ("noequals", "override 'noequals' must have the form key=value"),
    ("=3", "has no key before '='"),
    ("foo.bar=1", "dotted override 'foo.bar': only model_kwargs.*, dataset_kwargs.*, head_kwargs.* and collapse.* "
                  "take sub-keys"),
    ("cpu_allocator=jemalloc", "config key 'cpu_allocator' must be one of ['default', 'steady'], got 'jemalloc'"),
    ("collapse.evry=3", "unknown config key 'collapse.evry' (did you mean 'every'?); known: collapse.every"),
    ("collapse=3", "config key 'collapse' must be a mapping of every (e.g. collapse: {every: 5}), got int 3"),
    ("model_kwargs.=3", "dotted override 'model_kwargs.' must be model_kwargs.NAME with one sub-key"),
    ("model_kwargs.a.b=3", "dotted override 'model_kwargs.a.b' must be model_kwargs.NAME"),
    ("model_kwargs.channels=[64, 64", "override 'model_kwargs.channels': value '[64, 64' is not valid YAML"),
]


@pytest.mark.parametrize("override, expected", BAD_OVERRIDES, ids=[o for o, _ in BAD_OVERRIDES])
def test_bad_override_is_a_config_error_naming_the_key(cli, override, expected, tmp_path):
    with pytest.raises(ConfigError) as info:
        resolve_config("shapes-pointnet", [override])
    assert expected in str(info.value)
    assert isinstance(info.value, UserError)
    err = cli(["train", "--config", "shapes-pointnet", "--out", str(tmp_path / "r"), override])
    assert (expected if "=" in override else f"unrecognized arguments: {override}") in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("config, override, expected", [
    ("shapes-extent-reg", "scale_low=0.8", "'scale_low': random scaling changes every length, so under task 'reg'"),
    ("shapes-extent-reg", "scale_high=1.2", "'scale_high': random scaling changes every length"),
    ("nbody-fa-gnn", "shift=0.1", "'shift': a random translation moves pos but not the target data.y"),
])
def test_augmentations_that_would_desynchronise_a_regression_target_are_refused(cli, config, override, expected, tmp_path):
    with pytest.raises(ConfigError, match=re.escape(expected)):
        resolve_config(config, [override])
    assert expected in cli(["train", "--config", config, "--out", str(tmp_path / "r"), override])
    assert not (tmp_path / "r").exists()


def test_bad_values_in_a_yaml_file_are_named(tmp_path):
    p = tmp_path / "bad.yaml"
    for text, expected in [("batchsize: 4\n", "unknown config key 'batchsize' (did you mean 'batch_size'?)"),
                           ("lr: .nan\n", "'lr' must be a finite"),
                           ("lr: nan\n", "'lr' must be a finite non-negative number"),
                           ("epochs: [1, 2\n", "is not valid YAML"), ("- a\n", "must be a mapping"),
                           ("dataset_kwargs: {num_tset: 3}\n", "'dataset_kwargs.num_tset'"),
                           ("base: 3\n", "config key 'base' in"), ("1: 2\n", "keys must be strings, got 1")]:
        p.write_text(text)
        with pytest.raises(ConfigError, match=None) as info:
            resolve_config(str(p))
        assert expected in str(info.value), (text, str(info.value))


def test_a_base_cycle_is_an_error_naming_the_chain_not_a_recursion_error(cli, tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("base: b.yaml\nepochs: 2\n")  # relative to the including file's folder
    b.write_text(yaml.safe_dump({"base": str(a), "lr": 0.1}))
    with pytest.raises(ConfigError, match=r"config 'base' cycle: .*a\.yaml -> .*b\.yaml -> .*a\.yaml"):
        resolve_config(str(a))
    a.write_text(f"base: {a}\n")
    with pytest.raises(ConfigError, match=r"config 'base' cycle: .*a\.yaml -> .*a\.yaml"):
        resolve_config(str(a))
    assert "config 'base' cycle" in cli(["train", "--config", str(a)])


def test_unknown_config_name_and_missing_file(cli, tmp_path):
    assert "unknown config 'shapes-pointnt' (did you mean 'shapes-pointnet'?)" in \
        cli(["train", "--config", "shapes-pointnt"])
    assert f"config file '{tmp_path / 'no.yaml'}' does not exist" in \
        cli(["train", "--config", str(tmp_path / "no.yaml")])


@pytest.mark.parametrize("argv, expected", [
    (["train", "--frobnicate"], "unrecognized arguments: --frobnicate; config overrides are key=value"),
    (["train", "lr"], "unrecognized arguments: lr"),
    (["train", "--epochs", "0"], "argument --epochs: expected a positive integer, got '0'"),
    (["train", "--epochs", "abc"], "argument --epochs: expected a positive integer, got 'abc'"),
    (["train", "--resume"], "--resume needs --out DIR"),
    (["train", "--resume", "--out", "x", "lr=0.1"], "--resume continues with the checkpoint's config; only --epochs "
                                                    "may change it (got lr=0.1)"),
    (["train", "--resume", "--out", "x", "--config", "shapes-dgcnn"], "(got --config shapes-dgcnn)"),
])
def test_bad_train_arguments_are_one_line_errors_naming_the_argument(cli, argv, expected):
    assert expected in cli(argv)


@pytest.mark.parametrize("argv, cmd, expected", [
    (["eval"], "eval", "the following arguments are required: --checkpoint"),
    (["bench", "--models", "pointnett"], "bench", "argument --models: unknown model 'pointnett'"),
    (["bench", "--batch-size", "-1"], "bench", "argument --batch-size: expected a positive integer"),
    (["data", "shapes", "lr=1"], "data", "data takes no key=value overrides, got lr=1"),
    (["configs", "--all"], "configs", "unrecognized arguments: --all"),
])
def test_bad_arguments_of_other_commands(cli, argv, cmd, expected):
    assert expected in cli(argv, cmd)


def test_no_command_is_a_one_line_error(capsys):
    code = main([])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("equinets: error: the following arguments are required: command")
