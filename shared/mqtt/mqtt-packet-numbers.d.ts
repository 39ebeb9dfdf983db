/** Types for the part of mqtt-packet's number encoders that var-byte-int-table.ts replaces (it ships none). */
declare module 'mqtt-packet/numbers.js' {
  const numbers: {
    /** Encodes an MQTT variable byte integer (a packet's remaining length). */
    genBufVariableByteInt(n: number): Buffer;
  };
  export default numbers;
}
