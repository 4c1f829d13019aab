import type { ActingFactory } from "../api.js";
import { sourceConfigSchema } from "./config.js";
import { SourceStamp } from "./stamp.js";

export const sourceProcessorFactory: ActingFactory<typeof sourceConfigSchema, SourceStamp> = {
  kind: "processor",
  type: "source",
  configSchema: sourceConfigSchema,
  create: (_settings, config) => new SourceStamp(config),
};
