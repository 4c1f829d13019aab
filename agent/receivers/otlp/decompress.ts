import { gunzip, inflate } from "node:zlib";
import { zlibDecode } from "./body-limits.js";
import { decompressSnappy } from "./snappy-body.js";
import { decompressZstd } from "./zstd-body.js";

/**
 * The request Content-Encodings the OTLP/HTTP receiver decodes, named as the Collector's
 * confighttp names them ("deflate" and "zlib" are both the zlib format there). Every one is
 * decoded within max_request_body_size, applied to the decompressed size. The Collector also
 * takes lz4, which is not offered here: such a request gets 415 naming these.
 */
export const ACCEPTED_ENCODINGS = [
  "gzip",
  "deflate",
  "zlib",
  "zstd",
  "snappy",
  "x-snappy-framed",
] as const;

export type ContentEncoding = (typeof ACCEPTED_ENCODINGS)[number];

export function isAcceptedEncoding(encoding: string): encoding is ContentEncoding {
  return (ACCEPTED_ENCODINGS as readonly string[]).includes(encoding);
}

export function decompressBody(
  body: Buffer,
  encoding: ContentEncoding,
  limit: number,
): Promise<Buffer> {
  switch (encoding) {
    case "gzip":
      return zlibDecode(gunzip, body, encoding, limit);
    case "deflate":
    case "zlib":
      return zlibDecode(inflate, body, encoding, limit);
    case "zstd":
      return decompressZstd(body, limit);
    case "snappy":
    case "x-snappy-framed":
      return decompressSnappy(body, limit, encoding);
  }
}
