"""The ``effx`` command-line interface (Click), a thin layer over the library."""
if __name__ == "cli":  # the source folder imported from the repo root
    raise ImportError("`import cli` loads effx's CLI source folder as a second copy; use `import effx_cli` "
                      "(install effx with `pip install -e .` from the repo root)")
