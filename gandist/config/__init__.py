"""gandist's configuration: the schema (``schema``), the checks types cannot express
(``checks``) and how a Config is built from YAML, overrides or a plain dict (``compose``).

Only the CLI, this package and ``launchers/`` touch Hydra objects; workers receive
``cfg.to_dict()`` and rebuild it with ``from_dict``.
"""

from gandist.config.checks import ARCHS_FOR_TASK, ConfigError, pixel_d_stride, validate
from gandist.config.compose import (
    GROUPS,
    PATH_KEYS,
    RENAMED,
    absolutize,
    compose_config,
    compose_saved,
    config_dir,
    from_dict,
    path_values,
    group_options,
    iter_fields,
    upgrade,
)
from gandist.config.choices import (
    AUGMENT_OPS,
    AmpMode,
    Arch,
    Backend,
    DArch,
    DInput,
    EmaRamp,
    EvalGMode,
    Features,
    Flips,
    GDraw,
    JUDGED_SOURCES,
    LauncherName,
    LossName,
    LrSchedule,
    MapRange,
    PenaltyKind,
    SegLoss,
    Semi,
    TaskName,
)
from gandist.config.schema import (
    Config,
    DataConfig,
    EvalConfig,
    LauncherConfig,
    ModelConfig,
    TaskConfig,
    TrainerConfig,
)

__all__ = [
    "ARCHS_FOR_TASK", "AUGMENT_OPS", "AmpMode", "Arch", "Backend", "Config", "ConfigError", "DArch", "DInput", "DataConfig",
    "EmaRamp", "EvalConfig", "EvalGMode", "Features", "Flips", "GDraw", "GROUPS", "JUDGED_SOURCES", "LauncherConfig", "LauncherName", "LossName", "LrSchedule",
    "MapRange", "ModelConfig", "PenaltyKind", "PATH_KEYS", "RENAMED", "SegLoss", "Semi", "TaskConfig", "TaskName", "TrainerConfig", "absolutize", "compose_config", "path_values",
    "compose_saved", "config_dir", "from_dict", "group_options", "iter_fields", "pixel_d_stride", "upgrade", "validate",
]
