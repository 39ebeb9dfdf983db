/**
 * Names people read (roles, policies, users, devices, apps, towers, tenants…), wherever they enter:
 * the REST API and the carriers' tower feeds (MQTT and HTTP) alike; and the free text beside them
 * (descriptions, notes, reasons).
 */
import { z } from 'zod';

/**
 * Characters no human name may hold: controls (C0, DEL, C1: a NUL or a newline in a name breaks
 * logs, exports and the console), bidirectional embeddings, overrides, isolates and marks (they
 * make a name display as another: "\u202Egnp.exe" shows as "exe.png"), line/paragraph separators,
 * and invisible characters with no linguistic role (soft hyphen, zero-width space, word joiner
 * and the invisible operators, byte-order mark), which would let "engineer\u200B" pass for
 * "engineer" while being another unique name.
 */
const FORBIDDEN_IN_NAME = /[\p{Cc}\u00AD\u061C\u200B\u200E\u200F\u2028-\u202E\u2060-\u2064\u2066-\u2069\uFEFF]/u;
/**
 * Zero-width (non-)joiners do carry meaning between two non-ASCII characters (Persian and Indic
 * spelling, emoji sequences), where they also change what is drawn; anywhere else (an end, next to
 * ASCII) they are invisible, so they are refused there.
 */
const STRAY_JOINER = /(?:^|\p{ASCII})[\u200C\u200D]|[\u200C\u200D](?:$|\p{ASCII})/u;

const codePoint = (text: string, at: number): string => `U+${(text.codePointAt(at) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;

/**
 * The one schema for a name people read (roles, policies, users, devices, apps, towers, tenants…):
 * trimmed, 1–`max` characters, no controls, bidi overrides or invisible characters (400 naming the
 * field and the code point). Names stored before this rule are left as they are and can still be
 * looked up; only creating or renaming to such a name is refused.
 */
export function humanName(max = 200) {
  return z
    .string()
    .trim()
    .min(1)
    .max(max)
    .superRefine((name, ctx) => {
      const bad = FORBIDDEN_IN_NAME.exec(name) ?? STRAY_JOINER.exec(name);
      if (bad === null) return;
      // A stray-joiner match may include its ASCII neighbour: name the joiner itself.
      const at = bad.index + Math.max(0, bad[0].search(/[\u200C\u200D]/u));
      ctx.addIssue({ code: 'custom', message: `must not contain control, bidirectional or invisible characters (found ${codePoint(name, at)})` });
    });
}

/**
 * Characters free text (a description, a step's note, a command's reason) may not hold: controls
 * other than tab and line breaks (a NUL or an escape sequence breaks logs, exports and terminals)
 * and bidirectional embeddings, overrides and isolates (they reorder what follows when displayed:
 * an override in a note makes the rest of the line, or the console text after it, read backwards).
 * Zero-width characters and the bidi marks are kept: free text has no uniqueness to fool, and
 * right-to-left writing uses them.
 */
// eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
const FORBIDDEN_IN_TEXT = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]/u;
/** The same characters, every occurrence: built once (shownPlainText runs on every tower report). */
const FORBIDDEN_IN_TEXT_ALL = new RegExp(FORBIDDEN_IN_TEXT.source, 'gu');

/** Refines free text: 400 naming the field and the code point of the first forbidden character. */
export function plainText(text: string, ctx: z.RefinementCtx): void {
  const bad = FORBIDDEN_IN_TEXT.exec(text);
  if (bad === null) return;
  ctx.addIssue({ code: 'custom', message: `must not contain control or bidirectional override characters (found ${codePoint(text, bad.index)})` });
}

/**
 * Free text a tower reports (its agent version), made safe to show: every character plainText
 * refuses becomes U+FFFD. A tower's report is not refused for it (its status would be lost), but a
 * bidi override or an escape sequence must not reach the console, logs or exports as such.
 */
export function shownPlainText(text: string): string {
  // A global RegExp carries `lastIndex`; String.prototype.replace resets it to 0 before matching
  // and leaves it at 0 (ECMA-262 RegExp.prototype[@@replace]), so one shared instance is safe.
  return text.replace(FORBIDDEN_IN_TEXT_ALL, '\uFFFD');
}
