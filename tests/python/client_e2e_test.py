#!/usr/bin/env python3
"""bitsweep_client end to end: `bitsweep local --keep` runs a private PostgreSQL, the
coordinator and a worker; the client submits a small sweep on models/demo, watches it to
completion, and its results() must equal `bitsweep results --format json` row for row. Then:
idempotent resubmission, a sweep file by path, errors, cancel, and tokens and TLS on a
second coordinator over the same database (the CLI with the same flags must read the same results),
examples/python/plot_ppl_vs_bits.py against the sweep, and a sweep whose early_abort rule skips a
job: results() lists it with its reason, as the CLI does.

Run from the source tree with PYTHONPATH=build/clients/python and BITSWEEP_BINARY_DIR=build
(tests/python/CMakeLists.txt). Exits 77 (ctest: skipped) only when this Python has no gRPC.
"""

import ctypes
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import unittest

try:
    import grpc
except ImportError:
    print("SKIP: no gRPC for this Python (apt-get install python3-grpcio python3-protobuf)")
    sys.exit(77)

from bitsweep_client import BitsweepError, Client  # noqa: E402

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("BITSWEEP_BINARY_DIR", os.path.join(SOURCE, "build"))
BITSWEEP = os.path.join(BINARY, "cli", "bitsweep")
COORDINATOR = os.path.join(BINARY, "server", "bitsweep-coordinator")
# As tests/testing/paths.h ScratchDir: a folder per process, so concurrent runs do not collide.
SCRATCH = os.path.join(BINARY, "test-scratch", f"p{os.getpid()}", "python_client_e2e")
START_TIMEOUT_S = 300
SWEEP_TIMEOUT_S = 600

# Three jobs on the shipped demo model: FP, RTN w3 and w4, WikiText-2 on two windows. The model
# path is relative: submit() resolves it against the working directory (the source tree).
SWEEP = {
    "name": "pyclient",
    "max_attempts": 1,
    "models": ["models/demo"],
    "methods": [{"method": "rtn", "wbits": [3, 4], "group": [64]}],
    "tasks": [{"task": "wikitext2", "limit": 2}],
    "eval": {"seqlen": 64},
}

# RTN w1 diverges on the demo model (ppl ~10^3 against FP's ~6): under the early_abort rule its
# C4 job is skipped once its WikiText-2 result arrives; FP's jobs run.
ABORT_SWEEP = {
    "name": "pyclient-abort",
    "max_attempts": 1,
    "models": ["models/demo"],
    "methods": [{"method": "rtn", "wbits": [1], "group": [64]}],
    "tasks": [{"task": "wikitext2", "limit": 2}, {"task": "c4", "limit": 2}],
    "eval": {"seqlen": 64},
    "early_abort": {"ppl_ratio": 3.0, "on": "wikitext2"},
}


