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
        results[rank] = (reduced["loss"], error)
    finally:
        dist.destroy_process_group()


def test_reduce_averages_over_steps_and_ranks_and_differences_are_caught(tmp_path):
    manager = mp.Manager()
    results = manager.dict()
    mp.spawn(_worker, args=(str(tmp_path / "init"), results), nprocs=2, join=True)
    assert results[0][0] == results[1][0] == 6.0  # mean of 0, 2, 10, 12
    assert results[0][1] == ""  # rank 0 is the reference
    assert "rank 1 holds a different Linear.bias than rank 0" in results[1][1]
