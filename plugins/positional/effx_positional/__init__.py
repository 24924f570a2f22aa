"""effx plugin: positional encodings ``sin``, ``learned``, ``relative``, ``rope``."""
import effx

from .learned import LearnedPositional
from .relative import RelativePositional
from .rope import RotaryPositional
from .sinusoidal import SinusoidalPositional


@effx.hookimpl
def effx_positional_types():
    return [SinusoidalPositional, LearnedPositional, RelativePositional, RotaryPositional]
