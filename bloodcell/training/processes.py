"""Data-parallel training across processes: Keras' ``keras.distribution`` on the JAX backend.

Each process is started with Keras' launch contract, three environment variables:

- ``KERAS_DISTRIBUTION_JOB_ADDRESSES``: ``host:port`` of process 0 (the coordinator), or the
  comma-separated addresses of all processes (the first is the coordinator);
- ``KERAS_DISTRIBUTION_NUM_PROCESSES``: how many processes take part;
- ``KERAS_DISTRIBUTION_PROCESS_ID``: this process's number, 0 to N - 1.

:func:`join` meets the other processes, starts JAX's distributed runtime (on CPUs its
collectives go through gloo) and returns a ``keras.distribution.DataParallel`` over every device
of every process. Before JAX starts, the processes check each other over the coordinator's port
(a short TCP handshake of bloodcell's own): JAX ends a process that cannot reach its coordinator
with a C++ abort, and lets one whose process count differs from the others' wait for ever; here
either fails within ``BLOODCELL_DISTRIBUTION_TIMEOUT`` seconds (default 40) with a one-line
:class:`DistributionError` naming the variable to fix.

Once joined, the processes keep each other informed through JAX's key-value store: :func:`meet`
waits for the others at a point of the run (every process before training starts), a process that
stops says why (:func:`tell_stopped`, also at exit), and :func:`finish` holds the others until
process 0 has written its outputs. Without that, a refusal in one process left the others waiting
in a collective, and a process 0 that measured and saved for longer than JAX's shutdown wait
(5 minutes) was aborted with the others, its model unwritten.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import time
from dataclasses import dataclass
from typing import Iterable, Mapping, Optional

from ..errors import BloodcellError, ConfigError

ADDRESSES, NUM_PROCESSES, PROCESS_ID = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES",
                                        "KERAS_DISTRIBUTION_PROCESS_ID")
TIMEOUT = "BLOODCELL_DISTRIBUTION_TIMEOUT"
DEFAULT_TIMEOUT = 40.0


class DistributionError(BloodcellError, RuntimeError):
    """The processes of a multi-process run could not meet."""

    exit_code = 1


@dataclass(frozen=True)
class ProcessGroup:
    """Where this process stands in a multi-process run (from the three variables)."""

    coordinator: str  # host:port of process 0
    num_processes: int
    process_id: int

    @property
    def host(self) -> str:
        return self.coordinator.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.coordinator.rsplit(":", 1)[1])

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Optional["ProcessGroup"]:
        """The group the variables describe; None when none of them is set."""
        values = {name: environ.get(name, "").strip() for name in (ADDRESSES, NUM_PROCESSES, PROCESS_ID)}
        if not any(values.values()):
            return None
        missing = [name for name, value in values.items() if not value]
        if missing:
            raise ConfigError(f"{', '.join(missing)}: not set, while {', '.join(n for n in values if n not in missing)} "
                              "is; a multi-process run needs all three (or none, for one process)")
        count, pid = (_integer(name, values[name]) for name in (NUM_PROCESSES, PROCESS_ID))
        if count < 1:
            raise ConfigError(f"{NUM_PROCESSES}={values[NUM_PROCESSES]}: expected the number of processes, 1 or more")
        if not 0 <= pid < count:
            raise ConfigError(f"{PROCESS_ID}={pid}: expected 0 to {count - 1} ({NUM_PROCESSES}={count}); "
                              "give each process its own number")
        addresses = [a.strip() for a in values[ADDRESSES].split(",") if a.strip()]
        if len(addresses) > 1 and len(addresses) != count:
            raise ConfigError(f"{ADDRESSES}: lists {len(addresses)} addresses for {NUM_PROCESSES}={count}; give "
                              "the coordinator's host:port alone, or one address per process")
        coordinator = addresses[0] if addresses else ""
        host, _, port = coordinator.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"{ADDRESSES}={values[ADDRESSES]!r}: expected host:port of process 0, "
                              "e.g. 10.0.0.1:29400")
        return cls(coordinator, count, pid)


def _integer(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r}: expected a whole number") from None


def timeout_seconds(environ: Mapping[str, str] = os.environ) -> float:
    """How long the processes wait for each other (``BLOODCELL_DISTRIBUTION_TIMEOUT``)."""
    value = environ.get(TIMEOUT, "").strip()
    if not value:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if seconds <= 0:
        raise ConfigError(f"{TIMEOUT}={value!r}: expected a number of seconds > 0")
    return seconds


# -- the handshake ---------------------------------------------------------------------------
def _send(sock: socket.socket, message: dict) -> None:
    sock.sendall(json.dumps(message).encode() + b"\n")


def _receive(sock: socket.socket, deadline: float) -> dict:
    data = b""
    while not data.endswith(b"\n"):
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return json.loads(data)


def _coordinate(group: ProcessGroup, timeout: float) -> None:
    """Process 0: wait for the others' hello, check they agree, answer each."""
    deadline = time.monotonic() + timeout
    try:
        server = socket.create_server(("", group.port))
    except OSError as e:
        raise DistributionError(f"{ADDRESSES}: process 0 cannot listen on port {group.port} ({e.strerror}); "
                                "give a free port") from None
    peers: dict[int, socket.socket] = {}
    problem = None
    try:
        while len(peers) < group.num_processes - 1 and problem is None:
            server.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                conn, _ = server.accept()
            except socket.timeout:
                break
            try:
                hello = _receive(conn, deadline)
            except (OSError, ValueError):
                conn.close()
                continue
            pid, count = hello.get("process_id"), hello.get("num_processes")
            if count != group.num_processes:
                problem = (f"{NUM_PROCESSES} differs between processes: {group.num_processes} in process 0, "
                           f"{count} in process {pid}; give every process the same number")
            elif pid in peers or pid == 0:
                problem = (f"{PROCESS_ID}={pid} is given to two processes; give each process its own number, "
                           f"0 to {group.num_processes - 1}")
            if problem is None:
                peers[pid] = conn
            else:
                _refuse(conn, problem)
                conn.close()
        if problem is None and len(peers) < group.num_processes - 1:
            waiting = sorted(set(range(1, group.num_processes)) - set(peers))
            problem = (f"only {len(peers) + 1} of {NUM_PROCESSES}={group.num_processes} processes reached the "
                       f"coordinator {group.coordinator} within {timeout:g} s (missing: process "
                       f"{', '.join(map(str, waiting))}); start all of them, or set {NUM_PROCESSES} to the "
                       f"number started ({TIMEOUT} sets the wait)")
        for conn in peers.values():
            if problem:
                _refuse(conn, problem)
            else:
                _send(conn, {"ok": True})
        for conn in peers.values():  # the others close first, so that the port is free for JAX at once
            try:
                _receive(conn, time.monotonic() + 5)
            except (OSError, ValueError, ConnectionError):
                pass
    finally:
        for conn in peers.values():
            conn.close()
        server.close()
    if problem:
        raise DistributionError(problem)


