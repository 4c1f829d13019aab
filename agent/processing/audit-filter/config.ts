import { withMessage, z } from "../../common/zod.js";

/**
 * Configuration of the `audit_filter` processor: which records are audit records.
 * Syntax and its mapping to the Collector's filter processor: docs/audit-filter.md.
 */

const scalar = z.union([z.string(), z.number().finite(), z.boolean()]);

const textMatcher = z
  .object({
    equals: z.union([z.string(), z.array(z.string()).min(1)]).optional(),
    prefix: z.string().min(1).optional(),
  })
  .strict()
  .refine((m) => (m.equals === undefined) !== (m.prefix === undefined), {
    message: "set exactly one of equals or prefix",
  });

const severityLevel = z.union(
  [z.number().int().min(0).max(24), z.enum(["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"])],
  withMessage(
    "a severity is a whole number 0 to 24 or one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL",
  ),
);

const TEXT_SUBJECT_ERROR = withMessage(
  "write the exact text, {equals: text or [texts]} or {prefix: text}",
);

const ATTRIBUTE_SUBJECTS = ["record_attribute", "resource_attribute", "scope_attribute"] as const;
const TEXT_SUBJECTS = ["event_name", "scope_name", "severity_text"] as const;
const ALL_SUBJECTS = [...ATTRIBUTE_SUBJECTS, ...TEXT_SUBJECTS, "severity_number"] as const;

export const conditionSchema = z
  .object({
    record_attribute: z.string().min(1).optional(),
    resource_attribute: z.string().min(1).optional(),
    scope_attribute: z.string().min(1).optional(),
    event_name: z.union([z.string().min(1), textMatcher], TEXT_SUBJECT_ERROR).optional(),
    scope_name: z.union([z.string().min(1), textMatcher], TEXT_SUBJECT_ERROR).optional(),
    severity_text: z.union([z.string().min(1), textMatcher], TEXT_SUBJECT_ERROR).optional(),
    severity_number: z
      .object({ min: severityLevel.optional(), max: severityLevel.optional() })
      .strict()
      .refine((r) => r.min !== undefined || r.max !== undefined, {
        message: "set min, max or both",
      })
      .optional(),
    equals: z
      .union(
        [scalar, z.array(scalar).min(1)],
        withMessage("equals takes a string, number or boolean, or a list of them"),
      )
      .optional(),
    prefix: z.string().min(1).optional(),
    exists: z.literal(true).optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    const subjects = ALL_SUBJECTS.filter((s) => c[s] !== undefined);
    if (subjects.length !== 1) {
      ctx.addIssue({
        code: "custom",
        message: `a condition names exactly one of ${ALL_SUBJECTS.join(", ")} (found ${subjects.length === 0 ? "none" : subjects.join(", ")})`,
      });
      return;
    }
    const isAttribute = (ATTRIBUTE_SUBJECTS as readonly string[]).includes(subjects[0] as string);
    const matchers = (["equals", "prefix", "exists"] as const).filter((m) => c[m] !== undefined);
    if (isAttribute && matchers.length !== 1) {
      ctx.addIssue({
        code: "custom",
        message: `an attribute condition needs exactly one of equals, prefix or exists (found ${matchers.length === 0 ? "none" : matchers.join(", ")})`,
      });
    }
    if (!isAttribute && matchers.length > 0) {
      ctx.addIssue({
        code: "custom",
        message: `${matchers.join(", ")} applies to attribute conditions only; write ${subjects[0]}: {equals: …} or {prefix: …}`,
      });
    }
  });

export type AuditCondition = z.infer<typeof conditionSchema>;

/** The out-of-the-box rule: attribute audit=true (boolean or string), or event name audit.* */
export const DEFAULT_CONDITIONS: AuditCondition[] = [
  { record_attribute: "audit", equals: [true, "true"] },
  { event_name: { prefix: "audit." } },
];

export const auditFilterConfigSchema = z
  .object({
    match: z.enum(["any", "all"]).default("any"),
    conditions: z
      .array(conditionSchema)
      .min(1, "list at least one condition, or leave conditions out for the default rule")
      .default(DEFAULT_CONDITIONS),
  })
  .strict();

export type AuditFilterConfig = z.infer<typeof auditFilterConfigSchema>;
