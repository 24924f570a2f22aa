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


def os_error_message(exc: OSError) -> str:
    """One line for an operating-system error (disk full, read-only folder, a file where a folder
    should be, ...): what happened, to which path, and what to do."""
    import errno

    path = exc.filename if exc.filename is not None else "a file"
    if exc.filename2 is not None:
        path = f"{path} -> {exc.filename2}"
    code = exc.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        return (f"no space left on the disk while writing {path}; free some space (or use another --root), then "
                f"run the command again (an interrupted training run continues with -resume)")
    if code == errno.EROFS:
        return f"cannot write {path}: the file system is read-only; use another --root or remount it writable"
    if code in (errno.EACCES, errno.EPERM):
        return f"permission denied for {path}; make it (and its folder) writable, e.g. chmod u+w, or use another --root"
    if code == errno.ENOTDIR:
        return f"{path}: a part of this path is a file, not a folder; fix --root / EFFX_ROOT or the configured path"
    if code == errno.EISDIR:
        return f"{path} is a folder where a file was expected; fix the path"
    if code == errno.ENOENT:
        return f"{path} not found; check the path"
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{reason}: {path}; check the path, its permissions and the disk"
