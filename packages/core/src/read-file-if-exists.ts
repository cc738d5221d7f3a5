import { EverrunsError } from './errors.js';
import type { FileContent, ReadFileOptions, SessionFileSystem } from './file-system.js';

/**
 * Reads a workspace file, or resolves `null` when nothing is at `path` (upstream's
 * `read_file`, which returns `None`). Every other failure still throws: `IS_A_DIRECTORY`,
 * `INVALID_PATH`, `PATH_OUTSIDE_ROOT`, a store error. `SessionFileSystem.readFile` itself keeps
 * throwing `FILE_NOT_FOUND`, which the file tools turn into the model's "not found" result.
 */
export async function readFileIfExists(
  fileSystem: SessionFileSystem,
  path: string,
  options?: ReadFileOptions,
): Promise<FileContent | null> {
  try {
    return await fileSystem.readFile(path, options);
  } catch (error) {
    if (EverrunsError.hasCode(error, 'FILE_NOT_FOUND')) return null;
    throw error;
  }
}
