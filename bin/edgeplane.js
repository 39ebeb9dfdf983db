#!/usr/bin/env node
// The CLI runs from the TypeScript sources through tsx's loader: no build step, so a fresh clone
// works right after `npm ci`, and what runs is always what is checked in.
import { register } from 'tsx/esm/api';

register();
await import('../cli/edgeplane.ts');
