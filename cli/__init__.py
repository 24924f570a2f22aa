"""The ``effx`` command-line interface (Click), a thin layer over the library."""
