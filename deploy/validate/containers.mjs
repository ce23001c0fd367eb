// bitsweep's own rules for the coordinator's and the workers' containers: their args are flags
// that server/main.cc / worker/main.cc define, the shared volume at one path, the coordinator's
// listeners, container ports and probes (gRPC probes on its --listen port, or with TLS on the
// plaintext --health-listen port), the dashboard's --http-listen, and what a worker offers to a
// job against its resources.
import fs from "node:fs";
import path from "node:path";
import { ROOT, SHARED_MOUNT } from "./common.mjs";
import { splitImage } from "./render.mjs";

function definedFlags(mainFile) {
  const src = fs.readFileSync(path.join(ROOT, mainFile), "utf8");
  return new Set([...src.matchAll(/add_(?:option|flag)\("(--[a-z0-9-]+)"/g)].map((m) => m[1]));
}

// The flags of bitsweep-coordinator and bitsweep-worker, by container name.
export const bitsweepFlags = () => ({ coordinator: definedFlags("server/main.cc"), worker: definedFlags("worker/main.cc") });

function parseQuantity(q) {
  const m = String(q).match(/^([0-9.]+)([A-Za-z]*)$/);
  if (!m) return NaN;
  const mult = { "": 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4, m: 1e-3 };
  return Number(m[1]) * (mult[m[2]] ?? NaN);
}

// The port and host of "host:port" ("" when absent).
const portOf = (addr) => Number(String(addr ?? "").split(":").pop());
const isLoopback = (addr) => /^(127\.|localhost:|::1:|\[::1\]:)/.test(String(addr));

// bitsweep-coordinator's --http-listen when the flag is not given (server/main.cc).
function defaultHttpListen() {
  const src = fs.readFileSync(path.join(ROOT, "server/main.cc"), "utf8");
  return src.match(/config\.http_listen = "([^"]*)"/)?.[1] ?? "";
}

function argMap(args) {
  const out = new Map();
  for (const a of args ?? []) {
    const m = String(a).match(/^(--[a-z0-9-]+)(?:=(.*))?$/);
    if (m) out.set(m[1], m[2] ?? true);
  }
  return out;
}

// Checks container `c` of workload `w` when it is bitsweep's (named coordinator or worker):
// `volumes` are the pod's by name, `env` the names of the container's variables, `flags` from
// bitsweepFlags(), `claims` the names of the workload's volumeClaimTemplates (a volume of each
// pod's own); container ports serving web pages or /metrics are added to `webPorts` ({w, name,
// containerPort, scheme, metrics}), errors reported through err(w, message).
export function checkBitsweepContainer(w, c, { err, volumes, claims, env, flags, webPorts }) {
  const cw = `container '${c.name}'`;
  const ports = new Map((c.ports ?? []).map((p) => [p.name, p.containerPort]));
  const args = argMap(c.args);
  const known = flags[c.name];
  if (known) {
    for (const a of c.args ?? []) {
      const f = String(a).match(/^--[a-z0-9-]+/)?.[0];
      if (!f || !known.has(f)) err(w, `${cw} arg '${a}' is not a flag of bitsweep-${c.name} (${c.name === "coordinator" ? "server" : "worker"}/main.cc)`);
    }
    const shared = (c.volumeMounts ?? []).find((m) => m.mountPath === SHARED_MOUNT);
    if (!shared || !volumes.get(shared.name)?.persistentVolumeClaim) {
      err(w, `${cw} must mount the shared volume at ${SHARED_MOUNT} (sweeps name model paths under it)`);
    }
  }
  if (c.name === "coordinator") checkCoordinator(w, c, { cw, err, args, ports, env, webPorts });
  if (c.name === "worker") {
    checkWorker(w, c, { cw, err, args, ports, volumes, webPorts });
    checkStateDir(w, c, { cw, err, args, volumes, claims });
  }
}

