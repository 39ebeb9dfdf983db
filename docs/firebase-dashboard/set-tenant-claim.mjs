// Gives a Firebase Authentication user read access to one EdgePlane tenant on the dashboard:
//   GOOGLE_APPLICATION_CREDENTIALS=service-account.json node set-tenant-claim.mjs <email> <tenantId>
// Run it with the same service account the control plane writes with (--firebase-credentials-file).
import { initializeApp, applicationDefault } from 'firebase-admin/app';
import { getAuth } from 'firebase-admin/auth';

const [email, tenantId] = process.argv.slice(2);
if (!email || !tenantId) {
  console.error('usage: node set-tenant-claim.mjs <email> <tenantId>');
  process.exit(2);
}
initializeApp({ credential: applicationDefault() });
const user = await getAuth().getUserByEmail(email);
await getAuth().setCustomUserClaims(user.uid, { ...user.customClaims, tenant_id: tenantId });
console.log(`${email} may now read tenant ${tenantId} (effective at the user's next sign-in)`);
