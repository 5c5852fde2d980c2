import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createFileOnce, readIfExists } from './key-file.js';

describe('createFileOnce', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
  });
  const tempDir = () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'koppel-key-file-'));
    dirs.push(dir);
    return dir;
  };

  it('creates the file whole with mode 0600, making its directories', () => {
    const file = path.join(tempDir(), 'a', 'b', 'admin.key');
    expect(readIfExists(file)).toBeNull();
    createFileOnce(file, 'first\n');
    expect(readIfExists(file)).toBe('first\n');
    if (process.platform !== 'win32') {
      expect(fs.statSync(file).mode & 0o777).toBe(0o600);
      expect(fs.statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
    }
    expect(fs.readdirSync(path.dirname(file))).toEqual(['admin.key']);
  });

  it('leaves a file that exists as it is (the process that wrote it first may be using it)', () => {
    const dir = tempDir();
    const file = path.join(dir, 'admin.key');
    createFileOnce(file, 'winner\n');
    createFileOnce(file, 'loser\n');
    expect(readIfExists(file)).toBe('winner\n');
    // The loser's temp file is gone too.
    expect(fs.readdirSync(dir)).toEqual(['admin.key']);
  });

  it('reports errors other than a missing file', () => {
    // A directory where a file is expected: reading it fails with EISDIR, which must not pass as "no file".
    expect(() => readIfExists(tempDir())).toThrow(/EISDIR/);
  });
});
