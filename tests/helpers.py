"""Helpers the tests (and bench/) share: small configs, real servers started and stopped by
whoever asked for them, and the environment set and restored around them.

Fixtures live in conftest.py and use these; test modules import from here, never from conftest.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any, Iterator, Optional, Sequence


@contextlib.contextmanager
def environ(env: dict[str, str]) -> Iterator[None]:
    """``env`` set in this process (and so in the processes it starts), restored afterwards.

    s3fs keeps one filesystem per set of arguments, made with the AWS_* variables of its
    time: when those change (both ways), the cached ones go, so no later test reaches a
    server that is gone."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    forget_object_stores(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        forget_object_stores(env)


def forget_object_stores(env: dict[str, str]) -> None:
    if any(key.startswith("AWS_") for key in env):
        import s3fs

        s3fs.S3FileSystem.clear_instance_cache()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# The secret key of the tests' S3 API server: a value that appears nowhere else, so finding it
# in a log, a bucket or a console means gandist leaked a credential.
MARKER_SECRET = f"gandist-marker-secret-{os.getpid()}-{int(time.time())}"


def files_containing(text: str, *roots: str) -> list[str]:
    """Every file under ``roots`` (recursively) whose bytes contain ``text``."""
    needle, found = text.encode(), []
    for root in roots:
        for dirpath, _, names in os.walk(root):
            for name in names:
                path = os.path.join(dirpath, name)
                with contextlib.suppress(OSError):
                    with open(path, "rb") as f:
                        if needle in f.read():
                            found.append(path)
    return found


