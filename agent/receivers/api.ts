import type { z } from "zod";
import type { FactoryBase, Lifecycle } from "../common/component.js";
import type { LogsConsumer } from "../processing/pipeline.js";
import type { ComponentSettings } from "../telemetry/settings.js";

/** A receiver accepts requests from clients and hands them to the logs pipeline. */
export interface ReceiverFactory<S extends z.ZodType = z.ZodType> extends FactoryBase<S> {
  readonly kind: "receiver";
  create(
    settings: ComponentSettings,
    config: z.output<S>,
    consumer: LogsConsumer,
  ): Lifecycle & { addresses(): Record<string, string> };
}
