/**
 * mqtt-packet writes 2-byte numbers (packet ids, topic lengths) from a cache of all 65,536 of
 * them, built on the first packet a process writes: 65,536 Buffers, ~7 MB of JavaScript heap in
 * every process that speaks MQTT. A heap snapshot of the control plane with 2,000 idle towers
 * found it as 3.3 KB of the 19 KB of heap "per tower" (bench (j)), and it weighs the same in an
 * edge agent. Imported for its effect by every module that opens MQTT connections (the broker,
 * the agent's session, the distributed workers' downlink), before they write: each number is then
 * written as a 2-byte slice of Node's buffer pool (two or three per packet).
 */
import './var-byte-int-table.js';
import { writeToStream } from 'mqtt-packet';

writeToStream.cacheNumbers = false;
