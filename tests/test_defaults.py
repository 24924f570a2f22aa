"""The attention and positional encoding of a config that names none come from what the installed
plugins declare (``default_rank``), not from names written into core."""
import types

import pytest

import effx
from effx import ConfigError, PositionMode
from effx.config import AttentionSpec, ModelConfig
from effx.defaults import default_attention, default_positional


def _registry(*classes, autoload=True):
    mod = types.ModuleType("toy_defaults")
    att = [c for c in classes if issubclass(c, effx.Attention)]
    pos = [c for c in classes if issubclass(c, effx.PositionalEncoding)]

    @effx.hookimpl
    def effx_attention_types():
        return att

    @effx.hookimpl
    def effx_positional_types():
        return pos

    mod.effx_attention_types, mod.effx_positional_types = effx_attention_types, effx_positional_types
    return effx.load_registry(plugins=[mod], autoload=autoload)


class AdditiveOnly(effx.Attention):
    name = "toy_additive_only"
    capabilities = effx.AttentionCapabilities(positional=frozenset({PositionMode.ADDITIVE}))


class PreferredToy(effx.Attention):
    name = "toy_preferred"
    default_rank = -1


class ApproximateBias(effx.Attention):
    name = "toy_approximate_bias"
    capabilities = effx.AttentionCapabilities(positional=frozenset(PositionMode))
    rel_bias_tolerance = 0.3


def test_in_repo_plugins_declare_the_defaults():
    cfg = ModelConfig()
    assert (cfg.attention.type, cfg.positional.type) == ("sdpa", "relative")
    # the same encoding for every attention that supports it: changing the attention changes nothing else
    assert ModelConfig(attention=AttentionSpec("performer_favor")).positional.type == "relative"


def test_yaml_without_components_gets_the_declared_defaults():
    from effx.config import structure

    cfg = structure({"d_model": 32, "n_heads": 2}, ModelConfig, root="model")
    assert (cfg.attention.type, cfg.positional.type) == ("sdpa", "relative")
    cfg = structure({"attention": {"type": "reformer_lsh"}}, ModelConfig, root="model")
    assert cfg.positional.type == "relative"


def test_positional_default_follows_what_the_attention_supports():
    reg = _registry(AdditiveOnly, ApproximateBias)
    assert default_positional("toy_additive_only", reg) == "sin"  # relative is ranked first but unsupported
    assert default_positional("toy_approximate_bias", reg) == "relative"
    assert default_positional("sdpa", reg) == "relative"


def test_a_third_party_plugin_can_declare_itself_the_default():
    assert default_attention(_registry(PreferredToy)) == "toy_preferred"
    assert default_attention(_registry(AdditiveOnly)) == "sdpa"  # declares nothing: never the default


def test_no_declared_default_is_a_one_line_error_with_the_fix():
    reg = _registry(AdditiveOnly, autoload=False)
    with pytest.raises(ConfigError) as exc:
        default_attention(reg)
    msg = str(exc.value)
    assert "\n" not in msg and "set model.attention.type" in msg and "toy_additive_only" in msg