def bucket_objects_containing(text: str, bucket: str) -> list[str]:
    """Every object of an s3:// bucket (or prefix) whose bytes contain ``text``."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(bucket)
    fs.invalidate_cache()
    return [path for path in fs.find(root) if text.encode() in fs.cat_file(path)]


@contextlib.contextmanager
def s3_api_server(host: str = "127.0.0.1", key: str = "testing", secret: str = "testing") -> Iterator[dict[str, str]]:
    """A real S3 API server (moto in server mode) on ``host``; yields the AWS_* variables that
    reach it (the caller decides where to set them). Stopped afterwards."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request
    port = free_port(host)
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    try:
        yield {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret,
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://{host}:{port}"}
    finally:
        server.stop()


def small_overrides(data_url: str, storage: str, name: str, task: str = "segment") -> list[str]:
    """Overrides for a run small enough for a unit test on 2 cores."""
    return [
        f"task={task}", f"data.url={data_url}", f"run.storage={storage}", f"run.name={name}",
        "model.resolution=32", "model.g_width=8", "model.d_width=8", "model.z_dim=16",
        "data.batch_size=8", "data.loader_workers=0",
        "trainer.log_every=1", "trainer.image_every=2", "eval.every=2", "eval.batches=1",
    ]


def local_cfg(data_url: str, storage, name: str, *extra: str):
    """A small one-process (launcher.name=local) config, composed as the CLI would."""
    from gandist.config import absolutize, compose_config

    overrides = small_overrides(data_url, str(storage), name) + [
        "launcher.name=local", "trainer.num_workers=1", *extra]
    return absolutize(compose_config(overrides))


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def run_logged(cfg):
    """run_local, and the messages the training loop logged meanwhile."""
    from gandist.launchers.local import run_local

    collect, logger = Collect(), logging.getLogger("gandist.train")
    logger.addHandler(collect)
    logger.setLevel(logging.INFO)
    try:
        return run_local(cfg), collect.messages
    finally:
        logger.removeHandler(collect)


def wait_for_job_api(address: str, timeout: float = 60) -> None:
    """The Ray job API at ``address`` answers a little after `ray start` returns."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(f"{address}/api/version", timeout=5).read()
            return
        except OSError:
            assert time.monotonic() < deadline, f"the Ray job API at {address} did not come up in {timeout:.0f} s"
            time.sleep(0.25)


def processes_mentioning(text: str) -> list[int]:
    """Processes whose command line contains ``text`` (e.g. a Ray temp dir), and all their
    descendants (a job's driver, Ray workers), found through /proc."""
    parents: dict[int, int] = {}
    roots = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{entry}/stat") as f:
                parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue  # it ended meanwhile
        if text in cmdline:
            roots.append(int(entry))
    found, todo = set(roots), list(roots)
    while todo:
        pid = todo.pop()
        children = [child for child, parent in parents.items() if parent == pid and child not in found]
        found.update(children)
        todo.extend(children)
    return sorted(found)


def stop_processes(pids: Sequence[int], grace: float = 3.0) -> None:
    """SIGTERM, then SIGKILL whatever is left after ``grace`` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(os.path.exists(f"/proc/{pid}") and not _zombie(pid)
                                                  for pid in pids):
            time.sleep(0.2)


def stop_child(proc: subprocess.Popen, grace: float = 30.0) -> None:
    """End a child process this test started if it still runs: SIGTERM first (torchrun then
    stops its workers), SIGKILL after ``grace`` seconds; reaped either way."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


class TensorBoardServer:
    """A real `tensorboard` process on a free port of 127.0.0.1, queried over its HTTP API."""

    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            return json.loads(r.read())

    def post(self, path: str, body: dict) -> Any:
        request = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json", "X-XSRF-Protected": "1"})
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.loads(r.read())

    def scalar_steps(self, tag: str, run: str = ".") -> list[int]:
        from urllib.parse import quote

        return [step for _, step, _ in self.get(f"/data/plugin/scalars/scalars?run={quote(run)}&tag={quote(tag)}")]


@contextlib.contextmanager
def tensorboard_server(logdir: str, wait_for_tag: str,
                       flags: Sequence[str] = ("--reload_interval", "1")) -> Iterator[TensorBoardServer]:
    """Start TensorBoard on ``logdir`` with ``flags``; yield once it serves ``wait_for_tag``.
    Its output goes to a file (a pipe nobody reads could fill and stall it)."""
    port = free_port()
    with tempfile.TemporaryFile("w+") as output:
        proc = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", logdir, "--host", "127.0.0.1",
                                 "--port", str(port), *flags], stdout=output, stderr=subprocess.STDOUT, text=True)
        server = TensorBoardServer(f"http://127.0.0.1:{port}")
        try:
            deadline = time.monotonic() + 90
            while True:
                try:
                    tags = server.get("/data/plugin/scalars/tags")
                    if any(wait_for_tag in run_tags for run_tags in tags.values()):
                        break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    output.seek(0)
                    raise RuntimeError(f"tensorboard did not serve {wait_for_tag!r}: {output.read()[-2000:]}")
                time.sleep(0.5)
            yield server
        finally:
            proc.terminate()
            proc.wait(timeout=30)


class RayHead:
    """`ray start --head` on loopback with the job API, in its own temp dir and on free ports.
    Leaving the context stops only this cluster's processes (their command lines name its temp
    dir) and what they started: never `ray stop`, which ends every Ray process on the machine."""

    def __init__(self, num_cpus: int = 2) -> None:
        self.num_cpus = num_cpus
        self.temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths have a length limit
        bin_dir = os.path.dirname(sys.executable)
        self.env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "RAY_USAGE_STATS_ENABLED": "0",
                    "RAY_AUTH_MODE": "disabled"}  # a loopback-only test cluster: no token to hand around
        port, dashboard = free_port(), free_port()
        self.gcs_address = f"127.0.0.1:{port}"
        self.dashboard = f"http://127.0.0.1:{dashboard}"
        self._start = [os.path.join(bin_dir, "ray"), "start", "--head", "--node-ip-address", "127.0.0.1",
                       "--port", str(port), "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard),
                       "--ray-client-server-port", str(free_port()), "--temp-dir", self.temp,
                       "--num-cpus", str(num_cpus), "--include-dashboard", "true"]

    def __enter__(self) -> "RayHead":
        try:
            started = subprocess.run(self._start, env=self.env, capture_output=True, text=True, timeout=180)
            assert started.returncode == 0, started.stderr[-3000:]
            wait_for_job_api(self.dashboard)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        stop_processes(processes_mentioning(self.temp))
        shutil.rmtree(self.temp, ignore_errors=True)


