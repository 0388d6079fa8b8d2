// Copies Microsoft's powerbi-client bundle (installed by `npm ci`, pinned in package-lock.json)
// into web/vendor/, where index.html loads it and the Rust build will embed it. Nothing is hand-written.
import { copyFileSync, mkdirSync, readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, 'node_modules', 'powerbi-client', 'dist');
const vendor = join(here, 'vendor');

if (!existsSync(join(dist, 'powerbi.min.js'))) {
  console.error('powerbi-client is not installed: run `npm ci` in web/ first');
  process.exit(1);
}
const pkg = JSON.parse(readFileSync(join(here, 'node_modules', 'powerbi-client', 'package.json'), 'utf8'));
const wanted = JSON.parse(readFileSync(join(here, 'package.json'), 'utf8')).dependencies['powerbi-client'];
if (pkg.version !== wanted) {
  console.error(`installed powerbi-client ${pkg.version} is not the pinned ${wanted}: run \`npm ci\``);
  process.exit(1);
}
mkdirSync(vendor, { recursive: true });
copyFileSync(join(dist, 'powerbi.min.js'), join(vendor, 'powerbi.min.js'));
copyFileSync(join(dist, 'powerbi.js.LICENSE.min.txt'), join(vendor, 'powerbi.js.LICENSE.min.txt'));
console.log(`web/vendor/powerbi.min.js: powerbi-client ${pkg.version}`);
