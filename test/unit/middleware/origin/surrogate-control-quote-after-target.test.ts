// Why this test exists: in Surrogate-Control a ';' names the device an element
// is addressed to, unless it sits inside a quoted argument (a quote before it
// and one after it). Mutation testing showed nothing checked an element whose
// only quotes follow its ';' (a quoted device name): that ';' is a target all
// the same, not text, and an element for another device must stay skipped.
import assert from 'node:assert/strict';
import { responseDirectives, type TargetedFields } from '../../../../src/middleware/origin/directives.js';

const SURROGATE: TargetedFields = { cdnCacheControl: false, surrogate: 'tiercache' };

const governing = (headers: Record<string, string>): Record<string, string> => Object.fromEntries(responseDirectives(headers, SURROGATE).values);

describe('middleware: Surrogate-Control, a quote after the device separator', () => {
  it('skips max-age=600;"other" (addressed to a device named "other", quotes and all), leaving Cache-Control in charge', () => {
    assert.deepEqual(governing({ 'surrogate-control': 'max-age=600;"other"', 'cache-control': 'max-age=5' }), { 'max-age': '5' });
  });

  it('skips such an element next to one addressed to every surrogate', () => {
    assert.deepEqual(governing({ 'surrogate-control': 'no-store=x;"other", max-age=30', 'cache-control': 'max-age=5' }), { 'max-age': '30' });
  });
});
