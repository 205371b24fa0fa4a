// Schema validation of rendered manifests, in two layers.
//
// 1. Exact Kubernetes releases, strict fields. The official OpenAPI documents
//    are on neither npm nor Debian (the only registries CI reaches), but the
//    official JavaScript client is generated from them, one client minor per
//    Kubernetes minor, and every generated model lists its JSON fields and
//    their types. scripts/fetch-k8s-schemas.sh unpacks the models of
//      @kubernetes/client-node 0.22.3  ("The version of the OpenAPI document: release-1.30")
//      @kubernetes/client-node 1.4.0   ("OpenAPI spec version: v1.34.0")
//    and this module turns them into JSON Schemas (draft-07, every object
//    closed with additionalProperties: false) validated with ajv. That catches
//    misspelt or misplaced fields, wrong types, and fields a release does not
//    have. It does not know which fields are required: layer 2 does.
//
// 2. kubernetes-models (tommy351/kubernetes-models-ts): ajv validators
//    precompiled from the OpenAPI schemas, with required fields, enums and
//    formats. kubernetes-models 5.1.0 is generated from Kubernetes v1.36.0
//    (merged with older releases for removed APIs), so it stands in for the
//    required-field rules of 1.30 and 1.34, which did not change for the kinds
//    this chart renders. The same project ships the CRD schemas:
//      @kubernetes-models/prometheus-operator 6.0.0  prometheus-operator v0.91.0 (PodMonitor, ServiceMonitor, PrometheusRule)
//      @kubernetes-models/keda 2.0.0                 KEDA v2.19.0 (ScaledObject)
//      @kubernetes-models/gateway-api 2.0.0          Gateway API v1.5.1 (HTTPRoute, experimental fields included)
//    Those validators ignore unknown fields, as a Kubernetes API server with
//    strict field validation would not. So each document is validated through
//    a Proxy that records which properties the validator reads; a property it
//    never reads in an object whose properties it checks is not in the schema.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import { repoRoot } from '../paths.js';
import { ensureFetched } from '../tools.js';

/** The Kubernetes releases every rendered object is validated against. */
export const KUBERNETES_VERSIONS = ['1.30', '1.34'] as const;
export type KubernetesVersion = (typeof KUBERNETES_VERSIONS)[number];

export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

interface Attribute {
  baseName: string;
  type: string;
  format?: string;
}

type JsonSchema = Record<string, unknown>;

const validators = new Map<KubernetesVersion, (kind: string) => ValidateFunction | undefined>();

/** Reads the generated models of one release into JSON Schema definitions. */
function definitionsFor(version: KubernetesVersion): Record<string, JsonSchema> {
  const base = join(repoRoot, '.tools', 'k8s-models', version, 'dist', 'gen');
  const dir = readdirSync(base).find((d) => d === 'model' || d === 'models');
  if (dir === undefined) throw new Error(`no generated models under ${base}; run scripts/fetch-k8s-schemas.sh`);
  const maps = new Map<string, Attribute[]>();
  for (const file of readdirSync(join(base, dir))) {
    if (!file.endsWith('.js')) continue;
    const source = readFileSync(join(base, dir, file), 'utf8');
    // The map is a JSON array literal: `V1Pod.attributeTypeMap = [ { "name": ... } ];`
    const match = /(\w+)\.attributeTypeMap = (\[[\s\S]*?\]);/.exec(source);
    if (match?.[1] !== undefined && match[2] !== undefined) maps.set(match[1], JSON.parse(match[2]) as Attribute[]);
  }
  const toSchema = (type: string, format = ''): JsonSchema => {
    if (format === 'int-or-string' || type === 'IntOrString') return { type: ['integer', 'string'] };
    const array = /^Array<(.+)>$/.exec(type);
    if (array?.[1] !== undefined) return { type: 'array', items: toSchema(array[1]) };
    const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
    if (map?.[1] !== undefined) return { type: 'object', additionalProperties: toSchema(map[1]) };
    if (type === 'string' || type === 'Date') return { type: 'string' };
    if (type === 'boolean') return { type: 'boolean' };
    if (type === 'number') return { type: format === 'int32' || format === 'int64' ? 'integer' : 'number' };
    if (maps.has(type)) return { $ref: `#/definitions/${type}` };
    return {}; // any, object, RawExtension: free-form in the API too
  };
  const definitions: Record<string, JsonSchema> = {};
  for (const [name, attributes] of maps) {
    const properties: Record<string, JsonSchema> = {};
    for (const a of attributes) properties[a.baseName] = toSchema(a.type, a.format);
    if (name === 'V1ResourceRequirements') {
      // resource.Quantity is a string in the models but an int-or-string on the wire (`cpu: 1`).
      for (const key of ['limits', 'requests']) properties[key] = { type: 'object', additionalProperties: { type: ['string', 'number'] } };
    }
    definitions[name] = { type: 'object', properties, additionalProperties: false };
  }
  return definitions;
}

