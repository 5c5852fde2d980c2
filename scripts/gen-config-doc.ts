import fs from 'node:fs';
import { renderConfigDoc } from '../src/config-doc.js';

fs.writeFileSync(new URL('../docs/configuration.md', import.meta.url), renderConfigDoc());
