/**
 * The RFC 2866 codec and the record mapping, as pure units (the real client, radclient, is in
 * test/e2e/radius.test.ts): authenticators both ways, every framing error RFC 2865 §3 says to
 * discard, device ids from station ids, and keys that survive a retransmission.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { deviceIdOf, readAccountingRequest } from './accounting.js';
import {
  attrAddress,
  ATTR,
  CODE,
  decodePacket,
  encodeAccountingRequest,
  encodeAccountingResponse,
  intValue,
  MalformedPacket,
  STATUS_TYPE,
  verifyRequestAuthenticator,
} from './codec.js';

const SECRET = Buffer.from('shared-secret-0123456789');
const text = (s: string) => Buffer.from(s);

function request(extra: Array<{ type: number; value: Buffer }> = [], id = 7, outputOctets = 20) {
  return encodeAccountingRequest(
    id,
    [
      { type: ATTR.NAS_IDENTIFIER, value: text('nas-1') },
      { type: ATTR.ACCT_STATUS_TYPE, value: intValue(STATUS_TYPE.INTERIM_UPDATE) },
      { type: ATTR.ACCT_SESSION_ID, value: text('s-1') },
      { type: ATTR.CALLING_STATION_ID, value: text('00:1a:2b:3c:4d:5e') },
      { type: ATTR.ACCT_INPUT_OCTETS, value: intValue(10) },
      { type: ATTR.ACCT_INPUT_GIGAWORDS, value: intValue(2) },
      { type: ATTR.ACCT_OUTPUT_OCTETS, value: intValue(outputOctets) },
      { type: ATTR.EVENT_TIMESTAMP, value: intValue(1_767_225_600) },
      ...extra,
    ],
    SECRET,
  );
}

describe('RADIUS accounting codec', () => {
  it('verifies the Request Authenticator with the right secret only, and any tampering breaks it', () => {
    const raw = request();
    const p = decodePacket(raw);
    expect(p.code).toBe(CODE.ACCOUNTING_REQUEST);
    expect(verifyRequestAuthenticator(p, SECRET)).toBe(true);
    expect(verifyRequestAuthenticator(p, Buffer.from('another-secret-0123456789'))).toBe(false);
    const tampered = Buffer.from(raw);
    tampered.writeUInt8(tampered.readUInt8(tampered.length - 1) ^ 1, tampered.length - 1);
    expect(verifyRequestAuthenticator(decodePacket(tampered), SECRET)).toBe(false);
  });

  it('answers with the Response Authenticator of RFC 2866 §3', () => {
    const p = decodePacket(request());
    const res = encodeAccountingResponse(p, SECRET);
    expect(res[0]).toBe(CODE.ACCOUNTING_RESPONSE);
    expect(res[1]).toBe(7);
    expect(res.readUInt16BE(2)).toBe(20);
    const expected = createHash('md5').update(Buffer.concat([res.subarray(0, 4), p.authenticator, SECRET])).digest();
    expect(res.subarray(4, 20)).toEqual(expected);
  });

  it('discards what RFC 2865 §3 says to discard, and ignores padding after Length', () => {
    const raw = request();
    expect(() => decodePacket(raw.subarray(0, 19))).toThrow(MalformedPacket);
    expect(() => decodePacket(raw.subarray(0, raw.length - 1))).toThrow(MalformedPacket);
    const badLen = Buffer.from(raw);
    badLen.writeUInt16BE(5000, 2);
    expect(() => decodePacket(badLen)).toThrow(MalformedPacket);
    const zeroAttr = Buffer.from(raw);
    zeroAttr[21] = 0;
    expect(() => decodePacket(zeroAttr)).toThrow(MalformedPacket);
    const overrun = Buffer.from(raw);
    overrun[21] = 250;
    expect(() => decodePacket(overrun)).toThrow(MalformedPacket);
    const padded = Buffer.concat([raw, Buffer.from([1, 2, 3])]);
    expect(verifyRequestAuthenticator(decodePacket(padded), SECRET)).toBe(true);
  });

  it('maps the request to a record: device, octets with Gigawords, event time', () => {
    const r = readAccountingRequest(decodePacket(request()), 0);
    expect(r).toEqual({
      kind: 'record',
      record: {
        key: 's-1|interim|e1767225600:t:8589934602:20',
        session_id: 's-1',
        status: 'interim',
        device_id: '00-1A-2B-3C-4D-5E',
        ts: 1_767_225_600_000,
        input_octets: 2 * 2 ** 32 + 10,
        output_octets: 20,
      },
    });
  });

  it('keeps the key of a retransmission whose Acct-Delay-Time changed (new Identifier, new authenticator)', () => {
    const first = readAccountingRequest(decodePacket(request()), 0);
    const resent = readAccountingRequest(decodePacket(request([{ type: ATTR.ACCT_DELAY_TIME, value: intValue(9) }], 8)), 0);
    expect(first.kind === 'record' && resent.kind === 'record' && first.record.key === resent.record.key).toBe(true);
  });

  it('tells apart two Interim-Updates of one Event-Timestamp second by their counters', () => {
    const first = readAccountingRequest(decodePacket(request()), 0);
    const later = readAccountingRequest(decodePacket(request([], 8, 4096)), 0);
    expect(first.kind === 'record' && later.kind === 'record').toBe(true);
    if (first.kind !== 'record' || later.kind !== 'record') return;
    expect(later.record.ts).toBe(first.record.ts);
    expect(later.record.key).not.toBe(first.record.key);
  });

  it('refuses a 3-octet integer as malformed, and names what it cannot use', () => {
    const bad = decodePacket(request([{ type: ATTR.ACCT_SESSION_TIME, value: Buffer.from([1, 2, 3]) }]));
    expect(() => readAccountingRequest(bad, 0)).toThrow(MalformedPacket);
    const noStatus = decodePacket(encodeAccountingRequest(1, [{ type: ATTR.ACCT_SESSION_ID, value: text('s') }], SECRET));
    expect(readAccountingRequest(noStatus, 0)).toEqual({ kind: 'unusable', reason: 'unsupported_status' });
    const on = decodePacket(encodeAccountingRequest(1, [{ type: ATTR.ACCT_STATUS_TYPE, value: intValue(STATUS_TYPE.ACCOUNTING_ON) }], SECRET));
    expect(readAccountingRequest(on, 5000)).toEqual({ kind: 'control', status: 'accounting-on', at: 5000 });
  });

  it('reads NAS-IP-Address and NAS-IPv6-Address as text, and ignores one of another length', () => {
    const p = decodePacket(
      encodeAccountingRequest(
        1,
        [
          { type: ATTR.NAS_IP_ADDRESS, value: Buffer.from([10, 0, 0, 254]) },
          { type: ATTR.NAS_IPV6_ADDRESS, value: Buffer.from('20010db8000000000000000000000001', 'hex') },
        ],
        SECRET,
      ),
    );
    expect(attrAddress(p, ATTR.NAS_IP_ADDRESS)).toBe('10.0.0.254');
    expect(attrAddress(p, ATTR.NAS_IPV6_ADDRESS)).toBe('2001:db8::1');
    const odd = decodePacket(encodeAccountingRequest(1, [{ type: ATTR.NAS_IP_ADDRESS, value: Buffer.from([1, 2, 3, 4, 5]) }], SECRET));
    expect(attrAddress(odd, ATTR.NAS_IP_ADDRESS)).toBeUndefined();
  });

  it.each([
    ['00:1a:2b:3c:4d:5e', '00-1A-2B-3C-4D-5E'],
    ['00-1A-2B-3C-4D-5E', '00-1A-2B-3C-4D-5E'],
    ['001a.2b3c.4d5e', '00-1A-2B-3C-4D-5E'],
    ['001A2B3C4D5E', '00-1A-2B-3C-4D-5E'],
    // Twelve decimal digits are an MSISDN (3GPP NASes send them bare), not a MAC.
    ['447700900123', '447700900123'],
    ['00:11:22:33:44:55', '00-11-22-33-44-55'],
    ['0011.2233.4455', '00-11-22-33-44-55'],
    ['+33612345678', '33612345678'],
    ['imei-356938035643809', 'imei-356938035643809'],
    ['alice@realm', undefined],
    ['', undefined],
  ])('station id %j → device %j', (station, device) => {
    expect(deviceIdOf(station)).toBe(device);
  });
});
