/**
 * shownPlainText uses one global RegExp built once (it runs on every tower report). A global
 * RegExp carries `lastIndex` between uses: these calls, in an order where a leaked `lastIndex` would
 * skip the start of the next text, must each replace every forbidden character.
 */
import { describe, expect, it } from 'vitest';
import { shownPlainText } from './names.js';

describe('shownPlainText', () => {
  it('replaces every forbidden character, whatever text came before', () => {
    const long = `${'v'.repeat(40)}\u202E${'w'.repeat(40)}\u0007`;
    expect(shownPlainText(long)).toBe(`${'v'.repeat(40)}\uFFFD${'w'.repeat(40)}\uFFFD`);
    // Shorter than where the previous text matched: a leaked lastIndex would find nothing here.
    expect(shownPlainText('\u001B[31mred')).toBe('\uFFFD[31mred');
    expect(shownPlainText('a\u2066b\u2069c')).toBe('a\uFFFDb\uFFFDc');
    expect(shownPlainText('plain 1.2.3')).toBe('plain 1.2.3');
    expect(shownPlainText('\u0000')).toBe('\uFFFD');
  });

  it('keeps tab, line breaks, zero-width characters and bidi marks, as plainText accepts them', () => {
    expect(shownPlainText('a\tb\nc\r\u200B\u200E\u200F')).toBe('a\tb\nc\r\u200B\u200E\u200F');
  });
});
