// Cross-references between the objects of a render: selectors match pod labels, Service target
// ports and ServiceMonitor ports exist and NetworkPolicies admit traffic to them, ConfigMap keys,
// Secrets (deploy/k8s/secrets.example.yaml) and PVCs exist, an Ingress routes to a Service port
// serving web pages with the right backend protocol; resources and a non-root security context
// on every container; bitsweep's own container rules (containers.mjs).
import path from "node:path";
import { K8S, WORKLOADS, id, loadDocs } from "./common.mjs";
import { bitsweepFlags, checkBitsweepContainer } from "./containers.mjs";

function secretCatalog() {
  const out = new Map();
  for (const s of loadDocs(path.join(K8S, "secrets.example.yaml"))) {
    out.set(s.metadata.name, new Set(Object.keys({ ...(s.data ?? {}), ...(s.stringData ?? {}) })));
  }
  return out;
}

const matches = (selector, labels) =>
  !!selector && Object.entries(selector).every(([k, v]) => labels?.[k] === v);

export function checkRefs(objs, errors, where, { complete }) {
  const secrets = secretCatalog();
  const byKind = (k) => objs.filter((o) => o.kind === k);
  const workloads = objs.filter((o) => WORKLOADS.has(o.kind));
  const podLabels = workloads.map((w) => ({ w, labels: w.spec?.template?.metadata?.labels ?? {} }));
  const configMaps = new Map(byKind("ConfigMap").map((c) => [c.metadata.name, c.data ?? {}]));
  const pvcs = new Set(byKind("PersistentVolumeClaim").map((p) => p.metadata.name));
  const err = (o, msg) => errors.push(`${where}: ${id(o)}: ${msg}`);
  const flags = bitsweepFlags();
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
      checkBitsweepContainer(w, c, { err, volumes, claims, env, flags, webPorts });
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
        const web = webPorts.find((p) => p.w === w && p.containerPort === cp.containerPort && !p.metrics);
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
      // Scraped with the scheme the container serves /metrics in (HTTPS under the coordinator's TLS).
      const scheme = ep.scheme ?? "http";
      for (const s of svcs) {
        const sp = (servicePorts.get(s.metadata.name) ?? []).find(({ port }) => port.name === ep.port);
        for (const { w, cp } of sp?.hits ?? []) {
          const served = webPorts.find((p) => p.w === w && p.containerPort === cp.containerPort && p.metrics);
          if (served && served.scheme !== scheme) err(sm, `endpoint port '${ep.port}' is scraped as ${scheme} but ${id(w)} serves /metrics as ${served.scheme} there`);
          if (served?.scheme === "https" && !ep.tlsConfig) err(sm, `endpoint port '${ep.port}' is scraped as https without a tlsConfig (its CA and server name)`);
        }
      }
    }
  }
}
