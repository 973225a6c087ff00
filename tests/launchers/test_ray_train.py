"""Real 2-worker Ray Train runs: checkpoints and TensorBoard events in the S3 API server, resume,
export, recovery from a killed worker or driver, a changed worker count, no leaked secret."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

import fsspec

import pytest
import torch

from helpers import (MARKER_SECRET, bucket_objects_containing, files_containing, processes_mentioning, small_overrides,
                     stop_child, stop_processes)
from gandist.cli import main
from gandist.config import absolutize, compose_config
from gandist.ckpt import read_meta
from gandist.inference.export import load_generator
from gandist.launchers.common import log_dir
from gandist.ledger import load_ledger

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_cluster(ray_head):
    """The session's Ray head (conftest's ray_head: 2 CPUs, fewer than the elastic test asks
    for), joined by this process as a driver, as `gandist train` joins a cluster named by
    launcher.ray_address: one cluster start for the session instead of one more here. Its
    processes hold the S3 server's credentials in their environment (the cluster's own; nothing
    gives the workers any). Yields the head's temp dir, whose logs are searched for the secret."""
    import ray

    ray.init(address=ray_head.gcs_address)
    try:
        yield ray_head.temp
    finally:
        ray.shutdown()


class TorchrunBeside:
    """`gandist train ARGS` in 2 torchrun processes, started now and waited for by check(): a
    reference run that goes on while the test's Ray run does, sharing nothing with it but the
    CPUs (its own run directory, rendezvous and ports), so it fills what the Ray run leaves idle
    (one Python starting at a time: a driver, a controller). Its output goes to a file, not a
    pipe nobody reads meanwhile."""

    def __init__(self, args: list[str], log_path) -> None:
        self.log_path = log_path
        self.log = open(log_path, "w+")
        self.proc = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone",
                                      "--nproc_per_node", "2", "-m", "gandist.cli", "train", *args,
                                      "launcher.name=torchrun"], stdout=self.log, stderr=subprocess.STDOUT, text=True)

    def check(self, timeout: float = 300) -> None:
        """Wait for the run to end (stopping it after ``timeout``); assert it succeeded."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        self.stop()
        assert self.proc.returncode == 0, self.log_path.read_text()[-3000:]

    def stop(self) -> None:
        """End it if it still runs; idempotent."""
        stop_child(self.proc)
        self.log.close()


@pytest.fixture
def torchrun_beside(tmp_path):
    """Starts a TorchrunBeside run (its output in tmp_path/torchrun-N.log); whatever a failed
    test left running is stopped afterwards."""
    started: list[TorchrunBeside] = []

    def start(args: list[str]) -> TorchrunBeside:
        started.append(TorchrunBeside(args, tmp_path / f"torchrun-{len(started)}.log"))
        return started[-1]

    yield start
    for run in started:
        run.stop()


def scalar_events(log_dir: str) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(log_dir, size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}, acc


def test_two_workers_in_the_s3_server_recover_a_killed_worker_bitwise_resume_from_the_bucket_and_export(
        ray_cluster, s3_shapes_url, bucket, tmp_path, capfd, torchrun_beside):
    """Both workers stream their shards from the S3 API server and Ray Train writes the
    checkpoints there (uploaded in the background). faults.kill_rank=1 at step 5: Ray restarts
    the workers, they replay steps 4-5 from the step-3 checkpoint in the bucket, and the weights
    end exactly as without the fault (2 torchrun processes, half the time of a second Ray Train
    run: the numbers do not depend on the launcher, see test_multinode; they run while the
    checks after the drill do). The run learns from unlabeled images too (half the masks, Hung
    et al.'s recipe), so both streams' cursors, 2 batches per epoch each, resume mid-epoch.
    Then the same run name again with rank 0's local logs gone resumes from the bucket; export
    reads it there; no secret leaks anywhere."""
    from gandist.ckpt import find_latest_checkpoint, load_checkpoint, write_checkpoint
    from gandist.launchers.ray_launcher import run_ray

    storage = f"{bucket}/runs"
    s3 = fsspec.filesystem("s3")

    def overrides(storage: str, name: str, *extra: str) -> list[str]:
        return small_overrides(s3_shapes_url, storage, name) + [
            "trainer.num_workers=2", "trainer.max_steps=6", "trainer.ckpt_every=3", "data.label_fraction=0.5",
            "task.semi=adversarial", "task.semi_start=0", "model.d_arch=pixel", *extra]

    cfg = absolutize(compose_config(overrides(storage, "s3run", "faults.kill_rank=1", "faults.at_step=5",
                                              "trainer.max_failures=1", "trainer.async_checkpoint=true")))
    began = time.time()
    drilled = run_ray(cfg)
    ended = time.time()
    # The uninterrupted reference runs beside what follows (see TorchrunBeside), not beside the
    # drill: the drill's resume point depends on its step-3 upload ending within two steps.
    torchrun = torchrun_beside(overrides(str(tmp_path), "clean"))
    assert drilled.step == 6 and 0.0 <= drilled.metrics["eval/miou"] <= 1.0
    assert drilled.checkpoint == f"{storage}/s3run/checkpoint_00000006"
    assert s3.exists(f"{storage}/s3run/fault_drill_done.json")
    assert read_meta(drilled.checkpoint)["resumed_from"] == 3  # replayed from the step-3 checkpoint
    b = load_checkpoint(drilled.checkpoint)["state"]  # read now: the checkpoint is marked below
    out = capfd.readouterr()
    logs = out.out + out.err
    assert "Checkpoint at step 3: training waited" in logs and "upload continues in the background" in logs
    assert "Resumed from checkpoint at step 3" in logs

    # The goodput ledger in the bucket: the killed attempt, its cause and the replay, every second
    # from the launch to the end charged once; `gandist report` reads it there.
    ledger = load_ledger(f"{storage}/s3run")
    killed, recovered = ledger.attempts
    assert killed.cause == "fault drill: rank 1 killed after step 5" and recovered.cause == "finished"
    assert recovered.resumed_from == 3 and ledger.steps_lost(1) == 2 and ledger.parts["replayed"] > 0
    assert ledger.parts["recovery"] > 0 and ledger.high_water == 6
    assert began <= killed.started and recovered.ended <= ended
    assert ledger.total_s == pytest.approx(recovered.ended - killed.started, abs=0.2)
    assert ledger.total_s == pytest.approx(ended - began, abs=5.0)
    assert main(["report", f"{storage}/s3run"]) == 0
    report = capfd.readouterr().out
    assert "2 attempt(s)" in report and "fault drill: rank 1 killed after step 5" in report

    s3.invalidate_cache()
    assert sorted(p.rsplit("/", 1)[-1] for p in s3.glob(f"{storage}/s3run/checkpoint_0*")) == [
        "checkpoint_00000003", "checkpoint_00000006"]
    latest = find_latest_checkpoint(f"{storage}/s3run")
    assert latest == f"{storage}/s3run/checkpoint_00000006" and read_meta(latest)["step"] == 6
    s3.get(f"{storage}/s3run/tensorboard", str(tmp_path / "tb1"), recursive=True)
    scalars, acc = scalar_events(str(tmp_path / "tb1"))
    for tag in ("loss/D", "loss/G", "loss/G_seg", "loss/G_semi", "semi/selected_fraction", "D/real", "D/fake",
                "perf/images_per_s", "perf/step_time_s", "eval/miou", "eval/pixel_accuracy"):
        assert tag in scalars, f"{tag} missing from {sorted(scalars)}"
    assert [step for step, _ in scalars["loss/D"]] == [1, 2, 3, 4, 5, 6]  # the replayed steps once
    assert "samples" in acc.Tags()["images"]

    # Mark the checkpoint in the bucket, so the next run can only have its count from there.
    payload = load_checkpoint(latest)
    payload["state"]["images_seen"] = 1000
    marked = tmp_path / "marked"
    write_checkpoint(str(marked), payload, read_meta(latest))
    for name in ("state.pt", "meta.json"):
        s3.put(str(marked / name), f"{latest[len('s3://'):]}/{name}")

    # The same run name again, with more steps, and rank 0's local logs gone (as on a new
    # machine): it resumes from the bucket's checkpoint, and the logs come back from there.
    shutil.rmtree(os.path.dirname(log_dir(cfg)))
    cfg.trainer.max_steps, cfg.faults.kill_rank = 8, None
    assert run_ray(cfg).step == 8
    s3.invalidate_cache()
    latest = find_latest_checkpoint(f"{storage}/s3run")
    assert read_meta(latest)["images_seen"] == 1000 + 2 * 2 * 8  # resumed from the bucket
    s3.get(f"{storage}/s3run/tensorboard", str(tmp_path / "tb2"), recursive=True)
    scalars, _ = scalar_events(str(tmp_path / "tb2"))
    assert [step for step, _ in scalars["loss/D"]] == list(range(1, 9))  # continued, not restarted
    assert s3.exists(f"{storage}/s3run/samples/samples_00000008.png")

    # Export from the run directory in the bucket picks its latest checkpoint.
    out = tmp_path / "g.pt"
    assert main(["export", f"{storage}/s3run", str(out)]) == 0
    G, exported = load_generator(str(out))
    assert exported["step"] == 8
    with torch.no_grad():
        assert G(torch.zeros(2, 3, 32, 32)).shape == (2, 4, 32, 32)

    # The drill's weights are exactly the uninterrupted run's.
    torchrun.check()
    clean = str(tmp_path / "clean" / "checkpoint_00000006")
    assert read_meta(clean)["step"] == 6 and read_meta(clean)["resumed_from"] is None
    a = load_checkpoint(clean)["state"]
    for net in ("G", "D", "G_ema"):
        for key, tensor in a[net].items():
            assert torch.equal(tensor, b[net][key]), f"{net}.{key} differs"
    assert a["unlabeled_cursor"] == b["unlabeled_cursor"] and b["unlabeled_cursor"]["epoch"] == 2

    # The secret the workers used is nowhere gandist or Ray wrote: Ray's logs (runtime
    # environments included), the bucket, the local cache, the console.
    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    assert secret == MARKER_SECRET
    assert files_containing(secret, ray_cluster, os.environ["GANDIST_CACHE_DIR"], str(tmp_path)) == []
    assert bucket_objects_containing(secret, bucket) == []
    out, err = capfd.readouterr()
    assert secret not in out + err + logs


def test_translate_on_two_workers_recovers_a_killed_worker_bitwise(ray_cluster, shapes_pairs_url, tmp_path,
                                                                  torchrun_beside):
    """task=translate (pix2pix: L1 + the conditional adversarial term) on 2 Ray Train workers:
    faults.kill_rank=1 after step 3, Ray restarts the group, it replays step 3 from the step-2
    checkpoint, and every weight ends as in an uninterrupted run of 2 torchrun processes (run
    beside the Ray run: see TorchrunBeside)."""
    from gandist.ckpt import load_checkpoint
    from gandist.launchers.ray_launcher import run_ray

    def overrides(name: str, *extra: str) -> list[str]:
        return small_overrides(shapes_pairs_url, str(tmp_path), name, task="translate") + [
            "trainer.num_workers=2", "trainer.max_steps=4", "trainer.ckpt_every=2", "data.flips=horizontal",
            "trainer.async_checkpoint=false", "eval.every=4", *extra]

    torchrun = torchrun_beside(overrides("clean"))
    drilled = run_ray(absolutize(compose_config(overrides("drilled", "faults.kill_rank=1", "faults.at_step=3",
                                                          "trainer.max_failures=1"))))
    torchrun.check()
    assert drilled.step == 4 and read_meta(drilled.checkpoint)["resumed_from"] == 2
    assert 0 < drilled.metrics["eval/l1"] < 1 and "eval/ssim" in drilled.metrics
    a = load_checkpoint(str(tmp_path / "clean" / "checkpoint_00000004"))["state"]
    b = load_checkpoint(drilled.checkpoint)["state"]
    for net in ("G", "D", "G_ema"):
        for key, tensor in a[net].items():
            assert torch.equal(tensor, b[net][key]), f"{net}.{key} differs"


def test_elastic_workers_take_what_the_cluster_has_and_a_resume_changes_the_count(ray_cluster, shapes_url,
                                                                                  tmp_path):
    """trainer.min_workers=1 trainer.num_workers=3 on a 2-CPU cluster: Ray Train starts the
    workers that fit, and training runs with that world size. Then the same run name with 1
    worker: the step and optimizers carry over, and the rest of the epoch is split for it."""
    from gandist.ckpt import load_checkpoint
    from gandist.launchers.ray_launcher import run_ray

    cfg = absolutize(compose_config(small_overrides(shapes_url, str(tmp_path), "stretch") + [
        "trainer.num_workers=3", "trainer.min_workers=1", "trainer.max_steps=2", "trainer.ckpt_every=2"]))
    summary = run_ray(cfg)
    assert summary.step == 2
    layout = load_checkpoint(summary.checkpoint)["state"]["data_layout"]
    assert 1 <= layout["world_size"] <= 2, layout

    cfg.trainer.num_workers, cfg.trainer.min_workers, cfg.trainer.max_steps = 1, None, 4
    summary = run_ray(cfg)
    assert summary.step == 4 and read_meta(summary.checkpoint)["resumed_from"] == 2
    state = load_checkpoint(summary.checkpoint)["state"]
    assert state["data_history"] == [
        {"world_size": layout["world_size"], "batch_size": 8, "num_workers": 0, "batches": 2}]
    assert state["data_layout"]["world_size"] == 1
    assert state["opt_g"]["state"][0]["step"].item() == 4  # Adam kept counting across the change


def test_killed_driver_is_resumed_by_running_the_same_command_again(ray_cluster, shapes_url, tmp_path, capfd,
                                                                    torchrun_beside):
    """SIGKILL the driver (`gandist train` joined to the cluster) once a checkpoint exists; the
    same command again resumes from the newest checkpoint and finishes, bitwise equal to an
    uninterrupted run (2 torchrun processes, beside the Ray runs: see TorchrunBeside). The run
    is R3GAN's recipe (model=r3gan: the relativistic loss, R1 + R2 through DDP's double
    backward, the cosine schedules). The killed driver is a process of its own; the second
    runs the same command line in this process (gandist.cli's main, joined to the same
    cluster): nothing of the killed run is in this process, and a second Python importing
    torch and ray would only add seconds."""
    import ray
    import signal

    from gandist.ckpt import find_latest_checkpoint, load_checkpoint

    def train_args(storage: str, name: str) -> list[str]:
        return ["-m", "gandist.cli", "train", *small_overrides(shapes_url, storage, name, task="generate"),
                "model=r3gan", "model.g_width=16", "model.d_width=16", "model.blocks=1", "trainer.num_workers=2",
                "trainer.max_steps=20", "trainer.ckpt_every=4", "trainer.log_every=10", "trainer.image_every=100",
                "eval.every=100", "eval.samples=32"]

    torchrun = torchrun_beside(train_args(str(tmp_path), "clean")[3:])  # after "-m gandist.cli train"
    cmd = [sys.executable, *train_args(str(tmp_path), "driver"),
           f"launcher.ray_address={ray.get_runtime_context().gcs_address}"]
    run_dir = str(tmp_path / "driver")
    log = open(tmp_path / "first.log", "w+")  # a file, not a pipe nobody reads while we wait
    first = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        while find_latest_checkpoint(run_dir) is None:
            assert first.poll() is None, f"the driver ended before it was killed:\n{(tmp_path / 'first.log').read_text()[-3000:]}"
            assert time.time() < deadline, "no checkpoint within 120 s"
            time.sleep(0.05)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
        log.close()
    killed_at = read_meta(find_latest_checkpoint(run_dir))["step"]
    assert killed_at < 20

    capfd.readouterr()
    code = main(cmd[cmd.index("train"):])  # `gandist train ...`, the arguments of the killed driver
    second = capfd.readouterr()
    output = second.out + second.err
    assert code == 0, output[-3000:]
    resumed = read_meta(find_latest_checkpoint(run_dir))
    assert resumed["step"] == 20 and resumed["resumed_from"] >= killed_at, (resumed, killed_at)
    assert f"Resumed from checkpoint at step {resumed['resumed_from']}" in output
    assert "finished at step 20" in output
    # The ledger outlived the driver: the killed attempt, then the resubmitted one, and the gap
    # between them charged to recovery.
    ledger = load_ledger(run_dir)
    killed, again = ledger.attempts
    assert killed.cause != "finished" and again.cause == "finished" and again.resumed_from == resumed["resumed_from"]
    assert again.recovery_s > 0 and killed.last_step > 0
    assert ledger.total_s == pytest.approx(again.ended - killed.started, abs=0.2)

    torchrun.check()
    a = load_checkpoint(str(tmp_path / "clean" / "checkpoint_00000020"))["state"]
    b = load_checkpoint(find_latest_checkpoint(run_dir))["state"]
    for net in ("G", "D", "G_ema"):
        for key, tensor in a[net].items():
            assert torch.equal(tensor, b[net][key]), f"{net}.{key} differs"


def test_gandist_train_starts_its_own_cluster_keeps_the_best_and_leaks_no_secret(s3_server, s3_shapes_url, tmp_path,
                                                                                   capsys):
    """`gandist train` with no cluster named starts a local Ray cluster of its own, as the
    README's main job does: its processes inherit the shell's environment, so the workers read
    the shards in the S3 server with the shell's credentials, and the marker secret is nowhere
    in the cluster's logs. The run is trainer.keep_best=2: Ray Train's checkpoint manager,
    ranking by the score the loop reports, leaves the 2 best evaluations and the newest;
    `sample --best` takes the best."""
    from gandist.ckpt import checkpoint_step

    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths have a length limit
    env = {**os.environ, "RAY_TMPDIR": temp}  # the cluster's temp dir, to search and to stop it by
    env.pop("RAY_ADDRESS", None)
    args = small_overrides(s3_shapes_url, str(tmp_path), "best") + [
        "trainer.num_workers=1", "trainer.max_steps=7", "trainer.ckpt_every=100", "eval.every=1",
        "trainer.keep_best=2", "trainer.lr_g=1e-2", "trainer.image_every=100"]
    try:
        done = subprocess.run([sys.executable, "-m", "gandist.cli", "train", *args], env=env, capture_output=True,
                              text=True, timeout=300)
        output = done.stdout + done.stderr
        assert done.returncode == 0, output[-3000:]
        assert "Started a local Ray instance" in output  # its own cluster, not one it joined
        secret = os.environ["AWS_SECRET_ACCESS_KEY"]
        assert secret == MARKER_SECRET and secret not in output
        assert files_containing(secret, temp) == []
    finally:
        stop_processes(processes_mentioning(temp))  # only if the run left any behind
        shutil.rmtree(temp, ignore_errors=True)

    run_dir = tmp_path / "best"
    miou = dict(scalar_events(str(run_dir / "tensorboard"))[0]["eval/miou"])
    assert sorted(miou) == list(range(1, 8))
    ranked = sorted(miou, key=lambda s: (miou[s], s), reverse=True)
    kept = sorted(checkpoint_step(p.name) for p in run_dir.glob("checkpoint_0*"))
    assert kept == sorted(set(ranked[:2]) | {7}), (miou, kept)
    capsys.readouterr()
    assert main(["sample", str(run_dir), "--best", "--n", "4", "--out", str(tmp_path / "best.png")]) == 0
    assert f"at step {ranked[0]} from {run_dir}/checkpoint_{ranked[0]:08d}" in capsys.readouterr().out
