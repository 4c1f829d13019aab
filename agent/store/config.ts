import { z } from "../common/zod.js";
import { CHAIN_ID_PATTERN } from "../integrity/format.js";
import { extensionFactory } from "../common/component.js";

/**
 * `extensions.wal`: where and how much the write-ahead log buffers. The WAL is always
 * on; this extension only configures it (listing it in service.extensions is optional).
 */
export const walConfigSchema = z
  .object({
    directory: z.string().min(1).default("./data/wal"),
    max_size_mib: z
      .number()
      .positive()
      .max(1024 * 1024)
      .default(256),
    max_record_size_kib: z
      .number()
      .int()
      .positive()
      .max(64 * 1024)
      .default(1024),
    /**
     * What the WAL may keep in memory (LevelDB's memtable and block cache, the tail of
     * recent records): the main knob of the agent's RSS under load (docs/configuration.md).
     */
    memory_mib: z.number().min(4).max(4096).default(40),
    chain_id: z
      .string()
      .regex(
        CHAIN_ID_PATTERN,
        "chain_id may hold letters, digits, '.', '_' and '-' (1 to 128, starting with a letter or digit)",
      )
      .optional(),
  })
  .strict();

export type WalConfig = z.infer<typeof walConfigSchema>;

export const walExtensionFactory = extensionFactory("wal", walConfigSchema);
