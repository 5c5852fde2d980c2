/**
 * Small secret files Koppel generates into its data directory on first start (`secret.key`,
 * `admin.key`). Two processes may start on one data directory at the same moment (an API and a
 * worker process on one machine), so creating one must never replace a file the other has
 * already written: the other process may already have used that key.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** The file's text, or null when it does not exist. */
export function readIfExists(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/**
 * Creates `file` (mode 0600, parent directories 0700 as needed) holding `content`, unless it
 * exists already, in which case it is left as it is. Either way the file is whole when this
 * returns: the content is written and fsynced to a temp file first, then hard-linked into place.
 * Unlike rename, link refuses to overwrite, so of two processes creating the file at once the
 * loser gets EEXIST and keeps the winner's file; a reader never sees it half-written.
 */
export function createFileOnce(file: string, content: string): void {
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.${crypto.randomBytes(6).toString('hex')}.tmp`;
  const fd = fs.openSync(tmp, 'wx', 0o600);
  try {
    fs.writeSync(fd, content);
    fs.fsyncSync(fd); // durable before anything is encrypted or authenticated with it
  } finally {
    fs.closeSync(fd);
  }
  try {
    try {
      fs.linkSync(tmp, file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') return;
      // Some filesystems have no hard links; fall back to rename, which is still atomic.
      if (code === 'EPERM' || code === 'ENOTSUP' || code === 'ENOSYS' || code === 'EOPNOTSUPP') fs.renameSync(tmp, file);
      else throw err;
    }
    syncDir(dir);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

function syncDir(dir: string): void {
  // Persist the directory entry too; not supported on every platform, and best effort is enough.
  try {
    const fd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    /* ignore */
  }
}