function checkCoordinator(w, c, { cw, err, args, ports, env, webPorts }) {
  const listenPort = Number(String(args.get("--listen") ?? "").split(":").pop());
  const tls = args.has("--tls-cert");
  if (!listenPort) err(w, `${cw} must set --listen host:port`);
  if (ports.get("grpc") !== listenPort) err(w, `${cw} port 'grpc' (${ports.get("grpc")}) is not the --listen port ${listenPort}`);
  const metricsPort = Number(String(args.get("--metrics-listen") ?? "").split(":").pop());
  if (ports.get("metrics") !== metricsPort) err(w, `${cw} port 'metrics' is not the --metrics-listen port`);
  if (!tls && !args.has("--insecure-allow-remote")) err(w, `${cw}: a non-loopback --listen needs --tls-cert or --insecure-allow-remote`);
  // /metrics is HTTPS with the coordinator's certificate when TLS is on, else plain HTTP
  // (server/server_config.h): a non-loopback one needs TLS or --insecure-allow-remote. With TLS
  // on, every listener has it, so the flag waives nothing and is a leftover.
  const metricsRemote = checkMetricsListen(w, { cw, err, args, dflt: "127.0.0.1:9464", tls });
  if (tls && args.has("--insecure-allow-remote")) err(w, `${cw}: --insecure-allow-remote with TLS on is a leftover (it waives only TLS, which every listener has)`);
  if (metricsRemote && ports.has("metrics")) {
    webPorts.push({ w, name: "metrics", containerPort: ports.get("metrics"), scheme: tls ? "https" : "http", metrics: true });
  }
  // The dashboard: --http-listen (default from server/main.cc) <-> container port 'http'.
  const httpListen = String(args.get("--http-listen") ?? defaultHttpListen());
  const httpPort = portOf(httpListen);
  const remote = httpListen !== "" && !isLoopback(httpListen);
  if (ports.has("http")) {
    if (!httpListen) err(w, `${cw} has a port 'http' but the dashboard is off (--http-listen "")`);
    else if (!remote) err(w, `${cw} port 'http': --http-listen ${httpListen} is loopback only, unreachable through the pod's port`);
    else if (ports.get("http") !== httpPort) err(w, `${cw} port 'http' (${ports.get("http")}) is not the --http-listen port ${httpPort}`);
    webPorts.push({ w, name: "http", containerPort: ports.get("http"), scheme: tls ? "https" : "http" });
  } else if (remote) {
    err(w, `${cw}: --http-listen ${httpListen} has no container port named 'http'`);
  }
  if (remote) {
    if (!env.has("BITSWEEP_CLIENT_TOKEN") && !args.has("--client-token")) {
      err(w, `${cw}: a dashboard on a non-loopback --http-listen needs the client token (env BITSWEEP_CLIENT_TOKEN or --client-token): its JSON API serves the results`);
    }
    if (!tls && !args.has("--insecure-allow-remote")) err(w, `${cw}: a non-loopback --http-listen needs --tls-cert or --insecure-allow-remote`);
  }
  // The health-only server (--health-listen): plaintext whatever --listen uses, so the
  // kubelet's gRPC probes (which cannot speak TLS) reach it; container port 'health'.
  const healthListen = String(args.get("--health-listen") ?? "");
  const healthPort = healthListen ? portOf(healthListen) : 0;
  if (healthListen) {
    if (!healthPort) err(w, `${cw}: --health-listen ${healthListen} is not host:port with a fixed port (the probes need it)`);
    else if (isLoopback(healthListen)) err(w, `${cw}: --health-listen ${healthListen} is loopback only, unreachable by the kubelet's probes`);
    if (!ports.has("health")) err(w, `${cw}: --health-listen ${healthListen} has no container port named 'health'`);
    else if (ports.get("health") !== healthPort) err(w, `${cw} port 'health' (${ports.get("health")}) is not the --health-listen port ${healthPort}`);
  } else if (ports.has("health")) {
    err(w, `${cw} has a port 'health' but no --health-listen`);
  }
  const used = [["--listen", listenPort], ["--metrics-listen", metricsPort], ["--http-listen", remote ? httpPort : 0], ["--health-listen", healthPort]].filter(([, p]) => p);
  for (const [i, [f, p]] of used.entries()) {
    for (const [g, q] of used.slice(i + 1)) if (p === q) err(w, `${cw}: ${f} and ${g} both use port ${p}`);
  }
  for (const kind of ["startupProbe", "readinessProbe", "livenessProbe"]) {
    const p = c[kind];
    if (!p) { err(w, `${cw} has no ${kind}`); continue; }
    if (!tls) {
      if (p.grpc?.port !== listenPort) err(w, `${cw} ${kind} must be a gRPC probe (grpc.health.v1) on port ${listenPort}`);
    } else if (p.grpc?.port === listenPort) {
      // The kubelet's gRPC probes cannot speak TLS.
      err(w, `${cw} ${kind}: a gRPC probe cannot reach a TLS port; probe the plaintext --health-listen port${healthPort ? ` ${healthPort}` : ""}`);
    } else if (healthListen) {
      if (p.grpc?.port !== healthPort) err(w, `${cw} ${kind} must be a gRPC probe (grpc.health.v1) on the --health-listen port ${healthPort}`);
    } else {
      // No health port: a TCP probe only shows the TLS port accepts connections.
      const port = p.tcpSocket?.port;
      if (port !== listenPort && port !== "grpc") err(w, `${cw} ${kind} must be a TCP probe on the gRPC port, or give --health-listen and a gRPC probe on it`);
    }
  }
}

