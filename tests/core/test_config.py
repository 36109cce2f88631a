import pytest

from elmokit.core.config import PretrainConfig, expand_path, load_config
from elmokit.core.errors import ConfigError
from elmokit.lm.pretrain import load_pretrain_config


def write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_yaml_and_overrides(tmp_path):
    p = write(tmp_path, "train:\n  lr: 0.5\n  epochs: 3\ndata:\n  train: [a.txt]\n")
    cfg = load_config(PretrainConfig, p, ["train.lr=0.25", "data.valid=b.txt,c.txt", "model.residual=false"])
    assert cfg.train.lr == 0.25 and cfg.train.epochs == 3
    assert cfg.data.train == ["a.txt"] and cfg.data.valid == ["b.txt", "c.txt"]
    assert cfg.model.residual is False


def test_int_coerces_to_float_but_not_back(tmp_path):
    assert load_config(PretrainConfig, write(tmp_path, "train:\n  lr: 1\n")).train.lr == 1.0
    with pytest.raises(ConfigError, match=r"train.epochs must be int, got float 1.5"):
        load_config(PretrainConfig, write(tmp_path, "train:\n  epochs: 1.5\n"))


@pytest.mark.parametrize(
    "text, msg",
    [
        ("train:\n  learning_rate: 0.1\n", r"unknown key train.learning_rate"),
        ("modle:\n  size: tiny\n", r"unknown key modle"),
        ("train:\n  batch_size: many\n", r"train.batch_size must be int, got str 'many'"),
        ("model:\n  residual: 3\n", r"model.residual must be bool"),
        ("train: [1, 2]\n", r"section train must be a mapping"),
        ("train:\n  lr: [0.1\n", r"line \d+ is not valid YAML"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path, text, msg):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError, match=msg) as e:
        load_config(PretrainConfig, p)
    assert str(p) in str(e.value)


def test_bad_override():
    with pytest.raises(ConfigError, match="not key=value"):
        load_config(PretrainConfig, None, ["train.lr"])
    with pytest.raises(ConfigError, match="unknown key train.lrr"):
        load_config(PretrainConfig, None, ["train.lrr=1"])


def test_env_vars(monkeypatch):
    monkeypatch.setenv("ELMOKIT_TEST_DIR", "/data")
    assert expand_path("${ELMOKIT_TEST_DIR}/x.txt") == "/data/x.txt"
    monkeypatch.delenv("ELMOKIT_TEST_DIR")
    with pytest.raises(ConfigError, match="ELMOKIT_TEST_DIR is not set"):
        expand_path("$ELMOKIT_TEST_DIR/x.txt")


def test_named_size_with_explicit_override():
    cfg = load_pretrain_config(None, ["model.size=small", "model.dropout=0.3", "data.vocab=v", "data.train=t"])
    assert (cfg.model.hidden_size, cfg.model.proj_size, cfg.model.num_layers) == (1024, 256, 2)
    assert cfg.model.dropout == 0.3
    with pytest.raises(ConfigError, match="model.size must be one of"):
        load_pretrain_config(None, ["model.size=huge", "data.vocab=v", "data.train=t"])


def test_recipe_configs_load(monkeypatch):
    from pathlib import Path

    from elmokit.core.config import load_config
    from elmokit.tasks.config import TaskConfig, check_task_config

    monkeypatch.setenv("ELMOKIT_DATA", "/nowhere")
    monkeypatch.setenv("ELMOKIT_RUNS", "/nowhere")
    root = Path(__file__).parents[2]
    lm = sorted(root.glob("recipes/lm/*.yaml")) + sorted(root.glob("recipes/chars/*.yaml"))
    tasks = sorted(root.glob("recipes/tasks/*.yaml"))
    assert lm and tasks
    for r in lm + tasks:
        text = r.read_text(encoding="utf-8")
        assert text.splitlines()[0].startswith("#"), f"{r} must start with the command that runs it"
        head = text.split("\nmodel:")[0].split("\ntask:")[0]
        assert "elmokit " in head or "bash recipes/" in head, f"{r}: its first lines must give the command"
    for r in lm:
        load_pretrain_config(str(r))
    for r in tasks:
        cfg = load_config(TaskConfig, str(r))
        check_task_config(cfg, str(r))
        assert cfg.model.char_dim > 0, f"{r}: the baseline must be the strongest: word embedding + character CNN"


@pytest.mark.parametrize(
    "overrides, msg",
    [
        (["model.cell_clip=-1"], "must be >= 0"),
        (["model.cell=gru", "model.proj_size=0", "model.proj_clip=3"], "need an LSTMP stack"),
        (["model.proj_size=16", "model.impl=torch", "model.cell_clip=3"], "nn.LSTM cannot clip"),
        (["model.cell=gru", "model.proj_size=16"], "proj_size needs model.cell=lstm"),
        (["model.impl=cuda"], "model.impl must be one of auto, fused, torch"),
        (["model.cell=lstmp"], "model.cell must be one of lstm, gru, rnn"),
    ],
)
def test_clipping_needs_the_fused_lstmp(overrides, msg):
    with pytest.raises(ConfigError, match=msg):
        load_pretrain_config(None, ["data.vocab=v", "data.train=t", *overrides])
    cfg = load_pretrain_config(
        None, ["data.vocab=v", "data.train=t", "model.size=small", "model.cell_clip=3", "model.proj_clip=3"]
    )
    assert (cfg.model.cell_clip, cfg.model.proj_clip, cfg.model.proj_size) == (3.0, 3.0, 256)
