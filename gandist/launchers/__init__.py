"""Launchers: the only package that imports ray. Each builds a Context and calls fit()."""

from gandist.launchers.common import RunSummary, launch

__all__ = ["RunSummary", "launch"]