def die_with_parent():
    """In the child: SIGTERM when this test process dies (a ctest timeout), so nothing stays."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def wait_for_text(path, pattern, seconds, process):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with open(path, errors="replace") as f:
            match = re.search(pattern, f.read())
        if match:
            return match
        if process.poll() is not None:
            break
        time.sleep(0.2)
    with open(path, errors="replace") as f:
        raise AssertionError(f"no /{pattern}/ in {path} (exit {process.poll()}):\n{f.read()}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args):
    """`bitsweep args`: (exit code, stdout, stderr)."""
    r = subprocess.run([BITSWEEP, *args], capture_output=True, text=True, timeout=300,
                       env={k: v for k, v in os.environ.items() if not k.startswith("BITSWEEP_")})
    return r.returncode, r.stdout, r.stderr


def comparable(rows):
    """Rows with the keys of `bitsweep results --format json`, non-finite values as its null,
    in a fixed order."""
    keys = ("job_id", "job_key", "spec", "metric", "value", "stderr", "n", "provenance", "skipped")
    out = []
    for r in rows:
        row = {k: r.get(k) for k in keys}  # the CLI leaves out what a row does not have
        for k in ("value", "stderr"):
            if isinstance(row[k], float) and not math.isfinite(row[k]):
                row[k] = None
        out.append(row)
    return sorted(out, key=lambda r: (r["job_id"], r["metric"] or ""))


class ClientEndToEnd(unittest.TestCase):
    local = None
    others = []  # the coordinator test_6 starts
    clients = []

    @classmethod
    def setUpClass(cls):
        shutil.rmtree(SCRATCH, ignore_errors=True)
        os.makedirs(SCRATCH)
        cls.addClassCleanup(cls.stop_services)  # also when setUpClass fails
        cls.log = os.path.join(SCRATCH, "local.log")
        with open(cls.log, "w") as log:
            cls.local = subprocess.Popen(
                [BITSWEEP, "local", "--keep", "--workers", "1", "--threads-per-worker", "1",
                 "--state-dir", os.path.join(SCRATCH, "state"),
                 "--data-dir", os.path.join(SOURCE, "models", "demo", "heldout")],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent)
        served = wait_for_text(cls.log, r"serving until Ctrl-C: coordinator (127\.0\.0\.1:\d+)",
                               START_TIMEOUT_S, cls.local)
        cls.address = served.group(1)
        cls.pg_port = int(wait_for_text(cls.log, r"PostgreSQL \(pid \d+\) on 127\.0\.0\.1:(\d+)",
                                        5, cls.local).group(1))
        # "serving" is printed once the coordinator is started, not yet listening: the calls
        # are retried while it is unreachable.
        cls.client = cls.connect(cls.address, token="", retries=120)
        cls.request_id = "pyclient-e2e-1"
        cls.submission = cls.client.submit_detailed(SWEEP, request_id=cls.request_id)
        cls.sweep_id = cls.submission.sweep.id
        cls.events = list(cls.client.watch(cls.sweep_id, timeout=SWEEP_TIMEOUT_S))

    @classmethod
    def stop_services(cls):
        # Open channels first: gRPC 1.51 servers wait out their shutdown grace while a client
        # keeps an idle connection (server/coordinator.cc), and `bitsweep local` kills a
        # coordinator that takes longer.
        for c in cls.clients:
            c.close()
        for p in (*cls.others, cls.local):
            if p is None or p.poll() is not None:
                continue
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if cls.local is not None:
            with open(cls.log, errors="replace") as f:
                tail = f.read()[-3000:]
            print(f"--- bitsweep local (exit {cls.local.returncode}):\n{tail}", file=sys.stderr)

    @classmethod
    def connect(cls, *args, **kwargs):
        """A Client, closed before the services stop."""
        cls.clients.append(Client(*args, **kwargs))
        return cls.clients[-1]

    def test_1_submit_and_watch_to_completion(self):
        s = self.submission
        self.assertFalse(s.replayed)
        self.assertEqual((s.sweep.total, s.new_jobs, s.skipped), (3, 3, []))
        self.assertTrue(self.events, "watch yielded nothing")
        last = self.events[-1]
        self.assertTrue(last.finished)
        self.assertTrue(last.ok, str(last))
        self.assertEqual(last.succeeded, 3)
        for before, after in zip(self.events, self.events[1:]):
            self.assertLessEqual(before.succeeded, after.succeeded)
            self.assertNotEqual(before, after)  # only changes are yielded
        self.assertEqual(self.client.status(self.sweep_id), last)
        self.assertIn(self.sweep_id, [x.id for x in self.client.sweeps()])
        self.assertEqual({j["state"] for j in self.client.jobs(self.sweep_id)}, {"SUCCEEDED"})

    def test_2_results_equal_the_cli_json(self):
        rows = self.client.results(self.sweep_id, as_frame=False)
        code, out, err = cli("results", str(self.sweep_id), "--format", "json",
                             "--coordinator", self.address)
        self.assertEqual(code, 0, err)
        expected = comparable(json.loads(out))
        self.assertEqual(len(expected), 3)  # wikitext2 ppl of fp, rtn w3, rtn w4
        self.assertEqual(comparable(rows), expected)
        by_bits = {(r["method"], r["wbits"]): r for r in rows if r["metric"] == "ppl"}
        self.assertEqual(sorted(k for k in by_bits if k[0] == "rtn"), [("rtn", 3), ("rtn", 4)])
        self.assertEqual(len(by_bits), 3)
        for r in rows:
            self.assertEqual(r["model"], os.path.join(SOURCE, "models", "demo"))
            self.assertEqual(r["task"], "wikitext2")
            self.assertTrue(math.isfinite(r["value"]) and r["value"] > 1, r)
        # Small pages give the same rows: the pages are followed.
        self.assertEqual(comparable(self.client.results(self.sweep_id, as_frame=False,
                                                        page_size=1)), expected)
        try:
            import pandas  # noqa: F401
        except ImportError:
            return
        frame = self.client.results(self.sweep_id)
        self.assertEqual(sorted(frame["job_id"]), sorted(r["job_id"] for r in rows))

    def test_2b_describe_and_logs_equal_the_cli(self):
        job_id = self.client.jobs(self.sweep_id)[0]["id"]
        code, out, err = cli("describe", "job", str(job_id), "-o", "json",
                             "--coordinator", self.address)
        self.assertEqual(code, 0, err)
        described = self.client.describe(job_id)
        self.assertEqual(described, json.loads(out))
        self.assertEqual(described["events"][-1]["to_state"], "SUCCEEDED")
        code, out, err = cli("logs", str(job_id), "--coordinator", self.address)
        text = self.client.logs(job_id)
        if code == 0:
            self.assertEqual(out, text if text.endswith("\n") else text + "\n")
        else:  # the job process printed nothing: both say there is no output
            self.assertIsNone(text)
        with self.assertRaises(BitsweepError) as missing:
            self.client.describe(10**9)
        self.assertEqual(missing.exception.code, grpc.StatusCode.NOT_FOUND)

    def test_3_resubmission_is_idempotent_and_paths_resolve(self):
        again = self.client.submit_detailed("name: something else\n", request_id=self.request_id)
        self.assertTrue(again.replayed)
        self.assertEqual(again.sweep.id, self.sweep_id)
        # The same sweep as a file elsewhere, its model named relative to the file's folder:
        # the same jobs, answered from the stored results.
        folder = os.path.join(SCRATCH, "sweeps")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, "again.yaml")
        model = os.path.relpath(os.path.join(SOURCE, "models", "demo"), folder)
        with open(path, "w") as f:
            f.write(json.dumps(dict(SWEEP, name="again", models=[model]), indent=1))
        reused = self.client.submit_detailed(path)
        self.assertEqual((reused.reused_jobs, reused.new_jobs), (3, 0))
        self.assertTrue(self.client.wait(reused.sweep.id, timeout=60).ok)
        self.assertEqual(comparable(self.client.results(reused.sweep.id, as_frame=False)),
                         comparable(self.client.results(self.sweep_id, as_frame=False)))

    def test_4_errors_carry_code_and_message(self):
        with self.assertRaises(BitsweepError) as e:
            self.client.status(987654)
        self.assertEqual(e.exception.code, grpc.StatusCode.NOT_FOUND)
        self.assertIn("987654", e.exception.message)
        with self.assertRaises(BitsweepError) as e:
            self.client.submit("name: bad\nmodels: [no/such/model]\ntasks: [wikitext2]\n")
        self.assertEqual(e.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("no/such/model", e.exception.message)

    def test_5_cancel(self):
        sweep = dict(SWEEP, name="to-cancel",
                     methods=[{"method": "rtn", "wbits": [2, 5, 6, 7], "group": [32]}],
                     baseline=False)
        sweep_id = self.client.submit(sweep)
        canceled = self.client.cancel(sweep_id)
        self.assertEqual((canceled.id, canceled.total), (sweep_id, 4))
        self.assertGreaterEqual(canceled.canceled, 1, str(canceled))
        done = self.client.wait(sweep_id, timeout=SWEEP_TIMEOUT_S)
        self.assertTrue(done.finished)
        self.assertEqual(done.done, done.total)
        self.assertGreaterEqual(done.canceled, 1)
        self.assertFalse(done.ok)

    def test_6_tokens_and_tls_as_the_cli_sends_them(self):
        certs = os.path.join(SCRATCH, "certs")
        os.makedirs(certs, exist_ok=True)
        make_certificates(certs)
        ca = os.path.join(certs, "ca.pem")
        address = f"127.0.0.1:{free_port()}"
        self.start_coordinator(address, certs, "second")
        client = self.connect(address, token="client-secret", tls_ca=ca, retries=60)
        self.assertTrue(client.status(self.sweep_id).ok)  # retried until it is up
        rows = client.results(self.sweep_id, as_frame=False)
        code, out, err = cli("results", str(self.sweep_id), "--format", "json",
                             "--coordinator", address, "--token", "client-secret", "--tls-ca", ca)
        self.assertEqual(code, 0, err)
        self.assertEqual(comparable(rows), comparable(json.loads(out)))
        with self.assertRaises(BitsweepError) as e:
            self.connect(address, token="", tls_ca=ca, retries=0).status(self.sweep_id)
        self.assertEqual(e.exception.code, grpc.StatusCode.UNAUTHENTICATED)
        self.assertIn("none was given", str(e.exception))
        with self.assertRaises(BitsweepError) as e:
            self.connect(address, token="wrong", tls_ca=ca, retries=0).status(self.sweep_id)
        self.assertEqual(e.exception.code, grpc.StatusCode.UNAUTHENTICATED)
        self.assertIn("was refused", str(e.exception))
        viewer = self.connect(address, token="viewer-secret", tls_ca=ca, retries=0)
        self.assertEqual(len(viewer.results(self.sweep_id, as_frame=False)), len(rows))
        self.assertEqual(viewer.wait(self.sweep_id, timeout=60).id, self.sweep_id)
        with self.assertRaises(BitsweepError) as e:
            viewer.cancel(self.sweep_id)
        self.assertEqual(e.exception.code, grpc.StatusCode.PERMISSION_DENIED)
        with self.assertRaises(BitsweepError) as e:  # plaintext to a TLS port
            self.connect(address, token="client-secret", retries=0).status(self.sweep_id)
        self.assertEqual(e.exception.code, grpc.StatusCode.UNAVAILABLE)


    def start_coordinator(self, address, certs, name, *extra):
        """Another coordinator over the same database, with tokens and TLS; stopped at the end."""
        with open(os.path.join(SCRATCH, f"{name}-coordinator.log"), "w") as f:
            self.others.append(subprocess.Popen(
                [COORDINATOR, "--listen", address, "--db",
                 f"host=127.0.0.1 port={self.pg_port} user=bitsweep dbname=bitsweep "
                 "connect_timeout=5", "--metrics-listen", "", "--http-listen", "",
                 "--client-token", "client-secret", "--viewer-token", "viewer-secret",
                 "--tls-cert", os.path.join(certs, "server.pem"),
                 "--tls-key", os.path.join(certs, "server.key"), *extra],
                stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent))

    def test_7_example_plots_ppl_against_bits(self):
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            self.skipTest("no matplotlib (Debian python3-matplotlib)")
        png = os.path.join(SCRATCH, "ppl_vs_bits.png")
        r = subprocess.run(
            [sys.executable, os.path.join(SOURCE, "examples", "python", "plot_ppl_vs_bits.py"),
             "--coordinator", self.address, "--sweep", str(self.sweep_id), "--out", png],
            capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(png, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        self.assertIn("rtn", r.stdout)

    def test_8_results_list_jobs_skipped_by_early_abort(self):
        sweep_id = self.client.submit(ABORT_SWEEP, request_id="pyclient-e2e-abort")
        events = list(self.client.watch(sweep_id, timeout=SWEEP_TIMEOUT_S))
        self.assertTrue(events and events[-1].finished, events[-1:])
        rows = self.client.results(sweep_id, as_frame=False)
        skipped = [r for r in rows if r["skipped"]]
        self.assertEqual(len(skipped), 1, rows)
        s = skipped[0]
        self.assertEqual((s["method"], s["wbits"], s["task"]), ("rtn", 1, "c4"), s)
        self.assertTrue(s["skipped"].startswith("early abort: wikitext2 ppl"), s)
        self.assertEqual((s["metric"], s["value"], s["n"]), (None, None, None))
        self.assertTrue(all(r["skipped"] is None for r in rows if r["metric"] is not None))
        code, out, err = cli("results", str(sweep_id), "--format", "json",
                             "--coordinator", self.address)
        self.assertEqual(code, 0, err)
        self.assertEqual(comparable(rows), comparable(json.loads(out)))


def make_certificates(folder):
    """A CA, and a server certificate for 127.0.0.1 it signed (as tests/testing/certs.h)."""
    with open(os.path.join(folder, "server.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for argv in (
        ["req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
         "-subj", "/CN=bitsweep-test-ca"],
        ["req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"],
        ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-days", "2", "-extfile", "server.ext", "-out", "server.pem"],
    ):
        subprocess.run(["openssl", *argv], cwd=folder, check=True, capture_output=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
