"""Client: the coordinator's gRPC API (proto/bitsweep/v1/coordinator.proto) for notebooks.

Calls carry the client token as the CLI sends it ("authorization: Bearer <token>" metadata)
and use TLS verified against a CA file when ``tls_ca`` is given, plaintext otherwise.
"""

from __future__ import annotations

import json
import os
import time
import uuid
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple, Union

import grpc
from google.protobuf import json_format

from bitsweep_client._stubs import coordinator_pb2, coordinator_pb2_grpc, types_pb2
from bitsweep_client.errors import BitsweepError

DEFAULT_ADDRESS = "127.0.0.1:50051"
# As the CLI's deadlines (rpc/call_context.h, cli/client_commands.h): an ordinary call, and a
# submission (expanding a sweep and writing its jobs).
CALL_TIMEOUT_S = 30.0
SUBMIT_TIMEOUT_S = 120.0
# watch() rides out an unreachable coordinator this long, as `bitsweep watch` does.
WATCH_RECONNECT_S = 120.0

SweepInput = Union[str, "os.PathLike[str]", Mapping[str, Any]]


@dataclass(frozen=True)
class Sweep:
    """A sweep and its jobs counted by state (the proto's Sweep)."""

    id: int
    name: str
    priority: int
    created_at: int  # Unix seconds
    pending: int
    leased: int
    succeeded: int
    failed: int
    canceled: int
    total: int
    finished: bool  # every job succeeded, failed, was canceled or skipped
    # Jobs the sweep's early_abort rule skipped, and the worker-seconds that is estimated to save.
    skipped: int = 0
    saved_worker_seconds: float = 0.0
    # The sweep's run_tag ("" when it has none): its jobs share work only with the same tag.
    run_tag: str = ""

    @property
    def done(self) -> int:
        """Jobs that will not run again: succeeded, failed, canceled or skipped."""
        return self.succeeded + self.failed + self.canceled + self.skipped

    @property
    def ok(self) -> bool:
        """Finished, and every job succeeded (or was skipped by the early_abort rule)."""
        return self.finished and self.failed == 0 and self.canceled == 0

    @classmethod
    def from_proto(cls, m: Any) -> "Sweep":
        return cls(id=m.id, name=m.name, priority=m.priority, created_at=m.created_at,
                   pending=m.pending, leased=m.leased, succeeded=m.succeeded, failed=m.failed,
                   canceled=m.canceled, total=m.total, finished=m.finished,
                   skipped=m.skipped, saved_worker_seconds=m.saved_worker_seconds,
                   run_tag=m.run_tag)

    def __str__(self) -> str:
        state = "finished" if self.finished else "running"
        name = f"{self.name} run={self.run_tag}" if self.run_tag else self.name
        return (f"sweep {self.id} {name}: {state}, {self.done}/{self.total} done "
                f"({self.succeeded} succeeded, {self.failed} failed, {self.canceled} canceled, "
                f"{self.leased} running, {self.pending} pending)")


@dataclass(frozen=True)
class Submission:
    """What SubmitSweep answered: the sweep, and what became of its jobs."""

    sweep: Sweep
    # (combination, reason) of each combination of the sweep file that made no job.
    skipped: List[Tuple[str, str]] = field(default_factory=list)
    replayed: bool = False  # the request id had been seen: nothing new was created
    new_jobs: int = 0
    reused_jobs: int = 0  # already succeeded: answered from stored results
    rerun_jobs: int = 0  # had failed or been canceled: pending again
    shared_jobs: int = 0  # pending or running for another sweep


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _job_state_name(value: int) -> str:
    return types_pb2.JobState.Name(value).replace("JOB_STATE_", "")


def _result_row(job: Any, metric: Any, spec: Any, provenance: Any) -> Dict[str, Any]:
    """One metric of one job, or (metric None) a job the sweep's early_abort rule skipped: the
    keys of `bitsweep results --format json` (a skipped job's metric, value, stderr, n and
    provenance None, its reason in `skipped`; None for a result), then the spec's model, run tag
    (None when the sweep has no ``run_tag``), method, bits, group and task as columns of their
    own (for DataFrames and plots)."""
    quant = spec.get("quant", {}) if isinstance(spec, dict) else {}
    evaluation = spec.get("eval", {}) if isinstance(spec, dict) else {}
    return {
        "job_id": job.job_id,
        "job_key": job.job_key,
        "spec": spec,
        "metric": metric.name if metric is not None else None,
        "value": metric.value if metric is not None else None,
        "stderr": metric.stderr if metric is not None else None,
        "n": metric.n if metric is not None else None,
        "provenance": provenance if metric is not None else None,
        "skipped": job.skipped_reason if metric is None else None,
        "model": spec.get("model") if isinstance(spec, dict) else None,
        "run_tag": spec.get("run_tag") if isinstance(spec, dict) else None,
        "method": quant.get("method"),
        "wbits": quant.get("wbits"),
        "abits": quant.get("abits"),
        "group_size": quant.get("group_size"),
        "task": evaluation.get("task"),
    }


