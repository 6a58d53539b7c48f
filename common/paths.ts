// Where the installed project lives, whether this module runs from source (common/paths.ts under
// tsx) or compiled (dist/common/paths.js under plain node): config, proto, models and the
// dashboard's files are read from the repository root, never from dist/.
import { fileURLToPath } from 'node:url';

const FROM_SOURCE = import.meta.url.endsWith('.ts');

export const REPO_ROOT = fileURLToPath(new URL(FROM_SOURCE ? '..' : '../..', import.meta.url));
