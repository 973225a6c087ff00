"""The Hydra config tree (YAML values only). This file makes configs/ importable as the package
gandist.configs, so the YAML ships inside the wheel and is read with importlib.resources."""
