#!/usr/bin/env python3
"""bitsweep_client against an in-process fake coordinator: how sweeps are sent (path, YAML text,
dict; request id; base folder), the token metadata, errors, paging and watch. No PostgreSQL,
no worker: client_e2e_test.py runs the real ones.

Exits 77 (ctest: skipped) only when this Python has no gRPC (Debian python3-grpcio).
"""

import json
import os
import pathlib
import sys
import tempfile
import threading
import time
import unittest
import warnings
from concurrent import futures

try:
    import grpc
except ImportError:
    print("SKIP: no gRPC for this Python (apt-get install python3-grpcio python3-protobuf)")
    sys.exit(77)

from bitsweep.v1 import coordinator_pb2, coordinator_pb2_grpc, types_pb2  # noqa: E402

import bitsweep_client  # noqa: E402
from bitsweep_client import BitsweepError, Client  # noqa: E402
from bitsweep_client.client import _read_sweep  # noqa: E402


def sweep_message(sweep_id, succeeded, total, name="s"):
    return coordinator_pb2.Sweep(id=sweep_id, name=name, succeeded=succeeded,
                                 pending=total - succeeded, total=total,
                                 finished=succeeded == total)


class FakeCoordinator(coordinator_pb2_grpc.CoordinatorServicer):
    """Answers from canned data and records each call's request and metadata."""

    def __init__(self):
        self.calls = []  # (method, request, {metadata key: value})
        self.lock = threading.Lock()
        self.fail_next = {}  # method -> [(code, message), ...] to abort with first
        self.requests_seen = {}  # request_id -> sweep id

    def _record(self, method, request, context):
        with self.lock:
            self.calls.append((method, request, dict(context.invocation_metadata())))
            failures = self.fail_next.get(method)
            failure = failures.pop(0) if failures else None
        if failure:
            context.abort(*failure)

    def SubmitSweep(self, request, context):
        self._record("SubmitSweep", request, context)
        replayed = request.request_id in self.requests_seen
        sweep_id = self.requests_seen.setdefault(request.request_id, len(self.requests_seen) + 1)
        return coordinator_pb2.SubmitSweepResponse(
            sweep=sweep_message(sweep_id, 0, 2), replayed=replayed, new_jobs=0 if replayed else 2,
            skipped=[coordinator_pb2.SkippedCombination(description="gptq w1 on m",
                                                        reason="makes no sense")])

    def GetSweep(self, request, context):
        self._record("GetSweep", request, context)
        if request.sweep_id == 99:
            context.abort(grpc.StatusCode.NOT_FOUND, "sweep 99 not found")
        return sweep_message(request.sweep_id, 1, 2)

    def ListSweeps(self, request, context):
        self._record("ListSweeps", request, context)
        if not request.page_token:
            return coordinator_pb2.ListSweepsResponse(sweeps=[sweep_message(2, 0, 1)],
                                                      next_page_token="p2")
        return coordinator_pb2.ListSweepsResponse(sweeps=[sweep_message(1, 1, 1)])

    def ListJobs(self, request, context):
        self._record("ListJobs", request, context)
        return coordinator_pb2.ListJobsResponse(jobs=[coordinator_pb2.Job(
            id=7, job_key="k", spec_json='{"model": "m"}', state=types_pb2.JOB_STATE_FAILED,
            error="boom")])

    def WatchSweep(self, request, context):
        self._record("WatchSweep", request, context)
        if request.sweep_id == 8:  # never finishes
            while context.is_active():
                yield sweep_message(8, 0, 2)
                time.sleep(0.1)
            return
        for succeeded in (0, 0, 1, 1, 2):  # repeats carry nothing new
            yield sweep_message(request.sweep_id, succeeded, 2)

    def CancelSweep(self, request, context):
        self._record("CancelSweep", request, context)
        return coordinator_pb2.Sweep(id=request.sweep_id, canceled=2, total=2, finished=True)

    def QueryResults(self, request, context):
        self._record("QueryResults", request, context)
        page = int(request.page_token or "0")
        spec = {"model": "m", "quant": {"method": "rtn", "wbits": 4, "abits": 0,
                                        "group_size": 64}, "eval": {"task": "wikitext2"}}
        job = coordinator_pb2.JobResults(
            job_id=page + 1, job_key=f"key{page}", spec_json=json.dumps(spec),
            provenance_json='{"worker": "w"}',
            metrics=[types_pb2.Metric(name="ppl", value=float("inf") if page == 2 else 6.5 + page,
                                      n=3)])
        return coordinator_pb2.QueryResultsResponse(
            jobs=[job], next_page_token="" if page == 2 else str(page + 1))


class ClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fake = FakeCoordinator()
        cls.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        coordinator_pb2_grpc.add_CoordinatorServicer_to_server(cls.fake, cls.server)
        cls.port = cls.server.add_insecure_port("127.0.0.1:0")
        cls.server.start()
        cls.address = f"127.0.0.1:{cls.port}"

    @classmethod
    def tearDownClass(cls):
        cls.server.stop(None)

    def setUp(self):
        self.fake.calls.clear()
        self.client = Client(self.address, token="secret")

    def tearDown(self):
        self.client.close()

    def last(self, method):
        calls = [c for c in self.fake.calls if c[0] == method]
        self.assertTrue(calls, f"no {method} call")
        return calls[-1]

    def test_sweep_inputs(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "study.yaml")
            with open(path, "w") as f:
                f.write("name: x\nmodels: [m]\n")
            for given in (path, pathlib.Path(path)):
                self.assertEqual(_read_sweep(given), ("name: x\nmodels: [m]\n", "study.yaml", d))
            with self.assertRaises(FileNotFoundError):
                _read_sweep(os.path.join(d, "absent.yaml"))
        self.assertEqual(_read_sweep("name: x\nmodels: [m]\n"),
                         ("name: x\nmodels: [m]\n", "<string>", os.getcwd()))
        self.assertEqual(_read_sweep("{name: x, models: [m]}")[1], "<string>")
        text, source, base = _read_sweep({"name": "x", "models": ["m"], "eval": {"seqlen": 64}})
        self.assertEqual(json.loads(text), {"name": "x", "models": ["m"], "eval": {"seqlen": 64}})
        self.assertEqual((source, base), ("<dict>", os.getcwd()))
        with self.assertRaises(ValueError):
            _read_sweep({"x": float("nan")})
        with self.assertRaises(TypeError):
            _read_sweep(42)

    def test_submit_sends_text_request_id_and_base_dir(self):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            first = self.client.submit({"name": "x"})
        self.assertEqual([str(w.message) for w in caught],
                         [f"sweep {first}: skipped gptq w1 on m: makes no sense"])
        _, request, metadata = self.last("SubmitSweep")
        self.assertEqual(json.loads(request.sweep_yaml), {"name": "x"})
        self.assertEqual(request.base_dir, os.getcwd())
        self.assertEqual(request.source_name, "<dict>")
        self.assertEqual(metadata.get("authorization"), "Bearer secret")
        fresh = request.request_id
        self.assertEqual(len(fresh), 36)  # a UUID
        self.client.submit_detailed("name: y\n", base_dir="")
        self.assertEqual(self.last("SubmitSweep")[1].base_dir, "")
        self.assertNotEqual(self.last("SubmitSweep")[1].request_id, fresh)
        # The same request id: the coordinator answers with the first sweep, replayed.
        a = self.client.submit_detailed("name: z\n", request_id="r-1", base_dir="rel")
        self.assertEqual(self.last("SubmitSweep")[1].base_dir, os.path.abspath("rel"))
        b = self.client.submit_detailed("name: other\n", request_id="r-1")
        self.assertEqual(a.sweep.id, b.sweep.id)
        self.assertEqual((a.replayed, b.replayed, a.new_jobs, b.new_jobs), (False, True, 2, 0))
        self.assertEqual(b.skipped, [("gptq w1 on m", "makes no sense")])

    def test_token_metadata_mirrors_the_cli(self):
        with Client(self.address, token="") as c:
            c.status(1)
        self.assertNotIn("authorization", self.last("GetSweep")[2])
        old = os.environ.get("BITSWEEP_CLIENT_TOKEN")
        os.environ["BITSWEEP_CLIENT_TOKEN"] = "from-env"
        try:
            with Client(self.address) as c:
                c.status(1)
        finally:
            if old is None:
                del os.environ["BITSWEEP_CLIENT_TOKEN"]
            else:
                os.environ["BITSWEEP_CLIENT_TOKEN"] = old
        self.assertEqual(self.last("GetSweep")[2].get("authorization"), "Bearer from-env")

    def test_errors_carry_code_and_message(self):
        with self.assertRaises(BitsweepError) as e:
            self.client.status(99)
        self.assertEqual(e.exception.code, grpc.StatusCode.NOT_FOUND)
        self.assertEqual(e.exception.message, "sweep 99 not found")
        self.assertEqual(str(e.exception), "NOT_FOUND: sweep 99 not found")
        self.fake.fail_next["GetSweep"] = [(grpc.StatusCode.UNAUTHENTICATED, "bad token")]
        with self.assertRaises(BitsweepError) as e:
            self.client.status(1)
        self.assertEqual(e.exception.message, "bad token")
        self.assertIn("was refused", str(e.exception))
        with self.assertRaises(BitsweepError) as e:
            Client("127.0.0.1:1", retries=0).status(1)  # nothing listens there
        self.assertEqual(e.exception.code, grpc.StatusCode.UNAVAILABLE)

    def test_unavailable_is_retried(self):
        self.fake.fail_next["GetSweep"] = [(grpc.StatusCode.UNAVAILABLE, "restarting")]
        self.assertEqual(self.client.status(3).id, 3)
        self.assertEqual(len([c for c in self.fake.calls if c[0] == "GetSweep"]), 2)

    def test_listings_follow_page_tokens(self):
        self.assertEqual([s.id for s in self.client.sweeps()], [2, 1])
        rows = self.client.results(5, as_frame=False)
        self.assertEqual([r["job_id"] for r in rows], [1, 2, 3])
        self.assertEqual([c[1].page_token for c in self.fake.calls if c[0] == "QueryResults"],
                         ["", "1", "2"])
        self.assertEqual(self.last("QueryResults")[1].sweep_id, 5)
        self.assertEqual(rows[0]["value"], 6.5)
        self.assertEqual(rows[2]["value"], float("inf"))
        self.assertEqual(
            {k: rows[0][k] for k in ("method", "wbits", "abits", "group_size", "task", "model")},
            {"method": "rtn", "wbits": 4, "abits": 0, "group_size": 64, "task": "wikitext2",
             "model": "m"})
        self.assertEqual(rows[0]["provenance"], {"worker": "w"})
        jobs = self.client.jobs(5)
        self.assertEqual((jobs[0]["state"], jobs[0]["error"], jobs[0]["spec"]),
                         ("FAILED", "boom", {"model": "m"}))

    def test_results_frame_needs_pandas(self):
        try:
            import pandas  # noqa: F401
        except ImportError:
            with self.assertRaises(ImportError):
                self.client.results(5, as_frame=True)
            self.assertIsInstance(self.client.results(5), list)
            return
        frame = self.client.results(5)
        self.assertEqual(list(frame["job_id"]), [1, 2, 3])

    def test_watch_yields_changes_until_finished(self):
        seen = list(self.client.watch(4))
        self.assertEqual([(s.succeeded, s.finished) for s in seen],
                         [(0, False), (1, False), (2, True)])
        self.assertTrue(seen[-1].ok)
        self.assertEqual(self.last("WatchSweep")[2].get("authorization"), "Bearer secret")
        self.fake.fail_next["WatchSweep"] = [(grpc.StatusCode.UNAVAILABLE, "restarting")]
        self.assertTrue(self.client.wait(4).finished)  # reconnects
        self.fake.fail_next["WatchSweep"] = [(grpc.StatusCode.PERMISSION_DENIED, "no")]
        with self.assertRaises(BitsweepError) as e:
            self.client.wait(4)
        self.assertEqual(e.exception.code, grpc.StatusCode.PERMISSION_DENIED)

    def test_watch_timeout_and_breaking_out(self):
        with self.assertRaises(BitsweepError) as e:
            for _ in self.client.watch(8, timeout=1.0):
                pass
        self.assertEqual(e.exception.code, grpc.StatusCode.DEADLINE_EXCEEDED)
        for sweep in self.client.watch(8):
            self.assertFalse(sweep.finished)
            break  # cancels the stream; the fake's loop ends
        self.assertEqual(self.client.status(8).id, 8)

    def test_cancel(self):
        sweep = self.client.cancel(6)
        self.assertEqual((sweep.id, sweep.canceled, sweep.finished, sweep.ok), (6, 2, True, False))
        self.assertEqual(self.last("CancelSweep")[1].sweep_id, 6)

    def test_package_exports(self):
        self.assertEqual(sorted(bitsweep_client.__all__),
                         ["BitsweepError", "Client", "Submission", "Sweep"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
