import { describe, expect, it } from 'vitest';
import { mqttClientLog } from './client-log.js';

describe('mqttClientLog', () => {
  it('silences mqtt.js unless DEBUG could name it', () => {
    expect(mqttClientLog({}).log).toBeTypeOf('function');
    expect(mqttClientLog({ DEBUG: 'edgeplane:*,-x' })).toEqual({});
    expect(mqttClientLog({ DEBUG: 'aedes' }).log).toBeTypeOf('function');
    for (const DEBUG of ['mqttjs*', 'mqttjs:client', '*']) expect(mqttClientLog({ DEBUG })).toEqual({});
  });
});