function checkWorker(w, c, { cw, err, args, ports, volumes, webPorts }) {
  const lim = c.resources?.limits ?? {};
  const req = c.resources?.requests ?? {};
  const gpus = Number(lim["nvidia.com/gpu"] ?? 0);
  if (Number(req["nvidia.com/gpu"] ?? gpus) !== gpus) err(w, `${cw}: nvidia.com/gpu requests and limits differ`);
  const devices = Number(args.get("--devices") ?? 1);
  const tp = Number(args.get("--max-tp") ?? 1);
  checkGpus(w, c, { cw, err, gpus, devices });
  if (tp > devices) err(w, `${cw}: --max-tp=${tp} exceeds --devices=${devices}`);
  const memGb = Number(args.get("--memory-gb") ?? 0);
  if (memGb > 0 && memGb * 1e9 > parseQuantity(lim.memory)) err(w, `${cw}: --memory-gb=${memGb} exceeds the memory limit ${lim.memory}`);
  if (!args.has("--threads")) err(w, `${cw}: set --threads (without a CPU limit the default is every core of the node, not the pod's share)`);
  for (const f of ["--artifacts", "--data-dir"]) {
    if (!String(args.get(f) ?? "").startsWith(`${SHARED_MOUNT}/`)) err(w, `${cw}: ${f} must be under ${SHARED_MOUNT}/`);
  }
  const mport = Number(String(args.get("--metrics-listen") ?? "").split(":").pop());
  if (ports.get("metrics") !== mport) err(w, `${cw} port 'metrics' is not the --metrics-listen port`);
  // /metrics is HTTPS with the worker's own server certificate (--metrics-tls-cert/-key; client
  // certificates with --metrics-tls-ca), else plain HTTP (worker/service.h).
  const tls = args.has("--metrics-tls-cert");
  if (tls !== args.has("--metrics-tls-key")) err(w, `${cw}: --metrics-tls-cert and --metrics-tls-key go together`);
  if (args.has("--metrics-tls-ca") && !tls) err(w, `${cw}: --metrics-tls-ca without --metrics-tls-cert (client certificates need HTTPS)`);
  for (const f of ["--metrics-tls-cert", "--metrics-tls-key", "--metrics-tls-ca"]) {
    if (args.has(f)) checkSecretFile(w, c, { cw, err, volumes, flag: f, file: String(args.get(f)) });
  }
  const metricsRemote = checkMetricsListen(w, { cw, err, args, dflt: "", tls });
  if (args.has("--insecure-allow-remote") && (!metricsRemote || tls)) err(w, `${cw}: --insecure-allow-remote ${tls ? "with --metrics-tls-cert" : "without a non-loopback --metrics-listen"} is a leftover`);
  // An httpGet probe of /metrics speaks what the port serves; the kubelet has no client
  // certificate, so under --metrics-tls-ca only a TCP probe can pass.
  for (const kind of ["startupProbe", "readinessProbe", "livenessProbe"]) {
    const get = c[kind]?.httpGet;
    if (!get || (get.port !== "metrics" && get.port !== ports.get("metrics"))) continue;
    const scheme = (get.scheme ?? "HTTP").toLowerCase();
    if (args.has("--metrics-tls-ca")) err(w, `${cw} ${kind}: an httpGet probe cannot present the client certificate --metrics-tls-ca requires; use a tcpSocket probe`);
    else if (scheme !== (tls ? "https" : "http")) err(w, `${cw} ${kind} probes /metrics as ${scheme.toUpperCase()} but it is served as ${tls ? "HTTPS" : "HTTP"}`);
  }
  if (metricsRemote && ports.has("metrics")) {
    webPorts.push({ w, name: "metrics", containerPort: ports.get("metrics"), scheme: tls ? "https" : "http", metrics: true });
  }
}