/** Model class of a kind: apps/v1 Deployment -> V1Deployment, autoscaling/v2 HPA -> V2HorizontalPodAutoscaler. */
function modelName(apiVersion: string, kind: string): string {
  const version = apiVersion.split('/').pop() ?? apiVersion;
  return `${version.charAt(0).toUpperCase()}${version.slice(1)}${kind}`;
}

/** Built-in API groups the exact-release layer covers; anything else is a CRD. */
export function isBuiltIn(apiVersion: string): boolean {
  const group = apiVersion.includes('/') ? (apiVersion.split('/')[0] ?? '') : '';
  return group === '' || group === 'apps' || group === 'autoscaling' || group === 'policy' || (group.endsWith('.k8s.io') && !group.startsWith('gateway.'));
}

/** Errors of `doc` against Kubernetes `version`'s API (layer 1); empty when valid. */
export function validateExact(doc: Manifest, version: KubernetesVersion): string[] {
  let lookup = validators.get(version);
  if (lookup === undefined) {
    ensureFetched('scripts/fetch-k8s-schemas.sh', join('.tools', 'k8s-models', version, '.client-version'));
    const ajv = new Ajv({ allErrors: true, strict: false });
    const id = `k8s-${version}`;
    ajv.addSchema({ $id: id, definitions: definitionsFor(version) });
    const compiled = new Map<string, ValidateFunction | undefined>();
    lookup = (model) => {
      if (!compiled.has(model)) {
        compiled.set(model, ajv.getSchema(`${id}#/definitions/${model}`));
      }
      return compiled.get(model);
    };
    validators.set(version, lookup);
  }
  const model = modelName(doc.apiVersion, doc.kind);
  const validate = lookup(model);
  if (validate === undefined) return [`${doc.apiVersion} ${doc.kind} does not exist in Kubernetes ${version} (no model ${model})`];
  if (validate(doc)) return [];
  return (validate.errors ?? []).map((e) => {
    const extra = e.keyword === 'additionalProperties' ? ` (${String((e.params as { additionalProperty?: string }).additionalProperty)})` : '';
    return `${e.instancePath || '/'} ${e.message ?? e.keyword}${extra} [Kubernetes ${version}]`;
  });
}

/** Where kubernetes-models keeps the class of each kind this chart can render. */
function modelModule(apiVersion: string, kind: string): string {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  const path = group === '' ? `${version}/${kind}` : `${group}/${version}/${kind}`;
  if (group === 'monitoring.coreos.com') return `@kubernetes-models/prometheus-operator/${path}`;
  if (group === 'keda.sh') return `@kubernetes-models/keda/${path}`;
  if (group === 'gateway.networking.k8s.io' || group === 'gateway.networking.x-k8s.io') return `@kubernetes-models/gateway-api/${path}`;
  return `kubernetes-models/${path}`;
}

interface Visit {
  path: string;
  keys: string[];
  read: Set<string>;
  enumerated: boolean;
}

/** Deep copy of `value` whose objects report which properties are looked at. */
function tracked(value: unknown, path: string, visits: Visit[]): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return new Proxy(value.map((v, i) => tracked(v, `${path}/${i}`, visits)), {});
  const visit: Visit = { path, keys: Object.keys(value), read: new Set(), enumerated: false };
  visits.push(visit);
  const copy = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, tracked(v, `${path}/${k}`, visits)]));
  return new Proxy(copy, {
    get(target, key, receiver) {
      if (typeof key === 'string') visit.read.add(key);
      return Reflect.get(target, key, receiver) as unknown;
    },
    has(target, key) {
      if (typeof key === 'string') visit.read.add(key);
      return Reflect.has(target, key);
    },
    ownKeys(target) {
      // Iterated: a map (labels, annotations, trigger metadata), any key is fine.
      visit.enumerated = true;
      return Reflect.ownKeys(target);
    },
  });
}

/** Errors of `doc` against the kubernetes-models schema of its kind (layer 2); empty when valid. */
export async function validateModel(doc: Manifest): Promise<string[]> {
  const specifier = modelModule(doc.apiVersion, doc.kind);
  let module: Record<string, unknown>;
  try {
    module = (await import(specifier)) as Record<string, unknown>;
  } catch (err) {
    return [`no kubernetes-models schema for ${doc.apiVersion} ${doc.kind} (${specifier}): ${String(err)}`];
  }
  const model = module[doc.kind] as { prototype: { validate(this: unknown): void } } | undefined;
  if (model === undefined) return [`${specifier} exports no ${doc.kind}`];
  const visits: Visit[] = [];
  try {
    model.prototype.validate.call(tracked(doc, '', visits));
  } catch (err) {
    return [`${(err as Error).message} [${specifier}]`];
  }
  const unknown: string[] = [];
  for (const v of visits) {
    // Untouched objects are free-form in the schema (x-kubernetes-preserve-unknown-fields).
    if (v.enumerated || v.read.size === 0) continue;
    for (const key of v.keys) if (!v.read.has(key)) unknown.push(`${v.path}/${key} is not a field of this object [${specifier}]`);
  }
  return unknown;
}
