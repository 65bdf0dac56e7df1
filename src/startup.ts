// Imported first by every entry point (the CLI, the bundle, the Action). Node's fetch parses
// HTTP with undici's WebAssembly build of llhttp; V8 re-compiles that module optimised on
// background threads, and Node waits for those threads before a process may exit: about
// 80 ms of idle time at the end of every short CLI run. The baseline (Liftoff) code is fast
// enough for the few dozen requests a run makes, so we stay there. (The bundle's loader,
// scripts/loader.mjs, sets it before this runs: a flag set at run time changes what V8
// checks code caches against, so the loader loads Node's fetch first and compiles the
// program, from its cache, after the flag.)
import { setFlagsFromString } from 'node:v8';

setFlagsFromString('--liftoff-only');
