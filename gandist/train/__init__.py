"""The training loop. Never imports ray: ``fit(cfg, ctx)`` runs under any launcher."""

from gandist.train.context import Context
from gandist.train.loop import fit

__all__ = ["Context", "fit"]
