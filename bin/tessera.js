#!/usr/bin/env node
// Development only: runs the TypeScript sources (the package's `tessera` is dist/cli/main.js).
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
