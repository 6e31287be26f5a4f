// setOutgoingField writes a field of the cache's own making (Date, ETag,
// Cache-Status) where node's setHeader would, without its checks. What node
// then holds and sends must be what setHeader leaves; where setHeader would do
// more (an app's wrapper, a head already built), it must be called.
import assert from 'node:assert/strict';
import { IncomingMessage, ServerResponse } from 'node:http';
import { setOutgoingField } from '../../../src/middleware/outgoing-field.js';

function response(): ServerResponse {
  return new ServerResponse(new IncomingMessage(null as never));
}

describe('middleware: outgoing fields set by a lower-case name', () => {
  it('leaves what setHeader leaves: the first field, one among others, one replaced, a list', () => {
    const ours = response();
    const node = response();
    for (const [name, value] of [
      ['date', 'Mon, 07 Dec 2026 10:00:00 GMT'],
      ['etag', '"615-abc"'],
      ['cache-status', 'tiercache; fwd=miss'],
      ['cache-status', ['upstream; hit', 'tiercache; fwd=miss; stored']],
    ] as const) {
      setOutgoingField(ours, name, value as string | string[]);
      node.setHeader(name, value as string | string[]);
      assert.deepEqual(ours.getHeaders(), node.getHeaders(), name);
      assert.deepEqual(ours.getHeaderNames(), node.getHeaderNames(), name);
      assert.deepEqual(ours.getHeader(name), node.getHeader(name), name);
    }
    ours.writeHead(200);
    node.writeHead(200);
    assert.equal((ours as unknown as { _header: string })._header, (node as unknown as { _header: string })._header);
  });

  it("calls the response's own setHeader where an app wrapped it", () => {
    const res = response();
    const seen: unknown[] = [];
    const own = res.setHeader;
    res.setHeader = function (name: string, value: number | string | readonly string[]) {
      seen.push([name, value]);
      return own.call(this, name, value);
    };
    setOutgoingField(res, 'etag', '"1-x"');
    assert.deepEqual(seen, [['etag', '"1-x"']]);
    assert.equal(res.getHeader('etag'), '"1-x"');
  });

  it('throws as setHeader does once the head is built', () => {
    const res = response();
    res.writeHead(200);
    assert.throws(() => setOutgoingField(res, 'date', 'x'), { code: 'ERR_HTTP_HEADERS_SENT' });
  });
});
