/**
 * Device → tenant resolution at the edge, fed by the retained PolicyBundles on
 * `tenants/+/policy`. A newer bundle replaces its tenant's device set; an older one (a late
 * redelivery) is ignored so a tower never regresses to a previous policy version.
 */
import type { PolicyBundle } from '../shared/mqtt/payloads.js';

export class TenantDirectory {
  readonly #bundles = new Map<string, PolicyBundle>();
  readonly #deviceTenant = new Map<string, string>();

  /** Returns false when the bundle is older than the one already held (and was ignored). */
  apply(bundle: PolicyBundle): boolean {
    const current = this.#bundles.get(bundle.tenant_id);
    if (current && current.version > bundle.version) return false;
    this.#forgetDevices(bundle.tenant_id);
    this.#bundles.set(bundle.tenant_id, bundle);
    for (const d of bundle.devices) this.#deviceTenant.set(d.id, bundle.tenant_id);
    return true;
  }

  /** An empty retained payload clears the tenant's bundle (tenant removed). */
  remove(tenantId: string): boolean {
    if (!this.#bundles.has(tenantId)) return false;
    this.#forgetDevices(tenantId);
    this.#bundles.delete(tenantId);
    return true;
  }

  tenantOf(deviceId: string): string | undefined {
    return this.#deviceTenant.get(deviceId);
  }

  knownTenants(): string[] {
    return [...this.#bundles.keys()];
  }

  bundle(tenantId: string): PolicyBundle | undefined {
    return this.#bundles.get(tenantId);
  }

  #forgetDevices(tenantId: string): void {
    const old = this.#bundles.get(tenantId);
    if (!old) return;
    for (const d of old.devices) {
      // Another tenant may have claimed the device since; only drop our own mapping.
      if (this.#deviceTenant.get(d.id) === tenantId) this.#deviceTenant.delete(d.id);
    }
  }
}
