#!/usr/bin/env -S node --single-threaded-gc --no-incremental-marking
// Entry point for `npx shorthorn`: TypeScript runs through tsx's loader, so there is no build step.
import { register } from 'tsx/esm/api';

register();
await import('../cli/main.ts');