def _refuse(conn: socket.socket, problem: str) -> None:
    try:
        _send(conn, {"ok": False, "problem": problem})
    except OSError:
        pass


def _check_in(group: ProcessGroup, timeout: float) -> None:
    """Any other process: reach process 0, say who this is, wait for its answer."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            sock = socket.create_connection((group.host, group.port), timeout=2)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise DistributionError(
                    f"{ADDRESSES}: could not reach the coordinator {group.coordinator} (process 0) within "
                    f"{timeout:g} s; start process 0 there, or give its host:port ({TIMEOUT} sets the wait)"
                ) from None
            time.sleep(0.25)
    try:
        _send(sock, {"process_id": group.process_id, "num_processes": group.num_processes})
        try:
            answer = _receive(sock, deadline + 5)
        except (OSError, ValueError, ConnectionError):
            raise DistributionError(f"the coordinator {group.coordinator} ({ADDRESSES}) did not answer within "
                                    f"{timeout:g} s; check that it is a bloodcell process 0 of this run") from None
    finally:
        sock.close()
    if not answer.get("ok"):
        raise DistributionError(answer.get("problem") or "the coordinator refused this process")


# -- joining ----------------------------------------------------------------------------------
_JOINED: dict[str, object] = {}


def join(group: ProcessGroup, timeout: Optional[float] = None):
    """Meet the other processes of ``group``, start JAX's distributed runtime and return a
    ``keras.distribution.DataParallel`` over all their devices (once per process)."""
    import keras

    if keras.backend.backend() != "jax":
        raise ConfigError(f"{ADDRESSES} is set, which asks for a multi-process run, but Keras runs on "
                          f"{keras.backend.backend()}; set KERAS_BACKEND=jax (and install bloodcell[jax])")
    if "distribution" in _JOINED:
        if _JOINED["group"] != group:
            raise ConfigError(f"this process already joined {_JOINED['group']}; one process joins one run")
        return _JOINED["distribution"]
    timeout = timeout_seconds() if timeout is None else timeout
    if group.num_processes > 1:
        (_coordinate if group.process_id == 0 else _check_in)(group, timeout)
    import jax

    # Before JAX starts its backends; it only concerns collectives between CPU devices.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=group.coordinator, num_processes=group.num_processes,
                               process_id=group.process_id, initialization_timeout=max(1, int(timeout)))
    distribution = keras.distribution.DataParallel(devices=keras.distribution.list_devices(),
                                                   auto_shard_dataset=False)
    _quiet_first_collective()
    _JOINED.update(group=group, distribution=distribution)
    if group.num_processes > 1:  # registered after JAX's own shutdown, so it runs before it
        atexit.register(tell_stopped, "it exited before the others were done (its own output says why)")
    return distribution


def join_from_env():
    """The distribution of the multi-process run the ``KERAS_DISTRIBUTION_*`` variables describe,
    joined (see :func:`join`); None when they are not set."""
    group = ProcessGroup.from_env()
    return join(group) if group is not None else None


def _quiet_first_collective() -> None:
    """Run one all-reduce with the C++ output silenced: gloo announces its first connections
    ("[Gloo] Rank 0 is connected to 1 peer ranks...") on stdout and stderr."""
    from jax.experimental import multihost_utils

    from .._tf import silenced_output

    with silenced_output((1, 2)):
        multihost_utils.sync_global_devices("bloodcell: joined")


# -- keeping each other informed ---------------------------------------------------------------
#: Seconds between two looks of a waiting process at the others' word.
POLL_SECONDS = 0.2
_STOPPED = "bloodcell/stopped/"
_MEETINGS: dict[str, int] = {}


def _client():
    """The JAX distributed client of this process's multi-process run; None outside one."""
    group = _JOINED.get("group")
    if group is None or group.num_processes < 2:
        return None
    from jax._src import distributed  # its key-value store has no public API

    return distributed.global_state.client


