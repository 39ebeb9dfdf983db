/* global document */
// EdgePlane on Firebase: signs in with Firebase Authentication, reads the tenant id from the
// user's custom claim `tenant_id` (set by README.md's script), and listens to the paths the
// control plane's Firebase sink writes. The database rules (database.rules.json) let a user read
// only its own tenant, so this page cannot show another tenant's data even if edited.
import { initializeApp } from 'https://www.gstatic.com/firebasejs/13.2.0/firebase-app.js';
import { getAuth, onAuthStateChanged, signInWithEmailAndPassword, signOut } from 'https://www.gstatic.com/firebasejs/13.2.0/firebase-auth.js';
import { getDatabase, limitToLast, onValue, orderByChild, query, ref } from 'https://www.gstatic.com/firebasejs/13.2.0/firebase-database.js';

// Firebase Hosting serves this project's web configuration at /__/firebase/init.json.
const config = await (await fetch('/__/firebase/init.json')).json();
const app = initializeApp(config);
const auth = getAuth(app);
const db = getDatabase(app);

const $ = (id) => document.getElementById(id);
const time = (ms) => (ms ? new Date(ms).toLocaleTimeString() : '—');
/** The sink percent-encodes characters Firebase keys cannot hold (. $ # [ ] / %). */
const key = (s) => s.replace(/[.$#[\]/%]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);

function rows(tbody, items, cells) {
  tbody.replaceChildren(
    ...items.map((item) => {
      const tr = document.createElement('tr');
      for (const text of cells(item)) {
        const td = document.createElement('td');
        td.textContent = String(text); // never innerHTML: values come from devices and towers
        tr.append(td);
      }
      return tr;
    }),
  );
}

let unsubscribe = [];

function watch(tenantId) {
  const base = `tenants/${key(tenantId)}`;
  unsubscribe.push(
    onValue(ref(db, `${base}/counters`), (snap) => {
      const c = snap.val() ?? {};
      $('events').textContent = (c.events ?? 0).toLocaleString();
      $('denied').textContent = (c.denied ?? 0).toLocaleString();
      $('rate').textContent = c.events ? `${((100 * (c.denied ?? 0)) / c.events).toFixed(1)} %` : '0 %';
      $('updated').textContent = time(c.updated_at);
    }),
    onValue(query(ref(db, `${base}/alerts`), orderByChild('last_seen'), limitToLast(50)), (snap) => {
      const alerts = [];
      snap.forEach((child) => void alerts.push(child.val()));
      const open = alerts.filter((a) => a.status === 'open').reverse();
      rows($('alerts'), open, (a) => [a.severity, a.device_id, `${a.app} / ${a.action}`, a.count, time(a.last_seen), a.tower_id]);
    }),
    onValue(query(ref(db, `${base}/remediations`), orderByChild('updated_at'), limitToLast(50)), (snap) => {
      const list = [];
      snap.forEach((child) => void list.push(child.val()));
      rows($('remediations'), list.reverse(), (r) => [`${r.type}${r.app ? ` ${r.app}` : ''}`, r.device_id, r.tower_id, r.source, r.status, time(r.updated_at)]);
    }),
  );
}

onAuthStateChanged(auth, async (user) => {
  for (const off of unsubscribe) off();
  unsubscribe = [];
  $('signin').hidden = user !== null;
  $('signout').hidden = user === null;
  $('dashboard').hidden = true;
  $('who').textContent = 'signed out';
  if (!user) return;
  const { claims } = await user.getIdTokenResult();
  if (typeof claims.tenant_id !== 'string') {
    $('who').textContent = `${user.email}: no tenant_id claim (see README.md)`;
    return;
  }
  $('who').textContent = `${user.email} · tenant ${claims.tenant_id}`;
  $('dashboard').hidden = false;
  watch(claims.tenant_id);
});

$('signin').addEventListener('submit', async (e) => {
  e.preventDefault();
  $('error').textContent = '';
  try {
    await signInWithEmailAndPassword(auth, $('email').value, $('password').value);
    $('password').value = '';
  } catch (err) {
    $('error').textContent = err.code === 'auth/invalid-credential' ? 'e-mail or password is incorrect' : err.message;
  }
});
$('signout').addEventListener('click', () => void signOut(auth));
