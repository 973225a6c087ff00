"""`gandist sample`: a grid of EMA G's samples (generate), predictions (segment) or translations,
or a folder of A images translated, from a run read back by ``inference/saved_run.py``."""

from __future__ import annotations

import io
from typing import Callable, Optional, Sequence

import fsspec
import numpy as np
import torch

from gandist.config import TaskName
from gandist.console import ProgressLine
from gandist.inference.grids import class_grid, colorize, grid, legend, segment_triplets, to_unit, translate_triplets
from gandist.inference.saved_run import Loaded
from gandist.seeding import derive_seed


def write_samples(run: Loaded, out: str, n: int = 64, data: Optional[str] = None, seed: int = 0) -> str:
    """Write what `gandist sample` draws for ``run``'s task to ``out`` and say what it was. generate:
    ``n`` samples from noise ``seed``; segment, translate: rows on ``data`` (default the run's
    data.url); translate with ``data`` a folder of A images: each one translated into the folder ``out``."""
    if run.cfg.task.name == TaskName.translate and data and not is_shard_set(data):
        if out.lower().endswith(".png"):
            raise ValueError(f"--data {data} is a folder of A images: every one is translated, so --out "
                             f"must be a folder, not {out}")
        with ProgressLine("translating images") as progress:
            count = translate_folder(run, data, out, progress=progress)
        return f"{count} B images translated by EMA G"
    if run.cfg.task.name == TaskName.translate:
        data = data or run.cfg.data.url
        image = sample_translate(run, n, data)
        what = f"A | true B | generated B rows of EMA G on {data}"
    elif run.cfg.task.name == TaskName.generate:
        image = sample_generate(run, n, seed)
        what = f"{n} samples of EMA G (seed {seed})"
    else:
        data = data or run.cfg.data.url
        image = sample_segment(run, n, data)
        what = f"predictions of EMA G on {data}"
    save_png(image, out)
    return what


def save_png(image: torch.Tensor, out: str) -> None:
    """A [3, H, W] image in [0, 1] to a PNG at a local path or fsspec URL."""
    from PIL import Image

    pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG")
    with fsspec.open(out, "wb") as f:
        f.write(buffer.getvalue())


