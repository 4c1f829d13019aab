import type { Socket } from "node:net";
import { TLSSocket } from "node:tls";
import type * as grpc from "@grpc/grpc-js";
import type { ClientPeer } from "../../processing/api.js";

/**
 * The client of a request as the transport saw it (processing/api.ts ClientPeer), for the
 * envelopes' `source` (docs/integrity-format.md §2.4). Read only when the source processor
 * asks, so a pipeline without one pays nothing but this object.
 */

/** An IPv4 client of a dual-stack socket, "::ffff:10.0.0.7", as the IPv4 address it is. */
function plainAddress(address: string): string {
  return address.startsWith("::ffff:") && address.includes(".") ? address.slice(7) : address;
}

/** The client of an OTLP/HTTP request: its socket. */
export class SocketPeer implements ClientPeer {
  constructor(private readonly socket: Socket) {}

  address(): string | null {
    const a = this.socket.remoteAddress;
    return a === undefined ? null : plainAddress(a);
  }

  verifiedCertificate(): Uint8Array | null {
    return this.socket instanceof TLSSocket ? verifiedCertificateOf(this.socket) : null;
  }
}

/**
 * The DER bytes of the certificate a TLS socket's handshake verified, or null. `authorized`
 * is true only when the peer presented a certificate that chains to the configured client
 * CA; kept per socket, as a connection carries many requests and its certificate is fixed.
 */
function verifiedCertificateOf(socket: TLSSocket): Uint8Array | null {
  let der = verified.get(socket);
  if (der === undefined) {
    der = socket.authorized ? (socket.getPeerCertificate().raw ?? null) : null;
    verified.set(socket, der);
  }
  return der;
}
const verified = new WeakMap<TLSSocket, Uint8Array | null>();

/** The client of an OTLP/gRPC call. */
export class CallPeer implements ClientPeer {
  constructor(private readonly call: grpc.ServerUnaryCall<unknown, unknown>) {}

  /** grpc-js gives "address:port" ("::1:53412" for IPv6): the address is before the last colon. */
  address(): string | null {
    const peer = this.call.getPeer();
    if (peer === "unknown") return null;
    const colon = peer.lastIndexOf(":");
    return plainAddress(
      colon > 0 && /^\d+$/.test(peer.slice(colon + 1)) ? peer.slice(0, colon) : peer,
    );
  }

  /** grpc-js reports a peer certificate only when the handshake authorized it. */
  verifiedCertificate(): Uint8Array | null {
    const context = this.call.getAuthContext();
    return context.transportSecurityType === "ssl"
      ? (context.sslPeerCertificate?.raw ?? null)
      : null;
  }
}
