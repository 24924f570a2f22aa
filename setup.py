"""Package discovery for the renamed source folders (core/ -> effx, cli/ -> effx_cli); the rest of the
metadata lives in pyproject.toml."""
from setuptools import find_packages, setup


def discovered(package: str, folder: str) -> list[str]:
    return [package, *(f"{package}.{sub}" for sub in find_packages(folder))]


setup(packages=discovered("effx", "core") + discovered("effx_cli", "cli"))
