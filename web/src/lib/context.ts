/** What every view of a signed-in console reaches through context. */
import { createContext } from 'preact';
import { useContext, useEffect, useState } from 'preact/hooks';
import type { Api } from './api';
import type { Directory } from './directory';
import type { Features } from './features';
import type { LiveChanges, LiveHub } from './live';
import type { Session } from './session';
import type { CallerPermissions } from './types';

export interface ConsoleContext {
  api: Api;
  session: Session;
  perms: CallerPermissions;
  /** Whether the signed-in user holds a permission (api/auth/permissions.ts, via /me/permissions). */
  can: (permission: string) => boolean;
  /** Live feeds: tenant consoles only. */
  live: LiveHub | null;
  names: Directory;
  features: Features;
  tenantName: string | null;
}

export const Ctx = createContext<ConsoleContext | null>(null);

export function useConsole(): ConsoleContext {
  const ctx = useContext(Ctx);
  if (ctx === null) throw new Error('useConsole outside a signed-in console');
  return ctx;
}

/** Calls `listener` with each tick's changes while the component is mounted. */
export function useLive(listener: (changes: LiveChanges) => void): void {
  const { live } = useConsole();
  useEffect(() => live?.subscribe(listener), [live, listener]);
}

/** Re-renders when the directory of names is reloaded. */
export function useNames(): Directory {
  const { names } = useConsole();
  const [, setVersion] = useState(0);
  useEffect(() => names.onChange(() => setVersion((v) => v + 1)), [names]);
  return names;
}
