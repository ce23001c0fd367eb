// Offline validation of deploy/ (run by deploy/validate/run.sh, which ctest calls).
//
//   node validate.mjs              validate everything; exit 1 naming each problem
//   node validate.mjs --self-test  prove the checks bite: broken copies must be rejected
//
// What it checks:
//  * Kustomize: base, postgres and every overlay are rendered by a small renderer of the
//    kustomization features deploy/k8s uses (resources, namespace, images, replicas, JSON 6902
//    patches); any other kustomization key is an error, never silently ignored. Where a real
//    kustomize is on the PATH (`kubectl kustomize`), each render is compared with its output.
//  * Every rendered object against the Kubernetes API schemas (kubernetes-models) and the
//    prometheus-operator CRD schemas, rejecting unknown kinds, and unknown (misspelt) fields
//    as a strict API server would (strict_fields.mjs).
//  * Cross-references: selectors match pod labels, Service target ports and ServiceMonitor
//    ports exist, ConfigMap keys, Secrets (deploy/k8s/secrets.example.yaml) and PVCs exist,
//    container args are flags that server/main.cc / worker/main.cc define, the coordinator's
//    probes gRPC probes on its --listen port, or with TLS on the plaintext --health-listen port
//    (container port 'health'; TCP probes on the gRPC port only with TLS and no --health-listen),
//    GPUs requested = --devices >= --max-tp,
//    --memory-gb under the memory limit, the shared volume at one path, resources and a
//    non-root security context on every container.
//  * The dashboard's wiring: the --http-listen port (server/main.cc's default when absent) is
//    the container port 'http', not loopback, distinct from --listen and --metrics-listen, with
//    the client token set; every Service targetPort (name or number) is a container port of
//    the selected pods that their NetworkPolicies admit traffic to, with appProtocol
//    http/https as TLS is off/on; an Ingress routes to an existing Service port that serves
//    web pages, with ingress-nginx's backend-protocol HTTP/HTTPS as TLS is off/on, and its TLS
//    Secrets are in secrets.example.yaml.
//  * The PrometheusRule equals deploy/monitoring/bitsweep-alerts.yaml; `promtool check rules`
//    and `promtool test rules` on it; every metric and label name in alerts and in the Grafana
//    dashboard is one that server/metrics.cc or worker/metrics.cc exports; every dashboard
//    query parses (promtool checks it as a recording rule).
//  * Dockerfiles: syntax (dockerfile-utils), non-root USER, ENTRYPOINT the real binaries, CMake
//    targets and output paths that exist in the tree; where the binaries are built, every shared
//    library they load comes from a package the image installs (dpkg, apt-cache, ldd).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import YAML from "yaml";
import jsonpatch from "fast-json-patch";
import { validate as lintDockerfile } from "dockerfile-utils";
import { unknownFields } from "./strict_fields.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "../..");
const DEPLOY = path.join(ROOT, "deploy");
const K8S = path.join(DEPLOY, "k8s");
const RENDERS = ["base", "postgres", "overlays/cpu", "overlays/gpu", "overlays/production"];
// Renders that are complete deployments (the base and postgres are parts of them).
const COMPLETE = ["overlays/cpu", "overlays/gpu", "overlays/production"];
const SHARED_MOUNT = "/shared";

const rel = (p) => path.relative(ROOT, p);
const clone = (o) => JSON.parse(JSON.stringify(o));
const id = (o) => `${o?.kind}/${o?.metadata?.name}`;

// ---- YAML and the kustomize subset ----------------------------------------------------------

function loadDocs(file) {
  const docs = YAML.parseAllDocuments(fs.readFileSync(file, "utf8"));
  const out = [];
  for (const d of docs) {
    if (d.errors.length) throw new Error(`${rel(file)}: ${d.errors[0].message}`);
    const v = d.toJS();
    if (v !== null && v !== undefined) out.push(v);
  }
  return out;
}

const KUSTOMIZATION_KEYS = new Set([
  "apiVersion", "kind", "resources", "namespace", "images", "replicas", "patches",
]);
const CLUSTER_SCOPED = new Set([
  "Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass",
  "CustomResourceDefinition", "PriorityClass",
]);
const WORKLOADS = new Set(["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"]);

function splitImage(image) {
  const at = image.indexOf("@");
  const base = at >= 0 ? image.slice(0, at) : image;
  const colon = base.lastIndexOf(":");
  if (colon > base.lastIndexOf("/")) return { name: base.slice(0, colon), tag: base.slice(colon + 1) };
  return { name: base, tag: null };
}

function podSpecs(obj) {
  if (WORKLOADS.has(obj.kind)) return [obj.spec?.template?.spec].filter(Boolean);
  if (obj.kind === "Pod") return [obj.spec].filter(Boolean);
  return [];
}

function containersOf(obj) {
  return podSpecs(obj).flatMap((s) => [...(s.initContainers ?? []), ...(s.containers ?? [])]);
}

// Renders the kustomization in `dir` (absolute) to a list of objects.
export function render(dir) {
  const file = path.join(dir, "kustomization.yaml");
  const where = rel(file);
  const [k] = loadDocs(file);
  for (const key of Object.keys(k)) {
    if (!KUSTOMIZATION_KEYS.has(key)) {
      throw new Error(`${where}: '${key}' is not supported by deploy/validate's renderer ` +
                      `(supported: ${[...KUSTOMIZATION_KEYS].join(", ")})`);
    }
  }
  if (k.kind !== "Kustomization") throw new Error(`${where}: kind must be Kustomization`);
  let objs = [];
  for (const r of k.resources ?? []) {
    const p = path.resolve(dir, r);
    if (!fs.existsSync(p)) throw new Error(`${where}: resource '${r}' does not exist`);
    objs.push(...(fs.statSync(p).isDirectory() ? render(p) : loadDocs(p)));
  }
  const seen = new Set();
  for (const o of objs) {
    const key = `${o.apiVersion} ${id(o)}`;
    if (seen.has(key)) throw new Error(`${where}: ${id(o)} is defined twice`);
    seen.add(key);
  }
  for (const [i, p] of (k.patches ?? []).entries()) {
    const t = p.target ?? {};
    for (const key of Object.keys(p)) {
      if (key !== "target" && key !== "patch") {
        throw new Error(`${where}: patches[${i}].${key} is not supported (inline JSON 6902 'patch' with a 'target' only)`);
      }
    }
    for (const key of Object.keys(t)) {
      if (key !== "kind" && key !== "name") throw new Error(`${where}: patches[${i}].target.${key} is not supported`);
    }
    const ops = YAML.parse(p.patch ?? "");
    if (!Array.isArray(ops)) throw new Error(`${where}: patches[${i}].patch is not a JSON 6902 operation list`);
    const matched = objs.filter((o) => (!t.kind || o.kind === t.kind) && (!t.name || o.metadata?.name === t.name));
    if (!matched.length) throw new Error(`${where}: patches[${i}] matches no object (${t.kind}/${t.name})`);
    objs = objs.map((o) => {
      if (!matched.includes(o)) return o;
      try {
        return jsonpatch.applyPatch(clone(o), ops, true).newDocument;
      } catch (e) {
        throw new Error(`${where}: patches[${i}] on ${id(o)}: ${e.message.split("\n")[0]}`);
      }
    });
  }
  if (k.namespace) {
    for (const o of objs) if (!CLUSTER_SCOPED.has(o.kind)) (o.metadata ??= {}).namespace = k.namespace;
  }
  for (const img of k.images ?? []) {
    let used = false;
    for (const c of objs.flatMap(containersOf)) {
      const cur = splitImage(c.image);
      if (cur.name !== img.name) continue;
      used = true;
      const tag = img.newTag ?? cur.tag;
      c.image = (img.newName ?? cur.name) + (tag ? `:${tag}` : "");
    }
    if (!used) throw new Error(`${where}: images entry '${img.name}' matches no container`);
  }
  for (const r of k.replicas ?? []) {
    const w = objs.filter((o) => WORKLOADS.has(o.kind) && o.metadata?.name === r.name);
    if (!w.length) throw new Error(`${where}: replicas entry '${r.name}' matches no workload`);
    for (const o of w) o.spec.replicas = r.count;
  }
  return objs;
}

