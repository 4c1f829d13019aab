import type { Logger } from "../telemetry/logger.js";

/**
 * One step of the agent's life: what it starts and how it stops. The agent starts its
 * stages in order and stops the started ones in reverse — at shutdown and after a failed
 * start alike — so the teardown order is written once.
 */
export interface Stage {
  readonly name: string;
  start(): Promise<void>;
  /** Stops the stage; work that may take time (draining) ends by `deadline` (epoch ms). */
  stop(deadline: number): Promise<void>;
}

export class StageList {
  private readonly started: Stage[] = [];

  constructor(private readonly logger: Logger) {}

  async start(stage: Stage): Promise<void> {
    await stage.start();
    this.started.push(stage);
  }

  /** Stops every started stage, newest first; a stage that fails to stop does not stop the rest. */
  async stopAll(deadline: number): Promise<void> {
    while (this.started.length > 0) {
      const stage = this.started.pop() as Stage;
      try {
        await stage.stop(deadline);
      } catch (err) {
        this.logger.error({ err, stage: stage.name }, "stopping failed");
      }
    }
  }
}
