"""All mutable training state in one place; a checkpoint is this state, complete."""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import torch
from torch import nn

from gandist.config import Config
from gandist.models.factory import build_networks
from gandist.train.streams import Cursor


@dataclass
class Healing:
    """What the collapse watch (``train.collapse``) has seen and what rollbacks changed; travels
    in each checkpoint, so a resumed run decides exactly as the uninterrupted one would."""

    rollbacks: int = 0
    lr_scale: float = 1.0  # multiplies the scheduled learning rates
    gamma_scale: float = 1.0  # multiplies the scheduled gradient penalty weight
    gap_since: Optional[int] = None  # the last log step before the gap reached its limit (None: it has not)
    rt_since: Optional[int] = None
    gap_logs: int = 0  # logs in a row at the limit
    rt_logs: int = 0
    best: Optional[float] = None  # the best evaluation so far, as score_key (higher is better)
    best_step: Optional[int] = None
    worse_evals: int = 0  # evaluations in a row worse than the best by the margin
    last_log: int = 0
    warned: bool = False  # the current episode's warning (max_rollbacks spent) was given
    events: list[dict[str, Any]] = field(default_factory=list)  # each rollback: at, to, reason

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Optional[dict[str, Any]]) -> "Healing":
        return cls(**d) if d else cls()


@dataclass
class TrainState:
    G: nn.Module
    D: nn.Module
    G_ema: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    scaler_g: torch.amp.GradScaler  # fp16: one dynamic loss scale per network; disabled otherwise
    scaler_d: torch.amp.GradScaler
    step: int = 0
    images_seen: int = 0
    data: Cursor = field(default_factory=Cursor)  # the (labeled) training stream's place
    unlabeled: Cursor = field(default_factory=Cursor)  # semi-supervised segmentation's second stream
    ada: dict[str, Any] = field(default_factory=dict)  # ADA's p, r_t and open window (empty without ADA)
    healing: Healing = field(default_factory=Healing)  # the collapse watch and its rollbacks

    @classmethod
    def fresh(cls, cfg: Config, num_classes: int, device: torch.device) -> "TrainState":
        G, D = build_networks(cfg, num_classes)
        G, D = G.to(device), D.to(device)
        G_ema = copy.deepcopy(G).eval().requires_grad_(False)
        t = cfg.trainer
        betas = (t.beta1, t.beta2)
        d_betas = (t.beta1 if t.d_beta1 is None else t.d_beta1, t.beta2 if t.d_beta2 is None else t.d_beta2)
        return cls(
            G=G,
            D=D,
            G_ema=G_ema,
            opt_g=torch.optim.Adam(G.parameters(), lr=t.lr_g, betas=betas, fused=t.fused_adam),
            opt_d=torch.optim.Adam(D.parameters(), lr=t.lr_d, betas=d_betas, fused=t.fused_adam),
            scaler_g=torch.amp.GradScaler(device.type, enabled=t.amp == "fp16"),
            scaler_d=torch.amp.GradScaler(device.type, enabled=t.amp == "fp16"),
        )

    @property
    def epoch(self) -> int:
        return self.data.epoch

    def state_dict(self) -> dict[str, Any]:
        return {
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "G_ema": self.G_ema.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "scaler_g": self.scaler_g.state_dict(),
            "scaler_d": self.scaler_d.state_dict(),
            "step": self.step,
            "images_seen": self.images_seen,
            # The labeled stream's cursor under the keys checkpoints have always used.
            "epoch": self.data.epoch,
            "batch_in_epoch": self.data.batch_in_epoch,
            "data_layout": dict(self.data.layout),
            "data_history": list(self.data.history),
            "unlabeled_cursor": self.unlabeled.to_dict(),
            "ada": dict(self.ada),
            "healing": self.healing.to_dict(),
        }

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        self.load_networks(sd)
        self.step = sd["step"]
        self.images_seen = sd["images_seen"]
        self.data = Cursor(sd["epoch"], sd["batch_in_epoch"], dict(sd.get("data_layout", {})),
                           list(sd.get("data_history", [])))
        # Checkpoints from before the unlabeled stream existed start it at its beginning.
        self.unlabeled = Cursor.from_dict(sd["unlabeled_cursor"]) if "unlabeled_cursor" in sd else Cursor()
        self.healing = Healing.from_dict(sd.get("healing"))

    def load_networks(self, sd: dict[str, Any]) -> None:
        """What a collapse rollback takes back from a checkpoint: the networks, their optimizers
        and loss scalers, ADA; not the step, the data's place or the healing record."""
        self.G.load_state_dict(sd["G"])
        self.D.load_state_dict(sd["D"])
        self.G_ema.load_state_dict(sd["G_ema"])
        for opt, key in ((self.opt_g, "opt_g"), (self.opt_d, "opt_d")):
            opt.load_state_dict(sd[key])
            for group in opt.param_groups:  # the implementation is this run's choice, not the checkpoint's
                group["fused"], group["foreach"] = opt.defaults["fused"], opt.defaults["foreach"]
        # A run may switch fp16 on or off on resume: a scaler starts fresh when the saved one was off.
        for name, scaler in (("scaler_g", self.scaler_g), ("scaler_d", self.scaler_d)):
            if sd.get(name) and scaler.is_enabled():
                scaler.load_state_dict(sd[name])
        self.ada = dict(sd.get("ada") or {})
