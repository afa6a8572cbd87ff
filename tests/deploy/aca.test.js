// aca.test.js: deploy/azure-container-apps, as far as it can be checked without Azure: the
// placeholders are exactly deploy.sh's, the rendered YAML parses with every env value a string,
// the structure is a Container App's, and the settings agree with digestd (its --help,
// DIGEST_LISTEN, DIGEST_PREFIX) and with the Kubernetes manifests' scaling.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import test from 'node:test';
import YAML from 'yaml';
import {
  ROOT, digestdVariables, unknownVariables, readText, durationMs, listenAddress,
  asyncDigestValueOk, streamKey, GROUP,
} from './lib.js';

const DIR = 'deploy/azure-container-apps';
const script = readText(`${DIR}/deploy.sh`);
const VARS = /^VARS='([^']*)'/m.exec(script)[1].split(/\s+/).filter(Boolean);

// What envsubst with deploy.sh's list does: only ${NAME} for listed names.
function render(text, values) {
  return text.replace(/\$\{([A-Z_][A-Z0-9_]*)\}/g, (m, n) => (VARS.includes(n) ? values[n] : m));
}

// Values that would trip YAML if unquoted: a boolean, a number, colons, braces.
const SAMPLE = {
  AZ_LOCATION: 'westeurope',
  AZ_IDENTITY_ID: '/subscriptions/0000/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/digestd',
  AZ_ENVIRONMENT_ID: '/subscriptions/0000/resourceGroups/rg/providers/Microsoft.App/managedEnvironments/env',
  AZ_REGISTRY: 'example.azurecr.io',
  AZ_KEY_VAULT_URL: 'https://example.vault.azure.net',
  IMAGE: 'example.azurecr.io/digestd:0.1.0',
  REDIS_HOST: 'example.redis.cache.windows.net',
  MICROSOFT_APP_ID: '12345',
  MICROSOFT_APP_TENANT_ID: 'botframework.com',
  DIGEST_UPSTREAM_URL: 'https://digest.example/api/talentwell/digest?audience={audience}',
  USE_ASYNC_DIGEST: 'true',
  ASYNC_DIGEST_ALLOW: 'msteams:19:abc@thread.tacv2,29:1user',
};

function load(file, values = SAMPLE) {
  const doc = YAML.parseDocument(render(readText(`${DIR}/${file}`), values), { uniqueKeys: true });
  assert.deepEqual(doc.errors, [], `${file} parses`);
  return doc.toJS();
}

const apps = { api: load('api.yaml'), worker: load('worker.yaml') };
const container = (app) => {
  const cs = app.properties.template.containers;
  assert.equal(cs.length, 1);
  return cs[0];
};
const env = (app) => new Map(container(app).env.map((e) => [e.name, e]));

test('deploy.sh: valid bash, and its placeholder list is exactly what the YAML uses', () => {
  execFileSync('bash', ['-n', path.join(ROOT, DIR, 'deploy.sh')]);
  const used = new Set();
  for (const f of ['api.yaml', 'worker.yaml']) {
    const text = readText(`${DIR}/${f}`).split('\n').filter((l) => !l.trim().startsWith('#')).join('\n');
    for (const m of text.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g)) used.add(m[1]);
  }
  assert.deepEqual([...used].sort(), [...VARS].sort());
  // Nothing left unreplaced after rendering, braces of digestd's own ({digest}, {audience}) kept.
  for (const a of Object.values(apps)) assert.doesNotMatch(JSON.stringify(a), /\$\{/);
  assert.equal(env(apps.api).get('DIGEST_UPSTREAM_URL').value, SAMPLE.DIGEST_UPSTREAM_URL);
});

