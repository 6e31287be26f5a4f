import assert from 'node:assert/strict';
import { httpDateNow } from '../../../src/middleware/http-date.js';

describe('middleware: httpDateNow', () => {
  it('is the IMF-fixdate of the current second (RFC 9110 §5.6.7)', () => {
    const before = Math.floor(Date.now() / 1000) * 1000;
    const text = httpDateNow();
    const after = Date.now();
    assert.match(text, /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/);
    const at = Date.parse(text);
    assert.ok(at >= before && at <= after, `${text} is not the current second`);
  });
});
