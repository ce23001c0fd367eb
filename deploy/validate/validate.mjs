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
//    a non-loopback --metrics-listen comes with TLS (the coordinator's --tls-cert, the worker's
//    --metrics-tls-cert/-key on a mounted Secret volume, its httpGet probes in the same scheme
//    and none under --metrics-tls-ca) or --insecure-allow-remote, which is a leftover where it
//    waives nothing, a worker's GPUs requested = --devices = env BITSWEEP_EXPECT_GPUS >= --max-tp, on the CUDA
//    image, --memory-gb under the memory limit, the shared volume at one path, the worker's
//    --state-dir on a writable volume of its own pod, resources and a non-root security context
//    on every container.
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
//
// Each concern is a module: render.mjs (the kustomize subset), schema.mjs (API schemas and
// strict fields, with strict_fields.mjs), refs.mjs (cross-references), containers.mjs
// (bitsweep's own container rules), monitoring.mjs (alerts and dashboard), docker.mjs
// (Dockerfiles and the images' runtime packages), selftest.mjs (--self-test); common.mjs is
// what they share.
import path from "node:path";
import { COMPLETE, K8S, RENDERS, loadDocs } from "./common.mjs";
import { compareWithKustomize, kustomizeAvailable, render } from "./render.mjs";
import { checkSchemas } from "./schema.mjs";
import { checkRefs } from "./refs.mjs";
import {
  RULES_FILE, checkMonitoring, checkPrometheusRuleMatches, exportedMetrics, writePrometheusRule,
} from "./monitoring.mjs";
import { checkDockerfiles, checkRuntimePackages } from "./docker.mjs";
import { selfTest } from "./selftest.mjs";

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
    if (realKustomize) compareWithKustomize(r, dir, rendered[r], errors);
    await checkSchemas(rendered[r], errors, r);
    checkRefs(rendered[r], errors, r, { complete: COMPLETE.includes(r) });
  }
  if (rendered.base) checkPrometheusRuleMatches(rendered.base, rules, errors, "base");
  const secretsDocs = loadDocs(path.join(K8S, "secrets.example.yaml"));
  await checkSchemas(secretsDocs, errors, "secrets.example.yaml");
  notes.push(realKustomize ? "renders compared with kubectl kustomize"
                           : "no kubectl with kustomize >= 4 on PATH: renders not compared with a real kustomize");

  const { alerts, dash } = checkMonitoring(rules, exported, errors);
  checkDockerfiles(errors);
  checkRuntimePackages(errors, notes);
  const objects = Object.values(rendered).reduce((n, o) => n + o.length, 0);
  return { errors, notes, summary: `${Object.keys(rendered).length} renders (${objects} objects), ${alerts.length} alerts, ${dash?.panels?.length ?? 0} dashboard panels` };
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
