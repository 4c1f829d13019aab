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

/**
 * At most `size` holders at a time; the others wait their turn in order. The OTLP/HTTP
 * receiver holds one while a compressed request is decoded and stored, so what
 * decompressed bodies hold at once is `size` × max_request_body_size whatever the number of
 * requests: 64 gzip bombs of 64 KiB sent at once each inflated to the limit side by side
 * (node:zlib decodes them in parallel on its thread pool), +240 MiB of RSS for 4 MB sent.
 */
export class Slots {
  private free: number;
  private readonly waiting: Array<() => void> = [];

  constructor(size: number) {
    this.free = size;
  }

  /** Runs `fn` once a slot is free, and frees it when `fn` settles. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.free++;
    }
  }
}
