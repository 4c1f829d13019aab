// Load generator, run as its own process: sends one pre-encoded OTLP request repeatedly
// with `concurrency` requests in flight (optionally capped at `rate` records/s) for
// `duration` seconds, and prints one JSON line: counts and ack latencies. With `warmUp`
// seconds, the load runs that long first and only what follows is counted, except `first`:
// the latency of the very first request (a fresh agent's and client's cold path).
// Usage: node bench/loadgen.mjs '{"protocol":"http-proto","target":"127.0.0.1:4318",...}'
import * as grpc from "@grpc/grpc-js";
import { Pool } from "undici";
import { buildRequest, encodeJson, encodeProto } from "./records.mjs";

const o = JSON.parse(process.argv[2]);
const request = buildRequest(o.size, o.auditRatio);
const body = o.protocol === "http-json" ? encodeJson(request) : encodeProto(request);
const latencies = [];
let first = null;
let ok = 0;
let refused = 0;
let errors = 0;
let warming = (o.warmUp ?? 0) > 0;

let send;
let close;
if (o.protocol === "grpc") {
  const client = new grpc.Client(o.target, grpc.credentials.createInsecure());
  send = () =>
    new Promise((resolve) => {
      client.makeUnaryRequest(
        "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
        (b) => b,
        (b) => b,
        body,
        (err) => {
          if (!err) ok++;
          else if (
            err.code === grpc.status.RESOURCE_EXHAUSTED ||
            err.code === grpc.status.UNAVAILABLE
          )
            refused++;
          else errors++;
          resolve();
        },
      );
    });
  close = () => client.close();
} else {
  const pool = new Pool(`http://${o.target}`, { connections: o.concurrency, pipelining: 1 });
  const headers = {
    "content-type": o.protocol === "http-json" ? "application/json" : "application/x-protobuf",
  };
  send = async () => {
    try {
      const res = await pool.request({ path: "/v1/logs", method: "POST", headers, body });
      await res.body.dump();
      if (res.statusCode === 200) ok++;
      else if (res.statusCode === 429 || res.statusCode === 503) refused++;
      else errors++;
    } catch {
      errors++;
    }
  };
  close = () => pool.close();
}

let started = performance.now();
const warmUpEnd = started + (o.warmUp ?? 0) * 1000;
const end = warmUpEnd + o.duration * 1000;
// With a rate, requests are released on a fixed schedule shared by all workers.
const interval = o.rate ? (o.size / o.rate) * 1000 : 0;
let nextAt = started;

async function worker() {
  while (performance.now() < end) {
    if (interval > 0) {
      const at = nextAt;
      nextAt += interval;
      const wait = at - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      if (performance.now() >= end) break;
    }
    const t0 = performance.now();
    await send();
    const took = performance.now() - t0;
    first ??= took;
    if (warming && t0 >= warmUpEnd) {
      // The measured run starts here: what the warm-up counted is dropped.
      warming = false;
      started = t0;
      ok = refused = errors = latencies.length = 0;
    }
    latencies.push(took);
  }
}

await Promise.all(Array.from({ length: o.concurrency }, worker));
const elapsed = (performance.now() - started) / 1000;
await close();
latencies.sort((a, b) => a - b);
const q = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? 0;
process.stdout.write(
  `${JSON.stringify({ requests: ok, refused, errors, elapsed, recordsPerSec: (ok * o.size) / elapsed, auditPerSec: (ok * o.size * o.auditRatio) / elapsed, p50: q(0.5), p99: q(0.99), first, max: latencies[latencies.length - 1] ?? 0 })}\n`,
);
