/** `bytes` split at the given cut offsets (taken modulo the length, deduplicated, in order). */
export function cutIntoChunks(bytes: Buffer, cuts: number[]): { bytes: Buffer; chunks: Buffer[] } {
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const c of [...at, bytes.length]) {
    chunks.push(bytes.subarray(from, c));
    from = c;
  }
  return { bytes, chunks };
}