def tell_stopped(problem: str) -> None:
    """Tell the other processes of the run that this one stops, and why: those waiting for it in
    :func:`meet` or :func:`finish` then stop with that line instead of waiting for JAX's timeouts.
    Once per process; nothing outside a multi-process run."""
    client = _client()
    if client is None or _JOINED.get("stopped"):
        return
    _JOINED["stopped"] = True
    try:
        client.key_value_set(_STOPPED + str(_JOINED["group"].process_id), problem.splitlines()[0] if problem else "",
                             allow_overwrite=True)
    except Exception:  # noqa: BLE001 - the run's coordinator is gone: nobody is left to tell
        pass


def why_stopped(exc: BaseException) -> str:
    """The line :func:`tell_stopped` gives the others for ``exc``."""
    if isinstance(exc, KeyboardInterrupt):
        return "it was interrupted"
    if isinstance(exc, SystemExit):
        return f"it exited with code {exc.code}"
    return str(exc) if isinstance(exc, BloodcellError) else f"{type(exc).__name__}: {exc}"


def meet(stage: str, waits_for: Optional[Iterable[int]] = None) -> None:
    """Say that this process reached ``stage`` and wait until the processes ``waits_for`` (default:
    all the others) have reached it too. Each process counts its own calls per stage, so the n-th
    call of every process is one meeting. A process that stopped before it raises
    :class:`DistributionError` here with its reason. Nothing outside a multi-process run."""
    client = _client()
    if client is None:
        return
    group = _JOINED["group"]
    _MEETINGS[stage] = _MEETINGS.get(stage, 0) + 1
    key = f"bloodcell/{stage}/{_MEETINGS[stage]}/"
    client.key_value_set(key + str(group.process_id), "here")
    waiting = set(range(group.num_processes) if waits_for is None else waits_for) - {group.process_id}
    while waiting:
        try:  # the stopped ones first: a process tells it has stopped only after it has met
            stopped = dict(client.key_value_dir_get(_STOPPED))
            waiting -= {int(k.rsplit("/", 1)[1]) for k, _ in client.key_value_dir_get(key)}
        except Exception:  # noqa: BLE001 - JAX's runtime error: process 0, which holds the store, is gone
            raise DistributionError(f"lost process 0 ({group.coordinator}) while waiting for it; see its output for "
                                    "why it ended, and start every process again") from None
        if not waiting:
            return
        for name, problem in sorted(stopped.items()):
            pid = int(name.rsplit("/", 1)[1])
            if pid in waiting:
                raise DistributionError(f"process {pid} of the run stopped: {problem}")
        time.sleep(POLL_SECONDS)


def finish() -> None:
    """The end of a multi-process run: process 0 calls it once its outputs are written, every other
    process waits in it until then (or until process 0 stops, raising its reason), so that all reach
    JAX's shutdown together. Nothing outside a multi-process run."""
    meet("end", waits_for=[0])


def is_keras_distribution(distribution) -> bool:
    """Whether ``distribution`` is a ``keras.distribution`` one (not None, not a ``tf.distribute`` strategy)."""
    return distribution is not None and not hasattr(distribution, "num_replicas_in_sync")


def process_info(distribution=None) -> tuple[int, int, int]:
    """(this process's id, number of processes, number of devices in all) of a training run."""
    if distribution is None:
        return 0, 1, 1
    if not is_keras_distribution(distribution):  # a tf.distribute strategy: one process
        return 0, 1, int(distribution.num_replicas_in_sync)
    import jax

    return jax.process_index(), jax.process_count(), len(distribution.device_mesh.devices.flatten())


__all__ = ["ADDRESSES", "DEFAULT_TIMEOUT", "DistributionError", "NUM_PROCESSES", "PROCESS_ID", "ProcessGroup",
           "TIMEOUT", "finish", "is_keras_distribution", "join", "join_from_env", "meet", "process_info",
           "tell_stopped", "timeout_seconds", "why_stopped"]