@contextlib.contextmanager
def http_answering(status: int, body: bytes, path: Optional[str] = None) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 answering every GET with ``status`` and ``body`` (404
    for any other path when ``path`` is given): a stand-in for an endpoint of something too
    heavy to run here. Yields its host:port."""
    import http.server
    import threading

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status if path is None or self.path == path else 404)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# gandist.data.plan as first written, one Python integer per sample: what tests/data/test_plan.py
# checks the compact plan against, and bench/plan.py times it against.


def ref_consumed(counts: list[int], skip: int) -> list[int]:
    from gandist.data.plan import rank_batch_order

    consumed = [0] * len(counts)
    for w, _ in rank_batch_order(counts)[:skip]:
        consumed[w] += 1
    return consumed


def ref_assignment(counts: list[int], skip: int, num_workers: int) -> list[tuple[Optional[int], int]]:
    from gandist.data.plan import rank_batch_order

    consumed, due = ref_consumed(counts, skip), []
    for w, _ in rank_batch_order(counts)[skip:]:
        if w not in due:
            due.append(w)
    return [(due[i], consumed[due[i]]) if i < len(due) else (None, 0) for i in range(max(1, num_workers))]


def ref_layout(base: Sequence[int], world_size: int, batch_size: int, num_workers: int):
    n = len(base) // (world_size * batch_size)
    workers = max(1, num_workers)
    ranks = []
    for r in range(world_size):
        rank_pos = base[r * n * batch_size:(r + 1) * n * batch_size]
        blocks, first = [], 0
        for w in range(workers):
            count = n // workers + (1 if w < n % workers else 0)
            blocks.append(rank_pos[first * batch_size:(first + count) * batch_size])
            first += count
        ranks.append(blocks)
    return n, ranks


def ref_remaining(total: int, history, *, epoch: int, seed: int, shuffle_buffer: int) -> list[int]:
    from gandist.data.plan import buffer_rng, buffer_shuffle

    remaining: Sequence[int] = range(total)
    for index, seg in enumerate(history):
        seen = set()
        _, ranks = ref_layout(remaining, seg.world_size, seg.batch_size, seg.num_workers)
        for rank, blocks in enumerate(ranks):
            consumed = ref_consumed([len(b) // seg.batch_size for b in blocks], seg.batches)
            for w, block in enumerate(blocks):
                order = buffer_shuffle(iter(range(len(block))), shuffle_buffer,
                                       buffer_rng(seed, epoch, rank, w, index))
                for _ in range(consumed[w] * seg.batch_size):
                    seen.add(block[next(order)])
        remaining = [p for p in remaining if p not in seen]
    return list(remaining)


def ref_pieces(manifest, split: str, order: Sequence[int], positions: Sequence[int], subset=None) -> list:
    import bisect

    from gandist.data.stream import Piece
    from gandist.data.subsets import shard_counts

    shards, urls = manifest.shards(split), manifest.shard_urls(split)
    counts = shard_counts(manifest, split, subset)
    pieces, offset = [], 0
    for i in order:
        count = counts[i]
        lo, hi = bisect.bisect_left(positions, offset), bisect.bisect_left(positions, offset + count)
        if lo < hi:
            local = [p - offset for p in positions[lo:hi]]
            indices = local if subset is None else [int(subset[i][j]) for j in local]
            first, last = indices[0], indices[-1]
            keep = None if last - first + 1 == len(indices) else frozenset(indices)
            pieces.append(Piece(urls[i], first, last + 1, int(shards[i].get("bytes", 0)), keep))
        offset += count
    return pieces
