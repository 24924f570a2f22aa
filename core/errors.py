"""User-facing errors.

Every mistake a user can make (typo in YAML, unknown component, too-long input, corrupt
checkpoint, ...) raises an :class:`EffxError` whose message is ONE line that names the problem and
the fix. The CLI turns it into ``Error: <message>`` with no traceback.
"""
from __future__ import annotations


class EffxError(Exception):
    """A user mistake or an environment problem with a one-line, actionable message."""


class ConfigError(EffxError):
    """Invalid configuration: unknown key, wrong type, unknown component name."""


class PluginError(EffxError):
    """A plugin failed to load, or two distributions provide the same component name."""


class CapabilityError(ConfigError):
    """Two components that cannot work together were combined (checked when the model is built)."""


class SequenceTooLongError(EffxError):
    """An input is longer than ``model.max_seq_len``."""