test('both apps are Container Apps with secrets from Key Vault and every env value a string', () => {
  for (const [role, a] of Object.entries(apps)) {
    assert.equal(a.type, 'Microsoft.App/containerApps');
    assert.equal(a.name, `digestd-${role}`);
    assert.equal(a.properties.managedEnvironmentId, SAMPLE.AZ_ENVIRONMENT_ID);
    assert.ok(a.identity.userAssignedIdentities[SAMPLE.AZ_IDENTITY_ID]);
    const secrets = new Set(a.properties.configuration.secrets.map((s) => s.name));
    for (const s of a.properties.configuration.secrets) {
      assert.match(s.keyVaultUrl, /^https:\/\/.*\/secrets\/digestd-[a-z-]+$/, s.name);
      assert.equal(s.value, undefined, `${s.name}: no secret value in the file`);
      assert.match(s.name, /^[a-z0-9][a-z0-9-]*$/, 'ACA secret names: lower case and dashes');
    }
    for (const e of container(a).env) {
      assert.ok(('value' in e) !== ('secretRef' in e), `${e.name}: value or secretRef`);
      if ('value' in e) assert.equal(typeof e.value, 'string', `${role}: ${e.name} is a string`);
      else assert.ok(secrets.has(e.secretRef), `${role}: ${e.name}: secret ${e.secretRef} defined`);
    }
    for (const r of a.properties.template.scale.rules) {
      for (const au of r.custom?.auth ?? []) assert.ok(secrets.has(au.secretRef), au.secretRef);
    }
    const { cpu, memory } = container(a).resources;
    // Container Apps' pairs: memory is twice the CPU in Gi.
    assert.equal(`${cpu * 2}Gi`, memory, `${role}: a CPU/memory pair Container Apps accepts`);
  }
});

test('the env names are digestd\'s, the probes sit on DIGEST_LISTEN, the grace outlasts the drain', () => {
  const known = digestdVariables();
  for (const [role, a] of Object.entries(apps)) {
    const e = env(a);
    assert.deepEqual(unknownVariables(e.keys(), known), [], role);
    const c = container(a);
    const i = c.args.indexOf('--role');
    assert.equal(c.args[i + 1], role);
    const listen = listenAddress(e.get('DIGEST_LISTEN').value);
    assert.equal(listen.host, '0.0.0.0');
    const probe = (t) => c.probes.find((p) => p.type === t).httpGet;
    assert.deepEqual(probe('Readiness'), { path: '/readyz', port: listen.port });
    assert.deepEqual(probe('Liveness'), { path: '/healthz', port: listen.port });
    const grace = durationMs(e.get('SHUTDOWN_GRACE_MS').value);
    assert.ok(a.properties.template.terminationGracePeriodSeconds * 1000 > grace, role);
    for (const flag of ['true', 'false', '10%', '100%']) {
      const v = env(load(`${role}.yaml`, { ...SAMPLE, USE_ASYNC_DIGEST: flag })).get('USE_ASYNC_DIGEST').value;
      assert.equal(v, flag);
      assert.ok(asyncDigestValueOk(v));
    }
  }
  assert.equal(apps.api.properties.configuration.ingress.targetPort,
    listenAddress(env(apps.api).get('DIGEST_LISTEN').value).port);
  assert.ok(apps.api.properties.template.scale.minReplicas >= 2);
});

test('the worker: no ingress, one revision at a time, KEDA redis-streams on the lag of DIGEST_PREFIX', () => {
  const w = apps.worker;
  assert.equal(w.properties.configuration.ingress, undefined, 'nothing reaches a worker from outside');
  assert.equal(w.properties.configuration.activeRevisionsMode, 'Single');
  assert.equal(apps.api.properties.configuration.activeRevisionsMode, 'Multiple');
  const scale = w.properties.template.scale;
  assert.equal(scale.minReplicas, 0);
  assert.equal(scale.maxReplicas, 10);
  const prefix = env(w).get('DIGEST_PREFIX').value;
  assert.equal(prefix, env(apps.api).get('DIGEST_PREFIX').value);
  for (const r of scale.rules) {
    assert.equal(r.custom.type, 'redis-streams');
    const m = r.custom.metadata;
    assert.equal(m.stream, streamKey(prefix));
    assert.equal(m.consumerGroup, GROUP);
    assert.equal(m.enableTLS, 'true');
    assert.equal(m.address, `${SAMPLE.REDIS_HOST}:6380`);
    for (const v of Object.values(m)) assert.equal(typeof v, 'string', 'KEDA metadata are strings');
    assert.deepEqual(r.custom.auth.map((x) => x.triggerParameter), ['password']);
  }
  const lag = scale.rules.filter((r) => r.custom.metadata.lagCount !== undefined);
  assert.equal(lag.length, 1);
  assert.equal(lag[0].custom.metadata.lagCount, '5');
  assert.equal(lag[0].custom.metadata.activationLagCount, '0');
  const conc = env(w).get('WORKER_CONCURRENCY').value;
  for (const r of scale.rules.filter((x) => x !== lag[0])) {
    assert.equal(r.custom.metadata.pendingEntriesCount, conc);
  }
});
