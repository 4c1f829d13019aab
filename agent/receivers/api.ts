import type { Schema, z } from "../common/zod.js";
import type { FactoryBase, Lifecycle } from "../common/component.js";
import type { LogsConsumer } from "../processing/pipeline.js";
import type { ComponentSettings } from "../telemetry/settings.js";

/** One listening endpoint of a receiver, as `audit-agent run` tells it at start. */
export interface ReceiverEndpoint {
  /** "grpc" or "http". */
  protocol: string;
  /** host:port actually bound (after port 0 is resolved). */
  address: string;
  /** Where clients send logs, e.g. https://127.0.0.1:4318/v1/logs (HTTP only). */
  url?: string;
  /** "off", "on" or "mutual" (client certificates required). */
  tls: "off" | "on" | "mutual";
  /** How clients authenticate: "none" or "bearer token". */
  auth: "none" | "bearer token";
}

/** A receiver accepts requests from clients and hands them to the logs pipeline. */
export interface ReceiverFactory<S extends Schema = Schema> extends FactoryBase<S> {
  readonly kind: "receiver";
  create(
    settings: ComponentSettings,
    config: z.output<S>,
    consumer: LogsConsumer,
  ): Lifecycle & {
    addresses(): Record<string, string>;
    /** Every endpoint listening, once started. */
    endpoints(): ReceiverEndpoint[];
  };
}