// ---- schemas ---------------------------------------------------------------------------------

async function modelFor(obj) {
  const [group, version] = String(obj.apiVersion).includes("/")
    ? String(obj.apiVersion).split("/")
    : ["", obj.apiVersion];
  const spec = group === "monitoring.coreos.com"
    ? `@kubernetes-models/prometheus-operator/${group}/${version}/${obj.kind}`
    : `kubernetes-models/${group ? `${group}/` : ""}${version}/${obj.kind}`;
  try {
    const mod = await import(spec);
    return mod[obj.kind];
  } catch {
    return null;
  }
}

async function checkSchemas(objs, errors, where) {
  for (const o of objs) {
    const Model = await modelFor(o);
    if (!Model) {
      errors.push(`${where}: ${id(o)}: no schema for apiVersion '${o.apiVersion}' kind '${o.kind}'`);
      continue;
    }
    try {
      new Model(o).validate();
    } catch (e) {
      errors.push(`${where}: ${id(o)}: ${e.message}`);
    }
    const unknown = unknownFields(o);
    if (unknown === null) errors.push(`${where}: ${id(o)}: no field declarations for ${o.apiVersion} ${o.kind}`);
    for (const u of unknown ?? []) errors.push(`${where}: ${id(o)}: ${u}`);
  }
}

// ---- cross-references and bitsweep's own rules ------------------------------------------------