@torch.no_grad()
def sample_generate(run: Loaded, n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(derive_seed(seed, "sample"))
    device = next(run.G_ema.parameters()).device
    if run.cfg.model.conditional:  # one row per class, about n images in all
        classes = run.classes or []
        z = torch.randn(max(1, round(n / len(classes))), run.cfg.model.z_dim, generator=gen)
        return class_grid(run.G_ema, z.to(device), classes).cpu()
    z = torch.randn(n, run.cfg.model.z_dim, generator=gen)
    images = torch.cat([run.G_ema(chunk.to(device)).cpu() for chunk in z.split(64)])
    return grid(to_unit(images), nrow=max(1, int(round(n ** 0.5))))


@torch.no_grad()
def sample_segment(run: Loaded, n: int, data: str) -> torch.Tensor:
    """input | target | prediction rows from a shard set (its held-out split when it has one),
    or input | prediction rows from a folder of images."""
    from gandist.data.manifest import Manifest
    from gandist.data.loader import epoch_loader

    device = next(run.G_ema.parameters()).device
    if is_shard_set(data):
        manifest = Manifest.load(data)
        split = run.cfg.data.eval_split if run.cfg.data.eval_split in manifest.splits else "train"
        count = min(n, manifest.samples(split))
        batch = next(iter(epoch_loader(data, split=split, batch_size=count, num_workers=0, shuffle=False,
                                       with_masks=manifest.has_masks)))
        pred = run.G_ema(batch["image"].to(device)).argmax(dim=1).cpu()
        if "mask" in batch:
            return segment_triplets(batch["image"], batch["mask"], pred, run.classes)
        images = batch["image"]
    else:
        images = read_folder(data, n, run.cfg.model.resolution)
        pred = run.G_ema(images.to(device)).argmax(dim=1).cpu()
    rows = torch.stack([to_unit(images), colorize(pred)], dim=1).flatten(0, 1)
    body = grid(rows, nrow=2)
    if run.classes:
        body = torch.cat([legend(run.classes, body.shape[2]), body], dim=1)
    return body


def is_shard_set(url: str) -> bool:
    fs, root = fsspec.core.url_to_fs(url)
    return fs.exists(f"{root.rstrip('/')}/manifest.json")


def folder_images(url: str) -> list[str]:
    """The images under a folder (any depth), sorted by path."""
    from gandist.data.sources import IMAGE_EXTENSIONS

    fs, root = fsspec.core.url_to_fs(url)
    if not fs.isdir(root):
        raise FileNotFoundError(f"--data {url} is neither a shard set (no manifest.json) nor a folder of images")
    paths = sorted(p for p in fs.find(root) if p.lower().endswith(IMAGE_EXTENSIONS))
    if not paths:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under --data {url}")
    return paths


def load_images(fs, paths: Sequence[str], size: int) -> torch.Tensor:
    """Images at ``paths`` as a [N, 3, size, size] batch in [-1, 1], resized as the shard writer does."""
    from PIL import Image

    from gandist.data.sources import fit_square

    tensors = []
    for path in paths:
        with fs.open(path, "rb") as f:
            image = fit_square(Image.open(io.BytesIO(f.read())).convert("RGB"), size)
        tensors.append(torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float() / 127.5 - 1)
    return torch.stack(tensors)


def read_folder(url: str, n: int, size: int) -> torch.Tensor:
    """The first ``n`` images (sorted by path) under a folder, resized as the shard writer does."""
    fs, _ = fsspec.core.url_to_fs(url)
    return load_images(fs, folder_images(url)[:n], size)


@torch.no_grad()
def sample_translate(run: Loaded, n: int, data: str) -> torch.Tensor:
    """A | true B | generated B rows from a shard set of pairs (its held-out split when it has one)."""
    from gandist.data.manifest import Manifest
    from gandist.data.loader import epoch_loader

    manifest = Manifest.load(data)
    if not manifest.target_mode:
        raise ValueError(f"--data {data} holds no image pairs (written for {', '.join(manifest.tasks)}); give a "
                         "shard set written with --pairs image, or a folder of A images")
    split = run.cfg.data.eval_split if run.cfg.data.eval_split in manifest.splits else "train"
    batch = next(iter(epoch_loader(data, split=split, batch_size=min(n, manifest.samples(split)), num_workers=0,
                                   shuffle=False, with_masks=False)))
    device = next(run.G_ema.parameters()).device
    return translate_triplets(batch["image"], batch["target"], run.G_ema(batch["image"].to(device)).cpu())


@torch.no_grad()
def translate_folder(run: Loaded, data: str, out: str, batch: int = 16,
                     progress: Optional[Callable[[int, int], None]] = None) -> int:
    """Every image under the folder ``data`` (A) translated by EMA G, written as
    ``out``/<its path under data, as .png> (B at model.resolution). Returns how many."""
    from PIL import Image

    fs, root = fsspec.core.url_to_fs(data)
    paths = folder_images(data)
    device = next(run.G_ema.parameters()).device
    out = out.rstrip("/")
    out_fs, out_root = fsspec.core.url_to_fs(out)
    for start in range(0, len(paths), batch):
        chunk = paths[start:start + batch]
        fake = run.G_ema(load_images(fs, chunk, run.cfg.model.resolution).to(device)).float().cpu()
        pixels = ((fake.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        for path, image in zip(chunk, pixels):
            relative = path[len(root.rstrip("/")) + 1:].rsplit(".", 1)[0] + ".png"
            target = f"{out_root}/{relative}"
            out_fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            buffer = io.BytesIO()
            Image.fromarray(np.ascontiguousarray(image[..., 0] if image.shape[-1] == 1 else image)).save(
                buffer, format="PNG")
            with out_fs.open(target, "wb") as f:
                f.write(buffer.getvalue())
        if progress:
            progress(start + len(chunk), len(paths))
    return len(paths)
