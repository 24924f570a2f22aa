import pytest
import yaml

from effx import ConfigError, load_registry
from effx.config import ExperimentConfig, ModelConfig, dump_yaml, load_experiment, structure, to_dict


@pytest.fixture(scope="module")
def reg():
    return load_registry()


@pytest.mark.parametrize("data,expected", [
    ({"model": {"d_model": "four"}}, "model.d_model: expected int, got 'four'"),
    ({"model": {"n_layer": 3}}, "model: extra fields found (n_layer); did you mean 'n_layers'?"),
    ({"model": {"attention": {"type": "sdpa", "impl": "flash"}}},
     "model.attention.impl: expected one of 'auto', 'fused', 'explicit', got 'flash'"),
    ({"model": {"attention": {"type": "sdpa", "imp": "fused"}}},
     "model.attention: extra fields found (imp); did you mean 'impl'?"),
    ({"model": {"positional": {"type": "rope", "base": "big"}}}, "model.positional.base: expected float, got 'big'"),
    ({"model": {"dropout": True}}, "model.dropout: expected float, got True"),
    ({"train": {"optimizer": {"betas": [0.9, "x"]}}}, "train.optimizer.betas[1]: expected float, got 'x'"),
    ({"seed": 1.5}, "seed: expected int, got 1.5"),
])
def test_errors_name_the_dotted_path(reg, data, expected):
    with pytest.raises(ConfigError) as exc:
        structure(data, ExperimentConfig, reg)
    assert str(exc.value) == expected


def test_unknown_component_lists_installed_and_close_match(reg):
    with pytest.raises(ConfigError) as exc:
        structure({"model": {"attention": {"type": "spda"}}}, ExperimentConfig, reg)
    msg = str(exc.value)
    assert msg.startswith("model.attention: unknown attention 'spda'. Installed: ")
    assert "sdpa" in msg and "Did you mean 'sdpa'?" in msg and "\n" not in msg


def test_unknown_component_not_loaded_names_package():
    reg = load_registry(autoload=False)  # only built-ins loaded; the plugin is installed, not loaded
    with pytest.raises(ConfigError) as exc:
        structure({"model": {"attention": {"type": "performer_favor"}}}, ExperimentConfig, reg)
    msg = str(exc.value)
    assert "provided by effx-attention-performer" in msg and "entry point 'performer'" in msg
    assert "installed but not loaded" in msg and "\n" not in msg
    with pytest.raises(ConfigError, match="Install the package that provides it"):
        structure({"model": {"attention": {"type": "no_such_attention"}}}, ExperimentConfig, reg)


def test_int_accepted_for_float_but_not_string_for_int(reg):
    cfg = structure({"model": {"dropout": 0}}, ExperimentConfig, reg)
    assert cfg.model.dropout == 0.0 and isinstance(cfg.model.dropout, float)


def test_round_trip_yaml_objects_yaml(reg, tmp_path):
    data = {"seed": 3, "model": {"d_model": 64, "attention": {"type": "sdpa", "impl": "explicit"},
                                 "positional": {"type": "relative", "num_buckets": 16}},
            "head": {"type": "classification", "num_classes": 4, "pooling": "mean"}}
    cfg = structure(data, ExperimentConfig, reg)
    text = dump_yaml(to_dict(cfg, reg))
    path = tmp_path / "c.yaml"
    path.write_text(text)
    again = load_experiment(path, reg)
    assert again == cfg
    assert dump_yaml(to_dict(again, reg)) == text
    full = yaml.safe_load(text)
    assert full["model"]["positional"] == {"type": "relative", "num_buckets": 16, "max_distance": 128, "bidirectional": True}
    assert full["head"]["pooling"] == "mean" and full["model"]["attention"]["impl"] == "explicit"


def test_components_receive_only_their_own_config(reg):
    import effx

    cfg = structure({"model": {"d_model": 32, "n_heads": 2, "d_ff": 64, "n_layers": 1, "vocab_size": 20}},
                    ExperimentConfig, reg)
    model = effx.build_model(cfg.model, cfg.head, reg)
    att = model.encoder.blocks[0].attn.attention
    assert type(att.config).__name__ == "SDPAConfig" and att.ctx.head_dim == 16
    assert not hasattr(att, "model") and type(model.encoder.positional.config).__name__ == "RelativeConfig"  # the declared default


def test_bad_yaml_is_one_line(tmp_path, reg):
    p = tmp_path / "bad.yaml"
    p.write_text("model:\n  d_model: [1, 2\n")
    with pytest.raises(ConfigError) as exc:
        load_experiment(p, reg)
    assert "invalid YAML" in str(exc.value) and "\n" not in str(exc.value)
    p.write_bytes(b"model:\n  d_model: \xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_experiment(p, reg)


def test_model_defaults_typed():
    assert ModelConfig().max_seq_len == 512 and ModelConfig().norm == "pre"


def test_scientific_notation_floats_in_yaml_files(reg, tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  optimizer:\n    lr: 3e-4\n    eps: 1e-8\n  epochs: 3\n")
    cfg = load_experiment(p, reg)
    assert cfg.train.optimizer.lr == 3e-4 and cfg.train.optimizer.eps == 1e-8 and cfg.train.epochs == 3
