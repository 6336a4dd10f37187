/**
 * Saving `multipart/form-data` uploads under a directory, shared by the
 * upload example and the showcase. Names are sanitised and made unique;
 * each file is written under a temporary name and renamed when complete,
 * so a failed write leaves nothing behind.
 */
import { type FormPart, parseMultipart, sanitizeFilename } from "../src/http/multipart.ts";

/** One saved file, as reported to the client. */
export interface SavedUpload {
  field: string;
  filename: string;
  savedAs: string;
  size: number;
  contentType: string;
}

/** Writes `data` to `path` via a temporary file in the same directory. */
async function writeAtomically(path: string, data: Uint8Array): Promise<void> {
  const temp = `${path}.${crypto.randomUUID()}.partial`;
  try {
    await Deno.writeFile(temp, data, { createNew: true });
    await Deno.rename(temp, path);
  } catch (e) {
    await Deno.remove(temp).catch(() => {});
    throw e;
  }
}

/**
 * Parses a multipart body and saves its file parts under `dir`.
 *
 * @throws {MultipartError} for a malformed body (answer 400).
 */
export async function saveUploads(
  dir: string,
  body: Uint8Array,
  contentType: string,
): Promise<{ files: SavedUpload[]; fields: Record<string, string> }> {
  const parts: FormPart[] = parseMultipart(body, contentType, { maxParts: 100 });
  const files: SavedUpload[] = [];
  const fields: Record<string, string> = {};
  for (const part of parts) {
    if (part.filename === undefined) {
      fields[part.name] = new TextDecoder().decode(part.data);
      continue;
    }
    const name = `${crypto.randomUUID().slice(0, 8)}-${sanitizeFilename(part.filename)}`;
    await writeAtomically(`${dir}/${name}`, part.data);
    files.push({
      field: part.name,
      filename: part.filename,
      savedAs: name,
      size: part.data.length,
      contentType: part.contentType,
    });
  }
  return { files, fields };
}
