// Instances of one namespace on Node versions with and without crypto.hash
// (added in 20.12; package.json allows any 20) must build the same key for a
// credential: a rolling upgrade shares variants through L2. request-key.ts
// reads crypto.hash once, as it loads: here it is loaded again without it.
import assert from 'node:assert/strict';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { buildRequestKey, variantKey } from '../../../src/keys/request-key.js';

const crypto = createRequire(import.meta.url)('node:crypto') as { hash?: unknown };

describe('keys: a credential digest where node has no crypto.hash', () => {
  it('is the one computed where it has (request keys, variant keys and an access_token query)', async () => {
    const hash = crypto.hash;
    delete crypto.hash;
    syncBuiltinESMExports();
    // Another URL, so another instance of the module, evaluated now.
    const again = '../../../src/keys/request-key.js?without-one-shot-hash';
    let fallback: { buildRequestKey: typeof buildRequestKey; variantKey: typeof variantKey };
    try {
      fallback = (await import(again)) as typeof fallback;
    } finally {
      if (hash !== undefined) crypto.hash = hash;
      syncBuiltinESMExports();
    }
    const input = { namespace: 'ns', method: 'GET', url: '/me?access_token=abc', vary: [['authorization', 'Bearer secret'] as [string, string]] };
    const k = buildRequestKey(input);
    assert.ok(!k.includes('secret') && !k.includes('abc'), k);
    assert.equal(fallback.buildRequestKey(input), k);
    assert.equal(fallback.variantKey('ns:GET:/me', [['cookie', 'sid=1']]), variantKey('ns:GET:/me', [['cookie', 'sid=1']]));
  });
});
