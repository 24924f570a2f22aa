import types

import pytest

import effx
from effx import PluginError, load_registry
from effx import hookspecs
from effx.plugins import HOOK_OF_KIND


def _plugin(name, cls):
    mod = types.ModuleType(name)

    @effx.hookimpl
    def effx_attention_types():
        return [cls]

    mod.effx_attention_types = effx_attention_types
    return mod


class DupSDPA(effx.Attention):
    name = "sdpa"


def test_builtins_register_through_hooks():
    reg = load_registry(autoload=False)
    assert reg.names("head") == ["classification", "mlm"]
    assert reg.names("metric") == ["AUROC", "accuracy", "macro_F1", "weighted_F1"]
    assert reg.get("head", "mlm").dist == "effx"
    assert reg.names("attention") == []  # autoload off: no entry points


def test_entry_points_discovered():
    reg = load_registry()
    e = reg.get("attention", "sdpa")
    assert e.dist == "effx-attention-sdpa" and e.version == "0.1.0"
    assert set(reg.names("positional")) >= {"sin", "learned", "relative", "rope"}


def test_duplicate_name_names_both_distributions():
    with pytest.raises(PluginError) as exc:
        load_registry(plugins=[_plugin("dup_plugin", DupSDPA)])
    msg = str(exc.value)
    assert "attention 'sdpa' is provided twice" in msg
    assert "effx-attention-sdpa" in msg and "dup_plugin" in msg


def test_only_listed_plugins(monkeypatch):
    monkeypatch.setenv("EFFX_LOAD_PLUGINS", "positional")
    reg = load_registry()
    assert reg.names("attention") == [] and "rope" in reg.names("positional")


def test_disable_autoload_env(monkeypatch):
    monkeypatch.setenv("EFFX_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert load_registry().names("positional") == []


def test_trace_writes_hook_calls(capfd):
    load_registry(trace=True)
    err = capfd.readouterr().err
    assert "effx_attention_types" in err


def test_not_a_component_class_rejected():
    with pytest.raises(PluginError, match="expected a subclass of effx.Attention"):
        load_registry(plugins=[_plugin("bad", int)])


def test_every_hook_documented_and_exercised():
    specs = [n for n in dir(hookspecs) if n.startswith("effx_")]
    assert sorted(specs) == sorted(HOOK_OF_KIND.values())
    for n in specs:
        doc = getattr(hookspecs, n).__doc__
        assert doc and "Return" in doc


def test_broken_plugin_names_its_distribution_and_the_exception_type(monkeypatch):
    import effx.plugins as plugins

    def boom():
        raise ModuleNotFoundError("No module named 'torch_scatter'")

    ep = types.SimpleNamespace(name="broken", value="effx_broken:plugin", load=boom,
                               dist=types.SimpleNamespace(metadata={"Name": "effx-broken-attention"}, version="0.3"))
    monkeypatch.setattr(plugins, "_entry_points", lambda: [ep])
    with pytest.raises(PluginError) as exc:
        load_registry()
    msg = str(exc.value)
    assert "plugin 'broken' (effx_broken:plugin) of distribution effx-broken-attention failed to import" in msg
    assert "ModuleNotFoundError: No module named 'torch_scatter'" in msg
    assert "`pip uninstall effx-broken-attention`" in msg and "\n" not in msg
