/** Sends a manual remediation (POST /remedial-actions) for a device: what an alert's "Remediate" does. */
import { useState } from 'preact/hooks';
import { Field } from '../../components/ui';
import { useConsole } from '../../lib/context';
import { describeError } from '../../lib/errors';
import type { CommandRecord, CommandType } from '../../lib/types';

const TYPES: Array<{ type: CommandType; label: string; timed: boolean; app: boolean }> = [
  { type: 'block_app', label: 'Block the app', timed: true, app: true },
  { type: 'block_device', label: 'Block the device', timed: true, app: false },
  { type: 'quarantine', label: 'Quarantine', timed: true, app: false },
  { type: 'throttle', label: 'Throttle', timed: true, app: false },
  { type: 'notify', label: 'Notify the user', timed: false, app: false },
  { type: 'unblock_app', label: 'Lift an app block', timed: false, app: true },
  { type: 'unblock_device', label: 'Lift a device block', timed: false, app: false },
];

export function RemediationForm(props: { deviceId?: string; app?: string; reason?: string; onIssued: (c: CommandRecord) => void }) {
  const { api } = useConsole();
  const [deviceId, setDeviceId] = useState(props.deviceId ?? '');
  const [type, setType] = useState<CommandType>('block_app');
  const [app, setApp] = useState(props.app ?? '');
  const [minutes, setMinutes] = useState(10);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const spec = TYPES.find((t) => t.type === type)!;

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const { command } = await api.post<{ command: CommandRecord }>('/api/v1/remedial-actions', {
        device_id: deviceId.trim(),
        type,
        ...(spec.app && { app: app.trim() }),
        ...(spec.timed && { duration_s: Math.round(minutes * 60) }),
        ...(props.reason !== undefined && { reason: props.reason }),
      });
      props.onIssued(command);
    } catch (err) {
      setError(describeError(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="inline-form" onSubmit={(e) => void submit(e)} data-testid="remediation-form">
      <h3>Remediate</h3>
      {props.deviceId === undefined && (
        <Field label="Device">
          <input required value={deviceId} onInput={(e) => setDeviceId(e.currentTarget.value)} name="device_id" />
        </Field>
      )}
      <Field label="Action">
        <select value={type} onChange={(e) => setType(e.currentTarget.value as CommandType)} name="type">
          {TYPES.map((t) => (
            <option value={t.type} key={t.type}>
              {t.label}
            </option>
          ))}
        </select>
      </Field>
      {spec.app && (
        <Field label="App">
          <input required value={app} onInput={(e) => setApp(e.currentTarget.value)} name="app" />
        </Field>
      )}
      {spec.timed && (
        <Field label="For (minutes)">
          <input type="number" min={1} max={43200} required value={minutes} onInput={(e) => setMinutes(Number(e.currentTarget.value))} name="minutes" />
        </Field>
      )}
      {error !== null && <p class="banner banner-error">{error}</p>}
      <button type="submit" class="primary" disabled={busy} data-testid="remediate">
        {busy ? 'Sending…' : 'Send to the tower'}
      </button>
    </form>
  );
}
