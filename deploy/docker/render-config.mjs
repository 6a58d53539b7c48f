// Renders a config template: every ${NAME} is replaced with the environment variable NAME
// (an unset variable is an error, so a typo never ships an empty address).
// Kubernetes uses it in an init container to give each engine Pod's agent its own id and
// advertised address (POD_NAME, POD_IP): node deploy/docker/render-config.mjs TEMPLATE OUT
import { readFileSync, writeFileSync } from 'node:fs';

const [template, out] = process.argv.slice(2);
if (!template || !out) {
  console.error('usage: render-config.mjs TEMPLATE OUT');
  process.exit(2);
}
const missing = [];
const text = readFileSync(template, 'utf8').replace(/\$\{([A-Z_][A-Z0-9_]*)\}/g, (_m, name) => {
  const v = process.env[name];
  if (v === undefined || v === '') missing.push(name);
  return v ?? '';
});
if (missing.length) {
  console.error(`render-config: unset variables: ${[...new Set(missing)].join(', ')}`);
  process.exit(2);
}
writeFileSync(out, text);
console.log(`render-config: wrote ${out}`);