function definedFlags(mainFile) {
  const src = fs.readFileSync(path.join(ROOT, mainFile), "utf8");
  return new Set([...src.matchAll(/add_(?:option|flag)\("(--[a-z0-9-]+)"/g)].map((m) => m[1]));
}

function secretCatalog() {
  const out = new Map();
  for (const s of loadDocs(path.join(K8S, "secrets.example.yaml"))) {
    out.set(s.metadata.name, new Set(Object.keys({ ...(s.data ?? {}), ...(s.stringData ?? {}) })));
  }
  return out;
}

const matches = (selector, labels) =>
  !!selector && Object.entries(selector).every(([k, v]) => labels?.[k] === v);

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

export function checkRefs(objs, errors, where, { complete }) {
  const secrets = secretCatalog();
  const byKind = (k) => objs.filter((o) => o.kind === k);
  const workloads = objs.filter((o) => WORKLOADS.has(o.kind));
  const podLabels = workloads.map((w) => ({ w, labels: w.spec?.template?.metadata?.labels ?? {} }));
  const configMaps = new Map(byKind("ConfigMap").map((c) => [c.metadata.name, c.data ?? {}]));
  const pvcs = new Set(byKind("PersistentVolumeClaim").map((p) => p.metadata.name));
  const err = (o, msg) => errors.push(`${where}: ${id(o)}: ${msg}`);
  const flags = { coordinator: definedFlags("server/main.cc"), worker: definedFlags("worker/main.cc") };
  // Container ports that serve HTTP(S) pages to people: {w, name, containerPort, scheme}.
  const webPorts = [];

  for (const w of workloads) {
    const sel = w.spec?.selector?.matchLabels;
    if (!matches(sel, w.spec?.template?.metadata?.labels)) err(w, "spec.selector does not match the pod template's labels");
    if (w.kind === "StatefulSet" && !objs.some((s) => s.kind === "Service" && s.metadata.name === w.spec.serviceName)) {
      err(w, `serviceName '${w.spec.serviceName}' names no Service`);
    }
    const spec = w.spec?.template?.spec ?? {};
    const claims = new Set((w.spec?.volumeClaimTemplates ?? []).map((t) => t.metadata?.name));
    const volumes = new Map((spec.volumes ?? []).map((v) => [v.name, v]));
    if (!spec.securityContext?.runAsNonRoot) err(w, "the pod must set securityContext.runAsNonRoot");
    for (const v of spec.volumes ?? []) {
      if (v.persistentVolumeClaim && complete && !pvcs.has(v.persistentVolumeClaim.claimName)) {
        err(w, `volume '${v.name}' claims '${v.persistentVolumeClaim.claimName}', which is not defined`);
      }
      if (v.secret) {
        const keys = secrets.get(v.secret.secretName);
        if (!keys) err(w, `volume '${v.name}' mounts Secret '${v.secret.secretName}', not in secrets.example.yaml`);
        for (const item of v.secret.items ?? []) {
          if (keys && !keys.has(item.key)) err(w, `volume '${v.name}': Secret '${v.secret.secretName}' has no key '${item.key}'`);
        }
      }
    }
    for (const c of spec.containers ?? []) {
      const cw = `container '${c.name}'`;
      for (const m of c.volumeMounts ?? []) {
        if (!volumes.has(m.name) && !claims.has(m.name)) err(w, `${cw} mounts '${m.name}', which is no volume of the pod`);
      }
      for (const e of c.env ?? []) {
        const cm = e.valueFrom?.configMapKeyRef;
        if (cm && complete && !(configMaps.has(cm.name) && cm.key in configMaps.get(cm.name))) {
          err(w, `${cw} env ${e.name}: ConfigMap '${cm.name}' has no key '${cm.key}'`);
        }
        const sk = e.valueFrom?.secretKeyRef;
        if (sk && !secrets.get(sk.name)?.has(sk.key)) {
          err(w, `${cw} env ${e.name}: Secret '${sk.name}' key '${sk.key}' is not in secrets.example.yaml`);
        }
      }
      const env = new Set((c.env ?? []).map((e) => e.name));
      for (const a of c.args ?? []) {
        for (const [, v] of String(a).matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g)) {
          if (!env.has(v)) err(w, `${cw} arg '${a}' expands $(${v}), which is not in its env`);
        }
      }
      const lim = c.resources?.limits ?? {};
      const req = c.resources?.requests ?? {};
      if (!req.cpu || !req.memory || !lim.memory) err(w, `${cw} needs resources.requests cpu and memory and limits.memory`);
      const sc = c.securityContext ?? {};
      if (sc.allowPrivilegeEscalation !== false || !(sc.capabilities?.drop ?? []).includes("ALL")) {
        err(w, `${cw} must set allowPrivilegeEscalation: false and drop ALL capabilities`);
      }
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
      if (c.name === "coordinator") {
        const listenPort = Number(String(args.get("--listen") ?? "").split(":").pop());
        const tls = args.has("--tls-cert");
        if (!listenPort) err(w, `${cw} must set --listen host:port`);
        if (ports.get("grpc") !== listenPort) err(w, `${cw} port 'grpc' (${ports.get("grpc")}) is not the --listen port ${listenPort}`);
        const metricsPort = Number(String(args.get("--metrics-listen") ?? "").split(":").pop());
        if (ports.get("metrics") !== metricsPort) err(w, `${cw} port 'metrics' is not the --metrics-listen port`);
        if (!tls && !args.has("--insecure-allow-remote")) err(w, `${cw}: a non-loopback --listen needs --tls-cert or --insecure-allow-remote`);
        if (tls && args.has("--insecure-allow-remote")) err(w, `${cw}: --insecure-allow-remote with TLS on is a leftover`);
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
      if (c.name === "worker") {
        const gpus = Number(lim["nvidia.com/gpu"] ?? 0);
        if (Number(req["nvidia.com/gpu"] ?? gpus) !== gpus) err(w, `${cw}: nvidia.com/gpu requests and limits differ`);
        const devices = Number(args.get("--devices") ?? 1);
        const tp = Number(args.get("--max-tp") ?? 1);
        if (gpus > 0 && devices !== gpus) err(w, `${cw}: requests ${gpus} nvidia.com/gpu but offers --devices=${devices}`);
        if (tp > devices) err(w, `${cw}: --max-tp=${tp} exceeds --devices=${devices}`);
        const memGb = Number(args.get("--memory-gb") ?? 0);
        if (memGb > 0 && memGb * 1e9 > parseQuantity(lim.memory)) err(w, `${cw}: --memory-gb=${memGb} exceeds the memory limit ${lim.memory}`);
        if (!args.has("--threads")) err(w, `${cw}: set --threads (without a CPU limit the default is every core of the node, not the pod's share)`);
        for (const f of ["--artifacts", "--data-dir"]) {
          if (!String(args.get(f) ?? "").startsWith(`${SHARED_MOUNT}/`)) err(w, `${cw}: ${f} must be under ${SHARED_MOUNT}/`);
        }
        const mport = Number(String(args.get("--metrics-listen") ?? "").split(":").pop());
        if (ports.get("metrics") !== mport) err(w, `${cw} port 'metrics' is not the --metrics-listen port`);
      }
    }
  }
  // NetworkPolicies selecting a workload's pods and admitting ingress to a container port.
  const policies = byKind("NetworkPolicy").filter((np) => (np.spec?.policyTypes ?? ["Ingress"]).includes("Ingress"));
  const policed = (w) => policies.some((np) => matches(np.spec?.podSelector?.matchLabels, w.spec.template.metadata?.labels));
  const admits = (w, cp) => policies.some((np) => matches(np.spec?.podSelector?.matchLabels, w.spec.template.metadata?.labels) &&
    (np.spec.ingress ?? []).some((rule) => !rule.ports?.length || rule.ports.some((p) => p.port === cp.containerPort || p.port === cp.name)));
  // The container ports a Service port reaches: [{w, cp}].
  const reached = (targets, port) => {
    const tp = port.targetPort ?? port.port;
    return targets.flatMap(({ w }) => (w.spec.template.spec.containers ?? []).flatMap((c) => c.ports ?? [])
      .filter((cp) => (typeof tp === "string" ? cp.name === tp : cp.containerPort === tp)).map((cp) => ({ w, cp })));
  };
  const servicePorts = new Map();  // Service name -> [{port, reached}]
  for (const s of byKind("Service")) {
    const targets = podLabels.filter((p) => matches(s.spec?.selector, p.labels));
    if (!targets.length) { err(s, "selects no pod of a workload"); continue; }
    const list = [];
    for (const port of s.spec.ports ?? []) {
      const hits = reached(targets, port);
      list.push({ port, hits });
      const tp = port.targetPort ?? port.port;
      if (!hits.length) {
        err(s, typeof tp === "string" ? `targetPort '${tp}' is no named container port of the selected pods`
                                      : `targetPort ${tp} (port '${port.name}') is no container port of the selected pods`);
        continue;
      }
      for (const { w, cp } of hits) {
        if (policed(w) && !admits(w, cp)) err(s, `port '${port.name}' reaches ${id(w)} port ${cp.containerPort}, which its NetworkPolicies admit no traffic to`);
        const web = webPorts.find((p) => p.w === w && p.containerPort === cp.containerPort);
        if (web && /^https?$/.test(port.appProtocol ?? "") && port.appProtocol !== web.scheme) {
          err(s, `port '${port.name}' has appProtocol '${port.appProtocol}' but ${id(w)} serves ${web.scheme} there (TLS ${web.scheme === "https" ? "on" : "off"})`);
        }
      }
    }
    servicePorts.set(s.metadata.name, list);
  }
  for (const ing of byKind("Ingress")) {
    const backends = [ing.spec?.defaultBackend, ...(ing.spec?.rules ?? []).flatMap((r) => (r.http?.paths ?? []).map((p) => p.backend))]
      .filter((b) => b?.service);
    if (!backends.length) err(ing, "routes to no Service");
    const nginx = ing.spec?.ingressClassName === "nginx";
    const proto = String(ing.metadata?.annotations?.["nginx.ingress.kubernetes.io/backend-protocol"] ?? "HTTP").toLowerCase();
    for (const b of backends) {
      const { name, port } = b.service;
      const list = servicePorts.get(name);
      if (!list) { err(ing, `backend Service '${name}' is not defined (or selects no pod)`); continue; }
      const sp = list.find(({ port: p }) => (port?.name !== undefined ? p.name === port.name : p.port === port?.number));
      if (!sp) { err(ing, `backend port ${port?.name ?? port?.number} is no port of Service '${name}'`); continue; }
      for (const { w, cp } of sp.hits) {
        const web = webPorts.find((p) => p.w === w && p.containerPort === cp.containerPort);
        if (!web) err(ing, `backend ${name}:${sp.port.name} reaches ${id(w)} port ${cp.containerPort}, which serves no web page`);
        else if (nginx && proto !== web.scheme) {
          err(ing, `nginx.ingress.kubernetes.io/backend-protocol is ${proto.toUpperCase()} but ${id(w)} serves ${web.scheme} on port ${cp.containerPort}`);
        }
      }
    }
    for (const t of ing.spec?.tls ?? []) {
      const keys = secrets.get(t.secretName);
      if (t.secretName && !keys) err(ing, `tls Secret '${t.secretName}' is not in secrets.example.yaml`);
      else if (keys && !(keys.has("tls.crt") && keys.has("tls.key"))) err(ing, `tls Secret '${t.secretName}' has no tls.crt and tls.key`);
    }
  }
  for (const o of [...byKind("PodDisruptionBudget"), ...byKind("NetworkPolicy")]) {
    const sel = o.kind === "PodDisruptionBudget" ? o.spec?.selector?.matchLabels : o.spec?.podSelector?.matchLabels;
    if (!podLabels.some((p) => matches(sel, p.labels))) err(o, "selects no pod of a workload");
  }
  for (const np of byKind("NetworkPolicy")) {
    const target = podLabels.find((p) => matches(np.spec?.podSelector?.matchLabels, p.labels));
    if (!target) continue;
    const cports = (target.w.spec.template.spec.containers ?? []).flatMap((c) => c.ports ?? []);
    for (const rule of np.spec.ingress ?? []) {
      for (const p of rule.ports ?? []) {
        if (!cports.some((cp) => cp.containerPort === p.port || cp.name === p.port)) err(np, `allows port ${p.port}, which ${id(target.w)} does not serve`);
      }
    }
  }
  for (const sm of byKind("ServiceMonitor")) {
    const svcs = byKind("Service").filter((s) => matches(sm.spec?.selector?.matchLabels, s.metadata?.labels));
    if (!svcs.length) { err(sm, "selects no Service"); continue; }
    for (const ep of sm.spec.endpoints ?? []) {
      if (!svcs.some((s) => (s.spec.ports ?? []).some((p) => p.name === ep.port))) err(sm, `endpoint port '${ep.port}' is no port of the selected Service`);
    }
  }
}

// ---- metrics: what the code exports -----------------------------------------------------------

export function exportedMetrics() {
  const series = new Set(["up"]);
  const labels = new Set(["job", "instance", "le", "__name__", "namespace", "pod", "service", "endpoint", "container"]);
  for (const file of ["server/metrics.cc", "worker/metrics.cc"]) {
    const src = fs.readFileSync(path.join(ROOT, file), "utf8");
    for (const m of src.matchAll(/Build(Counter|Gauge|Histogram|Summary)\(\)\s*\.Name\("(bitsweep_[a-z0-9_]+)"\)/g)) {
      const [, type, name] = m;
      series.add(name);
      if (type === "Histogram") for (const s of ["_bucket", "_sum", "_count"]) series.add(name + s);
      if (type === "Summary") for (const s of ["_sum", "_count"]) series.add(name + s);
    }
    for (const m of src.matchAll(/MetricFamily\s+\w+\{\s*"(bitsweep_[a-z0-9_]+)"/g)) series.add(m[1]);
    for (const m of src.matchAll(/\{\s*"([a-z_]+)",\s*[^{}]/g)) labels.add(m[1]);
    for (const m of src.matchAll(/label\.push_back\(\{"([a-z_]+)"/g)) labels.add(m[1]);
  }
  return { series, labels };
}

const PROMQL_WORDS = new Set([
  "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "group",
  "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
  "offset", "rate", "irate", "increase", "delta", "idelta", "deriv", "histogram_quantile",
  "absent", "absent_over_time", "vector", "scalar", "time", "clamp_min", "clamp_max", "abs",
  "ceil", "floor", "round", "label_replace", "label_join", "sum_over_time", "avg_over_time",
  "max_over_time", "min_over_time", "count_over_time", "changes", "resets", "sort", "sort_desc",
  "predict_linear", "inf", "nan",
]);

// Metric and label names an expression uses that the code does not export.
export function unknownNames(expr, exported) {
  const bad = [];
  const noStrings = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""');
  for (const m of noStrings.matchAll(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g)) {
    for (const l of m[1].split(",").map((s) => s.trim()).filter(Boolean)) if (!exported.labels.has(l)) bad.push(`label '${l}'`);
  }
  for (const m of noStrings.matchAll(/\{([^}]*)\}/g)) {
    for (const l of m[1].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)) if (!exported.labels.has(l[1])) bad.push(`label '${l[1]}'`);
  }
  const stripped = noStrings
    .replace(/\{[^}]*\}/g, "")
    .replace(/\[[^\]]*\]/g, "")
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, "");
  let any = false;
  for (const m of stripped.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const word = m[0];
    const after = stripped.slice(m.index + word.length).trimStart();
    if (PROMQL_WORDS.has(word) || after.startsWith("(")) continue;
    if (/^\d/.test(word)) continue;
    any = true;
    if (!exported.series.has(word)) bad.push(`metric '${word}'`);
  }
  if (!any) bad.push("no metric at all");
  return bad;
}

