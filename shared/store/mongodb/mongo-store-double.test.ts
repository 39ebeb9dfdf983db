/**
 * The full store contract against the MongoDB adapter over the in-memory BOUNDARY DOUBLE
 * (memory-mongo-double.ts): the adapter's logic runs in every test run, on machines where no
 * MongoDB server can. The same suite runs against a real server in mongo-store.test.ts.
 */
import { describeStoreContract, recordingHooks } from '../store.contract.js';
import { MemoryMongo } from './memory-mongo-double.js';
import { MongoStore } from './mongo-store.js';

describeStoreContract('mongodb over the in-memory boundary double', async () => {
  const server = new MemoryMongo();
  const { hooks, policyChanges } = recordingHooks();
  const store = new MongoStore({ url: 'mongodb://double/contract', hooks, connector: server.connector });
  await store.init();
  return { store, hooks: { policyChanges }, cleanup: () => store.close() };
});
