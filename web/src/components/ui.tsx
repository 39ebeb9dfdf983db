/** Small shared pieces: badges, banners, cards, stats, forms. */
import type { ComponentChildren } from 'preact';
import { describeError } from '../lib/errors';

export function Badge(props: { kind: string; children: ComponentChildren; testId?: string }) {
  return (
    <span class={`badge badge-${props.kind}`} data-testid={props.testId}>
      {props.children}
    </span>
  );
}

export function ErrorBanner(props: { error: unknown }) {
  if (props.error === null || props.error === undefined) return null;
  return (
    <p class="banner banner-error" role="alert">
      {describeError(props.error)}
    </p>
  );
}

export function Card(props: { title?: string; actions?: ComponentChildren; children: ComponentChildren; class?: string; testId?: string }) {
  return (
    <section class={`card ${props.class ?? ''}`} data-testid={props.testId}>
      {(props.title !== undefined || props.actions !== undefined) && (
        <header class="card-head">
          {props.title !== undefined && <h2>{props.title}</h2>}
          <div class="card-actions">{props.actions}</div>
        </header>
      )}
      {props.children}
    </section>
  );
}

export function Stat(props: { label: string; value: string; hint?: string; testId?: string; tone?: 'deny' | 'ok' }) {
  return (
    <div class={`stat ${props.tone ? `stat-${props.tone}` : ''}`} data-testid={props.testId}>
      <div class="stat-value">{props.value}</div>
      <div class="stat-label">{props.label}</div>
      {props.hint !== undefined && <div class="stat-hint">{props.hint}</div>}
    </div>
  );
}

export function Empty(props: { children: ComponentChildren }) {
  return <p class="empty">{props.children}</p>;
}

export function Field(props: { label: string; children: ComponentChildren; hint?: string }) {
  return (
    <label class="field">
      <span class="field-label">{props.label}</span>
      {props.children}
      {props.hint !== undefined && <span class="field-hint">{props.hint}</span>}
    </label>
  );
}

export function Pager(props: { page: number; hasPrev: boolean; hasNext: boolean; prev: () => void; next: () => void; loading: boolean }) {
  return (
    <nav class="pager" aria-label="pages">
      <button type="button" onClick={props.prev} disabled={!props.hasPrev || props.loading}>
        ← Newer
      </button>
      <span>page {props.page}</span>
      <button type="button" onClick={props.next} disabled={!props.hasNext || props.loading} data-testid="next-page">
        Older →
      </button>
    </nav>
  );
}

export function EffectBadge(props: { effect: 'allow' | 'deny' }) {
  return <Badge kind={props.effect}>{props.effect}</Badge>;
}
