"""Building a Config: Hydra composition of the YAML tree with command-line overrides, and the
rebuild of a plain dict (on a Ray worker, from a checkpoint). Both go through OmegaConf's
structured merge against the schema, so a value is type-checked wherever a config is made.

The YAML tree is ``configs/`` at the repository's top level, shipped inside the wheel as the
package ``gandist.configs``; ``$GANDIST_CONFIG_DIR`` overrides it.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.resources
import logging
import os
import typing
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Iterator, Sequence

from gandist.config.checks import ConfigError, validate
from gandist.config.choices import Choice
from gandist.config.schema import Config
from gandist.urls import absolute

log = logging.getLogger(__name__)

GROUPS = ("task", "model", "data", "trainer", "storage")

# Keys that moved, old -> new: configs saved in older checkpoints and exports still load, and an
# old override still works, with a note naming the new key.
RENAMED = {
    "trainer.eval_every": "eval.every",
    "trainer.eval_batches": "eval.batches",
    "dist.launcher": "launcher.name",
    "dist.ray_address": "launcher.ray_address",
    "dist.backend": "launcher.backend",
    "dist.socket_ifname": "launcher.socket_ifname",
}

_resources = ExitStack()  # keeps an extracted config tree alive (zip installs) until exit


def config_dir() -> Path:
    """The Hydra config tree: $GANDIST_CONFIG_DIR, else the package data gandist.configs (an
    installed wheel, or an editable install), else configs/ beside the imported package (a
    source tree on sys.path, e.g. the working directory `gandist submit` uploads to a Ray job:
    its gandist/ shadows the installed package, and its configs/ belong with it)."""
    env = os.environ.get("GANDIST_CONFIG_DIR")
    if env:
        return Path(env)
    try:
        package = importlib.resources.files("gandist.configs")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "configs"
    return _resources.enter_context(importlib.resources.as_file(package))


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))


def upgrade(data: dict) -> dict:
    """A config dict from an older gandist, with renamed keys moved to their new place."""
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    task = data.get("task")
    if isinstance(task, dict) and "l1_weight" in task and "seg_weight" not in task and task.get("name") != "translate":
        # Saved before task.seg_loss existed, when segment meant pix2pix's L1 + adversarial term and
        # task.l1_weight was its weight (now task.seg_weight; task.l1_weight is translate's).
        task.setdefault("seg_loss", "l1")
        task.setdefault("adv_weight", 1.0)
        task["seg_weight"] = task.pop("l1_weight")
    for old, new in RENAMED.items():
        (old_sec, old_key), (new_sec, new_key) = old.split("."), new.split(".")
        if isinstance(data.get(old_sec), dict) and old_key in data[old_sec]:
            data.setdefault(new_sec, {})[new_key] = data[old_sec].pop(old_key)
            if not data[old_sec] and old_sec not in {f.name for f in dataclasses.fields(Config)}:
                del data[old_sec]
    return data


def from_dict(data: dict) -> Config:
    """Rebuild a Config from a plain dict (a worker's config, a checkpoint's), type-checked
    against the schema; unknown keys and ill-typed values raise ConfigError naming them."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if not isinstance(data, dict):
        raise ConfigError(f"config must be a mapping, got {data!r}")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(Config), upgrade(data))
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        raise ConfigError(explain(e)) from None


def explain(error: BaseException) -> str:
    """An OmegaConf/Hydra error as one line that names the key, the value and the fix."""
    from omegaconf.errors import ConfigKeyError, ValidationError

    cause = error
    while cause.__cause__ is not None and not isinstance(cause, (ValidationError, ConfigKeyError)):
        cause = cause.__cause__
    key = getattr(cause, "full_key", None)
    if isinstance(cause, ConfigKeyError) and key:
        return f"unknown config key {key}; see gandist train --help for the valid keys"
    if isinstance(cause, ValidationError) and key:
        value = getattr(cause, "value", None)
        type_name = next((t for k, t, _, _ in iter_fields() if k == key), None)
        if type_name and type_name.startswith("one of "):
            choices = type_name[len("one of "):].split(" or null")[0].replace(" | ", ", ")
            return f"{key}={value!r} is not one of {choices}; set {key}=<one of those>"
        if type_name:
            return f"{key}={value!r} is not a valid {type_name}; set {key}=<{type_name}>"
    text = "\n".join(str(e) for e in (error, error.__cause__) if e is not None)
    return "\n".join(part.split("\nConfig search path")[0].split("\n    full_key")[0].strip()
                     for part in text.split("\n\n"))