def _pandas() -> Any:
    try:
        import pandas  # optional (Debian python3-pandas)
    except ImportError:
        return None
    return pandas


class Client:
    """A connection to a bitsweep coordinator.

    ``address`` defaults to ``$BITSWEEP_COORDINATOR``, else ``127.0.0.1:50051``; ``token`` to
    ``$BITSWEEP_CLIENT_TOKEN`` (``""``: send none). ``tls_ca``: a PEM file of the CA that
    signed the coordinator's certificate; TLS when set, plaintext otherwise. These are the
    CLI's ``--coordinator``, ``--token`` and ``--tls-ca``, sent the same way.
    Unary calls that meet an unreachable coordinator (UNAVAILABLE) are retried ``retries``
    times, a second apart; every call is idempotent (submit by its request id).
    """

    def __init__(self, address: Optional[str] = None, token: Optional[str] = None,
                 tls_ca: Optional[str] = None, *, retries: int = 3) -> None:
        self.address = address or os.environ.get("BITSWEEP_COORDINATOR") or DEFAULT_ADDRESS
        self._token = os.environ.get("BITSWEEP_CLIENT_TOKEN", "") if token is None else token
        self._retries = max(0, retries)
        if tls_ca:
            with open(tls_ca, "rb") as f:
                credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
            self._channel = grpc.secure_channel(self.address, credentials)
        else:
            self._channel = grpc.insecure_channel(self.address)
        self._stub = coordinator_pb2_grpc.CoordinatorStub(self._channel)

    # The channel -------------------------------------------------------------------------------

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.address!r})"

    def _metadata(self) -> List[Tuple[str, str]]:
        return [("authorization", f"Bearer {self._token}")] if self._token else []

    def _error(self, e: grpc.RpcError) -> BitsweepError:
        return BitsweepError.from_rpc_error(e, token_given=bool(self._token))

    def _call(self, method: Callable[..., Any], request: Any,
              timeout: float = CALL_TIMEOUT_S) -> Any:
        for attempt in range(self._retries + 1):
            try:
                return method(request, timeout=timeout, metadata=self._metadata())
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.UNAVAILABLE or attempt == self._retries:
                    raise self._error(e) from None
            time.sleep(1.0)
        raise AssertionError("unreachable")

    def _pages(self, method: Callable[..., Any], request: Any) -> Iterator[Any]:
        """Every page of a paged listing: each next_page_token sent back as page_token."""
        while True:
            page = self._call(method, request)
            yield page
            if not page.next_page_token:
                return
            request.page_token = page.next_page_token

    # Sweeps ------------------------------------------------------------------------------------

    def submit(self, sweep: SweepInput, *, request_id: Optional[str] = None,
               base_dir: Optional[str] = None) -> int:
        """Submits a sweep and returns its id. See submit_detailed."""
        submission = self.submit_detailed(sweep, request_id=request_id, base_dir=base_dir)
        for combination, reason in submission.skipped:
            warnings.warn(f"sweep {submission.sweep.id}: skipped {combination}: {reason}",
                          stacklevel=2)
        return submission.sweep.id

    def submit_detailed(self, sweep: SweepInput, *, request_id: Optional[str] = None,
                        base_dir: Optional[str] = None) -> Submission:
        """Submits a sweep: a sweep file's path, YAML text, or a dict of the same fields
        (docs/sweep-file.md).

        Relative paths in the sweep (models, .jsonl tasks, calibration files) resolve against
        ``base_dir``: by default the file's folder for a path (as `bitsweep submit` sends it),
        the current working directory for YAML text or a dict; ``""`` keeps them as written.
        ``request_id`` (default: a fresh UUID) makes the submission idempotent: submitting again
        with the same id returns the sweep the first one created (``replayed``), whatever the
        text.
        """
        text, source_name, folder = _read_sweep(sweep)
        if base_dir is not None:
            folder = os.path.abspath(base_dir) if base_dir else ""
        request = coordinator_pb2.SubmitSweepRequest(
            request_id=request_id or str(uuid.uuid4()), sweep_yaml=text, source_name=source_name,
            base_dir=folder)
        r = self._call(self._stub.SubmitSweep, request, timeout=SUBMIT_TIMEOUT_S)
        return Submission(sweep=Sweep.from_proto(r.sweep),
                          skipped=[(s.description, s.reason) for s in r.skipped],
                          replayed=r.replayed, new_jobs=r.new_jobs, reused_jobs=r.reused_jobs,
                          rerun_jobs=r.rerun_jobs, shared_jobs=r.shared_jobs)

    def status(self, sweep_id: int) -> Sweep:
        """The sweep with its jobs counted by state."""
        return Sweep.from_proto(
            self._call(self._stub.GetSweep, coordinator_pb2.GetSweepRequest(sweep_id=sweep_id)))

    def sweeps(self) -> List[Sweep]:
        """Every sweep, newest first."""
        out: List[Sweep] = []
        for page in self._pages(self._stub.ListSweeps, coordinator_pb2.ListSweepsRequest()):
            out.extend(Sweep.from_proto(s) for s in page.sweeps)
        return out

    def jobs(self, sweep_id: int) -> List[Dict[str, Any]]:
        """The sweep's jobs: id, job_key, spec (a dict), state ("SUCCEEDED", ...), attempt,
        max_attempts, worker, error, progress, phase, elapsed_seconds, eta_seconds."""
        out: List[Dict[str, Any]] = []
        request = coordinator_pb2.ListJobsRequest(sweep_id=sweep_id)
        for page in self._pages(self._stub.ListJobs, request):
            for j in page.jobs:
                out.append({"id": j.id, "job_key": j.job_key, "spec": _json_or_none(j.spec_json),
                            "state": _job_state_name(j.state), "attempt": j.attempt,
                            "max_attempts": j.max_attempts, "worker": j.worker, "error": j.error,
                            "progress": j.progress, "phase": j.phase,
                            "elapsed_seconds": j.elapsed_seconds, "eta_seconds": j.eta_seconds})
        return out

    def watch(self, sweep_id: int, *, timeout: Optional[float] = None,
              reconnect_seconds: float = WATCH_RECONNECT_S) -> Iterator[Sweep]:
        """Yields the sweep each time its counts change, from the coordinator's WatchSweep
        stream, until it is finished (the last one yielded has ``finished`` set).

        An unreachable coordinator (a restart) is ridden out for ``reconnect_seconds``; after
        ``timeout`` seconds in all, BitsweepError DEADLINE_EXCEEDED.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        request = coordinator_pb2.GetSweepRequest(sweep_id=sweep_id)
        last: Optional[Sweep] = None
        unavailable_since: Optional[float] = None
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise BitsweepError(grpc.StatusCode.DEADLINE_EXCEEDED,
                                    f"sweep {sweep_id} did not finish within {timeout} s")
            stream = self._stub.WatchSweep(request, timeout=left, metadata=self._metadata())
            try:
                for message in stream:
                    unavailable_since = None
                    sweep = Sweep.from_proto(message)
                    if sweep != last:
                        last = sweep
                        yield sweep
                    if sweep.finished:
                        return
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.UNAVAILABLE:
                    raise self._error(e) from None
                now = time.monotonic()
                unavailable_since = unavailable_since or now
                if now - unavailable_since > reconnect_seconds:
                    raise self._error(e) from None
                time.sleep(1.0)
            else:
                time.sleep(1.0)  # ended before the sweep finished (not expected): watch again
            finally:
                stream.cancel()  # the caller stopped iterating, or the stream is done

    def wait(self, sweep_id: int, *, timeout: Optional[float] = None) -> Sweep:
        """Watches the sweep to its end and returns it as it finished."""
        last = None
        for last in self.watch(sweep_id, timeout=timeout):
            pass
        assert last is not None and last.finished
        return last

    def cancel(self, sweep_id: int) -> Sweep:
        """Cancels every unfinished job of the sweep that no other unfinished sweep shares."""
        return Sweep.from_proto(self._call(self._stub.CancelSweep,
                                           coordinator_pb2.CancelSweepRequest(sweep_id=sweep_id)))

    def cancel_job(self, job_id: int) -> Dict[str, Any]:
        """Cancels one job; returns it as jobs() lists it (its id, state, ...)."""
        j = self._call(self._stub.CancelJob, coordinator_pb2.CancelJobRequest(job_id=job_id))
        return {"id": j.id, "job_key": j.job_key, "state": _job_state_name(j.state),
                "error": j.error}

    def describe(self, job_id: int) -> Dict[str, Any]:
        """Everything stored about one job, as `bitsweep describe job JOB_ID -o json` prints it:
        the JobDescription message as a dict with the proto's field names (job, sweep_id,
        artifact_key, requirements, tp, events, metrics, provenance_json; 64-bit integers as
        strings, as protobuf's JSON writes them)."""
        d = self._call(self._stub.DescribeJob, coordinator_pb2.DescribeJobRequest(job_id=job_id))
        return json_format.MessageToDict(d, preserving_proto_field_name=True,
                                         including_default_value_fields=True)

    def logs(self, job_id: int) -> Optional[str]:
        """The end of the job process's output of the job's latest attempt that reported one
        (at most the last 64 KiB), as `bitsweep logs JOB_ID` prints it; None when none is stored
        (no attempt has ended yet, or the job process printed nothing)."""
        log = self._call(self._stub.GetJobLog, coordinator_pb2.GetJobLogRequest(job_id=job_id))
        return log.text if log.stored else None

    # Results -----------------------------------------------------------------------------------

    def results(self, sweep_id: Optional[int] = None, *, as_frame: Optional[bool] = None,
                page_size: int = 0) -> Any:
        """Every stored metric of the sweep (of every sweep when None), one row per metric,
        and one row per job skipped by the sweep's early_abort rule.

        Each row holds the keys of `bitsweep results --format json` (job_id, job_key, spec,
        metric, value, stderr, n, provenance; spec and provenance as dicts; skipped: the reason
        of a skipped job, whose metric, value, stderr, n and provenance are None, else None),
        then model, method, wbits, abits, group_size and task taken from the spec. A value that
        diverged is inf or nan (the CLI's JSON writes null). A ``pandas.DataFrame`` when pandas can be
        imported (``as_frame=None``) or ``as_frame=True``; a list of dicts otherwise.
        """
        request = coordinator_pb2.QueryResultsRequest(sweep_id=sweep_id or 0, page_size=page_size)
        rows: List[Dict[str, Any]] = []
        for page in self._pages(self._stub.QueryResults, request):
            for job in page.jobs:
                spec = _json_or_none(job.spec_json)
                provenance = _json_or_none(job.provenance_json)
                rows.extend(_result_row(job, m, spec, provenance) for m in job.metrics)
                if job.skipped_reason:  # skipped by the sweep's early_abort rule, as the CLI lists it
                    rows.append(_result_row(job, None, spec, provenance))
        pandas = _pandas() if as_frame is not False else None
        if as_frame and pandas is None:
            raise ImportError("results(as_frame=True) needs pandas (Debian python3-pandas)")
        return pandas.DataFrame(rows) if pandas is not None else rows


def _read_sweep(sweep: SweepInput) -> Tuple[str, str, str]:
    """(YAML text, source name, base folder) of a sweep given as a path, YAML text or a dict."""
    if isinstance(sweep, Mapping):
        # JSON is YAML: the coordinator's parser reads it as it reads a sweep file. Only JSON's
        # types are allowed, and non-finite floats are refused rather than written as NaN.
        return json.dumps(dict(sweep), allow_nan=False), "<dict>", os.getcwd()
    if isinstance(sweep, os.PathLike) or _looks_like_path(sweep):
        path = os.fspath(sweep)
        with open(path, "r", encoding="utf-8") as f:
            text = f.read()
        return text, os.path.basename(path), os.path.dirname(os.path.abspath(path))
    if isinstance(sweep, str):
        return sweep, "<string>", os.getcwd()
    raise TypeError(f"submit takes a path, YAML text or a dict, not {type(sweep).__name__}")


def _looks_like_path(sweep: Any) -> bool:
    """A one-line string that names a file, or ends in .yaml/.yml (then missing: open fails)."""
    if not isinstance(sweep, str) or "\n" in sweep or not sweep.strip():
        return False
    return os.path.isfile(sweep) or sweep.endswith((".yaml", ".yml"))

