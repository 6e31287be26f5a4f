// outgoingField / hasOutgoingField read a fill's header fields where node
// keeps them, skipping getHeader's check and lower-casing of a literal name.
// They must answer as getHeader / hasHeader do, and ask those themselves where
// they are not node's own (an app's wrapper on the response, an HTTP/2
// response's), so a wrapper still sees every question.
import assert from 'node:assert/strict';
import { IncomingMessage, ServerResponse } from 'node:http';
import { fieldSlotOf, hasOutgoingField, OUT_HEADERS, outgoingField } from '../../../src/middleware/outgoing-field.js';

const NAMES = ['cache-status', 'vary', 'content-length', 'set-cookie', 'transfer-encoding', 'trailer', 'x-absent'];

function response(): ServerResponse {
  return new ServerResponse(new IncomingMessage(null as never));
}

describe('middleware: outgoing fields read by a lower-case name', () => {
  it('answers as getHeader and hasHeader do: none set yet, set in any case, a number, a list, removed', () => {
    const res = response();
    for (const name of NAMES) {
      assert.equal(outgoingField(res, name), undefined);
      assert.equal(hasOutgoingField(res, name), false);
    }
    res.setHeader('Cache-Status', 'upstream; hit');
    res.setHeader('VARY', 'Accept');
    res.setHeader('content-length', 12);
    res.setHeader('Set-Cookie', ['a=1', 'b=2']);
    res.setHeader('trailer', 'x');
    res.removeHeader('Trailer');
    for (const name of NAMES) {
      assert.deepEqual(outgoingField(res, name), res.getHeader(name), name);
      assert.equal(hasOutgoingField(res, name), res.hasHeader(name), name);
    }
    assert.equal(outgoingField(res, 'content-length'), 12);
    assert.deepEqual(outgoingField(res, 'set-cookie'), ['a=1', 'b=2']);
  });

  it("asks the response's own getHeader and hasHeader where an app wrapped them", () => {
    const res = response();
    res.setHeader('vary', 'Accept');
    const asked: string[] = [];
    res.getHeader = function (this: ServerResponse, name: string) {
      asked.push(`get ${name}`);
      return name === 'vary' ? 'Accept, Origin' : ServerResponse.prototype.getHeader.call(this, name);
    };
    res.hasHeader = function (this: ServerResponse, name: string) {
      asked.push(`has ${name}`);
      return name === 'set-cookie' || ServerResponse.prototype.hasHeader.call(this, name);
    };
    assert.equal(outgoingField(res, 'vary'), 'Accept, Origin');
    assert.equal(hasOutgoingField(res, 'set-cookie'), true);
    assert.deepEqual(asked, ['get vary', 'has set-cookie']);
  });

  it('asks any other kind of response (an HTTP/2 one) through its own methods', () => {
    const fields: Record<string, string> = { vary: 'Accept' };
    const other = { getHeader: (name: string) => fields[name], hasHeader: (name: string) => name in fields } as unknown as ServerResponse;
    assert.equal(outgoingField(other, 'vary'), 'Accept');
    assert.equal(outgoingField(other, 'trailer'), undefined);
    assert.equal(hasOutgoingField(other, 'vary'), true);
    assert.equal(hasOutgoingField(other, 'trailer'), false);
  });

  it("reads node's slot only while a probe's field reads back from it as [name, value]; a slot kept another way is not used", () => {
    assert.ok(OUT_HEADERS !== undefined, 'the premise: this node keeps fields as outgoingField reads them');
    assert.equal(fieldSlotOf(response()), OUT_HEADERS);
    // A later node keeping fields another way (a Map, values alone) under the same name: not read.
    for (const kept of [() => new Map(), (v: unknown) => ({ 'x-tiercache-probe': v }), () => ({ 'x-tiercache-probe': ['x-tiercache-probe', 'other'] })]) {
      const res = response();
      const slot = Object.getOwnPropertySymbols(res).find((s) => s.description === 'kOutHeaders')!;
      const setHeader = res.setHeader;
      res.setHeader = function (this: ServerResponse, name: string, value: number | string | readonly string[]) {
        setHeader.call(this, name, value);
        (this as unknown as Record<symbol, unknown>)[slot] = kept(value);
        return this;
      };
      assert.equal(fieldSlotOf(res), undefined, String(kept));
    }
    const renamed = { setHeader: () => undefined, getHeader: () => undefined } as unknown as ServerResponse;
    assert.equal(fieldSlotOf(renamed), undefined);
  });
});
