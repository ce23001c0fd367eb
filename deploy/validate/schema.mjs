// Every rendered object against the Kubernetes API schemas (kubernetes-models) and the
// prometheus-operator CRD schemas, rejecting unknown kinds, and unknown (misspelt) fields as a
// strict API server would (strict_fields.mjs).
import { id } from "./common.mjs";
import { unknownFields } from "./strict_fields.mjs";

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

export async function checkSchemas(objs, errors, where) {
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
