"""Cross-rank reduction and the identical-parameters check, on a real 2-process gloo group."""

from __future__ import annotations


import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from gandist.collectives import check_identical_across_ranks
from gandist.train.stats import Stats


def _worker(rank: int, init_file: str, results: dict) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        stats = Stats(torch.device("cpu"))
        for value in (rank * 10.0, rank * 10.0 + 2):  # rank 0: 0, 2; rank 1: 10, 12
            stats.add({"loss": torch.tensor(value)})
        # Weighted: rank 0 measures 0.5 over 1 pixel, rank 1 1.0 over 3; nothing to measure anywhere.
        stats.add({"accuracy": (torch.tensor(0.5 + rank * 0.5), torch.tensor(1.0 + rank * 2)),
                   "empty": (torch.tensor(0.0), torch.tensor(0.0))})
        reduced = stats.reduce()

        torch.manual_seed(0)
        same = torch.nn.Linear(3, 3)
        check_identical_across_ranks(same)  # must pass
        different = torch.nn.Linear(3, 3)
        if rank == 1:
            with torch.no_grad():
                different.bias.add_(1e-3)
        try:
            check_identical_across_ranks(different)
            error = ""
        except RuntimeError as e:
            error = str(e)
        results[rank] = (reduced["loss"], error, reduced["accuracy"], "empty" in reduced)
    finally:
        dist.destroy_process_group()


def test_reduce_averages_over_steps_and_ranks_weighs_and_differences_are_caught(tmp_path):
    manager = mp.Manager()
    results = manager.dict()
    mp.spawn(_worker, args=(str(tmp_path / "init"), results), nprocs=2, join=True)
    assert results[0][0] == results[1][0] == 6.0  # mean of 0, 2, 10, 12
    assert results[0][2] == results[1][2] == (0.5 * 1 + 1.0 * 3) / 4  # weighted over ranks
    assert not results[0][3] and not results[1][3]  # a figure nobody could measure is left out
    assert results[0][1] == ""  # rank 0 is the reference
    assert "rank 1 holds a different Linear.bias than rank 0" in results[1][1]


def test_means_are_exactly_those_of_per_value_float64_tensor_sums():
    """Stats sums a step's tensors in one call and host figures on the host: the means are
    bitwise those of summing each value as a float64 tensor (host figures as float32 tensors),
    also when the keys change from step to step (a penalty every few steps)."""
    gen = torch.Generator().manual_seed(0)
    stats = Stats(torch.device("cpu"))
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}

    def reference(key: str, value: torch.Tensor) -> None:
        sums[key] = sums.get(key, torch.zeros((), dtype=torch.float64)) + value.to(torch.float64)
        counts[key] = counts.get(key, 0) + 1

    for step in range(50):
        values = {"loss/G": torch.randn((), generator=gen) * 1e3, "grad/G_norm": torch.rand((), generator=gen),
                  "loss/bf16": torch.randn((), generator=gen).to(torch.bfloat16)}
        if step % 4 == 0:
            values["loss/D_r1"] = torch.rand((), generator=gen) * 1e-3
        host = {"lr/G": 2e-4 * (1 - step / 50), "perf/data_wait_s": 1e-3 * (step % 7) + 1e-7}
        stats.add(values)
        stats.add_host(host)
        for key, value in values.items():
            reference(key, value)
        for key, value in host.items():
            reference(key, torch.tensor(value))
    means = stats.reduce()
    assert means == {k: s.item() / counts[k] for k, s in sums.items()}
    assert stats.reduce() == {}  # the window starts afresh
