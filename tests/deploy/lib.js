// lib.js: what the deploy tests share. Reads deploy/ (YAML, the kustomization's env file),
// asks the built digestd which environment variables it knows (`digestd --help`), and checks
// objects against the Kubernetes and KEDA schemas of kubernetes-models.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import YAML from 'yaml';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, '..', '..');
export const DIGESTD_BIN = process.env.DIGESTD_BIN || path.join(ROOT, 'build', 'digestd');

// The variables `digestd --help` documents: lines "  NAME=default".
export function digestdVariables() {
  const help = execFileSync(DIGESTD_BIN, ['--help'], { encoding: 'utf8' });
  const names = new Set();
  for (const line of help.split('\n')) {
    const m = /^  ([A-Z][A-Z0-9_]*)=/.exec(line);
    if (m) names.add(m[1]);
  }
  if (names.size < 10) throw new Error(`digestd --help listed only ${names.size} variables`);
  return names;
}

// Variable names a manifest sets that `digestd --help` does not know.
export function unknownVariables(names, known) {
  return [...names].filter((n) => !known.has(n));
}

export function readText(rel) {
  return fs.readFileSync(path.join(ROOT, rel), 'utf8');
}

// Every document of a YAML file; a parse error or warning fails.
export function readYamlDocs(rel) {
  const docs = YAML.parseAllDocuments(readText(rel), { prettyErrors: true, uniqueKeys: true });
  const out = [];
  for (const d of docs) {
    if (d.errors.length) throw new Error(`${rel}: ${d.errors[0].message}`);
    if (d.warnings.length) throw new Error(`${rel}: ${d.warnings[0].message}`);
    const v = d.toJS();
    if (v !== null && v !== undefined) out.push(v);
  }
  return out;
}

// KEY=VALUE lines (blank lines and # comments skipped), as kustomize's `envs` and digestd's
// --config read them. Keys in file order; a repeated key fails.
export function readEnvFile(rel) {
  const vars = new Map();
  readText(rel).split('\n').forEach((line, i) => {
    const t = line.trim();
    if (t === '' || t.startsWith('#')) return;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(t);
    if (!m) throw new Error(`${rel}:${i + 1}: not KEY=VALUE`);
    if (vars.has(m[1])) throw new Error(`${rel}:${i + 1}: ${m[1]} set twice`);
    vars.set(m[1], m[2]);
  });
  return vars;
}

// --- schemas --------------------------------------------------------------------------------

const K8S = {
  'v1/Namespace': ['kubernetes-models/v1', 'Namespace'],
  'v1/Secret': ['kubernetes-models/v1', 'Secret'],
  'v1/ConfigMap': ['kubernetes-models/v1', 'ConfigMap'],
  'v1/Service': ['kubernetes-models/v1', 'Service'],
  'apps/v1/Deployment': ['kubernetes-models/apps/v1', 'Deployment'],
  'policy/v1/PodDisruptionBudget': ['kubernetes-models/policy/v1', 'PodDisruptionBudget'],
  'keda.sh/v1alpha1/ScaledObject': ['@kubernetes-models/keda/keda.sh/v1alpha1', 'ScaledObject'],
  'keda.sh/v1alpha1/TriggerAuthentication': ['@kubernetes-models/keda/keda.sh/v1alpha1', 'TriggerAuthentication'],
};

// Validates one object against its published schema (throws with the schema's message).
export function validateSchema(obj) {
  const key = `${obj.apiVersion}/${obj.kind}`;
  const entry = K8S[key];
  if (!entry) throw new Error(`no schema known for ${key}`);
  const Model = require(entry[0])[entry[1]];
  new Model(obj).validate();
}

// The schemas do not refuse a property they do not define (OpenAPI leaves
// additionalProperties open), so a misspelt `readinesProbe` would pass them. Every property
// name of the compiled validators, over both packages, is the vocabulary a key must be in.
let vocabulary;
function schemaVocabulary() {
  if (vocabulary) return vocabulary;
  vocabulary = new Set();
  const dirs = ['kubernetes-models', '@kubernetes-models/keda', '@kubernetes-models/apimachinery'];
  for (const d of dirs) {
    const walk = (dir) => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.name.endsWith('.js') && dir.includes('_schemas')) {
          const src = fs.readFileSync(p, 'utf8');
          for (const m of src.matchAll(/data\.([A-Za-z_$][\w$]*)/g)) vocabulary.add(m[1]);
          for (const m of src.matchAll(/data\["([^"]+)"\]/g)) vocabulary.add(m[1]);
        }
      }
    };
    walk(path.join(here, 'node_modules', d));
  }
  return vocabulary;
}

// Maps whose keys are data, not schema properties.
const FREE_FORM = new Set(['labels', 'annotations', 'matchLabels', 'data', 'stringData',
  'metadata', 'nodeSelector', 'requests', 'limits']);

// Keys of obj (recursively) that no schema defines; free-form maps are not entered, and a
// KEDA trigger's metadata is checked by the tests themselves.
export function unknownKeys(obj, at = '') {
  const vocab = schemaVocabulary();
  const bad = [];
  const walk = (v, where, parentKey) => {
    if (Array.isArray(v)) {
      v.forEach((e, i) => walk(e, `${where}[${i}]`, parentKey));
    } else if (v && typeof v === 'object') {
      for (const [k, sub] of Object.entries(v)) {
        if (!vocab.has(k)) bad.push(`${where}.${k}`);
        if (FREE_FORM.has(k) && !(k === 'metadata' && where === at)) continue;
        // A Service's selector is a plain label map; a workload's has matchLabels.
        if (k === 'selector' && sub && !sub.matchLabels && !sub.matchExpressions) continue;
        walk(sub, `${where}.${k}`, k);
      }
    }
  };
  walk(obj, at, '');
  return bad;
}

// --- values digestd takes ------------------------------------------------------------------

// A *_MS value: a number of milliseconds or a duration (500ms, 10s, 5m, 2h, 7d).
export function durationMs(s) {
  const m = /^(\d+)(ms|s|m|h|d)?$/.exec(String(s));
  if (!m) throw new Error(`not a duration: ${s}`);
  const n = Number(m[1]);
  return n * { undefined: 1, ms: 1, s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[m[2]];
}

// DIGEST_LISTEN host:port or [v6]:port.
export function listenAddress(s) {
  const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(s);
  if (!m) throw new Error(`DIGEST_LISTEN not host:port: ${s}`);
  return { host: m[1], port: Number(m[2]) };
}

// USE_ASYNC_DIGEST as SPEC §2 has it: true, false, or N% with N in 0..100.
export function asyncDigestValueOk(s) {
  if (s === 'true' || s === 'false') return true;
  const m = /^(\d{1,3})%$/.exec(s);
  return !!m && Number(m[1]) <= 100;
}

// The keys of SPEC §5 for a prefix.
export const streamKey = (prefix) => `{${prefix}}:requests`;
export const GROUP = 'workers';
