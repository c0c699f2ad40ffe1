/**
 * The memory backend: a file's contents are its node's chunks. Chunks are never changed once
 * stored, and a replaced file gets a new array, so a reader keeps the array and the length it
 * opened with, and sees those bytes whatever happens later (appends only push past its length).
 */
import { FILE_CHUNK_BYTES } from "./flow.js";
import type { Backend, ContentSink, FileNode, FileReader } from "./store.js";

export const memoryBackend: Backend = {
  async read(_path, node) {
    return snapshotReader(node.chunks ?? [], node.size);
  },
  async sink(_path, _node, append) {
    const chunks: Uint8Array[] = [];
    const sink: ContentSink = {
      // A copy: the caller's buffer (a frame's, the host's user's) is not the store's to keep.
      write: async (chunk) => void chunks.push(chunk.slice()),
      commit: async (node: FileNode) => {
        if (append && node.chunks) node.chunks.push(...chunks);
        else node.chunks = chunks;
      },
      discard: async () => void (chunks.length = 0),
    };
    return sink;
  },
  // The tree is all there is: nothing else to do.
  mkdir: async () => {},
  remove: async () => {},
  rename: async () => {},
  close: async () => {},
};

/** Reads `size` bytes of `chunks`, merged into pieces of up to FILE_CHUNK_BYTES (appends make many small ones). */
function snapshotReader(chunks: readonly Uint8Array[], size: number): FileReader {
  let index = 0;
  let offset = 0;
  let left = size;
  return {
    size,
    async next() {
      if (left === 0) return undefined;
      const piece = new Uint8Array(Math.min(FILE_CHUNK_BYTES, left));
      let filled = 0;
      while (filled < piece.byteLength) {
        const chunk = chunks[index]!;
        const take = Math.min(chunk.byteLength - offset, piece.byteLength - filled);
        piece.set(chunk.subarray(offset, offset + take), filled);
        filled += take;
        offset += take;
        if (offset === chunk.byteLength) {
          index++;
          offset = 0;
        }
      }
      left -= filled;
      return piece;
    },
    close: async () => {},
  };
}
