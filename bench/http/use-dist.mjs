// Loaded with `--import` after tsx by the bench harness: every import of the
// repository's src/ (the scenarios import src/*.js for their types) resolves
// to the compiled build in dist/esm instead, so a benchmark measures the code
// a user runs. Under tsx, src/ is compiled by esbuild with keepNames, which
// wraps every closure created per request in a __name() call (an
// Object.defineProperty each): about 4 µs of a Koa miss, not in the package.
import { register } from 'node:module';

register('./use-dist-hooks.mjs', import.meta.url);
