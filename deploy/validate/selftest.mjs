// `validate.mjs --self-test`: proves the checks bite. Broken copies of the manifests, rules,
// dashboard and Dockerfiles must each be rejected with the expected error, and correct variants
// accepted; a check that lets a broken copy through (or rejects a correct one) fails it.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { DEPLOY, K8S, clone, loadDocs } from "./common.mjs";
import { render } from "./render.mjs";
import { checkSchemas } from "./schema.mjs";
import { checkRefs } from "./refs.mjs";
import {
  DASHBOARD, RULES_FILE, checkDashboard, checkDashboardSyntax, checkPrometheusRuleMatches, checkRuleNames,
  exportedMetrics,
} from "./monitoring.mjs";
import { checkDockerfile, checkRuntimePackages } from "./docker.mjs";

// Broken copies that must each be rejected; a check that lets one through fails the self-test.
export async function selfTest() {
  const exported = exportedMetrics();
  const base = render(path.join(K8S, "overlays/production"));
  const find = (objs, kind, name) => objs.find((o) => o.kind === kind && o.metadata.name === name);
  const coord = (objs) => find(objs, "Deployment", "bitsweep-coordinator").spec.template.spec.containers[0];
  const worker = (objs) => find(objs, "StatefulSet", "bitsweep-worker").spec.template.spec.containers[0];
  const plain = render(path.join(K8S, "overlays/gpu"));
  const svcPort = (objs, name) => find(objs, "Service", "bitsweep-coordinator").spec.ports.find((p) => p.name === name);
  const expectGpus = (objs) => worker(objs).env.find((e) => e.name === "BITSWEEP_EXPECT_GPUS");
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
    // The worker's state directory (--state-dir) on a volume of the pod's own.
    ["a worker without --state-dir", plain, (o) => { worker(o).args = worker(o).args.filter((a) => !a.startsWith("--state-dir=")); }, "set --state-dir"],
    ["a --state-dir on the root filesystem", plain, (o) => { setArg(worker(o), "--state-dir", "/var/lib/other"); }, "--state-dir /var/lib/other is on no mounted volume"],
    ["a --state-dir on a read-only mount", plain, (o) => { worker(o).volumeMounts.find((m) => m.name === "state").readOnly = true; }, "mounted read-only"],
    ["a --state-dir every worker shares", plain, (o) => { setArg(worker(o), "--state-dir", "/shared/state"); }, "which every pod of StatefulSet bitsweep-worker shares"],
    // GPUs: nvidia.com/gpu, --devices and BITSWEEP_EXPECT_GPUS agree, on the CUDA image.
    ["GPUs requested differ from --devices", base, (o) => { worker(o).resources.limits["nvidia.com/gpu"] = 4; worker(o).resources.requests["nvidia.com/gpu"] = 4; }, "nvidia.com/gpu limit 4, --devices=2 and env BITSWEEP_EXPECT_GPUS=2 must agree"],
    ["--devices differing from the GPUs requested", plain, (o) => { setArg(worker(o), "--devices", "2"); }, "nvidia.com/gpu limit 1, --devices=2 and env BITSWEEP_EXPECT_GPUS=1 must agree"],
    ["BITSWEEP_EXPECT_GPUS differing from the GPUs requested", plain, (o) => { expectGpus(o).value = "2"; }, "nvidia.com/gpu limit 1, --devices=1 and env BITSWEEP_EXPECT_GPUS=2 must agree"],
    ["a GPU worker without BITSWEEP_EXPECT_GPUS", plain, (o) => { worker(o).env = worker(o).env.filter((e) => e.name !== "BITSWEEP_EXPECT_GPUS"); }, "env BITSWEEP_EXPECT_GPUS=(unset) must agree"],
    ["BITSWEEP_EXPECT_GPUS without GPUs", plain, (o) => { delete worker(o).resources.limits["nvidia.com/gpu"]; delete worker(o).resources.requests["nvidia.com/gpu"]; }, "nvidia.com/gpu limit 0, --devices=1 and env BITSWEEP_EXPECT_GPUS=1 must agree"],
    ["BITSWEEP_EXPECT_GPUS from a field reference", plain, (o) => { const e = expectGpus(o); delete e.value; e.valueFrom = { fieldRef: { fieldPath: "metadata.name" } }; }, "must be a literal value"],
    ["a GPU worker on the CPU image", plain, (o) => { worker(o).image = "bitsweep/worker-cpu:0.1.0"; }, "not the CUDA worker image"],
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
    // /metrics: HTTPS under the coordinator's TLS, else plain HTTP needing --insecure-allow-remote.
    ["a plain coordinator's remote /metrics without --insecure-allow-remote", plain, (o) => { coord(o).args = coord(o).args.filter((a) => a !== "--insecure-allow-remote"); }, "a non-loopback --metrics-listen (plain HTTP) needs --tls-cert or --insecure-allow-remote"],
    ["a worker's remote /metrics without --insecure-allow-remote", plain, (o) => { worker(o).args = worker(o).args.filter((a) => a !== "--insecure-allow-remote"); }, "a non-loopback --metrics-listen (plain HTTP) needs --metrics-tls-cert or --insecure-allow-remote"],
    // The worker's /metrics: HTTPS with its own certificate in production.
    ["a TLS worker's remote /metrics without its certificate", base, (o) => { worker(o).args = worker(o).args.filter((a) => !a.startsWith("--metrics-tls-")); }, "needs --metrics-tls-cert or --insecure-allow-remote"],
    ["a worker's --metrics-tls-key without its certificate", base, (o) => { worker(o).args = worker(o).args.filter((a) => !a.startsWith("--metrics-tls-cert")); }, "--metrics-tls-cert and --metrics-tls-key go together"],
    ["a worker's metrics certificate on no Secret volume", base, (o) => { setArg(worker(o), "--metrics-tls-cert", "/var/lib/bitsweep/tls.crt"); }, "is on no mounted Secret volume"],
    ["a worker's metrics key its Secret volume does not project", base, (o) => { setArg(worker(o), "--metrics-tls-key", "/etc/bitsweep/metrics-tls/key.pem"); }, "projects no 'key.pem'"],
    ["--insecure-allow-remote on a worker with a metrics certificate", base, (o) => { worker(o).args.push("--insecure-allow-remote"); }, "with --metrics-tls-cert is a leftover"],
    ["a plain-HTTP liveness probe of a worker's HTTPS /metrics", base, (o) => { delete worker(o).livenessProbe.httpGet.scheme; }, "probes /metrics as HTTP but it is served as HTTPS"],
    ["an httpGet probe of a worker's /metrics that requires client certificates", base, (o) => { worker(o).args.push("--metrics-tls-ca=/etc/bitsweep/tls/ca.crt"); }, "cannot present the client certificate"],
    ["a ServiceMonitor scraping a TLS worker's /metrics as http", base, (o) => { const ep = find(o, "ServiceMonitor", "bitsweep-worker").spec.endpoints[0]; delete ep.scheme; delete ep.tlsConfig; }, "is scraped as http but"],
    ["--insecure-allow-remote on a TLS coordinator", base, (o) => { coord(o).args.push("--insecure-allow-remote"); }, "is a leftover"],
    ["a ServiceMonitor scraping a TLS coordinator's /metrics as http", base, (o) => { const ep = find(o, "ServiceMonitor", "bitsweep-coordinator").spec.endpoints[0]; delete ep.scheme; delete ep.tlsConfig; }, "is scraped as http but"],
    ["a ServiceMonitor scraping HTTPS /metrics without a tlsConfig", base, (o) => { delete find(o, "ServiceMonitor", "bitsweep-coordinator").spec.endpoints[0].tlsConfig; }, "without a tlsConfig"],
    ["a ServiceMonitor scraping a plain worker's /metrics as https", plain, (o) => { find(o, "ServiceMonitor", "bitsweep-worker").spec.endpoints[0].scheme = "https"; }, "is scraped as https but"],
    ["a dashboard port no NetworkPolicy admits", plain, (o) => { const np = find(o, "NetworkPolicy", "bitsweep-coordinator"); np.spec.ingress = np.spec.ingress.filter((r) => !r.ports.some((p) => p.port === 8080)); }, "admit no traffic"],
    ["a remote dashboard without the client token", base, (o) => { coord(o).env = coord(o).env.filter((e) => e.name !== "BITSWEEP_CLIENT_TOKEN"); }, "needs the client token"],
    ["an HTTPS dashboard behind appProtocol http", base, (o) => { svcPort(o, "http").appProtocol = "http"; }, "appProtocol 'http'"],
    ["an Ingress to a port its Service does not have", base, (o) => { find(o, "Ingress", "bitsweep-dashboard").spec.rules[0].http.paths[0].backend.service.port = { name: "dashboard" }; }, "no port of Service"],
    ["an Ingress to the gRPC port", base, (o) => { find(o, "Ingress", "bitsweep-dashboard").spec.rules[0].http.paths[0].backend.service.port = { number: 50051 }; }, "serves no web page"],
    ["an Ingress speaking HTTP to the HTTPS dashboard", base, (o) => { delete find(o, "Ingress", "bitsweep-dashboard").metadata.annotations; }, "backend-protocol is HTTP"],
    ["an Ingress TLS Secret that is not listed", base, (o) => { find(o, "Ingress", "bitsweep-dashboard").spec.tls[0].secretName = "nope"; }, "tls Secret 'nope'"],
  ];
  // The schema and cross-reference errors of a mutated copy of `objs`.
  const errorsOf = async (objs, mutate) => {
    const copy = clone(objs);
    mutate(copy);
    const errors = [];
    await checkSchemas(copy, errors, "self-test");
    checkRefs(copy, errors, "self-test", { complete: true });
    return errors;
  };
  const failures = [];
  for (const [what, objs, mutate, expect] of cases) {
    const errors = await errorsOf(objs, mutate);
    if (!errors.some((e) => e.includes(expect))) failures.push(`${what}: not rejected (expected an error containing '${expect}'; got ${JSON.stringify(errors)})`);
  }
  // Variants that must pass: a check that rejects one of them is wrong.
  const accepted = [
    ["TCP probes under TLS without --health-listen", base, noHealth],
    ["a --state-dir per pod on the shared volume", plain, (o) => { setArg(worker(o), "--state-dir", "/shared/state/$(POD_NAME)"); }],
    ["a --state-dir on an emptyDir (kept across container restarts, not pod deletion)", plain, (o) => {
      const s = find(o, "StatefulSet", "bitsweep-worker").spec;
      delete s.volumeClaimTemplates;
      s.template.spec.volumes.push({ name: "state", emptyDir: {} });
    }],
  ];
  for (const [what, objs, mutate] of accepted) {
    const errors = await errorsOf(objs, mutate);
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
