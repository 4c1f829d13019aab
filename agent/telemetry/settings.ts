import type { AgentCounters } from "./counters.js";
import type { Logger } from "./logger.js";

/**
 * What every component is created with, like the Collector's component.TelemetrySettings
 * plus its id: where it logs and where it counts.
 */
export interface ComponentSettings {
  /** The component id from the config: `type` or `type/name`. */
  id: string;
  logger: Logger;
  counters: AgentCounters;
}
