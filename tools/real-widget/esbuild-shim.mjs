// esbuild as the widget's build script sees it under build.mjs: the real
// esbuild (the widget's own copy), with the deployment-constant overrides
// merged over the defines of every build.
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(path.join(process.env.REAL_WIDGET_DIR, 'package.json'));
const real = require('esbuild');
const overrides = JSON.parse(process.env.REAL_WIDGET_OVERRIDES || '{}');
const defines = Object.fromEntries(Object.entries(overrides).map(([k, v]) => [k, JSON.stringify(v)]));

let count = 0;
const withOverrides = (options) => {
  count += 1;
  const missing = Object.keys(overrides).filter((k) => !(k in (options.define || {})));
  if (missing.length) {
    console.warn(`real-widget: the widget's build defines no ${missing.join(', ')}; added`);
  }
  return { ...options, define: { ...(options.define || {}), ...defines } };
};

export const builds = () => count;
export const build = (options) => real.build(withOverrides(options));
export const context = (options) => real.context(withOverrides(options));
export const transform = real.transform;
export const formatMessages = real.formatMessages;
export const analyzeMetafile = real.analyzeMetafile;
export const version = real.version;
export default { ...real, build, context };