// A certificate or key flag names a file on a mounted Secret volume (never the image's or a
// writable volume's), so that rotating the Secret is how the file changes.
function checkSecretFile(w, c, { cw, err, volumes, flag, file }) {
  const under = (m) => file.startsWith(`${m.mountPath.replace(/\/$/, "")}/`);
  const mount = (c.volumeMounts ?? []).filter(under).sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
  const secret = mount && volumes.get(mount.name)?.secret;
  if (!secret) { err(w, `${cw}: ${flag} ${file} is on no mounted Secret volume`); return; }
  const key = file.slice(mount.mountPath.replace(/\/$/, "").length + 1);
  if (secret.items && !secret.items.some((i) => i.path === key)) err(w, `${cw}: ${flag} ${file}: volume '${mount.name}' projects no '${key}'`);
}

// The rule both binaries apply at start (server/server_config.h, worker/service.h): a
// non-loopback --metrics-listen needs TLS (the coordinator's, when on; the worker's
// --metrics-tls-cert: /metrics is then HTTPS) or --insecure-allow-remote. Whether it is remote.
function checkMetricsListen(w, { cw, err, args, dflt, tls }) {
  const listen = String(args.get("--metrics-listen") ?? dflt);
  const remote = listen !== "" && !isLoopback(listen);
  if (remote && !tls && !args.has("--insecure-allow-remote")) err(w, `${cw}: a non-loopback --metrics-listen (plain HTTP) needs ${cw.includes("coordinator") ? "--tls-cert" : "--metrics-tls-cert"} or --insecure-allow-remote`);
  return remote;
}

// A worker given GPUs (nvidia.com/gpu) offers that many to a job (--devices), is told how many
// it was given (env BITSWEEP_EXPECT_GPUS: the downward API cannot read extended resources, so a
// literal) and runs the CUDA image. The worker refuses to start when the count, --devices and the
// GPUs it discovers differ: here the three values in the manifest must agree.
function checkGpus(w, c, { cw, err, gpus, devices }) {
  const env = (c.env ?? []).find((e) => e.name === "BITSWEEP_EXPECT_GPUS");
  if (gpus === 0 && !env) return;
  if (env && env.value === undefined) {
    err(w, `${cw}: env BITSWEEP_EXPECT_GPUS must be a literal value (the downward API cannot read nvidia.com/gpu)`);
  }
  const expect = env?.value === undefined ? "(unset)" : env.value;
  if (devices !== gpus || String(expect) !== String(gpus)) {
    err(w, `${cw}: nvidia.com/gpu limit ${gpus}, --devices=${devices} and env BITSWEEP_EXPECT_GPUS=${expect} must agree (the worker refuses to start when they differ from the GPUs it discovers)`);
  }
  const image = splitImage(String(c.image ?? "")).name;
  if (gpus > 0 && path.basename(image) !== "worker-cuda") {
    err(w, `${cw}: requests ${gpus} nvidia.com/gpu but runs ${c.image}, not the CUDA worker image (worker-cuda)`);
  }
}

// The worker's --state-dir (its result spool, name and session: README "Reliability") must be on
// a writable volume of the pod's own, never the container's (read-only) root filesystem, which
// loses it with the container. A volume all the pods share (a pod volume claiming a PVC) is one
// directory for every worker, and a state directory takes one worker only: there it must be
// made per pod with $(POD_NAME).
function checkStateDir(w, c, { cw, err, args, volumes, claims }) {
  const dir = args.get("--state-dir");
  if (typeof dir !== "string" || !dir.startsWith("/")) {
    err(w, `${cw}: set --state-dir to an absolute path on a mounted volume (the default is under /tmp; the worker keeps its undelivered results, name and session there)`);
    return;
  }
  const under = (m) => dir === m.mountPath || dir.startsWith(`${m.mountPath.replace(/\/$/, "")}/`);
  const mount = (c.volumeMounts ?? []).filter(under).sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
  if (!mount) {
    err(w, `${cw}: --state-dir ${dir} is on no mounted volume (the container's root filesystem: its spooled results, name and session would be lost with the container)`);
    return;
  }
  if (mount.readOnly) err(w, `${cw}: --state-dir ${dir} is on volume '${mount.name}', mounted read-only`);
  const shared = volumes.get(mount.name)?.persistentVolumeClaim && !claims.has(mount.name);
  if (shared && !dir.includes("$(POD_NAME)")) {
    err(w, `${cw}: --state-dir ${dir} is on volume '${mount.name}', which every pod of ${w.kind} ${w.metadata?.name} shares: one worker per state directory (use a volumeClaimTemplate, or $(POD_NAME) in the path)`);
  }
}
