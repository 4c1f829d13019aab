/** An OTLP/HTTP request refused with a given status, message and counter label. */
export class HttpRefusal extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly reason: string,
  ) {
    super(message);
  }
}

/** 413: the body, or what it decompresses to, is over max_request_body_size. */
export function bodyTooLarge(what: string, limit: number): HttpRefusal {
  return new HttpRefusal(
    413,
    `${what} exceeds the limit of ${limit} bytes (max_request_body_size): send smaller requests or raise receivers.otlp.protocols.http.max_request_body_size`,
    "too_large",
  );
}

/** 400: the body is not valid data of its Content-Encoding. */
export function corruptBody(encoding: string, detail: string): HttpRefusal {
  return new HttpRefusal(400, `body is not valid ${encoding} data: ${detail}`, "malformed");
}

type ZlibCallback = (err: Error | null, out: Buffer) => void;
/** A node:zlib one-shot decoder (gunzip, inflate, zstdDecompress) with its options. */
export type ZlibDecoder = (
  body: Buffer,
  options: { maxOutputLength: number },
  callback: ZlibCallback,
) => void;

/**
 * Runs a node:zlib decoder; maxOutputLength stops a compression bomb before its output is
 * held in memory (zlib refuses to grow the output past it).
 */
export function zlibDecode(
  decoder: ZlibDecoder,
  body: Buffer,
  encoding: string,
  limit: number,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    decoder(body, { maxOutputLength: limit }, (err, out) => {
      if (!err) return resolve(out);
      if (
        (err as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE" ||
        err instanceof RangeError
      ) {
        return reject(bodyTooLarge("the decompressed body", limit));
      }
      reject(corruptBody(encoding, err.message));
    });
  });
}