// ---- alerts and the dashboard ----------------------------------------------------------------

const RULES_FILE = path.join(DEPLOY, "monitoring/bitsweep-alerts.yaml");
const RULES_TEST = path.join(DEPLOY, "monitoring/bitsweep-alerts.test.yaml");
const DASHBOARD = path.join(DEPLOY, "monitoring/grafana-dashboard.json");

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: "utf8", ...opts });
  if (r.error) return { ok: false, out: `${cmd}: ${r.error.message}` };
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}` };
}

export function checkRuleNames(groups, exported, errors, where) {
  for (const g of groups ?? []) {
    for (const r of g.rules ?? []) {
      for (const b of unknownNames(String(r.expr), exported)) errors.push(`${where}: ${r.alert ?? r.record}: ${b} is not exported by server/metrics.cc or worker/metrics.cc`);
      if (r.alert && !r.labels?.severity) errors.push(`${where}: ${r.alert}: no severity label`);
      if (r.alert && !r.annotations?.summary) errors.push(`${where}: ${r.alert}: no summary annotation`);
    }
  }
}

export function checkPrometheusRuleMatches(objs, rules, errors, where) {
  const pr = objs.filter((o) => o.kind === "PrometheusRule");
  if (pr.length !== 1) { errors.push(`${where}: expected one PrometheusRule, found ${pr.length}`); return; }
  if (JSON.stringify(pr[0].spec?.groups) !== JSON.stringify(rules.groups)) {
    errors.push(`${where}: PrometheusRule/${pr[0].metadata.name} differs from deploy/monitoring/bitsweep-alerts.yaml ` +
                "(run `node deploy/validate/validate.mjs --write-prometheusrule`)");
  }
}

export function checkDashboard(dash, exported, errors) {
  const where = rel(DASHBOARD);
  const exprs = [];
  if (typeof dash !== "object" || !Array.isArray(dash.panels)) { errors.push(`${where}: no panels`); return exprs; }
  const ids = new Set();
  const all = dash.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
  for (const p of all) {
    if (ids.has(p.id)) errors.push(`${where}: panel id ${p.id} used twice`);
    ids.add(p.id);
    if (!p.gridPos) errors.push(`${where}: panel '${p.title}' has no gridPos`);
    if (p.type === "row") continue;
    if (!(p.targets ?? []).length) errors.push(`${where}: panel '${p.title}' has no query`);
    for (const t of p.targets ?? []) {
      if (typeof t.expr !== "string" || !t.expr.trim()) { errors.push(`${where}: panel '${p.title}' ${t.refId}: empty expr`); continue; }
      for (const b of unknownNames(t.expr, exported)) errors.push(`${where}: panel '${p.title}' ${t.refId}: ${b} is not exported by server/metrics.cc or worker/metrics.cc`);
      exprs.push({ title: p.title, refId: t.refId, expr: t.expr });
    }
  }
  return exprs;
}

// promtool parses each dashboard query as a recording rule (Grafana's range variables become
// a fixed range).
function checkDashboardSyntax(exprs, errors) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bitsweep-dash-"));
  const file = path.join(dir, "dashboard.rules.yaml");
  const rules = exprs.map((e, i) => ({
    record: `dashboard:panel_${i}`,
    expr: e.expr.replace(/\$__(rate_)?interval|\$__range/g, "5m"),
  }));
  fs.writeFileSync(file, YAML.stringify({ groups: [{ name: "dashboard", rules }] }));
  const r = run("promtool", ["check", "rules", file]);
  if (!r.ok) errors.push(`${rel(DASHBOARD)}: a query does not parse:\n${r.out}`);
  fs.rmSync(dir, { recursive: true, force: true });
}

// ---- Dockerfiles ------------------------------------------------------------------------------

function executables() {
  const out = new Map();  // target -> folder
  for (const dir of ["server", "worker", "cli", "tools"]) {
    const f = path.join(ROOT, dir, "CMakeLists.txt");
    if (!fs.existsSync(f)) continue;
    for (const m of fs.readFileSync(f, "utf8").matchAll(/add_executable\(([\w-]+)/g)) out.set(m[1], dir);
  }
  return out;
}

export function checkDockerfile(name, text, errors) {
  const where = `deploy/docker/${name}`;
  // Syntax: instructions, their flags and arguments (dockerfile-utils, the linter of VS Code's
  // Docker extension); warnings count as problems too.
  for (const d of lintDockerfile(text)) errors.push(`${where}:${d.range.start.line + 1}: ${d.message}`);
  const exes = executables();
  const lines = text.replace(/\\\n/g, " ").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  const stages = [];
  for (const l of lines) {
    const [instr] = l.split(/\s+/);
    if (instr.toUpperCase() === "FROM") stages.push([]);
    if (stages.length) stages.at(-1).push(l);
  }
  if (!stages.length) { errors.push(`${where}: no FROM`); return; }
  const final = stages.at(-1);
  const user = final.filter((l) => /^USER\s/i.test(l)).at(-1);
  if (!user || /^USER\s+(0|root)\b/i.test(user)) errors.push(`${where}: the final stage must switch to a non-root USER`);
  const entry = final.filter((l) => /^ENTRYPOINT\s/i.test(l)).at(-1);
  let entryBin = null;
  try { entryBin = JSON.parse(entry.replace(/^ENTRYPOINT\s+/i, ""))[0]; } catch { /* reported below */ }
  const expected = name.startsWith("coordinator") ? "bitsweep-coordinator" : "bitsweep-worker";
  if (entryBin !== `/usr/local/bin/${expected}`) errors.push(`${where}: ENTRYPOINT must be ["/usr/local/bin/${expected}"] (exec form)`);
  for (const l of lines) {
    const t = l.match(/--target\s+([\w\- ]+?)(?:\s+-j|\s*&&|$)/);
    if (t) for (const target of t[1].trim().split(/\s+/)) if (!exes.has(target)) errors.push(`${where}: CMake target '${target}' does not exist`);
    for (const m of l.matchAll(/\/src\/build\/([\w-]+)\/([\w-]+)/g)) {
      if (exes.get(m[2]) !== m[1]) errors.push(`${where}: build/${m[1]}/${m[2]} is not where CMake puts '${m[2]}'`);
    }
  }
  if (!final.some((l) => l.includes(`/usr/local/bin/${expected}`) && /^COPY\s/i.test(l))) errors.push(`${where}: the final stage does not copy ${expected}`);
}

// ---- runtime packages of the images -------------------------------------------------------------

// Which Debian package ships each (x86_64) shared library installed here (dpkg's file lists).
function libraryPackages() {
  const dir = "/var/lib/dpkg/info";
  const out = new Map();
  for (const f of fs.readdirSync(dir).filter((f) => f.endsWith(".list"))) {
    const pkg = f.slice(0, -5).split(":")[0];
    for (const line of fs.readFileSync(path.join(dir, f), "utf8").split("\n")) {
      if (!/^\/(usr\/)?lib\//.test(line) || !/\.so(\.|$)/.test(line) || /\/(lib32|libx32)\/|i386/.test(line)) continue;
      const name = path.basename(line);
      if (!out.has(name) || line.includes("/x86_64-linux-gnu/")) out.set(name, pkg);
    }
  }
  return out;
}

// The packages apt would install for `pkgs` (and what debian:12 has already: the closure of apt).
function aptClosure(pkgs) {
  const r = run("apt-cache", ["depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts",
    "--no-breaks", "--no-replaces", "--no-enhances", "apt", ...pkgs]);
  if (!r.ok) return null;
  return new Set(r.out.split("\n").filter((l) => l && !l.startsWith(" ")).map((l) => l.replace(/:any$/, "")));
}

// With the binaries built (as scripts/test builds them) and dpkg/apt available: every shared
// library the image's binaries load belongs to a package its final stage installs (or to one
// they depend on, or to debian:12 itself). The CUDA image brings its own libtorch: not checked.
const RUNTIME_BINARIES = {
  "coordinator.Dockerfile": ["server/bitsweep-coordinator"],
  "worker.Dockerfile": ["worker/bitsweep-worker", "cli/bitsweep"],
};
function checkRuntimePackages(errors, notes, texts = {}) {
  const build = process.env.BITSWEEP_BUILD_DIR || path.join(ROOT, "build");
  let libs = null;
  for (const [docker, bins] of Object.entries(RUNTIME_BINARIES)) {
    const where = `deploy/docker/${docker}`;
    const present = bins.filter((b) => fs.existsSync(path.join(build, b)));
    if (present.length !== bins.length) {
      notes.push(`${where}: runtime packages not checked (${bins.join(", ")} not built in ${rel(build)})`);
      continue;
    }
    const text = (texts[docker] ?? fs.readFileSync(path.join(DEPLOY, "docker", docker), "utf8")).replace(/\\\n/g, " ");
    const final = text.slice(text.lastIndexOf("\nFROM "));
    const install = final.match(/apt-get install ([^&]*)/);
    if (!install) { errors.push(`${where}: the final stage installs no packages`); continue; }
    const pkgs = install[1].split(/\s+/).filter((w) => w && !w.startsWith("-"));
    const closure = aptClosure(pkgs);
    if (!closure || !fs.existsSync("/var/lib/dpkg/info")) {
      notes.push(`${where}: runtime packages not checked (no apt-cache or dpkg here)`);
      continue;
    }
    libs ??= libraryPackages();
    // The local build links NCCL and the CUDA runtime when the toolkit is installed; an image
    // configured with -DBITSWEEP_WITH_NCCL=OFF does not, so those libraries are not its concern.
    const ncclOff = /-DBITSWEEP_WITH_NCCL=OFF\b/.test(text);
    const before = errors.length;
    for (const b of bins) {
      const ldd = run("ldd", [path.join(build, b)]);
      if (!ldd.ok) { errors.push(`${where}: ldd ${b} failed: ${ldd.out}`); continue; }
      for (const m of ldd.out.matchAll(/^\s*(\S+) => (\S+)/gm)) {
        if (ncclOff && /^lib(nccl|cudart)\.so/.test(m[1])) continue;
        const pkg = libs.get(m[1]) ?? libs.get(path.basename(fs.realpathSync(m[2])));
        if (!pkg) errors.push(`${where}: ${b} loads ${m[1]}, which no Debian package installed here ships`);
        else if (!closure.has(pkg)) errors.push(`${where}: ${b} loads ${m[1]} from '${pkg}', which the final stage does not install`);
      }
    }
    if (errors.length === before) notes.push(`${where}: every shared library of ${bins.join(", ")} comes from its packages`);
  }
}

// ---- driver ----------------------------------------------------------------------------------

// A kustomize of version 4 or later inside kubectl (older ones lack inline `patches`); a
// standalone `kustomize` is not looked for.
function kustomizeAvailable() {
  const r = run("kubectl", ["version", "--client", "-o", "json"]);
  if (!r.ok) return false;
  try {
    const v = JSON.parse(r.out.slice(r.out.indexOf("{"))).kustomizeVersion ?? "";
    return Number(v.replace(/^v/, "").split(".")[0]) >= 4;
  } catch {
    return false;
  }
}

function canonical(objs) {
  return objs.map((o) => JSON.stringify(o, Object.keys(flattenKeys(o)).sort())).sort();
}
function flattenKeys(o, acc = {}) {
  if (o && typeof o === "object") for (const [k, v] of Object.entries(o)) { acc[k] = 1; flattenKeys(v, acc); }
  return acc;
}

async function validateAll() {
  const errors = [];
  const notes = [];
  const exported = exportedMetrics();
  const rules = loadDocs(RULES_FILE)[0];
  const rendered = {};
  const realKustomize = kustomizeAvailable();
  for (const r of RENDERS) {
    const dir = path.join(K8S, r);
    try {
      rendered[r] = render(dir);
    } catch (e) {
      errors.push(e.message);
      continue;
    }
    if (realKustomize) {
      const k = run("kubectl", ["kustomize", dir]);
      if (!k.ok) errors.push(`${r}: kubectl kustomize failed:\n${k.out}`);
      else {
        const theirs = YAML.parseAllDocuments(k.out).map((d) => d.toJS()).filter(Boolean);
        const a = canonical(rendered[r]), b = canonical(theirs);
        if (JSON.stringify(a) !== JSON.stringify(b)) errors.push(`${r}: the renderer and kubectl kustomize disagree`);
      }
    }
    await checkSchemas(rendered[r], errors, r);
    checkRefs(rendered[r], errors, r, { complete: COMPLETE.includes(r) });
  }
  if (rendered.base) checkPrometheusRuleMatches(rendered.base, rules, errors, "base");
  const secretsDocs = loadDocs(path.join(K8S, "secrets.example.yaml"));
  await checkSchemas(secretsDocs, errors, "secrets.example.yaml");
  notes.push(realKustomize ? "renders compared with kubectl kustomize"
                           : "no kubectl with kustomize >= 4 on PATH: renders not compared with a real kustomize");

  checkRuleNames(rules.groups, exported, errors, rel(RULES_FILE));
  const check = run("promtool", ["check", "rules", RULES_FILE]);
  if (!check.ok) errors.push(`promtool check rules:\n${check.out}`);
  const test = run("promtool", ["test", "rules", path.basename(RULES_TEST)], { cwd: path.dirname(RULES_TEST) });
  if (!test.ok) errors.push(`promtool test rules:\n${test.out}`);
  const alerts = rules.groups.flatMap((g) => g.rules).filter((r) => r.alert).map((r) => r.alert);
  const testText = fs.readFileSync(RULES_TEST, "utf8");
  for (const a of alerts) {
    if (!new RegExp(`alertname: ${a}\\s*\\n\\s*exp_alerts:`).test(testText)) errors.push(`${rel(RULES_TEST)}: no test expects ${a} to fire`);
  }

  let dash = null;
  try { dash = JSON.parse(fs.readFileSync(DASHBOARD, "utf8")); } catch (e) { errors.push(`${rel(DASHBOARD)}: ${e.message}`); }
  if (dash) {
    const exprs = checkDashboard(dash, exported, errors);
    if (exprs.length) checkDashboardSyntax(exprs, errors);
  }

  for (const f of fs.readdirSync(path.join(DEPLOY, "docker")).filter((f) => f.endsWith(".Dockerfile"))) {
    checkDockerfile(f, fs.readFileSync(path.join(DEPLOY, "docker", f), "utf8"), errors);
  }
  checkRuntimePackages(errors, notes);
  const objects = Object.values(rendered).reduce((n, o) => n + o.length, 0);
  return { errors, notes, summary: `${Object.keys(rendered).length} renders (${objects} objects), ${alerts.length} alerts, ${dash?.panels?.length ?? 0} dashboard panels` };
}

// Broken copies that must each be rejected; a check that lets one through fails the self-test.
async function selfTest() {
  const exported = exportedMetrics();
  const base = render(path.join(K8S, "overlays/production"));
  const find = (objs, kind, name) => objs.find((o) => o.kind === kind && o.metadata.name === name);
  const coord = (objs) => find(objs, "Deployment", "bitsweep-coordinator").spec.template.spec.containers[0];
  const worker = (objs) => find(objs, "StatefulSet", "bitsweep-worker").spec.template.spec.containers[0];
  const plain = render(path.join(K8S, "overlays/gpu"));
  const svcPort = (objs, name) => find(objs, "Service", "bitsweep-coordinator").spec.ports.find((p) => p.name === name);
  const setArg = (c, flag, value) => { c.args = c.args.map((a) => (a.startsWith(`${flag}=`) ? `${flag}=${value}` : a)); };
  // The production coordinator as before --health-listen: TLS, TCP probes on the gRPC port.
  const noHealth = (o) => {
    const c = coord(o);
    c.args = c.args.filter((a) => !a.startsWith("--health-listen="));
    c.ports = c.ports.filter((p) => p.name !== "health");
    for (const kind of ["startupProbe", "readinessProbe", "livenessProbe"]) {
      c[kind] = { ...c[kind], tcpSocket: { port: "grpc" } };
      delete c[kind].grpc;
    }
  };
  const cases = [
    ["replicas is not an integer", plain, (o) => { find(o, "Deployment", "bitsweep-coordinator").spec.replicas = "one"; }, "must be integer"],
    ["a gRPC probe port by name", plain, (o) => { coord(o).readinessProbe.grpc.port = "grpc"; }, "must be integer"],
    ["an unknown kind", plain, (o) => { o.push({ apiVersion: "v1", kind: "Servcie", metadata: { name: "x" } }); }, "no schema"],
    ["a misspelt container field", plain, (o) => { coord(o).readinesProbe = coord(o).readinessProbe; delete coord(o).readinessProbe; }, "unknown field 'readinesProbe'"],
    ["a misspelt alert field", plain, (o) => { find(o, "PrometheusRule", "bitsweep").spec.groups[0].rules[0].fro = "5m"; }, "unknown field 'fro'"],
    ["a misspelt metadata field", plain, (o) => { find(o, "Service", "bitsweep-worker").metadata.lables = {}; }, "unknown field 'lables'"],
    ["a malformed quantity", plain, (o) => { worker(o).resources.limits.memory = "lots"; }, "quantity"],
    ["a Service selecting nothing", plain, (o) => { find(o, "Service", "bitsweep-coordinator").spec.selector = { app: "nope" }; }, "selects no pod"],
    ["a selector not matching its template", plain, (o) => { find(o, "StatefulSet", "bitsweep-worker").spec.selector.matchLabels["x"] = "y"; }, "does not match"],
    ["a coordinator flag that does not exist", plain, (o) => { coord(o).args.push("--no-such-flag=1"); }, "not a flag"],
    ["a worker flag that does not exist", plain, (o) => { worker(o).args.push("--gpus=2"); }, "not a flag"],
    ["a TCP probe without TLS", plain, (o) => { coord(o).livenessProbe = { tcpSocket: { port: 50051 } }; }, "gRPC probe"],
    ["a gRPC probe on a TLS port", base, (o) => { coord(o).readinessProbe = { grpc: { port: 50051 } }; }, "cannot reach a TLS port"],
    // The plaintext health port beside a TLS --listen.
    ["a TCP probe under TLS with a health port", base, (o) => { coord(o).livenessProbe = { tcpSocket: { port: "grpc" } }; }, "gRPC probe (grpc.health.v1) on the --health-listen port 8081"],
    ["a gRPC probe on a port that is not --health-listen", base, (o) => { coord(o).startupProbe.grpc.port = 8082; }, "on the --health-listen port 8081"],
    ["a TCP probe on another port under TLS without a health port", base, (o) => { noHealth(o); coord(o).readinessProbe = { tcpSocket: { port: 9464 } }; }, "TCP probe on the gRPC port"],
    ["a --health-listen without its container port", base, (o) => { coord(o).ports = coord(o).ports.filter((p) => p.name !== "health"); }, "no container port named 'health'"],
    ["a container port 'health' that is not the --health-listen port", base, (o) => { coord(o).ports.find((p) => p.name === "health").containerPort = 8082; }, "is not the --health-listen port 8081"],
    ["a container port 'health' without --health-listen", base, (o) => { coord(o).args = coord(o).args.filter((a) => !a.startsWith("--health-listen=")); }, "no --health-listen"],
    ["a loopback --health-listen", base, (o) => { setArg(coord(o), "--health-listen", "127.0.0.1:8081"); }, "unreachable by the kubelet"],
    ["--health-listen on the gRPC port", base, (o) => { setArg(coord(o), "--health-listen", "0.0.0.0:50051"); }, "both use port 50051"],
    ["GPUs requested differ from --devices", base, (o) => { worker(o).resources.limits["nvidia.com/gpu"] = 4; worker(o).resources.requests["nvidia.com/gpu"] = 4; }, "--devices"],
    ["a missing ConfigMap key", plain, (o) => { delete find(o, "ConfigMap", "bitsweep-config").data["db-conninfo"]; }, "has no key"],
    ["an unknown Secret key", plain, (o) => { coord(o).env.find((e) => e.name === "PGPASSWORD").valueFrom.secretKeyRef.key = "pass"; }, "not in secrets.example.yaml"],
    ["the shared volume at another path", plain, (o) => { worker(o).volumeMounts[0].mountPath = "/data"; }, "shared volume"],
    ["a ServiceMonitor port that does not exist", plain, (o) => { find(o, "ServiceMonitor", "bitsweep-worker").spec.endpoints[0].port = "http"; }, "endpoint port"],
    ["a container running as root", plain, (o) => { find(o, "StatefulSet", "bitsweep-worker").spec.template.spec.securityContext.runAsNonRoot = false; }, "runAsNonRoot"],
    // The dashboard's port wiring.
    ["a dashboard container port that is not the --http-listen port", plain, (o) => { coord(o).ports.find((p) => p.name === "http").containerPort = 8081; }, "is not the --http-listen port 8080"],
    ["an --http-listen port that is not the dashboard container port", base, (o) => { setArg(coord(o), "--http-listen", "0.0.0.0:9090"); }, "is not the --http-listen port 9090"],
    ["a Service targetPort number no container serves", plain, (o) => { svcPort(o, "http").targetPort = 8081; }, "targetPort 8081"],
    ["the dashboard on loopback behind a container port", plain, (o) => { setArg(coord(o), "--http-listen", "127.0.0.1:8080"); }, "loopback only"],
    ["a dashboard without its container port", plain, (o) => { coord(o).ports = coord(o).ports.filter((p) => p.name !== "http"); }, "no container port named 'http'"],
    ["the dashboard on the metrics port", plain, (o) => { setArg(coord(o), "--http-listen", "0.0.0.0:9464"); }, "both use port 9464"],
    ["a dashboard port no NetworkPolicy admits", plain, (o) => { const np = find(o, "NetworkPolicy", "bitsweep-coordinator"); np.spec.ingress = np.spec.ingress.filter((r) => !r.ports.some((p) => p.port === 8080)); }, "admit no traffic"],
    ["a remote dashboard without the client token", base, (o) => { coord(o).env = coord(o).env.filter((e) => e.name !== "BITSWEEP_CLIENT_TOKEN"); }, "needs the client token"],
    ["an HTTPS dashboard behind appProtocol http", base, (o) => { svcPort(o, "http").appProtocol = "http"; }, "appProtocol 'http'"],
    ["an Ingress to a port its Service does not have", base, (o) => { find(o, "Ingress", "bitsweep-dashboard").spec.rules[0].http.paths[0].backend.service.port = { name: "dashboard" }; }, "no port of Service"],
    ["an Ingress to the gRPC port", base, (o) => { find(o, "Ingress", "bitsweep-dashboard").spec.rules[0].http.paths[0].backend.service.port = { number: 50051 }; }, "serves no web page"],
    ["an Ingress speaking HTTP to the HTTPS dashboard", base, (o) => { delete find(o, "Ingress", "bitsweep-dashboard").metadata.annotations; }, "backend-protocol is HTTP"],
    ["an Ingress TLS Secret that is not listed", base, (o) => { find(o, "Ingress", "bitsweep-dashboard").spec.tls[0].secretName = "nope"; }, "tls Secret 'nope'"],
  ];
  const failures = [];
  for (const [what, objs, mutate, expect] of cases) {
    const copy = clone(objs);
    mutate(copy);
    const errors = [];
    await checkSchemas(copy, errors, "self-test");
    checkRefs(copy, errors, "self-test", { complete: true });
    if (!errors.some((e) => e.includes(expect))) failures.push(`${what}: not rejected (expected an error containing '${expect}'; got ${JSON.stringify(errors)})`);
  }
  // Variants that must pass: a check that rejects one of them is wrong.
  const accepted = [
    ["TCP probes under TLS without --health-listen", base, noHealth],
  ];
  for (const [what, objs, mutate] of accepted) {
    const copy = clone(objs);
    mutate(copy);
    const errors = [];
    await checkSchemas(copy, errors, "self-test");
    checkRefs(copy, errors, "self-test", { complete: true });
    if (errors.length) failures.push(`${what}: rejected (${JSON.stringify(errors)})`);
  }
  // The renderer refuses what it does not implement, and patches that do not apply.
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "bitsweep-kz-"));
  const kz = (body) => { fs.writeFileSync(path.join(tmp, "kustomization.yaml"), body); try { render(tmp); return null; } catch (e) { return e.message; } };
  const baseRel = path.relative(tmp, path.join(K8S, "base"));
  for (const [what, body, expect] of [
    ["an unsupported kustomization key", `apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [${baseRel}]\ncommonLabels: {a: b}\n`, "not supported"],
    ["a patch removing a missing path", `apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [${baseRel}]\npatches:\n  - target: {kind: StatefulSet, name: bitsweep-worker}\n    patch: |-\n      - op: remove\n        path: /spec/nope\n`, "patches[0]"],
    ["an image entry matching nothing", `apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [${baseRel}]\nimages: [{name: bitsweep/nope, newTag: x}]\n`, "matches no container"],
  ]) {
    const msg = kz(body);
    if (!msg || !msg.includes(expect)) failures.push(`${what}: not rejected (got ${msg})`);
  }
  fs.rmSync(tmp, { recursive: true, force: true });
  // Alerts, the dashboard and Dockerfiles.
  const rules = loadDocs(RULES_FILE)[0];
  const badRules = clone(rules);
  badRules.groups[0].rules[0].expr = "sum(bitsweep_jobs_total) > 0";
  let errors = [];
  checkRuleNames(badRules.groups, exported, errors, "self-test");
  if (!errors.some((e) => e.includes("bitsweep_jobs_total"))) failures.push("an alert on an unexported metric: not rejected");
  errors = [];
  checkPrometheusRuleMatches(render(path.join(K8S, "base")), badRules, errors, "self-test");
  if (!errors.some((e) => e.includes("differs"))) failures.push("a PrometheusRule differing from the rules file: not rejected");
  const dash = JSON.parse(fs.readFileSync(DASHBOARD, "utf8"));
  for (const [what, expr, expect] of [
    ["a dashboard metric that is not exported", "sum(rate(bitsweep_jobs_failed_total[5m]))", "bitsweep_jobs_failed_total"],
    ["a dashboard label that is not exported", 'sum by (status) (bitsweep_jobs)', "label 'status'"],
    ["a histogram suffix on a counter", "sum(bitsweep_worker_heartbeats_total_bucket)", "bitsweep_worker_heartbeats_total_bucket"],
  ]) {
    const d = clone(dash);
    d.panels.find((p) => p.type !== "row").targets[0].expr = expr;
    errors = [];
    checkDashboard(d, exported, errors);
    if (!errors.some((e) => e.includes(expect))) failures.push(`${what}: not rejected (${JSON.stringify(errors)})`);
  }
  errors = [];
  const bad = clone(dash);
  bad.panels.find((p) => p.type !== "row").targets[0].expr = "sum(bitsweep_jobs";
  checkDashboardSyntax(checkDashboard(bad, exported, []), errors);
  if (!errors.length) failures.push("a dashboard query that does not parse: not rejected");
  const coordDocker = fs.readFileSync(path.join(DEPLOY, "docker/coordinator.Dockerfile"), "utf8");
  for (const [what, text, expect] of [
    ["a Dockerfile running as root", coordDocker.replace(/^USER .*$/m, "USER root"), "non-root"],
    ["a Dockerfile with another entry point", coordDocker.replace(/^ENTRYPOINT .*$/m, 'ENTRYPOINT ["/bin/sh"]'), "ENTRYPOINT"],
    ["a Dockerfile with a misspelt instruction flag", coordDocker.replace("COPY --from=build", "COPY --form=build"), "Unknown flag: form"],
    ["a Dockerfile building a missing target", coordDocker.replace("--target bitsweep-coordinator", "--target bitsweep-coordinatorr"), "does not exist"],
  ]) {
    errors = [];
    checkDockerfile("coordinator.Dockerfile", text, errors);
    if (!errors.some((e) => e.includes(expect))) failures.push(`${what}: not rejected (${JSON.stringify(errors)})`);
  }
  // The runtime package check, where the coordinator is built.
  let extra = 0;
  const notes = [];
  errors = [];
  checkRuntimePackages(errors, notes, { "coordinator.Dockerfile": coordDocker.replace(" libpqxx-6.4", "") });
  if (notes.some((n) => n.includes("coordinator.Dockerfile") && n.includes("not checked"))) {
    console.log("note: bitsweep-coordinator is not built: the runtime package check was not self-tested");
  } else {
    extra = 1;
    if (!errors.some((e) => e.includes("libpqxx"))) failures.push(`an image missing a runtime package: not rejected (${JSON.stringify(errors)})`);
  }
  return { failures, count: cases.length + accepted.length + 3 + 2 + 3 + 1 + 4 + extra };
}

function writePrometheusRule() {
  const file = path.join(K8S, "base/monitoring.yaml");
  const docs = YAML.parseAllDocuments(fs.readFileSync(file, "utf8"));
  const rules = loadDocs(RULES_FILE)[0];
  const doc = docs.find((d) => d.toJS()?.kind === "PrometheusRule");
  doc.setIn(["spec", "groups"], doc.createNode(rules.groups));
  fs.writeFileSync(file, docs.map((d) => d.toString({ lineWidth: 0, blockQuote: "literal" })).join(""));
  console.log(`wrote the groups of ${rel(RULES_FILE)} into ${rel(file)}`);
}

const mode = process.argv[2];
if (mode === "--write-prometheusrule") {
  writePrometheusRule();
} else if (mode === "--self-test") {
  const { failures, count } = await selfTest();
  for (const f of failures) console.error(`FAIL ${f}`);
  console.log(`deploy/validate self-test: ${count - failures.length} passed, ${failures.length} failed`);
  process.exit(failures.length ? 1 : 0);
} else if (mode === undefined) {
  const { errors, notes, summary } = await validateAll();
  for (const n of notes) console.log(`note: ${n}`);
  for (const e of errors) console.error(`ERROR ${e}`);
  console.log(`deploy/validate: ${summary}: ${errors.length ? `${errors.length} problem(s)` : "OK"}`);
  process.exit(errors.length ? 1 : 0);
} else {
  console.error("usage: validate.mjs [--self-test | --write-prometheusrule]");
  process.exit(2);
}
