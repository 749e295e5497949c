#!/usr/bin/env node
// emu.mjs: the `emu` command (package.json "bin"): runs src/emu/cli/main.ts through tsx, so the
// TypeScript sources need no build step. `npx emu --help` from the repository lists the commands.
import { register } from 'tsx/esm/api';

register();
const { main } = await import(new URL('../src/emu/cli/main.ts', import.meta.url).href);
process.exitCode = await main(process.argv.slice(2));
