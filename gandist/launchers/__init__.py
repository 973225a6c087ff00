"""Launchers: the only package that imports ray. Each builds a Context and calls fit().

``launch`` picks one; it lives here, above ``common`` (what they share), ``local`` and
``ray_launcher``, which it imports only when chosen (the local launcher never loads ray)."""

from gandist.config import Config, LauncherName
from gandist.launchers.common import RunSummary, already_finished


def launch(cfg: Config) -> RunSummary:
    """Train with the configured launcher and return where everything is. A run whose newest
    checkpoint has reached trainer.max_steps starts no workers: a job retried or submitted
    again after it finished returns in seconds (`gandist evaluate` scores it again)."""
    finished = already_finished(cfg)
    if finished is not None:
        return finished
    if cfg.launcher.name == LauncherName.ray:
        from gandist.launchers.ray_launcher import run_ray

        return run_ray(cfg)
    from gandist.launchers.local import run_local

    return run_local(cfg)


__all__ = ["RunSummary", "launch"]