def iter_fields(cls: type = Config, prefix: str = "") -> Iterator[tuple[str, str, Any, str]]:
    """(dotted key, type name, default, doc) for every leaf field, for `--help`."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(hint):
            yield from iter_fields(hint, key + ".")
            continue
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = typing.get_origin(hint) is typing.Union and len(args) == 1
        base = args[0] if optional else hint
        if isinstance(base, type) and issubclass(base, Choice):
            type_name = "one of " + " | ".join(c.value for c in base)
        elif typing.get_origin(hint) is typing.Union and not optional:  # e.g. int or str: the doc names the words
            type_name = " or ".join(a.__name__ for a in args)
        else:
            type_name = getattr(base, "__name__", str(base))
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default  # e.g. a list
        default = default.value if isinstance(default, Choice) else default
        yield key, type_name + (" or null" if optional else ""), default, f.metadata.get("help", "")


def rename_overrides(overrides: Sequence[str]) -> list[str]:
    """Old keys rewritten to their new names, each with a one-line note."""
    out = []
    for item in overrides:
        key, sep, value = item.partition("=")
        bare = key.lstrip("+~")
        if sep and bare in RENAMED:
            log.warning("note: config key %s is now %s (write %s=%s)", bare, RENAMED[bare], RENAMED[bare], value)
            item = f"{key[:len(key) - len(bare)]}{RENAMED[bare]}={value}"
        out.append(item)
    return out


def check_override_keys(overrides: Sequence[str], groups: Sequence[str] = GROUPS) -> None:
    """Name an unknown key (and the nearest valid ones) before Hydra's generic message."""
    keys = [k for k, *_ in iter_fields()]
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value, e.g. trainer.max_steps=200")
        key = item.split("=", 1)[0].lstrip("+~")
        if "." not in key:
            if key not in groups:
                raise ConfigError(f"unknown config group {key!r}; groups are {', '.join(groups)} "
                                  "(other settings are section.key=value, see gandist train --help)")
            continue
        if key not in keys:
            close = difflib.get_close_matches(key, keys, n=3)
            hint = f"; did you mean {' or '.join(close)}?" if close else "; see gandist train --help"
            raise ConfigError(f"unknown config key {key!r}{hint}")


def compose_config(overrides: Sequence[str]) -> Config:
    """Hydra composition of the config tree and the overrides, checked against the schema."""
    from hydra import compose, initialize_config_dir
    from hydra.core.config_store import ConfigStore
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    overrides = rename_overrides(overrides)
    check_override_keys(overrides)
    ConfigStore.instance().store(name="gandist_schema", node=Config)
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            composed = compose("config", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(explain(e)) from None
    return validate(from_dict(OmegaConf.to_container(composed, resolve=True)))


def compose_saved(saved: dict, overrides: Sequence[str], sections: Sequence[str] = ("data", "eval")) -> Config:
    """A checkpoint's config with ``section.key=value`` overrides of the given sections only
    (the networks are the checkpoint's), through the same renames, key check and schema."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    overrides = rename_overrides(overrides)
    for item in overrides:
        if "=" not in item or item.split("=", 1)[0].split(".")[0] not in sections:
            raise ConfigError(f"override {item!r}: only {' and '.join(s + '.KEY=VALUE' for s in sections)} "
                              "apply here (the model and task come from the checkpoint)")
    check_override_keys(overrides)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(Config), upgrade(saved), OmegaConf.from_dotlist(list(overrides)))
        return validate(OmegaConf.to_object(merged))
    except OmegaConfBaseException as e:
        raise ConfigError(explain(e)) from None


# The keys that hold a path or URL: absolutize makes the local relative ones absolute, and
# gandist submit passes those on to the cluster's job.
PATH_KEYS = ("data.url", "data.unlabeled_url", "run.storage", "eval.segmenter")


def path_values(cfg: Config) -> dict[str, str]:
    """The set PATH_KEYS and their values."""
    values = {key: getattr(getattr(cfg, key.split(".")[0]), key.split(".")[1]) for key in PATH_KEYS}
    return {key: value for key, value in values.items() if value}


def absolutize(cfg: Config) -> Config:
    """Local relative paths become absolute: workers do not share the driver's working dir."""
    for key, value in path_values(cfg).items():
        section, name = key.split(".")
        setattr(getattr(cfg, section), name, absolute(value))
    return cfg
