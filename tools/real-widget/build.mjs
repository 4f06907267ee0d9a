// Builds the widget with its own esbuild.config.mjs (its production build),
// with only its deployment constants pointed elsewhere.
//
//   node build.mjs <widget dir (holds esbuild.config.mjs)> <overrides.json>
//
// overrides.json maps define names (e.g. "__STREAMING_ENDPOINT__") to plain
// string values. The widget's build script runs unchanged: a module resolve
// hook hands it esbuild-shim.mjs for `esbuild`, which merges the overrides
// over the defines the script computed itself, for every build it makes
// (widget.js, go/loader.js, iframe-main.js).
import path from 'node:path';
import fs from 'node:fs';
import { register } from 'node:module';
import { pathToFileURL } from 'node:url';

const [widgetDir, overridesFile] = process.argv.slice(2);
if (!widgetDir || !overridesFile) {
  console.error('usage: node build.mjs <widget dir> <overrides.json>');
  process.exit(2);
}
const dir = path.resolve(widgetDir);
const overrides = JSON.parse(fs.readFileSync(overridesFile, 'utf8'));
process.env.REAL_WIDGET_DIR = dir;
process.env.REAL_WIDGET_OVERRIDES = JSON.stringify(overrides);

const configUrl = pathToFileURL(path.join(dir, 'esbuild.config.mjs')).href;
const shimUrl = new URL('./esbuild-shim.mjs', import.meta.url).href;
const hooks = `
export async function resolve(specifier, context, next) {
  if (specifier === 'esbuild' && context.parentURL === ${JSON.stringify(configUrl)}) {
    return { url: ${JSON.stringify(shimUrl)}, shortCircuit: true };
  }
  return next(specifier, context);
}`;
register(`data:text/javascript,${encodeURIComponent(hooks)}`, import.meta.url);

process.chdir(dir);
process.env.BUILD_ENV = process.env.BUILD_ENV || 'production';
await import(configUrl);
const { builds } = await import(shimUrl);
if (builds() === 0) {
  console.error('real-widget: the widget build never called esbuild (did its build script change?)');
  process.exit(1);
}
console.log(`real-widget: ${builds()} esbuild builds, with ${JSON.stringify(overrides)}`);
